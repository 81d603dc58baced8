"""The pooling kinds: sum pooling and max pooling of spike maps.

Neither holds a neuron or a parameter, so one node class serves both forms. Sum pooling
gives counts (a window's count ``n`` reaches the next layer as ``n`` events,
``hardware.pool.SumPoolRemap``); max pooling of 0/1 spikes is an OR per window and
timestep (``hardware.pool.MaxPoolDedup``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from amaranth.lib import wiring

from ..cost import RemapStage, Stage
from ..errors import HwgenError
from ..hardware.conv import axis_taps
from ..hardware.memories import MemorySpec
from ..hardware.pool import MaxPoolDedup, SumPoolRemap
from ..hardware.tokens import is_map
from ..ir import Node, Pair, Shape3, conv_output_size
from ..quant_rules import QuantOptions
from .base import Flow, Stream, Unit


@dataclass
class SumPool2d(Node):
    """Sum of the spikes in each window (integers, so the next layer sees counts)."""

    type_name: ClassVar[str] = "sum_pool2d"
    unit_stem: ClassVar[str] = "sum_pool"
    #: LUTs of the remap's control, fitted to nextpnr (hwgen.devices.estimate_logic)
    control_lut: ClassVar[int] = 150

    name: str
    input_shape: Shape3
    kernel: Pair
    stride: Pair
    padding: Pair = (0, 0)

    @property
    def output_shape(self) -> Shape3:
        c, h, w = self.input_shape
        return (c, conv_output_size(h, self.kernel[0], self.stride[0], self.padding[0]),
                conv_output_size(w, self.kernel[1], self.stride[1], self.padding[1]))

    # ---- float and golden models

    def float_step(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, self.kernel, self.stride, self.padding, ceil_mode=False,
                            count_include_pad=True, divisor_override=1)

    def window_sums(self, x: torch.Tensor) -> torch.Tensor:
        c = self.input_shape[0]
        ones = torch.ones(c, 1, *self.kernel, dtype=torch.float64)
        return F.conv2d(x.double(), ones, stride=self.stride, padding=self.padding, groups=c).round().long()

    def golden_step(self, x: torch.Tensor) -> torch.Tensor:
        return self.window_sums(x)

    # ---- quantization

    def quantize(self, opts: QuantOptions, flow: Flow) -> tuple[Node, Flow]:
        return self, Flow(flow.input_max * self.kernel[0] * self.kernel[1], f"the counts of sum pool '{self.name}'")

    # ---- hardware

    def window_population(self) -> int:
        """Most input positions inside one window (padding excluded): the largest count."""
        return max(Counter(o for outputs in self.windows() for o in outputs).values())

    def next_input_max(self, input_max: int) -> int:
        return input_max * self.window_population()

    def plan_hardware(self, stream: Stream) -> tuple[list[Unit], Stream]:
        shape = stream.shape
        if not is_map(shape) or tuple(shape) != tuple(self.input_shape):
            raise ValueError(f"pool {self.name!r} takes a {tuple(self.input_shape)} map but is fed {shape}")
        if stream.value_bits:
            raise ValueError(f"pool {self.name!r} would pool direct {stream.input_bits}-bit input; "
                             f"the hardware pools spikes only (docs/semantics.md)")
        unit = Unit(self, shape, tuple(self.output_shape))
        return [unit], stream.to(shape=tuple(self.output_shape), input_max=self.next_input_max(stream.input_max))

    def build_unit(self, unit: Unit, parallel: int, weight_target: str | None) -> wiring.Component:
        return SumPoolRemap(self)

    def unit_latency(self, unit: Unit) -> int:
        return SumPoolRemap.latency

    def unit_memories(self, unit: Unit, parallel: int, weight_target: str | None) -> list[MemorySpec]:
        return []  # the window tables are combinational

    def windows(self) -> list[list[int]]:
        """Per input position ``y * W + x``, the output positions ``oy * W_out + ox`` of the
        windows a spike there lies in, in the order ``SumPoolRemap`` sends them (``oy``, then
        ``ox``, descending); empty past the last full window."""
        _, h, w = self.input_shape
        _, h_out, w_out = self.output_shape
        ys = axis_taps(h, self.kernel[0], self.stride[0], self.padding[0], h_out)
        xs = axis_taps(w, self.kernel[1], self.stride[1], self.padding[1], w_out)
        return [[(oy - i) * w_out + (ox - j) for i in range(ny) for j in range(nx)]
                for _, ny, oy in ys for _, nx, ox in xs]

    def cost_stages(self, unit: Unit, parallel: int, tokens: list[np.ndarray] | None, trace, sample: int
                    ) -> tuple[list[Stage], list[np.ndarray]]:
        """One register stage that sends a spike once per window it lies in."""
        if tokens is None:
            raise ValueError(f"pool {self.name!r} at the input: the cost model needs the input tokens")
        c, h, w = self.input_shape
        _, h_out, w_out = self.output_shape
        table = self.windows()
        fanout, out = [], []
        for s in tokens:
            ch, pos = np.divmod(s, h * w)
            per = [table[p] for p in pos.tolist()]
            fanout.append(np.array([len(p) for p in per], dtype=np.int64))
            out.append(np.array([cc * h_out * w_out + o for cc, p in zip(ch.tolist(), per) for o in p],
                                dtype=np.int64))
        return [RemapStage(1, fanout)], out

    def logic_estimate(self, parallel: int, device_key: str, logic: dict) -> tuple[int, int, int]:
        return self.control_lut, self.control_lut // 2, 0

    def report_entry(self, parallel: int) -> dict:
        return {"name": self.name, "type": self.type_name, "in": list(self.input_shape),
                "out": list(self.output_shape), "kernel": list(self.kernel), "stride": list(self.stride)}


@dataclass
class MaxPool2d(SumPool2d):
    """Max of the spikes in each window: a logical OR per window and timestep."""

    type_name: ClassVar[str] = "max_pool2d"
    unit_stem: ClassVar[str] = "max_pool"

    def float_step(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(x, self.kernel, self.stride, self.padding)

    def golden_step(self, x: torch.Tensor) -> torch.Tensor:
        return (self.window_sums(x) > 0).long()

    def quantize(self, opts: QuantOptions, flow: Flow) -> tuple[Node, Flow]:
        # golden and the hardware max-pool as an OR of 0/1 values; on counts or multi-bit
        # values that is not a max.
        if flow.input_max > 1:
            raise HwgenError(f"layer '{self.name}': MaxPool2d on {flow.carries} (values up to "
                             f"{flow.input_max}); hwgen max-pools 0/1 spikes only (an OR per "
                             "window): put the max pool directly after a neuron")
        return self, flow

    def next_input_max(self, input_max: int) -> int:
        return 1

    def build_unit(self, unit: Unit, parallel: int, weight_target: str | None) -> wiring.Component:
        return MaxPoolDedup(self)

    def unit_latency(self, unit: Unit) -> int:
        return MaxPoolDedup.latency

    def unit_memories(self, unit: Unit, parallel: int, weight_target: str | None) -> list[MemorySpec]:
        return MaxPoolDedup.memories_for(self)

    def cost_stages(self, unit: Unit, parallel: int, tokens: list[np.ndarray] | None, trace, sample: int
                    ) -> tuple[list[Stage], list[np.ndarray]]:
        """The window remap, then the dedup: the first event of a window in a timestep passes,
        and a tick waits for the other bitmap bank's clear (``C * H_out`` rows)."""
        remap, windows = super().cost_stages(unit, parallel, tokens, trace, sample)
        keep, passed = [], []
        for s in windows:
            _, first = np.unique(s, return_index=True)
            mask = np.zeros(len(s), dtype=np.int64)
            mask[first] = 1
            keep.append(mask)
            passed.append(s[mask.astype(bool)])
        c, h_out, _ = self.output_shape
        return [*remap, RemapStage(1, keep, tick_wait=c * h_out)], passed
