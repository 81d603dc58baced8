"""The neuron lanes that the LIF engines share (docs/hardware.md, "Layer engine").

Both engines (``dense.py``, ``conv.py``) keep ``P`` neurons, one *group*, per memory word and
update all ``P`` of them in one cycle; they differ only in how they walk the words. This
module holds what they do alike: the neuron state memories of a word (membrane, and for the
neurons of docs/semantics.md beyond plain LIF a synaptic current and a hold bit), the
per-lane neuron update of stage 1 and the per-lane tables of thresholds, biases, reset
values and membrane biases.

The lane update is a function that adds its logic to the engine's module rather than a
component of its own: its thresholds and biases are usually constants, and it reads the
memory ports the engine addresses, so it has no interface worth a signature.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data
from amaranth.lib.memory import Memory, ReadPort, WritePort

from ..ir import Leak
from ..widths import signed_bits
from .memories import LoadedWeights, MemorySpec

__all__ = ["NeuronMemories", "fire_lane", "lane_memories", "lane_table", "lane_values",
           "lanes_and_groups", "leak", "neuron_tables", "neuron_values", "saturate", "update_lanes"]


def lanes_and_groups(n_out: int, parallel: int) -> tuple[int, int]:
    """``(P, G)`` of a layer of ``n_out`` neurons: ``P`` capped at the layer width,
    ``G = ceil(n_out / P)`` groups."""
    if parallel < 1:
        raise ValueError(f"parallel must be at least 1, not {parallel}")
    lanes = min(parallel, n_out)
    return lanes, -(-n_out // lanes)


def lane_table(values: np.ndarray, lanes: int, groups: int, blocks: int = 1) -> np.ndarray:
    """Per-neuron ``values`` as a ``[blocks * groups, lanes]`` table, one row per word.

    The neurons fall into ``blocks`` equal blocks (a convolution's groups; one block for a
    dense layer), each spread over ``groups`` words of ``lanes``. The lanes past the last
    neuron of a block copy the lane's value in row 0, so that a lane whose neurons all share
    a value stays a constant; they are masked silent, so the value is moot.
    """
    values = np.asarray(values, dtype=np.int64).reshape(blocks, -1)
    per_block = values.shape[1]
    table = np.empty((blocks, groups * lanes), dtype=np.int64)
    table[:, :per_block] = values
    table[:, per_block:] = values[0, np.arange(per_block, groups * lanes) % lanes]
    return table.reshape(blocks * groups, lanes)


def lane_values(m: Module, name: str, table: np.ndarray, addr: Value, en: Value) -> list[Value]:
    """The per-lane values of row ``addr`` of ``table``, one cycle after ``addr`` (stage 1).

    A lane whose value is the same in every row is a constant (the common case: one threshold
    per layer, or a single group); otherwise the table becomes a ROM read alongside the
    membrane.
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


def lane_values_memories(layer_name: str, role: str, table: np.ndarray) -> list[MemorySpec]:
    """The ROM :func:`lane_values` builds for ``table``: none where every row is the same."""
    table = np.asarray(table, dtype=np.int64)
    if (table == table[0]).all():
        return []
    bits = signed_bits(int(table.min()), int(table.max()))
    return [MemorySpec(layer_name, role, table.shape[0], table.shape[1] * bits)]


def lane_memories_list(layer, lanes: int, weight_words: int, membrane_words: int,
                       weight_target: str | None = None) -> list[MemorySpec]:
    """The weight memory and the neuron state memories :func:`lane_memories` builds."""
    role = "weights" if weight_target is None else f"weights (loaded, {weight_target})"
    return [MemorySpec(layer.name, role, weight_words, lanes * layer.weight_bits,
                       initialised=weight_target is None, spram=weight_target == "ice40_spram"),
            *(MemorySpec(layer.name, state, membrane_words, lanes * bits, read_write=True)
              for state, bits in NeuronMemories.words(layer))]


class NeuronMemories:
    """The RAMs that hold a layer's neuron state, ``P`` lanes per word, all at one address.

    * ``integrate``: what the input events add into, ``acc_bits`` per lane, initialised to
      the biases: the membrane ``u + b`` of a LIF neuron, or the synaptic current ``i + b``
      of a CuBa neuron (docs/semantics.md, "How the hardware realises it");
    * ``membrane`` (CuBa only): the membrane ``u``, ``membrane_bits`` per lane, initialised to
      0; only the fire pass reads and writes it, in the cycle it reads ``integrate``;
    * ``hold`` (reset "zero_step" only): one bit per lane, set where the neuron fired at the
      step just done, so that the next step's membrane is held at zero; fire pass only.

    Every read port is transparent for its memory's write port: a read of the word written in
    the same cycle sees the new value, so back-to-back events and fire passes need no hazard
    logic. ``*_wr`` and ``*_rd`` are the ports; ``None`` where the memory is not built.
    """

    def __init__(self, m: Module, layer, initial: np.ndarray):
        lanes, depth = initial.shape[1], len(initial)

        def shape(bits: int) -> data.ArrayLayout:
            return data.ArrayLayout(signed(bits), lanes)

        # Amaranth names the ports' signals after the variables they are assigned to, and a
        # LIF layer's names (and order) are those of the engines before CuBa neurons existed,
        # so that its Verilog is unchanged.
        self.membrane_wr = self.membrane_rd = self.hold_wr = self.hold_rd = None
        if layer.synapse is None:
            m.submodules.membrane = memory = Memory(shape=shape(layer.acc_bits), depth=depth,
                                                    init=initial.tolist())
            v_wr = memory.write_port()
            v_rd = memory.read_port(transparent_for=(v_wr,))
        else:
            m.submodules.current = memory = Memory(shape=shape(layer.acc_bits), depth=depth,
                                                   init=initial.tolist())
            i_wr = memory.write_port()
            i_rd = memory.read_port(transparent_for=(i_wr,))
            v_wr, v_rd = i_wr, i_rd
            m.submodules.membrane = membrane = Memory(shape=shape(layer.membrane_bits), depth=depth,
                                                      init=[])
            u_wr = membrane.write_port()
            u_rd = membrane.read_port(transparent_for=(u_wr,))
            self.membrane_wr, self.membrane_rd = u_wr, u_rd
        self.integrate_wr, self.integrate_rd = v_wr, v_rd
        if layer.reset == "zero_step":
            m.submodules.hold = hold = Memory(shape=data.ArrayLayout(1, lanes), depth=depth, init=[])
            hold_wr = hold.write_port()
            hold_rd = hold.read_port(transparent_for=(hold_wr,))
            self.hold_wr, self.hold_rd = hold_wr, hold_rd

    @staticmethod
    def words(layer) -> list[tuple[str, int]]:
        """``(role, bits per lane)`` of each memory built for ``layer``, as MemorySpec names them."""
        if layer.synapse is None:
            roles = [("membranes", layer.acc_bits)]
        else:
            roles = [("currents", layer.acc_bits), ("membranes", layer.membrane_bits)]
        if layer.reset == "zero_step":
            roles.append(("hold bits", 1))
        return roles

    def read(self, addr: Value, en: Value) -> list:
        """Stage 0 reads the words at ``addr`` (when ``en``): the statements, which the
        engine places where a plain LIF engine always placed its membrane read (the order of
        statements shows in the Verilog)."""
        return [stmt for rd in (self.integrate_rd, self.membrane_rd, self.hold_rd) if rd is not None
                for stmt in (rd.addr.eq(addr), rd.en.eq(en))]

    def write(self, m: Module, addr: Value, en: Value, fire: Value) -> None:
        """Stage 1 writes the words at ``addr`` (when ``en``). The memories only the fire
        pass uses are written only when ``fire``: an integrate step leaves them alone."""
        m.d.comb += [self.integrate_wr.addr.eq(addr), self.integrate_wr.en.eq(en)]
        for wr in (self.membrane_wr, self.hold_wr):
            if wr is not None:
                m.d.comb += [wr.addr.eq(addr), wr.en.eq(en & fire)]


def lane_memories(m: Module, layer, weights: np.ndarray, membrane: np.ndarray,
                  weight_target: str | None = None
                  ) -> tuple[ReadPort | LoadedWeights, NeuronMemories]:
    """The weight memory and the neuron state memories of an engine, words of ``P`` lanes.

    ``weights`` and ``membrane`` are the initial words, ``[depth, P]``; ``membrane`` is what
    the events add into (:class:`NeuronMemories`' ``integrate``), which holds ``u + b`` or
    ``i + b`` (docs/semantics.md), so it starts out as the biases. Returns the weight read
    port and the state memories.

    The weights are a ROM initialised by the bitstream, or with ``weight_target`` (one of
    ``memories.TARGETS``) a ``LoadedWeights`` RAM of the same shape, written at run time
    through its ``load`` stream; both read alike (``addr``, ``en``, ``data``).
    """
    lanes = weights.shape[1]
    if weight_target is None:
        m.submodules.weights = weight_rom = Memory(
            shape=data.ArrayLayout(signed(layer.weight_bits), lanes), depth=len(weights),
            init=weights.tolist())
        w_rd = weight_rom.read_port()
    else:
        m.submodules.weights = w_rd = LoadedWeights(lanes, layer.weight_bits, len(weights),
                                                    weight_target)
    return w_rd, NeuronMemories(m, layer, membrane)


def neuron_tables(layer, lanes: int, groups: int, blocks: int = 1) -> dict[str, np.ndarray]:
    """The per-channel constants of the fire pass as ``[blocks * groups, lanes]`` tables
    (:func:`lane_table`), by role: thresholds, biases, and where the layer has them the reset
    values (reset "zero" to ``v_reset``) and the membrane biases (CuBa ``membrane_bias``)."""
    tables = {"thresholds": lane_table(layer.threshold, lanes, groups, blocks),
              "biases": lane_table(layer.bias, lanes, groups, blocks)}
    if layer.reset == "zero" and layer.v_reset is not None:
        tables["reset values"] = lane_table(layer.v_reset, lanes, groups, blocks)
    if layer.synapse is not None and layer.synapse.membrane_bias:
        tables["membrane biases"] = lane_table(layer.synapse.membrane_bias, lanes, groups, blocks)
    return tables


def neuron_tables_memories(layer, lanes: int, groups: int, blocks: int = 1) -> list[MemorySpec]:
    """The ROMs :func:`neuron_values` builds (none for a table that is constant per lane)."""
    return [spec for role, table in neuron_tables(layer, lanes, groups, blocks).items()
            for spec in lane_values_memories(layer.name, role, table)]


def neuron_values(m: Module, layer, lanes: int, groups: int, addr: Value, en: Value,
                  blocks: int = 1) -> dict[str, list[Value]]:
    """:func:`lane_values` of each of :func:`neuron_tables`, by role, for row ``addr``."""
    return {role: lane_values(m, role.replace(" ", "_"), table, addr, en)
            for role, table in neuron_tables(layer, lanes, groups, blocks).items()}


def leak(v: Value, spec: Leak) -> Value:
    """``leak(v)`` of docs/semantics.md; ``v`` must be signed, so ``>>`` is a floor division."""
    if spec.kind == "none":
        return v
    if spec.kind == "shift":
        return v - (v >> spec.shift)
    if spec.kind == "mul":
        return (v * spec.mul) >> spec.frac_bits
    raise ValueError(f"unknown leak kind {spec.kind!r}")


def saturate(m: Module, name: str, a: Value, bits: int) -> Signal:
    """``clamp(a, lo, hi)`` to ``bits`` signed (docs/semantics.md, step 2), as a signal."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    v = Signal(signed(bits), name=name)
    with m.If(a < lo):
        m.d.comb += v.eq(lo)
    with m.Elif(a > hi):
        m.d.comb += v.eq(hi)
    with m.Else():
        m.d.comb += v.eq(a)
    return v


def fire_lane(m: Module, layer, a: Value, threshold: Value, lane: int,
              reset_value: Value | None = None) -> tuple[Value, Value]:
    """Steps 2 to 4 of docs/semantics.md for one lane: ``a`` is the integrated membrane.

    Returns ``(s, u)``: the spike and the membrane for the next timestep (without a bias,
    and for a CuBa delay-1 synapse without the current). ``layer`` is a ``QuantDense`` or
    ``QuantConv2d`` (``state_bits``, ``leak``, ``reset``, ``reset_before_leak``);
    ``reset_value`` is the lane's ``v_reset`` (reset "zero"; ``None``: 0).
    """
    v = saturate(m, f"v_{lane}", a, layer.state_bits)
    s = v > threshold
    lv = leak(v, layer.leak)
    if layer.reset == "subtract":
        if layer.reset_before_leak:  # NIR's Euler order: the subtracted threshold leaks too
            u = leak(v - Mux(s, threshold, 0), layer.leak)
        else:
            u = lv - Mux(s, threshold, 0)
    elif layer.reset == "zero":
        # leak(0) = 0: without a reset value, the plain form (and its Verilog) of old
        u = Mux(s, 0, lv) if reset_value is None else leak(Mux(s, reset_value, v), layer.leak)
    elif layer.reset in ("none", "zero_step"):  # zero_step holds the *next* step instead
        u = lv
    else:
        raise ValueError(f"layer {layer.name!r}: unknown reset mode {layer.reset!r}")
    return s, u


def update_lanes(m: Module, layer, state: NeuronMemories, w_rd: ReadPort, *,
                 value: Value | None, tables: dict[str, list[Value]], fire: Value,
                 last: Value, dead: Value, full_lanes: int) -> Signal:
    """Stage 1 of an engine: the state words of ``state`` and the weight word on ``w_rd``
    are here; computes every lane and presents the new state words on the write ports.

    Integrating (``fire`` low), a lane adds its weight, or ``weight * value`` with direct
    input (``value`` is ``None`` for spikes), into ``state.integrate``. Firing, it runs
    docs/semantics.md's steps for the word (``tables``: :func:`neuron_values`) and writes
    back the next state: for a LIF neuron ``u + b``; for a CuBa neuron the current
    ``leak_α(c) + b`` and the membrane ``u`` (plus ``c`` with delay 1); with "zero_step" the
    hold bit ``s``. On the ``last`` tick every memory returns to its initial state (``b``,
    0, 0) instead, so that the next inference starts afresh. Returns the spike mask of the
    word; lanes from ``full_lanes`` on hold no neuron in a word marked ``dead`` (the last
    group of the layer or convolution group), so their spikes are masked.
    """
    syn = layer.synapse
    threshold, bias, resets = tables["thresholds"], tables["biases"], tables.get("reset values")
    spikes = Signal(len(threshold))
    for lane in range(len(threshold)):
        acc = state.integrate_rd.data[lane]  # LIF: u + b, CuBa: i + b, + the weights since the tick
        if syn is None:
            a = acc
        else:  # CuBa: the events went into the current; the membrane takes it (or last step's)
            c = saturate(m, f"c_{lane}", acc, syn.bits)
            a = state.membrane_rd.data[lane]
            if "membrane biases" in tables:
                a = a + tables["membrane biases"][lane]
            if syn.delay == 0:
                a = a + c
        if state.hold_rd is not None:  # zero_step: the neuron fired last step, so a = 0
            a = Mux(state.hold_rd.data[lane], 0, a)
        s, u = fire_lane(m, layer, a, threshold[lane], lane, resets[lane] if resets else None)
        if lane >= full_lanes:
            s = s & ~dead
        m.d.comb += spikes[lane].eq(s)

        # Spikes add the weight; direct input adds weight * value (signed x unsigned).
        w = w_rd.data[lane] if value is None else w_rd.data[lane] * value
        integrate = state.integrate_wr.data[lane]
        with m.If(~fire):
            m.d.comb += integrate.eq(acc + w)
        with m.Elif(last):  # the next inference starts from u = 0 (and i = 0, no hold)
            m.d.comb += integrate.eq(bias[lane])
        with m.Else():
            if syn is None:
                m.d.comb += integrate.eq(u + bias[lane])
            else:
                m.d.comb += [integrate.eq(leak(c, syn.leak) + bias[lane]),
                             state.membrane_wr.data[lane].eq(u + c if syn.delay == 1 else u)]
            if state.hold_wr is not None:
                m.d.comb += state.hold_wr.data[lane].eq(s)
    return spikes
