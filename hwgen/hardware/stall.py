"""Stall injection for test builds: a point in a token stream that a testbench can hold.

``NetworkTop(..., stall_points=True)`` puts a :class:`StallPoint` into every stream of the
chain (the input, every unit-to-unit link, the readout's input) so that the stress tests
(tests/test_fuzz.py, sim/tb_fuzz.py) can apply backpressure to streams that are internal
to the accelerator. Normal builds have none: their Verilog does not change.

A stall point is combinational. While ``stall`` is high it looks, to its upstream, like a
consumer that is not ready and, to its downstream, like a producer with nothing to send;
no token is lost, duplicated or reordered. One rule keeps both sides within the stream
protocol (amaranth.lib.stream: once ``valid`` is asserted it stays asserted, with the same
payload, until the transfer): a token that the downstream has already been offered and not
yet taken cannot be withdrawn, so ``stall`` only takes hold while no such token is pending.
A testbench therefore stalls a beat by raising ``stall`` before the beat is offered; it can
see through ``offer`` whether the upstream is trying to send.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["StallPoint"]


class StallPoint(wiring.Component):
    """A stream pass-through that withholds transfers while ``stall`` is high.

    Members
    -------
    i : ``In(stream.Signature(layout))``, from the upstream unit
    o : ``Out(stream.Signature(layout))``, to the downstream unit
    stall : ``In(1)``, hold the stream (takes effect when no offered token is pending)
    offer : ``Out(1)``, the upstream presents a token (``i.valid``), stalled or not
    """

    def __init__(self, layout: data.Layout):
        super().__init__({
            "i": In(stream.Signature(layout)),
            "o": Out(stream.Signature(layout)),
            "stall": In(1),
            "offer": Out(1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        # The downstream saw `valid` last cycle and did not take the token: it must see it
        # again now, so a stall cannot start until the transfer.
        pending = Signal()
        hold = Signal()
        m.d.sync += pending.eq(self.o.valid & ~self.o.ready)
        m.d.comb += [
            hold.eq(self.stall & ~pending),
            self.o.payload.eq(self.i.payload),
            self.o.valid.eq(self.i.valid & ~hold),
            self.i.ready.eq(self.o.ready & ~hold),
            self.offer.eq(self.i.valid),
        ]
        return m
