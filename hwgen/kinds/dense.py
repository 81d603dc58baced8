"""The dense kind: a fully-connected synapse layer followed by its LIF neurons.

Float node ``Dense`` (frontends), integer node ``QuantDense`` (quantizer, golden model,
``hardware.dense.DenseLIFEngine``). An input event ``j`` adds weight column ``j`` into the
membranes, ``P`` neurons per cycle; the fire pass walks the ``G`` membrane words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from amaranth.lib import wiring

from ..cost import EngineStage, Stage
from ..hardware.dense import DenseLIFEngine, check_accumulator, dense_weight_words, dense_words_read
from ..hardware.lanes import lanes_and_groups
from ..hardware.memories import MemorySpec
from ..hardware.tokens import is_map, shape_size
from ..ir import Leak, LIFNeurons, ResetMode, Synapse
from .base import EngineGeometry, Stream, Unit
from .flatten import Flatten
from .lif import FloatSynapticLIF, SynapticLIF
from .merge import plan_join


class _DenseShape:
    """Widths of a fully-connected layer, shared by both forms."""

    weight: np.ndarray

    @property
    def in_features(self) -> int:
        return int(self.weight.shape[1])

    @property
    def out_features(self) -> int:
        return int(self.weight.shape[0])

    @property
    def output_shape(self) -> tuple[int]:
        return (self.out_features,)


@dataclass
class Dense(_DenseShape, FloatSynapticLIF):
    """A fully-connected synapse layer followed by its spiking neurons."""

    type_name: ClassVar[str] = "dense"

    name: str
    weight: np.ndarray  # [out, in] float32
    bias: np.ndarray  # [out] float32 (zeros when the source had none)
    neurons: LIFNeurons
    # Several inputs (``FloatSynapticLIF``): their widths, and the biases of all but the first.
    segments: tuple[int, ...] = field(default=(), metadata={"omit_default": True})
    extra_bias: np.ndarray | None = field(default=None, metadata={"omit_default": True})

    def per_neuron(self, values: torch.Tensor) -> torch.Tensor:
        return values

    def float_input(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1) if x.ndim != 2 else x

    def float_current(self, x, weight, bias):
        return F.linear(x, weight, bias)

    def quantized(self, **common) -> QuantDense:
        return QuantDense(**common)


@dataclass
class QuantDense(_DenseShape, SynapticLIF):
    """Integer form of ``Dense``: every number the hardware stores or computes with."""

    type_name: ClassVar[str] = "quant_dense"
    unit_stem: ClassVar[str] = "dense"
    report_type: ClassVar[str] = "dense_lif"
    control_lut: ClassVar[int] = 750

    name: str
    weight: np.ndarray  # [out, in] int64, each within ``weight_bits`` signed
    bias: np.ndarray  # [out] int64
    threshold: np.ndarray  # [out] int64, >= 1
    leak: Leak
    reset: ResetMode
    weight_bits: int
    state_bits: int  # membrane saturates to this signed width between timesteps
    acc_bits: int  # width that holds every partial sum within a timestep, never wraps
    scale_exp: np.ndarray  # [out] int64: weight_int = round(weight_float * 2**scale_exp)
    # Largest input value per address and timestep: 1 for spikes, k*k after a k x k sum
    # pool, 2**input_bits - 1 for direct multi-bit input. Sizes acc_bits.
    input_max: int = 1
    # The neuron beyond plain LIF (``SynapticLIF``): CuBa current, reset value and order,
    # and the widths of several inputs.
    synapse: Synapse | None = field(default=None, metadata={"omit_default": True})
    v_reset: np.ndarray | None = field(default=None, metadata={"omit_default": True})
    reset_before_leak: bool = field(default=False, metadata={"omit_default": True})
    segments: tuple[int, ...] = field(default=(), metadata={"omit_default": True})

    @property
    def input_size(self) -> int:
        return self.in_features

    @property
    def golden_input_shape(self) -> tuple[int, ...]:
        return (self.in_features,)

    # ---- golden model

    def per_neuron(self, values: torch.Tensor) -> torch.Tensor:
        return values

    def golden_input(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1)

    def golden_concat(self, xs: list[torch.Tensor]) -> torch.Tensor:
        """Several inputs as one: their features side by side (``segments``)."""
        return torch.cat(xs, dim=1)

    def synaptic_input(self, x: torch.Tensor) -> torch.Tensor:
        return x @ torch.from_numpy(self.weight).T

    def event_fanout(self, events: torch.Tensor) -> torch.Tensor:
        return events.reshape(events.shape[0], -1).sum(dim=1) * self.out_features

    def max_fanout(self) -> int:
        return self.out_features

    # ---- hardware

    def geometry(self, parallel: int) -> EngineGeometry:
        lanes, groups = lanes_and_groups(self.out_features, parallel)
        # The dense spike queue holds a whole fire pass (G + 2 entries).
        return EngineGeometry(lanes=lanes, groups=groups, reach=self.out_features, fire_words=groups,
                              queue_words=groups + 2, pipeline_latency=DenseLIFEngine.pipeline_latency)

    def cost_stages(self, unit: Unit, parallel: int, tokens: list[np.ndarray] | None, trace, sample: int
                    ) -> tuple[list[Stage], list[np.ndarray]]:
        """The engine's stage of one inference (``hwgen.cost``): every input token is one
        walker step per group; spikes leave in address order, ``P`` per fire-pass word."""
        g = self.geometry(parallel)
        k = unit.spiking
        if tokens is None:  # the order of the tokens does not matter to a dense engine
            tokens = [np.zeros(int(e), dtype=np.int64) for e in trace.layer_events[k][sample].tolist()]
        spikes = trace.spikes[k][sample].numpy()  # [T, N]
        fired = [np.flatnonzero(spikes[t]) for t in range(len(spikes))]
        stage = EngineStage.from_words(g, [np.ones(len(s), dtype=np.int64) for s in tokens],
                                       [f // g.lanes for f in fired])
        return [stage], fired

    def weight_words(self, parallel: int) -> np.ndarray:
        return dense_weight_words(self, parallel)

    def weight_words_read(self, active: np.ndarray, parallel: int) -> np.ndarray:
        return dense_words_read(self, parallel, active)

    def _flat_input(self, stream: Stream, features: int, what: str, suffix: str = "") -> tuple[list[Unit], Stream]:
        """``stream`` as ``features`` flat inputs: a map through a flatten (the golden model
        flattens implicitly too)."""
        units = []
        shape = stream.shape
        if is_map(shape):
            units.append(Unit(Flatten(f"{self.name}_flatten{suffix}", tuple(shape)), shape, shape_size(shape),
                              stream.value_bits))
            shape = shape_size(shape)
        if shape != features:
            raise ValueError(f"layer {self.name!r} takes {features} {what} but is fed {shape}")
        return units, stream.to(shape=shape)

    def plan_hardware(self, stream: Stream) -> tuple[list[Unit], Stream]:
        units, stream = self._flat_input(stream, self.in_features, "inputs")
        check_accumulator(self, self.weight, stream.input_max)
        units.append(Unit(self, stream.shape, self.out_features, stream.value_bits, stream.input_max,
                          stream.spiking))
        return units, stream.to(shape=self.out_features, value_bits=0, input_max=1, spiking=stream.spiking + 1)

    def plan_join(self, streams: list[Stream], delayed: list[bool]) -> tuple[list[list[Unit]], Unit, Stream]:
        """Several inputs (or a delayed one): each flattened, their features side by side
        (``segments``) in one ``StreamJoin``."""
        segments = tuple(self.segments) or (self.in_features,)
        if len(segments) != len(streams) or sum(segments) != self.in_features:
            raise ValueError(f"layer {self.name!r} has {len(streams)} inputs but its weight is split into "
                             f"segments {list(segments)} of {self.in_features} features: set segments")
        offsets = np.cumsum((0,) + segments[:-1]).tolist()
        return plan_join(self.name, streams, delayed, self.in_features, offsets,
                         adapt=lambda k, s: self._flat_input(s, segments[k], f"features at input {k}", str(k)))

    def unit_memories(self, unit: Unit, parallel: int, weight_target: str | None) -> list[MemorySpec]:
        return DenseLIFEngine.memories_for(self, parallel, weight_target)

    def build_unit(self, unit: Unit, parallel: int, weight_target: str | None) -> wiring.Component:
        return DenseLIFEngine(self, parallel, input_bits=max(1, unit.value_bits), input_max=unit.input_max,
                              weight_target=weight_target)

    def bench_label(self) -> str:
        return "dense"
