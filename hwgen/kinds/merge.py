"""The spike-sum kind, and the stream joins and forks of any graph.

``SpikeSum`` is ``x + f(x)`` on spikes (SEW-ResNet's ADD connection, a NIR sum junction of
spike streams): the output at an address is the sum of the inputs there, an integer count. As
a sum pool's, a count of ``n`` reaches the next layer as ``n`` events, so in hardware the
merge passes every input's events into one stream (docs/semantics.md, "Graphs").

``StreamJoin`` and ``StreamFanout`` are hardware-only nodes (no JSON type): the network top
plans a ``StreamJoin`` in front of a node with several inputs or a delayed one (a neuron
layer's concatenation, a spike sum) and a ``StreamFanout`` behind a node with several
consumers (docs/hardware.md, "Graphs").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from amaranth.lib import wiring

from ..cost import ForkStage, JoinStage, Stage
from ..hardware.fork import StreamFork
from ..hardware.memories import MemorySpec
from ..hardware.merge import StreamMerge, check_merge
from ..hardware.tokens import StreamShape, is_map
from ..ir import Node
from ..quant_rules import QuantOptions
from .base import Flow, Stream, Unit


@dataclass
class StreamJoin(Node):
    """Several token streams into one (``hardware.merge.StreamMerge``): input ``k`` of shape
    ``in_shapes[k]`` lands at ``offsets[k]`` (flat address, or map channel); ``delayed[k]``
    marks a recurrent edge; ``in_value_bits[k]`` its value width (direct input); ``stem``
    names its unit (``join`` in front of a neuron layer, ``sum`` for a ``SpikeSum``)."""

    name: str
    in_shapes: tuple
    out_shape: StreamShape
    offsets: tuple[int, ...]
    delayed: tuple[bool, ...]
    in_value_bits: tuple[int, ...]
    stem: str = "join"

    @property
    def unit_stem(self) -> str:
        return self.stem

    def build_unit(self, unit: Unit, parallel: int, weight_target: str | None) -> wiring.Component:
        return StreamMerge(self.in_shapes, self.out_shape, self.offsets, self.delayed, self.in_value_bits)

    def unit_memories(self, unit: Unit, parallel: int, weight_target: str | None) -> list[MemorySpec]:
        return StreamMerge.memories_for(self.name, self.in_shapes, self.delayed, self.in_value_bits)

    def unit_latency(self, unit: Unit) -> int:
        return 1

    def cost_stages(self, unit: Unit, parallel: int, tokens: list[list[np.ndarray]], trace, sample: int
                    ) -> tuple[list[Stage], list[np.ndarray]]:
        """``tokens[k][t]``: input ``k``'s addresses in its source's step ``t``. The join's
        stage, and its output's addresses per step (inputs in order: the arbiter's real
        interleaving is the cost model's to find; only a convolution after the join, whose
        events differ in taps, sees the difference)."""
        scale = int(np.prod(self.out_shape[1:])) if is_map(self.out_shape) else 1
        steps = len(tokens[0])
        out = []
        for t in range(steps):
            parts = [np.asarray(tk[t - 1] if d else tk[t], dtype=np.int64) + off * scale
                     for tk, d, off in zip(tokens, self.delayed, self.offsets) if t or not d]
            out.append(np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64))
        counts = [[len(a) for a in tk] for tk in tokens]
        return [JoinStage(self.delayed, counts)], out


@dataclass
class StreamFanout(Node):
    """One token stream to ``consumers`` consumers (``hardware.fork.StreamFork``)."""

    unit_stem: ClassVar[str] = "fork"

    name: str
    shape: StreamShape
    consumers: int
    value_bits: int = 0

    def build_unit(self, unit: Unit, parallel: int, weight_target: str | None) -> wiring.Component:
        return StreamFork(self.shape, self.consumers, self.value_bits)

    def unit_memories(self, unit: Unit, parallel: int, weight_target: str | None) -> list[MemorySpec]:
        return []  # wires and a bit per consumer

    def unit_latency(self, unit: Unit) -> int:
        return 0

    def cost_stages(self, unit: Unit, parallel: int, tokens: list[np.ndarray], trace, sample: int
                    ) -> tuple[list[Stage], list[np.ndarray]]:
        """Every consumer gets the same tokens."""
        return [ForkStage(self.consumers)], tokens


def plan_join(name: str, streams: Sequence[Stream], delayed: Sequence[bool], out_shape: StreamShape,
              offsets: Sequence[int], stem: str = "join",
              adapt: Callable[[int, Stream], tuple[list[Unit], Stream]] | None = None,
              ) -> tuple[list[list[Unit]], Unit, Stream]:
    """The units in front of a node with several inputs (or a delayed one): per input the
    units that adapt it (``adapt(k, stream)``, e.g. a flatten), then one ``StreamJoin``.
    Returns ``(per-input units, the join's unit, the joined stream)``; the joined stream
    carries the widest value and the largest ``input_max`` of the inputs."""
    chains, adapted = [], []
    for k, stream in enumerate(streams):
        units, stream = adapt(k, stream) if adapt else ([], stream)
        chains.append(units)
        adapted.append(stream)
    value_bits = max(s.value_bits for s in adapted)
    node = StreamJoin(f"{name}_{stem}", tuple(s.shape for s in adapted), out_shape, tuple(int(o) for o in offsets),
                      tuple(bool(d) for d in delayed), tuple(s.value_bits for s in adapted), stem)
    check_merge(node.in_shapes, out_shape, node.offsets, node.delayed, node.in_value_bits)
    joined = adapted[0].to(shape=out_shape, value_bits=value_bits, input_max=max(s.input_max for s in adapted))
    unit = Unit(node, out_shape, out_shape, value_bits, joined.input_max, ports_in=len(streams))
    return chains, unit, joined


@dataclass
class SpikeSum(Node):
    """The element-wise sum of its inputs (two or more spike streams of ``shape``)."""

    type_name: ClassVar[str] = "spike_sum"
    unit_stem: ClassVar[str] = "sum"
    joins: ClassVar[bool] = True
    #: LUTs of the merge's arbiter and output register (a sum pool's remap is ~150)
    control_lut: ClassVar[int] = 60

    name: str
    shape: tuple[int, ...]

    @property
    def output_shape(self) -> tuple[int, ...]:
        return tuple(self.shape)

    def float_step(self, xs: list[torch.Tensor]) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:  # left to right, as ``x + f(x)`` adds
            out = out + x
        return out

    def golden_step(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return self.float_step([x.reshape(x.shape[0], *self.shape) for x in xs])

    def quantize(self, opts: QuantOptions, flows: list[Flow]) -> tuple[Node, Flow]:
        return self, Flow(sum(f.input_max for f in flows), f"the sums of '{self.name}'")

    # ---- hardware: a StreamJoin with every offset 0 (a count of n is n events)

    def _check(self, stream: Stream) -> None:
        shape = stream.shape
        want = tuple(self.shape) if len(self.shape) == 3 else int(np.prod(self.shape))
        if (tuple(shape) if is_map(shape) else shape) != want:
            raise ValueError(f"spike sum {self.name!r} sums {tuple(self.shape)} streams but is fed {shape}")
        if stream.value_bits:
            raise ValueError(f"spike sum {self.name!r} would sum direct {stream.input_bits}-bit input; "
                             "the hardware sums spikes only")

    def plan_hardware(self, stream: Stream) -> tuple[list[Unit], Stream]:
        """After its join, or with one input, nothing: the events pass as they are."""
        self._check(stream)
        return [], stream

    def plan_join(self, streams: list[Stream], delayed: list[bool]) -> tuple[list[list[Unit]], Unit, Stream]:
        for stream in streams:
            self._check(stream)
        chains, unit, joined = plan_join(self.name, streams, delayed, streams[0].shape, [0] * len(streams),
                                         stem=self.unit_stem)
        unit.node.name = self.name
        # a count of n is n events: the next layer sees the inputs' largest values added
        return chains, unit, joined.to(input_max=sum(s.input_max for s in streams))

    def logic_estimate(self, parallel: int, device_key: str, logic: dict) -> tuple[int, int, int]:
        return self.control_lut, self.control_lut // 2, 0

    def report_entry(self, parallel: int) -> dict:
        return {"name": self.name, "type": self.type_name, "in": list(self.shape), "out": list(self.shape)}
