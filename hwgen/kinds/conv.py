"""The convolution kind: a 2-D convolution (dilation 1, any groups) and its LIF neurons.

Float node ``Conv2d``, integer node ``QuantConv2d``, engine
``hardware.conv.ConvLIFEngine``: an input event scatters its kernel over the output
positions it reaches (only in-range taps cost cycles), ``P`` output channels per cycle.
Neuron parameters are per output channel: every position of a channel shares them, which
is what lets a lane of the hardware serve one channel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from amaranth.lib import wiring

from ..cost import EngineStage, Stage
from ..hardware.conv import ConvLIFEngine, check_conv, conv_tap_counts, conv_weight_words, conv_words_read
from ..hardware.lanes import lanes_and_groups
from ..hardware.memories import MemorySpec
from ..hardware.tokens import is_map
from ..ir import Leak, LIFNeurons, Pair, ResetMode, Shape3, Synapse, conv_output_size
from .base import EngineGeometry, Stream, Unit
from .lif import FloatSynapticLIF, SynapticLIF
from .merge import plan_join


class _ConvShape:
    """Kernel and output shape of a convolution, shared by both forms."""

    weight: np.ndarray
    input_shape: Shape3
    stride: Pair
    padding: Pair

    @property
    def kernel(self) -> Pair:
        return int(self.weight.shape[2]), int(self.weight.shape[3])

    @property
    def output_shape(self) -> Shape3:
        _, h, w = self.input_shape
        return (int(self.weight.shape[0]),
                conv_output_size(h, self.kernel[0], self.stride[0], self.padding[0]),
                conv_output_size(w, self.kernel[1], self.stride[1], self.padding[1]))

    def per_neuron(self, values: torch.Tensor) -> torch.Tensor:
        return values.view(-1, 1, 1)  # per output channel, broadcast over H, W


@dataclass
class Conv2d(_ConvShape, FloatSynapticLIF):
    """A 2-D convolution (dilation 1) followed by its spiking neurons.

    Neuron parameters are per output channel (``neurons`` arrays of length ``C_out``).
    """

    type_name: ClassVar[str] = "conv2d"

    name: str
    weight: np.ndarray  # [C_out, C_in / groups, kh, kw] float32
    bias: np.ndarray  # [C_out] float32
    neurons: LIFNeurons
    input_shape: Shape3  # (C_in, H, W)
    stride: Pair = (1, 1)
    padding: Pair = (0, 0)
    groups: int = 1
    # Several inputs (``FloatSynapticLIF``): their channels, and the biases of all but the first.
    segments: tuple[int, ...] = field(default=(), metadata={"omit_default": True})
    extra_bias: np.ndarray | None = field(default=None, metadata={"omit_default": True})

    def float_current(self, x, weight, bias):
        return F.conv2d(x, weight, bias, self.stride, self.padding, (1, 1), self.groups)

    def quantized(self, **common) -> QuantConv2d:
        return QuantConv2d(**common, input_shape=self.input_shape, stride=self.stride,
                           padding=self.padding, groups=self.groups)


@dataclass
class QuantConv2d(_ConvShape, SynapticLIF):
    """Integer form of ``Conv2d``; per-channel arrays have length ``C_out``."""

    type_name: ClassVar[str] = "quant_conv2d"
    unit_stem: ClassVar[str] = "conv"
    report_type: ClassVar[str] = "conv2d_lif"
    control_lut: ClassVar[int] = 700

    name: str
    weight: np.ndarray  # [C_out, C_in / groups, kh, kw] int64
    bias: np.ndarray  # [C_out] int64
    threshold: np.ndarray  # [C_out] int64, >= 1
    leak: Leak
    reset: ResetMode
    weight_bits: int
    state_bits: int
    acc_bits: int
    scale_exp: np.ndarray  # [C_out] int64
    input_shape: Shape3
    stride: Pair = (1, 1)
    padding: Pair = (0, 0)
    groups: int = 1
    input_max: int = 1  # largest input value per address and timestep (see QuantDense)
    synapse: Synapse | None = field(default=None, metadata={"omit_default": True})
    v_reset: np.ndarray | None = field(default=None, metadata={"omit_default": True})
    reset_before_leak: bool = field(default=False, metadata={"omit_default": True})
    segments: tuple[int, ...] = field(default=(), metadata={"omit_default": True})

    @property
    def input_size(self) -> int:
        return int(np.prod(self.input_shape))

    @property
    def golden_input_shape(self) -> tuple[int, ...]:
        return tuple(self.input_shape)

    @property
    def channels_per_group(self) -> int:
        """Output channels one input channel reaches (``C_out / groups``)."""
        return self.output_shape[0] // self.groups

    # ---- golden model

    def golden_concat(self, xs: list[torch.Tensor]) -> torch.Tensor:
        """Several input maps as one: their channels stacked (``segments``)."""
        return torch.cat(xs, dim=1)

    def synaptic_input(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.from_numpy(self.weight).double()
        out = F.conv2d(x.double(), w, stride=self.stride, padding=self.padding, groups=self.groups)
        return out.round().long()

    def event_fanout(self, events: torch.Tensor) -> torch.Tensor:
        ones = torch.ones(self.weight.shape, dtype=torch.float64)
        taps = F.conv2d(events.double(), ones, stride=self.stride, padding=self.padding, groups=self.groups)
        return taps.sum(dim=(1, 2, 3)).round().long()

    def max_fanout(self) -> int:
        kh, kw = self.kernel
        reach = -(-kh // self.stride[0]) * -(-kw // self.stride[1])
        return reach * self.channels_per_group

    # ---- hardware

    def geometry(self, parallel: int) -> EngineGeometry:
        _, h, w = self.output_shape
        lanes, groups = lanes_and_groups(self.channels_per_group, parallel)
        return EngineGeometry(lanes=lanes, groups=groups, reach=self.channels_per_group,
                              fire_words=h * w * self.groups * groups,
                              queue_words=ConvLIFEngine.default_queue_depth + 2,
                              pipeline_latency=ConvLIFEngine.pipeline_latency,
                              decode_latency=ConvLIFEngine.decode_latency,
                              event_buffer=ConvLIFEngine.default_event_buffer,
                              words_per_position=self.groups * groups)

    def cost_stages(self, unit: Unit, parallel: int, tokens: list[np.ndarray] | None, trace, sample: int
                    ) -> tuple[list[Stage], list[np.ndarray]]:
        """The engine's stage of one inference (``hwgen.cost``): each input token reaches the
        in-range output positions of its kernel; spikes leave in raster order of positions,
        channels ascending, one fire-pass word per position and channel group."""
        g = self.geometry(parallel)
        k = unit.spiking
        if tokens is None:  # addresses unknown: the events share the golden model's taps evenly
            events = trace.layer_events[k][sample].tolist()
            positions = (trace.layer_ops[k][sample] // g.reach).tolist()
            taps = [EngineStage.from_totals(g, [e], [f], [0]).taps[0] for e, f in zip(events, positions)]
        else:
            _, h, w = self.input_shape
            table = conv_tap_counts(self).reshape(-1)
            taps = [table[s % (h * w)] for s in tokens]
        c_out, h_out, w_out = self.output_shape
        spikes = trace.spikes[k][sample].numpy()  # [T, N], C-order
        words, fired_all = [], []
        for t in range(len(spikes)):
            fired = np.flatnonzero(spikes[t])
            c, pos = np.divmod(fired, h_out * w_out)
            order = np.lexsort((c, pos))  # raster of positions, channels ascending
            fired, c, pos = fired[order], c[order], pos[order]
            cg, local = np.divmod(c, self.channels_per_group)
            words.append(pos * g.words_per_position + cg * g.groups + local // g.lanes)
            fired_all.append(fired)
        return [EngineStage.from_words(g, taps, words)], fired_all

    def weight_words(self, parallel: int) -> np.ndarray:
        return conv_weight_words(self, parallel)

    def weight_words_read(self, active: np.ndarray, parallel: int) -> np.ndarray:
        return conv_words_read(self, parallel, active)

    def plan_hardware(self, stream: Stream) -> tuple[list[Unit], Stream]:
        shape = stream.shape
        if not is_map(shape) or tuple(shape) != tuple(self.input_shape):
            raise ValueError(f"layer {self.name!r} takes a {tuple(self.input_shape)} map but is fed {shape}")
        check_conv(self, stream.input_max)
        unit = Unit(self, shape, tuple(self.output_shape), stream.value_bits, stream.input_max, stream.spiking)
        return [unit], stream.to(shape=tuple(self.output_shape), value_bits=0, input_max=1,
                                 spiking=stream.spiking + 1)

    def plan_join(self, streams: list[Stream], delayed: list[bool]) -> tuple[list[list[Unit]], Unit, Stream]:
        """Several input maps (or a delayed one): their channels stacked (``segments``) in one
        ``StreamJoin``; every map has the layer's ``H, W``."""
        c_in, h, w = self.input_shape
        segments = tuple(self.segments) or (c_in,)
        if len(segments) != len(streams) or sum(segments) != c_in:
            raise ValueError(f"layer {self.name!r} has {len(streams)} inputs but its {c_in} input channels "
                             f"are split into segments {list(segments)}: set segments")

        def adapt(k: int, stream: Stream) -> tuple[list[Unit], Stream]:
            want = (segments[k], h, w)
            if not is_map(stream.shape) or tuple(stream.shape) != want:
                raise ValueError(f"layer {self.name!r} takes a {want} map at input {k} but is fed {stream.shape}")
            return [], stream

        offsets = np.cumsum((0,) + segments[:-1]).tolist()
        return plan_join(self.name, streams, delayed, tuple(self.input_shape), offsets, adapt=adapt)

    def unit_memories(self, unit: Unit, parallel: int, weight_target: str | None) -> list[MemorySpec]:
        return ConvLIFEngine.memories_for(self, parallel, max(1, unit.value_bits), weight_target)

    def build_unit(self, unit: Unit, parallel: int, weight_target: str | None) -> wiring.Component:
        return ConvLIFEngine(self, parallel, input_bits=max(1, unit.value_bits), input_max=unit.input_max,
                             weight_target=weight_target)

    def report_extra(self) -> dict:
        return {"kernel": list(self.kernel), "stride": list(self.stride), "padding": list(self.padding),
                "conv_groups": self.groups}

    def bench_label(self) -> str:
        kind = f"conv{self.kernel[0]}x{self.kernel[1]}"
        if self.groups > 1 and self.groups == self.input_shape[0]:
            kind = "depthwise " + kind
        elif self.groups > 1:
            kind += f" g{self.groups}"
        return kind + (f" s{self.stride[0]}" if self.stride[0] > 1 else "")
