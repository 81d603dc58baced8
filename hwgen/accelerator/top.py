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

from ..hardware.conv import conv_tap_counts
from ..hardware.memories import MemorySpec, load_signature, pack_words
from ..hardware.pool import FlattenRemap, flatten_is_identity
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

__all__ = ["NetworkTop", "Unit", "build_top", "estimate_cycles", "network_activity", "packed_weights", "plan_units",
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


def _engine_costs(unit: Unit, parallel: int) -> tuple[int, int, int]:
    """``(cycles per unit of work, fire-pass cycles, decode latency)`` of a spiking unit."""
    g = unit.node.geometry(parallel)
    return g.groups, g.fire_words, g.decode_latency


def estimate_cycles(qnet: QuantNetwork, parallel: int, active_inputs: Sequence[Sequence[int]],
                    final_spikes: int = 0, fanout: Sequence[Sequence[int]] | None = None) -> int:
    """An estimate of ``NetworkTop.cycles`` for one inference, input offered back to back.

    ``active_inputs[k][t]`` is the number of events into spiking layer ``k`` at timestep ``t``
    (row 0: the input; row ``k``: what reaches layer ``k`` from layer ``k - 1``, after any
    pooling); ``final_spikes`` is the number of spikes the last layer sends in the last
    timestep. For a convolution layer ``fanout[k][t]`` is the number of in-range kernel taps
    those events reach in total (``Σ_events taps``, see :func:`network_activity`); dense
    layers ignore it.

    Each engine spends ``work`` cycles integrating a timestep (dense: ``a * G``; convolution:
    ``fanout * G``) and ``pass`` cycles on its fire pass (dense: ``G``; convolution:
    ``H_out * W_out * groups * G``), back to back, but cannot start timestep ``t`` before its
    upstream's fire pass of ``t`` sends the first spike (``pipeline_latency`` after that
    upstream took its tick, plus the latency of the remap units and of the convolution
    engine's decode register in between), nor finish it before the upstream's tick arrives.
    Exact for one dense layer (tests/test_hardware.py); within 2 % for one convolution layer
    on an idle engine (tests/test_hardware_conv.py). It ignores the port's one cycle per
    token, which shows when most events reach no tap (kernel < stride: up to 15 % low). For a
    chain it assumes that a fire pass sends its spikes one per cycle, so it runs low when a
    layer is slower to accept than its upstream is to fire (backpressure into the upstream
    fire pass, which then stops overlapping the next timestep: about 20 % low on a
    conv -> max pool -> conv -> dense chain).
    """
    units, _, _ = plan_units(qnet)
    engines = [u for u in units if u.spiking is not None]
    if len(active_inputs) != len(engines):
        raise ValueError(f"need one row of spike counts per spiking layer ({len(engines)}), "
                         f"got {len(active_inputs)}")
    upstream = None  # (edges at which the previous engine took its ticks, its pass, latency)
    path = 0  # remap latency between the previous engine (or the input) and this one
    for unit in units:
        if unit.spiking is None:
            path += unit.latency
            continue
        k = unit.spiking
        per_cycle, fire_pass, decode = _engine_costs(unit, parallel)
        if unit.node.unit_stem == "conv":
            if fanout is None or len(fanout) <= k or fanout[k] is None:
                raise ValueError(f"layer {unit.node.name!r} is a convolution: give fanout[{k}], "
                                 f"the in-range taps its input events reach per timestep")
            work = [int(f) * per_cycle for f in fanout[k]]
        else:
            work = [int(a) * per_cycle for a in active_inputs[k]]
        ticks = []
        free = 0  # the edge from which the engine can take its next token
        for t, a in enumerate(active_inputs[k]):
            if upstream is None:  # the driver offers every token as soon as one is taken
                start = free if t else path + decode
                tick = max(free, start) + work[t]
            else:
                up_ticks, up_pass, up_latency = upstream
                first = up_ticks[t] + up_latency + path + decode
                arrival = first + max(up_pass - 1, int(a))
                tick = max(max(free, first) + work[t], arrival)
            ticks.append(tick)
            free = tick + fire_pass
        latency = unit.node.geometry(parallel).pipeline_latency
        upstream, path = (ticks, fire_pass, latency), 0
    ticks, fire_pass, latency = upstream
    # The readout of a convolution layer counts flattened addresses.
    if is_map(engines[-1].out_shape):
        path += 0 if flatten_is_identity(engines[-1].out_shape) else 1
    # `cycles` runs from the first accepting edge (0 here) through the `done` cycle.
    return ticks[-1] + latency + max(fire_pass - 1, final_spikes) + path + 1


def network_activity(qnet: QuantNetwork, sample) -> tuple[list[list[int]], list[list[int] | None], int]:
    """``(active_inputs, fanout, final_spikes)`` of one inference, for :func:`estimate_cycles`.

    ``sample`` is ``[T, *input_shape]``; the counts come from the golden model (a sum pool's
    count ``n`` is ``n`` events, a direct input value one event).
    """
    import torch

    from .. import golden

    x_all = torch.as_tensor(np.asarray(sample)).to(torch.int64)
    trace = golden.run(qnet, x_all[None])
    timesteps = x_all.shape[0]
    units, _, _ = plan_units(qnet)
    active: list[list[int]] = [[] for u in units if u.spiking is not None]
    fanout: list[list[int] | None] = [None] * len(active)
    for t in range(timesteps):
        x = x_all[t].reshape(1, *qnet.input_shape)
        if qnet.input_bits > 1:
            x = (x != 0).long()  # one event per non-zero value
        for unit in units:
            if unit.spiking is not None:
                k = unit.spiking
                active[k].append(int(x.sum()))
                if unit.node.unit_stem == "conv":
                    taps = torch.from_numpy(conv_tap_counts(unit.node))
                    fanout[k] = (fanout[k] or []) + [int((x.reshape(unit.in_shape) * taps).sum())]
                x = trace.spikes[k][0, t].long()
            elif unit.node.unit_stem != "flatten":  # pools
                x = unit.node.golden_step(x.reshape(1, *unit.in_shape))
    final = int(trace.spikes[-1][0, -1].sum())
    return active, fanout, final


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

    ``units`` is the chain (:func:`plan_units`); ``lanes``, ``groups`` and
    ``pipeline_latency`` hold each spiking layer's ``P``, ``G`` and tick-to-output latency,
    and ``fire_pass`` its fire-pass cycles, for reports (:meth:`estimate_cycles`); the
    components themselves are built by :meth:`elaborate`.

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
        self.lanes, self.groups, self.fire_pass, self.pipeline_latency = [], [], [], []
        for unit in engines:
            g = unit.node.geometry(parallel)
            self.lanes.append(g.lanes)
            self.groups.append(g.groups)
            self.fire_pass.append(g.fire_words)
            self.pipeline_latency.append(g.pipeline_latency)
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

    def estimate_cycles(self, active_inputs: Sequence[Sequence[int]], final_spikes: int = 0,
                        fanout: Sequence[Sequence[int]] | None = None) -> int:
        """:func:`estimate_cycles` for this network and ``parallel``."""
        return estimate_cycles(self.qnet, self.parallel, active_inputs, final_spikes, fanout)

    def weight_words(self, k: int) -> np.ndarray:
        """Spiking layer ``k``'s weight memory contents, ``[depth, P]`` signed weights (pack
        them with ``memories.pack_words`` for ``weights_k``)."""
        return engine_weight_words(self._engine_units[k], self.parallel)

    def packed_weights(self) -> dict[int, np.ndarray]:
        """:func:`packed_weights` of this network's loaded layers."""
        return packed_weights(self.qnet, self.parallel, self.weight_memories)

    def memories(self) -> list[MemorySpec]:
        """:func:`network_memories` of this top."""
        return network_memories(self.qnet, self.parallel, self.weight_memories)

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
