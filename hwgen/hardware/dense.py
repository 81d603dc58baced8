"""The fully connected LIF layer engine (docs/hardware.md, "Layer engine").

One engine realises one ``QuantDense`` exactly as docs/semantics.md states it, event by event:

* an input spike ``j`` adds weight column ``j`` into the membrane memory, ``P`` neurons
  (one *group*) per cycle, ``G`` cycles per spike;
* a tick runs the fire pass over the ``G`` groups (saturate, fire, leak, reset, write back)
  and queues the spikes of each group, as a bit mask, for the serializer that turns them into
  one token per spike in ascending address order, followed by the tick.

The datapath is two stages deep. Stage 0 presents a group address to the synchronous memory
read ports; stage 1 receives the words, computes and writes the membrane back. The next read
of the same group can happen in the very cycle of that write at the earliest, which the
membrane's transparent read port resolves, so there is no hazard logic and no bubble between
back-to-back events.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Const, Module, Mux, Shape, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..ir import Leak, QuantDense
from ..widths import accumulator_bits, signed_bits
from .tokens import StreamShape, address_layout, is_map, token_signature

__all__ = ["DenseLIFEngine", "SpikeSerializer", "fire_lane", "group_layout", "lanes_and_groups",
           "leak"]


def group_layout(shape: StreamShape, lanes: int) -> data.StructLayout:
    """One fire-pass result: the spikes of the group whose first neuron is ``base``.

    ``base`` is an address of the output stream over ``shape``: lane ``l`` of the group is
    address ``base + l`` of a flat stream, or channel ``base.c + l`` at ``(base.y, base.x)``
    of a map. ``tick`` marks the last group of the pass: the serializer sends the tick (with
    ``last``) after the group's spikes, so the tick needs no queue entry of its own.
    """
    return data.StructLayout({
        "base": address_layout(shape),
        "mask": unsigned(lanes),
        "tick": unsigned(1),
        "last": unsigned(1),
    })


def leak(v: Value, spec: Leak) -> Value:
    """``leak(v)`` of docs/semantics.md; ``v`` must be signed, so ``>>`` is a floor division."""
    if spec.kind == "none":
        return v
    if spec.kind == "shift":
        return v - (v >> spec.shift)
    if spec.kind == "mul":
        return (v * spec.mul) >> spec.frac_bits
    raise ValueError(f"unknown leak kind {spec.kind!r}")


def _lane_table(values: np.ndarray, lanes: int, groups: int) -> np.ndarray:
    """Per-neuron ``values`` as a ``[groups, lanes]`` table.

    The lanes past the last neuron copy the lane's value in group 0, so that a lane whose
    neurons all share a value stays a constant; they are masked silent, so the value is moot.
    """
    values = np.asarray(values, dtype=np.int64)
    table = np.empty(groups * lanes, dtype=np.int64)
    table[:len(values)] = values
    for i in range(len(values), groups * lanes):
        table[i] = values[i % lanes]
    return table.reshape(groups, lanes)


def _lane_values(m: Module, name: str, table: np.ndarray, addr: Value, en: Value) -> list[Value]:
    """The per-lane values of the group that stage 0 addresses, as seen by stage 1.

    A lane whose value is the same in every group is a constant (the common case: one threshold
    per layer, or a single group); otherwise the table becomes a ROM read alongside the membrane.
    """
    shape = signed(signed_bits(int(table.min()), int(table.max())))
    if (table == table[0]).all():
        return [Const(int(x), shape) for x in table[0]]
    rom = Memory(shape=data.ArrayLayout(shape, table.shape[1]), depth=table.shape[0],
                 init=table.tolist())
    m.submodules[name] = rom
    port = rom.read_port()
    m.d.comb += [port.addr.eq(addr), port.en.eq(en)]
    return [port.data[lane] for lane in range(table.shape[1])]


def lanes_and_groups(n_out: int, parallel: int) -> tuple[int, int]:
    """``(P, G)`` of a layer of ``n_out`` neurons: ``P`` capped at the layer width,
    ``G = ceil(n_out / P)`` groups."""
    if parallel < 1:
        raise ValueError(f"parallel must be at least 1, not {parallel}")
    lanes = min(parallel, n_out)
    return lanes, -(-n_out // lanes)


def fire_lane(m: Module, layer, a: Value, threshold: Value, lane: int) -> tuple[Value, Value]:
    """Steps 2 to 4 of docs/semantics.md for one lane: ``a`` is ``u + b + Σ W·x``.

    Returns ``(s, u)``: the spike and the state for the next timestep, before the bias is
    added back. ``layer`` is a ``QuantDense`` or ``QuantConv2d`` (``state_bits``, ``leak``,
    ``reset``).
    """
    v = Signal(signed(layer.state_bits), name=f"v_{lane}")
    with m.If(a < layer.state_min):
        m.d.comb += v.eq(layer.state_min)
    with m.Elif(a > layer.state_max):
        m.d.comb += v.eq(layer.state_max)
    with m.Else():
        m.d.comb += v.eq(a)

    s = v > threshold
    lv = leak(v, layer.leak)
    if layer.reset == "subtract":
        u = lv - Mux(s, threshold, 0)
    elif layer.reset == "zero":
        u = Mux(s, 0, lv)
    elif layer.reset == "none":
        u = lv
    else:
        raise ValueError(f"layer {layer.name!r}: unknown reset mode {layer.reset!r}")
    return s, u


def check_accumulator(layer, weight: np.ndarray, input_max: int) -> None:
    """Refuse a layer whose ``acc_bits`` could wrap (docs/semantics.md: the sum never wraps).

    ``weight`` is ``[out, fan_in]``; ``input_max`` the largest input value per address.
    """
    need = accumulator_bits(weight, layer.bias, layer.state_bits, input_max=input_max)
    if layer.acc_bits < need:
        raise ValueError(f"layer {layer.name!r}: acc_bits={layer.acc_bits} cannot hold every "
                         f"partial sum (inputs up to {input_max} need {need}); the accumulator "
                         f"would wrap")
    if (np.asarray(layer.threshold) < 1).any():
        raise ValueError(f"layer {layer.name!r}: thresholds must be >= 1")


class SpikeSerializer(wiring.Component):
    """Sends the spikes of each group mask as tokens, lowest lane first, then its tick if any.

    Over a flat ``shape`` lane ``l`` is address ``base + l``; over a map ``(C, H, W)`` it is
    channel ``base.c + l`` at the position of ``base``.

    One token per cycle with no bubble between entries: a mask of ``k`` spikes costs ``k``
    cycles (``k + 1`` with the tick).
    """

    def __init__(self, shape: StreamShape, lanes: int):
        self._shape = shape
        self._lanes = lanes
        super().__init__({
            "groups": In(stream.Signature(group_layout(shape, lanes))),
            "tokens": Out(token_signature(shape)),
        })

    def elaborate(self, platform) -> Module:
        m = Module()

        mask = Signal(self._lanes)
        base = Signal(address_layout(self._shape))
        # The channel is the most significant field of a map address: adding the lane there
        # is adding it shifted past the position fields.
        shift = address_layout(self._shape)["c"].offset if is_map(self._shape) else 0
        tick = Signal()
        last = Signal()

        lowest = Signal(range(self._lanes))
        for lane in reversed(range(self._lanes)):  # the last assignment wins: the lowest lane
            with m.If(mask[lane]):
                m.d.comb += lowest.eq(lane)
        rest = mask & (mask - 1)  # the mask without its lowest spike

        spiking = mask.any()
        tokens = self.tokens
        m.d.comb += [
            tokens.valid.eq(spiking | tick),
            tokens.payload.addr.eq(Mux(spiking, Value.cast(base) + (lowest << shift), 0)),
            tokens.payload.tick.eq(~spiking),
            tokens.payload.last.eq(~spiking & last),
        ]
        finishing = Mux(spiking, (rest == 0) & ~tick, 1)
        m.d.comb += self.groups.ready.eq(~tokens.valid | (tokens.ready & finishing))

        with m.If(self.groups.valid & self.groups.ready):
            entry = self.groups.payload
            m.d.sync += [
                mask.eq(entry.mask),
                base.eq(entry.base),
                tick.eq(entry.tick),
                last.eq(entry.last),
            ]
        with m.Elif(tokens.valid & tokens.ready):
            with m.If(spiking):
                m.d.sync += mask.eq(rest)
            with m.Else():
                m.d.sync += tick.eq(0)

        return m


class DenseLIFEngine(wiring.Component):
    """One fully connected LIF layer, ``parallel`` neurons per cycle (capped at the layer width).

    Members
    -------
    spikes_in : ``In(token_signature(layer.in_features))``
    spikes_out : ``Out(token_signature(layer.out_features))``

    Input addresses must be below ``layer.in_features``. An address may repeat within a
    timestep (after a sum pool): each occurrence adds its weights once more.

    Direct input (``input_bits > 1``, first layer only): ``spikes_in`` tokens carry a
    ``value`` (``input_bits`` wide, unsigned, non-zero) and the engine adds ``W·value``,
    with ``P`` multipliers of ``multiplier_bits = (weight_bits, input_bits)`` (signed by
    unsigned); ``multiplier_bits`` is ``None`` for spikes.

    Timing (``G = groups``, measured by tests/test_hardware.py): an input spike occupies the
    input for ``G`` cycles and a tick for ``G`` cycles, back to back without bubbles, so a
    timestep with ``a`` active inputs costs ``(a + 1) * G`` cycles at the input. The first
    output token of a fire pass appears ``pipeline_latency`` cycles after the tick was accepted.
    The output drains one token per cycle; when downstream cannot keep up, the spike queue
    (``G + 2`` entries) fills and the engine waits in the fire pass, never losing a spike.
    After reset the engine spends ``G`` cycles writing the biases back into the membrane (it
    accepts nothing meanwhile), so that a reset also abandons a half-finished inference.
    """

    #: Cycles from the edge accepting a tick to the first token of its fire pass on
    #: ``spikes_out`` (with ``spikes_out.ready`` high): stage 0, stage 1, the two-cycle
    #: buffered FIFO and the serializer register.
    pipeline_latency = 5

    def __init__(self, layer: QuantDense, parallel: int, input_bits: int = 1,
                 input_max: int | None = None):
        """``input_max``: the largest value an input address carries per timestep (default:
        the larger of ``layer.input_max`` and ``2**input_bits - 1``); it sizes the check that
        ``acc_bits`` cannot wrap."""
        if input_bits < 1:
            raise ValueError(f"input_bits must be at least 1, not {input_bits}")
        if input_max is None:
            input_max = max(getattr(layer, "input_max", 1), (1 << input_bits) - 1)
        check_accumulator(layer, layer.weight, input_max)
        self.layer = layer
        self.input_bits = input_bits
        self.multiplier_bits = (layer.weight_bits, input_bits) if input_bits > 1 else None
        self.lanes, self.groups = lanes_and_groups(layer.out_features, parallel)
        super().__init__({
            "spikes_in": In(token_signature(layer.in_features,
                                            input_bits if input_bits > 1 else 0)),
            "spikes_out": Out(token_signature(layer.out_features)),
        })

    def timestep_cycles(self, active_inputs: int) -> int:
        """Cycles this engine holds its input for a timestep of ``active_inputs`` spikes."""
        return (active_inputs + 1) * self.groups

    def elaborate(self, platform) -> Module:
        m = Module()
        layer = self.layer
        P, G = self.lanes, self.groups
        n_in, n_out = layer.in_features, layer.out_features

        # Word j*G + g holds the weights from input j to the P neurons of group g.
        weight = np.zeros((G * P, n_in), dtype=np.int64)
        weight[:n_out] = layer.weight
        words = weight.reshape(G, P, n_in).transpose(2, 0, 1).reshape(n_in * G, P)
        m.submodules.weights = weights = Memory(
            shape=data.ArrayLayout(signed(layer.weight_bits), P), depth=n_in * G,
            init=words.tolist())
        w_rd = weights.read_port()

        # The membrane holds u + b (docs/semantics.md), so it starts out as the biases.
        bias = _lane_table(layer.bias, P, G)
        m.submodules.membrane = membrane = Memory(
            shape=data.ArrayLayout(signed(layer.acc_bits), P), depth=G, init=bias.tolist())
        v_wr = membrane.write_port()
        v_rd = membrane.read_port(transparent_for=(v_wr,))

        # ---- stage 0: walk the groups of the current token, present the read addresses

        # The engine leaves reset in a pass that writes the biases back, exactly the state
        # after a `last` tick, without sending anything.
        busy = Signal(init=1)
        fire = Signal(init=1)
        last = Signal(init=1)
        emit = Signal()
        value = Signal(self.input_bits)  # the token's input value (1 for spikes)
        group = Signal(range(G))
        base = Signal(range(n_out))
        w_addr = Signal(range(n_in * G))
        at_end = group == G - 1

        stall = Signal()  # stage 1 holds a fire-pass result that the spike queue cannot take
        advance = busy & ~stall

        m.d.comb += [
            self.spikes_in.ready.eq(~busy | (advance & at_end)),
            v_rd.addr.eq(group),
            v_rd.en.eq(~stall),
            w_rd.addr.eq(w_addr),
            w_rd.en.eq(~stall),
        ]
        threshold = _lane_values(m, "thresholds", _lane_table(layer.threshold, P, G), group, ~stall)
        bias_of = _lane_values(m, "biases", bias, group, ~stall)

        with m.If(advance):
            with m.If(at_end):
                m.d.sync += [busy.eq(0), group.eq(0), base.eq(0)]
            with m.Else():
                m.d.sync += [group.eq(group + 1), base.eq(base + P), w_addr.eq(w_addr + 1)]
        with m.If(self.spikes_in.valid & self.spikes_in.ready):
            token = self.spikes_in.payload
            m.d.sync += [
                busy.eq(1),
                group.eq(0),
                base.eq(0),
                fire.eq(token.tick),
                last.eq(token.tick & token.last),
                emit.eq(token.tick),
                w_addr.eq(token.addr * G),
            ]
            if self.input_bits > 1:
                m.d.sync += value.eq(token.value)

        # ---- stage 1: the memory words of one group are here; compute and write back

        s1_valid = Signal()
        s1_fire = Signal()
        s1_last = Signal()
        s1_emit = Signal()
        s1_end = Signal()
        s1_group = Signal(range(G))
        s1_base = Signal(range(n_out))
        s1_value = Signal(self.input_bits)
        with m.If(~stall):
            m.d.sync += [
                s1_value.eq(value),
                s1_valid.eq(busy),
                s1_fire.eq(fire),
                s1_last.eq(last),
                s1_emit.eq(emit),
                s1_end.eq(at_end),
                s1_group.eq(group),
                s1_base.eq(base),
            ]

        # Lanes at or past `full_lanes` have no neuron in the last group.
        full_lanes = n_out - (G - 1) * P
        spikes = Signal(P)
        for lane in range(P):
            a = v_rd.data[lane]  # u + b + the weights added since the last tick
            s, u = fire_lane(m, layer, a, threshold[lane], lane)
            if lane >= full_lanes:
                s = s & ~s1_end
            m.d.comb += spikes[lane].eq(s)

            # Spikes add the weight; direct input adds weight * value (signed x unsigned).
            w = w_rd.data[lane] if self.input_bits == 1 else w_rd.data[lane] * s1_value
            with m.If(~s1_fire):
                m.d.comb += v_wr.data[lane].eq(a + w)
            with m.Elif(s1_last):  # the next inference starts from u = 0
                m.d.comb += v_wr.data[lane].eq(bias_of[lane])
            with m.Else():
                m.d.comb += v_wr.data[lane].eq(u + bias_of[lane])

        m.d.comb += [
            v_wr.addr.eq(s1_group),
            v_wr.en.eq(s1_valid & ~stall),
        ]

        # ---- spike queue and serializer

        entry_layout = group_layout(n_out, P)
        # Room for a whole fire pass (G entries), plus the cycle the buffered FIFO needs to
        # move its first entry into its output register.
        m.submodules.queue = queue = SyncFIFOBuffered(width=Shape.cast(entry_layout).width,
                                                      depth=G + 2)
        entry = Signal(entry_layout)
        m.d.comb += [
            entry.base.eq(s1_base),
            entry.mask.eq(spikes),
            entry.tick.eq(s1_end),
            entry.last.eq(s1_end & s1_last),
            queue.w_data.eq(entry.as_value()),
            # Groups without spikes need no entry, except the last one, which carries the tick.
            queue.w_en.eq(s1_valid & s1_emit & (spikes.any() | s1_end)),
            stall.eq(s1_valid & s1_emit & ~queue.w_rdy),
        ]

        m.submodules.serializer = serializer = SpikeSerializer(n_out, P)
        m.d.comb += [
            serializer.groups.valid.eq(queue.r_rdy),
            serializer.groups.payload.eq(queue.r_data),
            queue.r_en.eq(serializer.groups.ready),
        ]
        wiring.connect(m, serializer.tokens, wiring.flipped(self.spikes_out))

        return m
