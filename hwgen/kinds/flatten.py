"""The flatten kind: row-major (C-order) flattening, a no-op on spike addresses.

In hardware a flatten of a ``(C, H, W)`` map becomes a ``hardware.pool.FlattenRemap``
(wires where ``H`` and ``W`` are powers of two, else one register stage); a flatten of a
flat stream, and the layers after the last spiking layer, produce no hardware.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from amaranth.lib import wiring

from ..cost import RemapStage, Stage
from ..hardware.memories import MemorySpec
from ..hardware.pool import FlattenRemap, flatten_is_identity
from ..hardware.tokens import is_map, shape_size
from ..ir import Node
from ..quant_rules import QuantOptions
from .base import Flow, Stream, Unit


@dataclass
class Flatten(Node):
    """Row-major (C-order) flattening: a no-op on spike addresses."""

    type_name: ClassVar[str] = "flatten"
    unit_stem: ClassVar[str] = "flatten"

    name: str
    input_shape: tuple[int, ...] = ()

    def float_step(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1)

    golden_step = float_step

    def quantize(self, opts: QuantOptions, flow: Flow) -> tuple[Node, Flow]:
        return self, flow

    def plan_hardware(self, stream: Stream) -> tuple[list[Unit], Stream]:
        shape = stream.shape
        if self.input_shape and shape_size(self.input_shape) != shape_size(shape):
            raise ValueError(f"flatten {self.name!r} expects {tuple(self.input_shape)} but is fed {shape}")
        if not is_map(shape):
            return [], stream
        unit = Unit(self, shape, shape_size(shape), stream.value_bits)
        return [unit], stream.to(shape=shape_size(shape))

    def build_unit(self, unit: Unit, parallel: int, weight_target: str | None) -> wiring.Component:
        return FlattenRemap(unit.in_shape, unit.value_bits)

    def unit_latency(self, unit: Unit) -> int:
        return 0 if flatten_is_identity(unit.in_shape) else 1

    def cost_stages(self, unit: Unit, parallel: int, tokens: list[np.ndarray] | None, trace, sample: int
                    ) -> tuple[list[Stage], list[np.ndarray] | None]:
        """Wires, or one register stage; C-order addresses are unchanged."""
        return [RemapStage(self.unit_latency(unit))], tokens

    def unit_memories(self, unit: Unit, parallel: int, weight_target: str | None) -> list[MemorySpec]:
        return []  # wires, or one register stage

    def logic_estimate(self, parallel: int, device_key: str, logic: dict) -> tuple[int, int, int]:
        return 0, 0, 0

    def report_entry(self, parallel: int) -> dict:
        return {"name": self.name, "type": self.type_name, "in": list(self.input_shape)}
