"""Fan-out of a token stream: one producer, several consumers (docs/hardware.md, "Graphs").

A node whose output feeds several consumers (a layer read by the next layer and by a
recurrent or residual edge, the readout and a feedback edge, ...) sends every token to each of
them. The consumers take tokens at their own pace; a token leaves the producer only when every
consumer has it.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .tokens import StreamShape, token_signature

__all__ = ["StreamFork"]


class StreamFork(wiring.Component):
    """One token stream into ``consumers`` copies, each with its own handshake.

    Combinational (no added latency). A per-output ``taken`` bit records that an output has
    transferred the current token, so an output that was ready early is not offered the same
    token again while the others catch up; the input transfers in the cycle the last output
    takes it (several may take it in the same cycle), and every ``taken`` bit clears.
    Each output keeps the stream rule (``valid`` stays high with the same payload until it
    transfers) because the input does.

    Parameters
    ----------
    shape : the streams' shape (``tokens.token_signature``)
    consumers : number of outputs, at least 2
    value_bits : width of the ``value`` field (direct input), 0 for spikes

    Members
    -------
    spikes_in : ``In(token_signature(shape, value_bits))``
    spikes_out_0, spikes_out_1, ... : ``Out(token_signature(shape, value_bits))``
    """

    def __init__(self, shape: StreamShape, consumers: int, value_bits: int = 0):
        if consumers < 2:
            raise ValueError(f"a fork needs at least 2 consumers, not {consumers}")
        self.consumers = consumers
        members = {"spikes_in": In(token_signature(shape, value_bits))}
        for k in range(consumers):
            members[f"spikes_out_{k}"] = Out(token_signature(shape, value_bits))
        super().__init__(members)

    def outputs(self) -> list:
        return [getattr(self, f"spikes_out_{k}") for k in range(self.consumers)]

    def elaborate(self, platform) -> Module:
        m = Module()
        src = self.spikes_in
        taken = Signal(self.consumers)
        done = []  # output k has the token: earlier, or now
        for k, out in enumerate(self.outputs()):
            m.d.comb += [
                out.payload.eq(src.payload),
                out.valid.eq(src.valid & ~taken[k]),
            ]
            done.append(taken[k] | out.ready)
        ready = done[0]
        for d in done[1:]:
            ready = ready & d
        m.d.comb += src.ready.eq(ready)
        with m.If(src.valid & src.ready):
            m.d.sync += taken.eq(0)
        with m.Elif(src.valid):
            for k, out in enumerate(self.outputs()):
                with m.If(out.valid & out.ready):
                    m.d.sync += taken[k].eq(1)
        return m
