"""The readout: spike counts of the last layer and their argmax (docs/semantics.md, "Readout")."""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, Value, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..widths import address_bits, unsigned_bits
from .tokens import token_signature

__all__ = ["Readout", "argmax"]


def argmax(m: Module, values: list[Value]) -> Value:
    """Index of the largest of ``values``; a tie goes to the lowest index.

    A balanced tree of pairwise comparisons, ``ceil(log2(n))`` deep. Every node merges two
    adjacent runs, the left one holding the lower indices, and keeps the left one unless the
    right one is strictly larger. Each node's index and value are signals (comb logic in
    ``m``): as nested expressions, every use of a node copied its whole subtree into the
    Verilog (a 120-way argmax of 3-bit counts took 10,500 wires instead of ~500).
    """
    index_shape = unsigned(address_bits(len(values)))
    nodes = [(Const(k, index_shape), value) for k, value in enumerate(values)]
    level = 0
    while len(nodes) > 1:
        merged = []
        for n, ((i_left, v_left), (i_right, v_right)) in enumerate(zip(nodes[0::2],
                                                                        nodes[1::2])):
            right = v_right > v_left
            index = Signal(index_shape, name=f"argmax{level}_{n}_index")
            value = Signal(Value.cast(v_left).shape(), name=f"argmax{level}_{n}_value")
            m.d.comb += [index.eq(Mux(right, i_right, i_left)),
                         value.eq(Mux(right, v_right, v_left))]
            merged.append((index, value))
        if len(nodes) % 2:
            merged.append(nodes[-1])
        nodes = merged
        level += 1
    return nodes[0][0]


class Readout(wiring.Component):
    """Counts the spikes of each of ``n`` output neurons over an inference and picks the winner.

    The counters are ``ceil(log2(timesteps + 1))`` bits wide and saturate. On the ``last``
    tick the counts and their argmax are latched into ``counts`` and ``prediction``, ``done``
    pulses for one cycle (the cycle after the tick was accepted) and the counters restart from
    zero for the next inference. The input is always ready.

    Members
    -------
    spikes : ``In(token_signature(n))``
    done : ``Out(1)``
    prediction : ``Out(address_bits(n))``, valid from ``done`` until the next ``done``
    counts : ``Out(ArrayLayout(count_bits, n))``, output ``k`` at bits ``[k*C +: C]``
    """

    def __init__(self, n: int, timesteps: int):
        if n < 1:
            raise ValueError(f"the readout needs at least one neuron, not {n}")
        self._n = n
        self.count_bits = unsigned_bits(timesteps)
        super().__init__({
            "spikes": In(token_signature(n)),
            "done": Out(1),
            "prediction": Out(address_bits(n)),
            "counts": Out(data.ArrayLayout(unsigned(self.count_bits), n)),
        })

    def elaborate(self, platform) -> Module:
        m = Module()

        counters = [Signal(self.count_bits, name=f"count_{k}") for k in range(self._n)]
        full = (1 << self.count_bits) - 1
        token = self.spikes.payload

        m.d.comb += self.spikes.ready.eq(1)
        m.d.sync += self.done.eq(0)
        with m.If(self.spikes.valid):
            with m.If(token.tick):
                with m.If(token.last):
                    m.d.sync += [
                        self.done.eq(1),
                        self.prediction.eq(argmax(m, counters)),
                        *(self.counts[k].eq(c) for k, c in enumerate(counters)),
                        *(c.eq(0) for c in counters),
                    ]
            with m.Else():
                for k, c in enumerate(counters):
                    with m.If((token.addr == k) & (c != full)):
                        m.d.sync += c.eq(c + 1)

        return m
