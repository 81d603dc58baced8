"""``hwgen_top``: the units of a network and their links, the readout and the cycle counter.

The ports are the contract of docs/hardware.md ("Ports of hwgen_top"); the cocotb testbench
and the board top rely on their names, widths and order of payload bits.

A network becomes a chain of *units* (:func:`plan_units`), one per layer that needs hardware:
a layer engine per spiking layer (``DenseLIFEngine``, ``ConvLIFEngine``), an address remap
per pool (``SumPoolRemap``, ``MaxPoolDedup``) and per ``Flatten`` of a map (``FlattenRemap``).
A stream over a 3-D shape ``(C, H, W)`` carries map tokens, any other stream flat ones
(``tokens.py``); a ``Flatten`` of a flat stream and the layers after the last spiking layer
produce no hardware. A graph adds joins in front of nodes with several (or delayed) inputs
and forks behind nodes with several consumers (:func:`plan_graph`; docs/hardware.md,
"Graphs"); a chain's units are linked in a row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

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
from ..ir import INPUT, QuantNetwork
from ..kinds import Stream, Unit
from ..kinds.merge import StreamFanout
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


#: A link's end at the readout (``Link.target``).
READOUT = -1


@dataclass(frozen=True)
class Link:
    """One token stream of the design: from unit ``source``'s member ``source_port`` (``None``:
    the network input ``spikes_in``) to unit ``target``'s member ``target_port`` (``READOUT``:
    the readout, through a flatten for a map)."""

    source: int | None
    source_port: str
    target: int
    target_port: str


@dataclass
class Plan:
    """The units of a network and the links between them (:func:`plan_graph`)."""

    units: list[Unit]
    links: list[Link]
    input_shape: StreamShape
    input_value_bits: int
    #: the unit whose spikes the readout counts (the output layer's engine)
    output: int


def _check_recurrence(qnet: QuantNetwork) -> None:
    """Refuse, naming the nodes, what the hardware cannot pace (docs/hardware.md, "Graphs"):
    a node whose inputs are all delayed (nothing closes its timesteps), and a delayed edge
    that is not closed into a cycle by undelayed edges (its source could run ahead of its
    consumer by more than the one timestep its buffer holds)."""
    undelayed: dict[str, list[str]] = {layer.name: [] for layer in qnet.layers}
    for layer in qnet.layers:
        edges = qnet.sources(layer)
        if all(e.delay for e in edges):
            raise ValueError(f"node {layer.name!r}: every input is delayed; hwgen needs an undelayed input "
                             "to pace its timesteps (give it the feed-forward input too)")
        for e in edges:
            if not e.delay and e.source in undelayed:
                undelayed[e.source].append(layer.name)
    for layer in qnet.layers:
        for e in qnet.sources(layer):
            if not e.delay:
                continue
            seen, todo = {layer.name}, [layer.name]
            while todo:  # the nodes that take the consumer's output of the same step
                for nxt in undelayed[todo.pop()]:
                    if nxt not in seen:
                        seen.add(nxt)
                        todo.append(nxt)
            if e.source not in seen:
                raise ValueError(f"node {layer.name!r}: the delayed input from {e.source!r} is not part of a "
                                 f"cycle ({e.source!r} does not depend on {layer.name!r} within a timestep); "
                                 "hwgen builds a delay only as recurrence")


def plan_graph(qnet: QuantNetwork) -> Plan:
    """The units of ``qnet`` and their links: per node the units its kind plans (a chain:
    ``plan_hardware``); in front of a node with several inputs or a delayed one, its kind's
    join (``plan_join``); behind a node with several consumers, a fork. A chain gets no join
    and no fork, and the units it always had.

    Every spiking layer and every node that leads to one gets hardware; the others (a pool
    after the output, say) none. Raises ``ValueError`` naming the node when a node's input
    does not match what flows into it, when a pool would see direct (multi-bit) input, or
    when the graph is one the hardware cannot pace (:func:`_check_recurrence`).
    """
    spiking = qnet.spiking_layers
    if not spiking:
        raise ValueError("the network has no spiking layer")
    if qnet.timesteps < 1:
        raise ValueError(f"timesteps must be at least 1, not {qnet.timesteps}")
    if qnet.input_bits < 1:
        raise ValueError(f"input_bits must be at least 1, not {qnet.input_bits}")
    if not qnet.is_chain:
        qnet.check_graph()
        _check_recurrence(qnet)
    value_bits = qnet.input_bits if qnet.input_bits > 1 else 0
    in_shape = _stream_shape(qnet.input_shape)
    index = {layer.name: k for k, layer in enumerate(spiking)}
    output = qnet.output_layer.name

    # Nodes with hardware: the spiking layers and whatever leads to one (undelayed edges point
    # forward in `layers`, and a delayed edge starts at a spiking layer: one backward pass).
    needed = set(index)
    for layer in reversed(qnet.layers):
        if any(node.name in needed for node, _ in qnet.consumers(layer.name)):
            needed.add(layer.name)
    nodes = [layer for layer in qnet.layers if layer.name in needed]

    # Each edge's two ends: the unit member its tokens leave from, the one they enter.
    sources: dict[tuple[str, int], tuple[int | None, str]] = {}
    targets: dict[tuple[str, int], tuple[int, str]] = {}
    units: list[Unit] = []

    def add(unit: Unit) -> int:
        units.append(unit)
        return len(units) - 1

    def chain(planned: list[Unit]) -> tuple[int, str]:
        """Adds ``planned`` (not empty), linked in a row; returns the first one's input."""
        first = len(units)
        for n, unit in enumerate(planned, start=first):
            units.append(unit)
            if n > first:
                links.append(Link(n - 1, units[n - 1].out_port(0), n, unit.in_port(0)))
        return first, planned[0].in_port(0)

    links: list[Link] = []

    def emit(name: str, end: tuple[int | None, str], stream: Stream) -> None:
        """``name``'s output leaves from ``end``: to its one consumer, or through a fork."""
        consumers = [(node.name, k) for node in nodes for k, edge in enumerate(qnet.sources(node))
                     if edge.source == name]
        if name == output:
            consumers.append(("", READOUT))
        if len(consumers) == 1:
            sources[consumers[0]] = end
        elif len(consumers) > 1:
            fork = add(Unit(StreamFanout(f"{name or 'input'}_fork", stream.shape, len(consumers), stream.value_bits),
                            stream.shape, stream.shape, stream.value_bits, stream.input_max,
                            ports_out=len(consumers)))
            links.append(Link(*end, fork, "spikes_in"))
            for k, consumer in enumerate(consumers):
                sources[consumer] = (fork, units[fork].out_port(k))

    streams = {INPUT: Stream(in_shape, value_bits, (1 << qnet.input_bits) - 1, 0, qnet.input_bits)}
    emit(INPUT, (None, "spikes_in"), streams[INPUT])
    for node in nodes:
        edges = qnet.sources(node)
        k_spiking = index.get(node.name, 0)
        if len(edges) == 1 and not edges[0].delay:
            planned, out = node.plan_hardware(streams[edges[0].source].to(spiking=k_spiking))
            if not planned:  # nothing to build: the node's output is its input's stream
                emit(node.name, sources[(node.name, 0)], out)
                streams[node.name] = out
                continue
            targets[(node.name, 0)] = chain(planned)
        else:
            ins = []
            for e in edges:
                if e.delay:  # from a spiking layer, maybe not planned yet: its spikes
                    src = qnet.node(e.source)
                    ins.append(Stream(_stream_shape(src.output_shape), 0, 1, 0, qnet.input_bits))
                else:
                    ins.append(streams[e.source])
            adapters, join, joined = node.plan_join(ins, [bool(e.delay) for e in edges])
            heads = [chain(adapter) if adapter else None for adapter in adapters]
            j = add(join)
            for k, head in enumerate(heads):
                if head is None:
                    targets[(node.name, k)] = (j, join.in_port(k))
                    continue
                last = head[0] + len(adapters[k]) - 1
                links.append(Link(last, units[last].out_port(0), j, join.in_port(k)))
                targets[(node.name, k)] = head
            planned, out = node.plan_hardware(joined.to(spiking=k_spiking))
            if planned:
                links.append(Link(j, join.out_port(0), len(units), planned[0].in_port(0)))
                chain(planned)
        n = len(units) - 1
        emit(node.name, (n, units[n].out_port(0)), out)
        streams[node.name] = out
    targets[("", READOUT)] = (READOUT, "spikes")
    for key, target in targets.items():
        links.append(Link(*sources[key], *target))
    # The input's link first, the readout's last, the others in the order of their targets:
    # a chain's links run input to output (the order of the stall points, `stall_links`).
    links.sort(key=lambda lk: (lk.source is not None, lk.target == READOUT, lk.target, lk.target_port))
    engine = next(n for n, unit in enumerate(units) if unit.spiking == index[output])
    return Plan(units, links, in_shape, value_bits, engine)


def plan_units(qnet: QuantNetwork) -> tuple[list[Unit], StreamShape, int]:
    """The units of ``qnet`` (:func:`plan_graph`): ``(units, input stream shape, input value
    bits)``."""
    plan = plan_graph(qnet)
    return plan.units, plan.input_shape, plan.input_value_bits


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

    ``units`` and their links are ``plan`` (:func:`plan_graph`; a chain's in a row);
    ``geometry`` holds each spiking layer's folding (its kind's ``EngineGeometry``: ``lanes`` P, ``groups`` G, fire pass, latencies;
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
        self.plan = plan_graph(qnet)
        self.units, self.input_shape, self.input_value_bits = (self.plan.units, self.plan.input_shape,
                                                               self.plan.input_value_bits)
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
        self.output_shape = self.units[self.plan.output].out_shape
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
            self.stall_links = [self._link_name(link) for link in self.plan.links]
            if is_map(self.output_shape):  # the readout's flatten: a link of its own
                self.stall_links.insert(len(self.stall_links) - 1,
                                        self.stall_links[-1].replace(" -> readout", " -> readout_flatten"))
                self.stall_links[-1] = "readout_flatten -> readout"
            members["stall"] = In(len(self.stall_links))
            members["stall_offer"] = Out(len(self.stall_links))
        super().__init__(members)

    def _link_name(self, link: Link) -> str:
        """``"a -> b"``: the units' submodule names (``spikes_in``, ``readout`` at the ends),
        with ``.k`` for a fork's output or a join's input ``k``."""
        def end(unit: int | None, port: str) -> str:
            if unit is None:
                return "spikes_in"
            if unit == READOUT:
                return "readout"
            name = _unit_name(unit, self.units[unit])
            return name + (f".{port.rsplit('_', 1)[1]}" if port[-1].isdigit() else "")
        return f"{end(link.source, link.source_port)} -> {end(link.target, link.target_port)}"

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

        def port(n: int | None, name: str):
            return self.spikes_in if n is None else getattr(chain[n][1], name)

        links = list(self.plan.links)
        entry = next(lk for lk in links if lk.source is None)
        head = port(entry.target, entry.target_port)
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

        # ---- the units' links, their taps and the readout

        linked = {(entry.source, entry.source_port)}
        to_readout = None
        for lk in links:
            if lk is entry:
                continue
            linked.add((lk.source, lk.source_port))
            if lk.target == READOUT:
                to_readout = port(lk.source, lk.source_port)
                continue
            link(port(lk.source, lk.source_port), port(lk.target, lk.target_port))
        # A spiking layer that feeds nothing (in a graph, a branch the output does not read)
        # still runs: its tap shows it, and its spikes are taken as they come.
        for n, (unit, component) in enumerate(chain):
            for k in range(unit.ports_out):
                if (n, unit.out_port(k)) not in linked:
                    m.d.comb += getattr(component, unit.out_port(k)).ready.eq(1)

        tail = to_readout
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
