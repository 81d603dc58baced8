"""``hwgen_top``: the units of a network in a chain, the readout and the cycle counter.

The ports are the contract of docs/hardware.md ("Ports of hwgen_top"); the cocotb testbench
and the board top rely on their names, widths and order of payload bits.

A network becomes a chain of *units* (:func:`plan_units`), one per layer that needs hardware:
a layer engine per spiking layer (``DenseLIFEngine``, ``ConvLIFEngine``), an address remap
per pool (``SumPoolRemap``, ``MaxPoolDedup``) and per ``Flatten`` of a map (``FlattenRemap``).
A stream over a 3-D shape ``(C, H, W)`` carries map tokens, any other stream flat ones
(``tokens.py``); a ``Flatten`` of a flat stream and the layers after the last spiking layer
produce no hardware.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from ..hardware.memories import MemorySpec, load_signature, pack_words
from ..hardware.pool import FlattenRemap
from ..hardware.readout import Readout
from ..hardware.stall import StallPoint
from ..hardware.tokens import (
    StreamShape,
    is_map,
    shape_size,
    token_layout,
    token_signature,
)
from ..ir import QuantNetwork
from ..kinds import Stream, Unit
from ..widths import address_bits, unsigned_bits

__all__ = ["NetworkTop", "Unit", "build_top", "network_memories", "packed_weights", "plan_units",
           "tap_signature"]


def tap_signature(shape: StreamShape) -> wiring.Signature:
    """A copy of a token stream's handshake, every member an output: for observation only."""
    return wiring.Signature({
        "valid": Out(1),
        "ready": Out(1),
        "payload": Out(token_layout(shape)),
    })


def _stream_shape(shape: Sequence[int]) -> StreamShape:
    dims = tuple(int(d) for d in shape)
    return dims if len(dims) == 3 else int(np.prod(dims))


def plan_units(qnet: QuantNetwork) -> tuple[list[Unit], StreamShape, int]:
    """The chain of units of ``qnet``: ``(units, input stream shape, input value bits)``.

    Raises ``ValueError`` naming the layer when a layer's input does not match what flows
    into it, or when a pool would see direct (multi-bit) input, which is not spikes.
    """
    layers = qnet.spiking_layers
    if not layers:
        raise ValueError("the network has no spiking layer")
    if qnet.timesteps < 1:
        raise ValueError(f"timesteps must be at least 1, not {qnet.timesteps}")
    if qnet.input_bits < 1:
        raise ValueError(f"input_bits must be at least 1, not {qnet.input_bits}")
    value_bits = qnet.input_bits if qnet.input_bits > 1 else 0
    in_shape = _stream_shape(qnet.input_shape)
    stream = Stream(in_shape, value_bits, (1 << qnet.input_bits) - 1, 0, qnet.input_bits)
    units: list[Unit] = []
    last = max(i for i, layer in enumerate(qnet.layers) if layer.has_neurons)
    for layer in qnet.layers[:last + 1]:
        planned, stream = layer.plan_hardware(stream)
        units += planned
    return units, in_shape, value_bits


def start_slots(units: Sequence[Unit]) -> int:
    """Inferences the cycle counter tracks at once: at most one per unit and register stage."""
    return 2 * len(units) + 2


def network_memories(qnet: QuantNetwork, parallel: int,
                     weight_memories: Mapping[int, str] | None = None) -> list[MemorySpec]:
    """Every memory ``NetworkTop(qnet, parallel, weight_memories=...)`` builds: each unit's
    (its kind says) and the cycle counter's inference start times. The fit check and the
    reports ask this; tests/test_memories.py holds it against the elaborated design."""
    units, _, _ = plan_units(qnet)
    loaded = weight_memories or {}
    out = [mem for unit in units for mem in unit.memories(parallel, loaded.get(unit.spiking))]
    out.append(MemorySpec("network", "inference start times", start_slots(units), 32, initialised=False,
                          read_write=True, logic_only=True))
    return out


def _unit_name(n: int, unit: Unit) -> str:
    """The submodule name of unit ``n`` of the chain (``layerK`` for spiking layer K)."""
    return f"layer{unit.spiking}" if unit.spiking is not None else f"unit{n}_{unit.stem}"


def engine_weight_words(unit: Unit, parallel: int) -> np.ndarray:
    """The weight memory contents of an engine unit, ``[depth, P]`` signed weights."""
    return unit.node.weight_words(parallel)


def packed_weights(qnet: QuantNetwork, parallel: int, layers: Iterable[int]) -> dict[int, np.ndarray]:
    """The words of run-time-loaded spiking layers ``layers`` as the ``weights_K`` streams and
    the host link's WEIGHTS command carry them: ``{K: uint8 [depth, ceil(P * bits / 8)]}``."""
    units, _, _ = plan_units(qnet)
    engines = {u.spiking: u for u in units if u.spiking is not None}
    return {k: pack_words(engine_weight_words(engines[k], parallel), engines[k].node.weight_bits)
            for k in sorted(layers)}


class NetworkTop(wiring.Component):
    """The whole accelerator for ``qnet``, each layer ``parallel`` neurons (dense) or output
    channels (convolution) per cycle.

    ``units`` is the chain (:func:`plan_units`); ``geometry`` holds each spiking layer's
    folding (its kind's ``EngineGeometry``: ``lanes`` P, ``groups`` G, fire pass, latencies;
    ``lanes`` and ``groups`` repeat the first two); the cycle cost is
    ``hwgen.accelerator.cycles``'; the components themselves are built by :meth:`elaborate`.

    When the last spiking layer is a convolution, the readout counts its spikes per
    flattened C-order index ``c*H*W + y*W + x`` (a ``FlattenRemap`` feeds it).

    Members
    -------
    spikes_in : ``In(token_signature(input stream shape, value_bits))``, map tokens when
        ``qnet.input_shape`` is 3-D, with ``value`` when ``qnet.input_bits > 1``
    tap_0, tap_1, ... : ``Out(tap_signature(shape_K))``, spiking layer ``K``'s output handshake
    done : ``Out(1)``
    prediction : ``Out(address_bits(N_out))``
    counts : ``Out(ArrayLayout(count_bits, N_out))``, ``count_bits = ceil(log2(T + 1))``
    cycles : ``Out(32)``, cycles of the last completed inference

    With ``stall_points=True`` (test builds only, hwgen/hardware/stall.py) every stream of the
    chain passes a ``StallPoint`` that the testbench holds through ``stall`` (bit ``i`` for
    link ``stall_links[i]``: the input, each unit-to-unit link, the readout's input) and
    watches through ``stall_offer``; without it the design has neither port and no extra logic.

    ``weight_memories`` maps spiking layers ``K`` to a ``memories.TARGETS`` entry: those
    layers' weights are written at run time (docs/hardware.md, "Loaded weights") through a
    member ``weights_K : In(load_signature(depth, P * weight_bits))`` each, words as
    :meth:`weight_words` gives them; the other layers keep bitstream-initialised ROMs.
    """

    def __init__(self, qnet: QuantNetwork, parallel: int, *, stall_points: bool = False,
                 weight_memories: Mapping[int, str] | None = None):
        if parallel < 1:
            raise ValueError(f"parallel must be at least 1, not {parallel}")
        self.qnet = qnet
        self.parallel = parallel
        self.units, self.input_shape, self.input_value_bits = plan_units(qnet)
        engines = [u for u in self.units if u.spiking is not None]
        self.weight_memories = dict(sorted((weight_memories or {}).items()))
        unknown = set(self.weight_memories) - {u.spiking for u in engines}
        if unknown:
            raise ValueError(f"weight_memories names layers {sorted(unknown)}, but the network "
                             f"has spiking layers 0..{len(engines) - 1}")
        self._engine_units = {u.spiking: u for u in engines}
        self.geometry = [unit.node.geometry(parallel) for unit in engines]
        self.lanes = [g.lanes for g in self.geometry]
        self.groups = [g.groups for g in self.geometry]
        self.output_shape = engines[-1].out_shape
        self.count_bits = unsigned_bits(qnet.timesteps)
        n_out = shape_size(self.output_shape)

        members = {"spikes_in": In(token_signature(self.input_shape, self.input_value_bits))}
        for unit in engines:
            members[f"tap_{unit.spiking}"] = Out(tap_signature(unit.out_shape))
        for k in self.weight_memories:
            depth, lanes = self.weight_words(k).shape
            members[f"weights_{k}"] = In(load_signature(
                depth, lanes * self._engine_units[k].node.weight_bits))
        members.update({
            "done": Out(1),
            "prediction": Out(address_bits(n_out)),
            "counts": Out(data.ArrayLayout(unsigned(self.count_bits), n_out)),
            "cycles": Out(32),
        })
        self.stall_links: list[str] = []
        if stall_points:
            names = [_unit_name(n, u) for n, u in enumerate(self.units)]
            self.stall_links = [f"spikes_in -> {names[0]}"]
            self.stall_links += [f"{a} -> {b}" for a, b in zip(names, names[1:])]
            if is_map(self.output_shape):
                self.stall_links.append(f"{names[-1]} -> readout_flatten")
                names.append("readout_flatten")
            self.stall_links.append(f"{names[-1]} -> readout")
            members["stall"] = In(len(self.stall_links))
            members["stall_offer"] = Out(len(self.stall_links))
        super().__init__(members)

    def weight_words(self, k: int) -> np.ndarray:
        """Spiking layer ``k``'s weight memory contents, ``[depth, P]`` signed weights (pack
        them with ``memories.pack_words`` for ``weights_k``)."""
        return engine_weight_words(self._engine_units[k], self.parallel)

    def packed_weights(self) -> dict[int, np.ndarray]:
        """:func:`packed_weights` of this network's loaded layers."""
        return packed_weights(self.qnet, self.parallel, self.weight_memories)

    def elaborate(self, platform) -> Module:
        m = Module()

        chain = []
        for n, unit in enumerate(self.units):
            target = self.weight_memories.get(unit.spiking)
            component = unit.build(self.parallel, target)
            m.submodules[_unit_name(n, unit)] = component
            chain.append((unit, component))
            if target is not None:
                wiring.connect(m, wiring.flipped(getattr(self, f"weights_{unit.spiking}")),
                               component.weights)
        n_out = shape_size(self.output_shape)
        m.submodules.readout = readout = Readout(n_out, self.qnet.timesteps)

        # ---- the cycle counter

        # `cycles` is measured per inference from a free-running timestamp: each inference's
        # first accepted token queues its start time, and its `last` tick reaching the readout
        # (the cycle before `done`) takes it out. Inferences may overlap in the chain, so the
        # queue holds one start per inference in flight (at most one per unit and register
        # stage); when it is full, the first token of a further inference waits.
        now = Signal(32)
        m.d.sync += now.eq(now + 1)
        m.submodules.starts = starts = SyncFIFO(width=32, depth=start_slots(self.units))
        first = Signal(init=1)  # the next input token opens an inference
        admit = ~first | starts.w_rdy

        points = []

        def stall_point(layout: data.Layout) -> StallPoint:
            point = StallPoint(layout)
            m.submodules[f"stall{len(points)}"] = point
            m.d.comb += [point.stall.eq(self.stall[len(points)]),
                         self.stall_offer[len(points)].eq(point.offer)]
            points.append(point)
            return point

        def link(upstream, downstream) -> None:
            """Connect two streams of the chain, through a stall point in test builds."""
            if self.stall_links:
                point = stall_point(data.Layout.cast(upstream.payload.shape()))
                wiring.connect(m, upstream, point.i)
                upstream = point.o
            wiring.connect(m, upstream, downstream)

        head = chain[0][1].spikes_in
        if self.stall_links:
            point = stall_point(data.Layout.cast(head.payload.shape()))
            wiring.connect(m, point.o, head)
            head = point.i
        m.d.comb += [
            head.payload.eq(self.spikes_in.payload),
            head.valid.eq(self.spikes_in.valid & admit),
            self.spikes_in.ready.eq(head.ready & admit),
        ]
        accepted = self.spikes_in.valid & self.spikes_in.ready
        token = self.spikes_in.payload
        with m.If(accepted):
            m.d.sync += first.eq(token.tick & token.last)
        m.d.comb += [
            starts.w_data.eq(now),
            starts.w_en.eq(accepted & first),
        ]

        # ---- the chain, its taps and the readout

        for (_, upstream), (_, downstream) in zip(chain, chain[1:]):
            link(upstream.spikes_out, downstream.spikes_in)

        tail = chain[-1][1].spikes_out
        if is_map(self.output_shape):
            m.submodules.readout_flatten = flatten = FlattenRemap(self.output_shape)
            link(tail, flatten.spikes_in)
            tail = flatten.spikes_out
        link(tail, readout.spikes)

        finishing = tail.valid & tail.ready & tail.payload.tick & tail.payload.last
        m.d.comb += starts.r_en.eq(finishing)
        with m.If(finishing):
            # The cycles after the accepting edge, through this one (`now - start`), plus
            # the `done` cycle that follows.
            m.d.sync += self.cycles.eq(now - starts.r_data + 1)

        for unit, component in chain:
            if unit.spiking is None:
                continue
            tap = getattr(self, f"tap_{unit.spiking}")
            stream = component.spikes_out
            m.d.comb += [
                tap.valid.eq(stream.valid),
                tap.ready.eq(stream.ready),
                tap.payload.eq(stream.payload),
            ]

        m.d.comb += [
            self.done.eq(readout.done),
            self.prediction.eq(readout.prediction),
            self.counts.eq(readout.counts),
        ]

        return m


def build_top(qnet: QuantNetwork, parallel: int,
              weight_memories: Mapping[int, str] | None = None) -> NetworkTop:
    """The top-level component for ``qnet`` with ``parallel`` lanes per layer (capped per layer:
    at a dense layer's width, at a convolution's ``C_out / groups``); ``weight_memories``
    names the layers whose weights are loaded at run time (``NetworkTop``)."""
    plan_units(qnet)  # refuse an unrealisable network before any hardware object exists
    return NetworkTop(qnet, parallel, weight_memories=weight_memories)
