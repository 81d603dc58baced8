"""The output side of the LIF engines: fire-pass results queued, then sent as tokens.

A fire pass produces the spikes of one group (``P`` lanes) per cycle, but the output stream
carries one spike per cycle: the queue lets the pass run ahead of the serializer, and when it
is full the engine waits (downstream backpressure), never losing or repeating a spike.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Shape, Signal, Value, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from .memories import MemorySpec
from .tokens import StreamShape, address_layout, is_map, token_signature

__all__ = ["SpikeQueue", "SpikeSerializer", "group_layout", "groups_to_tokens", "queue_word"]


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


def groups_to_tokens(shape: StreamShape, lanes: int) -> wiring.Signature:
    """Fire-pass results in, one token per spike out: the serializer, and the queue with it."""
    return wiring.Signature({
        "groups": In(stream.Signature(group_layout(shape, lanes))),
        "tokens": Out(token_signature(shape)),
    })


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
        super().__init__(groups_to_tokens(shape, lanes))

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


class SpikeQueue(wiring.Component):
    """A FIFO of fire-pass results in front of a :class:`SpikeSerializer`.

    Members
    -------
    groups : ``In(stream.Signature(group_layout(shape, lanes)))``
    tokens : ``Out(token_signature(shape))``

    A group without spikes needs no entry, except the last one of a pass, which carries the
    tick: such a group is taken and dropped. ``groups.ready`` is the room in the FIFO whatever
    the group holds, so that an engine's stall on a full queue does not depend on the spikes
    it computes in the same cycle.

    Room for ``depth`` entries (a whole fire pass, for the dense engine), plus the cycle the
    buffered FIFO needs to move its first entry into its output register: ``depth + 2``.
    """

    def __init__(self, shape: StreamShape, lanes: int, depth: int):
        self._shape = shape
        self._lanes = lanes
        self._depth = depth
        super().__init__(groups_to_tokens(shape, lanes))

    @staticmethod
    def memories_for(layer_name: str, shape: StreamShape, lanes: int, depth: int) -> list[MemorySpec]:
        """The FIFO's memory: ``SyncFIFOBuffered(depth + 2)`` keeps ``depth + 1`` entries in it
        and one in its output register."""
        width = Shape.cast(group_layout(shape, lanes)).width
        return [MemorySpec(layer_name, "spike queue", depth + 1, width, initialised=False, read_write=True)]

    def elaborate(self, platform) -> Module:
        m = Module()

        layout = group_layout(self._shape, self._lanes)
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=Shape.cast(layout).width,
                                                    depth=self._depth + 2)
        group = self.groups.payload
        m.d.comb += [
            fifo.w_data.eq(group.as_value()),
            fifo.w_en.eq(self.groups.valid & (group.mask.any() | group.tick)),
            self.groups.ready.eq(fifo.w_rdy),
        ]

        m.submodules.serializer = serializer = SpikeSerializer(self._shape, self._lanes)
        m.d.comb += [
            serializer.groups.valid.eq(fifo.r_rdy),
            serializer.groups.payload.eq(fifo.r_data),
            fifo.r_en.eq(serializer.groups.ready),
        ]
        wiring.connect(m, serializer.tokens, wiring.flipped(self.tokens))

        return m


def queue_word(m: Module, queue: SpikeQueue, *, valid: Value, emit: Value, base: Value,
               spikes: Value, end: Value, last: Value) -> Value:
    """Offers the word in an engine's stage 1 to ``queue`` and returns the engine's stall.

    The word (``valid``) belongs to a fire pass that sends its spikes (``emit``; the pass
    after reset sends nothing); ``spikes`` are its lanes, from address ``base``; ``end`` marks
    the last word of the pass, whose group carries the tick, and ``last`` the last tick of an
    inference. The stall holds stage 1 (and the walker behind it) while the queue is full.
    """
    m.d.comb += [
        queue.groups.valid.eq(valid & emit),
        queue.groups.payload.base.eq(base),
        queue.groups.payload.mask.eq(spikes),
        queue.groups.payload.tick.eq(end),
        queue.groups.payload.last.eq(end & last),
    ]
    return valid & emit & ~queue.groups.ready
