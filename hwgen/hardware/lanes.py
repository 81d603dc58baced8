"""The neuron lanes that the LIF engines share (docs/hardware.md, "Layer engine").

Both engines (``dense.py``, ``conv.py``) keep ``P`` neurons, one *group*, per memory word and
update all ``P`` of them in one cycle; they differ only in how they walk the words. This
module holds what they do alike: the memories of a word, the per-lane neuron update of
stage 1 and the per-lane threshold and bias tables.

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

__all__ = ["fire_lane", "lane_memories", "lane_table", "lane_values", "lanes_and_groups",
           "leak", "update_lanes"]


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
    """The weight memory and the membrane RAM :func:`lane_memories` builds."""
    role = "weights" if weight_target is None else f"weights (loaded, {weight_target})"
    return [MemorySpec(layer.name, role, weight_words, lanes * layer.weight_bits,
                       initialised=weight_target is None, spram=weight_target == "ice40_spram"),
            MemorySpec(layer.name, "membranes", membrane_words, lanes * layer.acc_bits, read_write=True)]


def lane_memories(m: Module, layer, weights: np.ndarray, membrane: np.ndarray,
                  weight_target: str | None = None
                  ) -> tuple[ReadPort | LoadedWeights, WritePort, ReadPort]:
    """The weight memory and the membrane RAM of an engine, words of ``P`` lanes.

    ``weights`` and ``membrane`` are the initial words, ``[depth, P]``; the membrane holds
    ``u + b`` (docs/semantics.md), so it starts out as the biases. Returns the weight read
    port and the membrane's write and read ports. The membrane's read port is transparent
    for its write port: a read of the word written in the same cycle sees the new value,
    which is why the engines need no hazard logic between back-to-back events.

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
    m.submodules.membrane = membrane_ram = Memory(
        shape=data.ArrayLayout(signed(layer.acc_bits), lanes), depth=len(membrane),
        init=membrane.tolist())
    v_wr = membrane_ram.write_port()
    v_rd = membrane_ram.read_port(transparent_for=(v_wr,))
    return w_rd, v_wr, v_rd


def leak(v: Value, spec: Leak) -> Value:
    """``leak(v)`` of docs/semantics.md; ``v`` must be signed, so ``>>`` is a floor division."""
    if spec.kind == "none":
        return v
    if spec.kind == "shift":
        return v - (v >> spec.shift)
    if spec.kind == "mul":
        return (v * spec.mul) >> spec.frac_bits
    raise ValueError(f"unknown leak kind {spec.kind!r}")


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


def update_lanes(m: Module, layer, v_rd: ReadPort, w_rd: ReadPort, v_wr: WritePort, *,
                 value: Value | None, threshold: list[Value], bias: list[Value], fire: Value,
                 last: Value, dead: Value, full_lanes: int) -> Signal:
    """Stage 1 of an engine: the membrane word on ``v_rd`` and the weight word on ``w_rd``
    are here; computes every lane and presents the new membrane word on ``v_wr.data``.

    Integrating (``fire`` low), a lane adds its weight, or ``weight * value`` with direct
    input (``value`` is ``None`` for spikes). Firing, it writes back ``u + b``, or ``b`` on
    the ``last`` tick, so that the next inference starts from ``u = 0``. Returns the spike
    mask of the word; lanes from ``full_lanes`` on hold no neuron in a word marked ``dead``
    (the last group of the layer or convolution group), so their spikes are masked.
    """
    spikes = Signal(len(threshold))
    for lane in range(len(threshold)):
        a = v_rd.data[lane]  # u + b + the weights added since the last tick
        s, u = fire_lane(m, layer, a, threshold[lane], lane)
        if lane >= full_lanes:
            s = s & ~dead
        m.d.comb += spikes[lane].eq(s)

        # Spikes add the weight; direct input adds weight * value (signed x unsigned).
        w = w_rd.data[lane] if value is None else w_rd.data[lane] * value
        with m.If(~fire):
            m.d.comb += v_wr.data[lane].eq(a + w)
        with m.Elif(last):  # the next inference starts from u = 0
            m.d.comb += v_wr.data[lane].eq(bias[lane])
        with m.Else():
            m.d.comb += v_wr.data[lane].eq(u + bias[lane])
    return spikes
