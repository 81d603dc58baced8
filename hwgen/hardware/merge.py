"""Fan-in of token streams: several producers into one consumer (docs/hardware.md, "Graphs").

A node with several inputs (a neuron layer's concatenated synapses, a spike-sum merge, a
recurrent connection) reads one stream. :class:`StreamMerge` interleaves its inputs' events
within a timestep, moves each input's addresses to its place in the concatenation, and closes
the timestep with one tick once every input has closed it (docs/semantics.md, "Graphs": the
order of events within a step cannot matter to the exact sum).

A delayed (recurrent) input carries its source's step ``t - 1`` into step ``t``: the merge
starts every inference as if that input had already closed step 0 (its zeros), and drops what
the source sends in the final step, which belongs to no step. Each delayed input has a buffer
of one whole timestep of its source (``N + 1`` tokens) so that a cycle of the graph cannot
deadlock (docs/hardware.md, "Graphs").
"""

from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import Module, Shape, Signal
from amaranth.lib import data, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from .memories import MemorySpec
from .tokens import StreamShape, is_map, shape_size, token_layout, token_signature

__all__ = ["StreamMerge", "check_merge", "delay_buffer_depth"]


def delay_buffer_depth(shape: StreamShape) -> int:
    """Tokens a delayed input's buffer holds: one timestep of its source, every neuron
    firing, and the tick."""
    return shape_size(shape) + 1


def check_merge(in_shapes: Sequence[StreamShape], out_shape: StreamShape, offsets: Sequence[int],
                delayed: Sequence[bool], in_value_bits: Sequence[int]) -> None:
    """Refuse a merge :class:`StreamMerge` cannot build: inputs that do not fit the output at
    their offsets, or no input that is not delayed (nothing would close the timesteps)."""
    n = len(in_shapes)
    if n < 1 or not (len(offsets) == len(delayed) == len(in_value_bits) == n):
        raise ValueError("a merge needs one offset, delay flag and value width per input")
    if all(delayed):
        raise ValueError("a merge needs an input that is not delayed: its ticks pace the timesteps")
    for shape, offset in zip(in_shapes, offsets):
        if is_map(shape) != is_map(out_shape) or offset < 0 or (
                is_map(shape) and (tuple(shape[1:]) != tuple(out_shape[1:])
                                   or shape[0] + offset > out_shape[0])) or (
                not is_map(shape) and shape_size(shape) + offset > shape_size(out_shape)):
            raise ValueError(f"an input of shape {shape} at offset {offset} does not fit in {out_shape}")


class StreamMerge(wiring.Component):
    """Several token streams into one, a timestep at a time.

    Within a timestep, a non-tick token passes from any input that has not yet delivered its
    tick, chosen round-robin (an input is never starved: after a grant it has the lowest
    priority), its address moved by the input's ``offset`` (a flat stream: ``addr + offset``;
    a map: ``c + offset``, the position unchanged). A tick is taken from its input at once and
    recorded; that input then waits until every input has delivered its tick, when one tick
    leaves, with ``last`` if a non-delayed input's tick had it.

    A delayed input counts as having delivered its tick at the start of every inference. After
    the tick with ``last`` has left, each delayed input's tokens up to and including its own
    ``tick & last`` (its source's final step) are taken and dropped, after which it again counts
    as ticked for the next inference's first step. Its tokens pass through a buffer of
    :func:`delay_buffer_depth` tokens first.

    One register stage: the output holds one token (``ready = ~valid | out.ready``), so the
    merge adds a cycle of latency and passes one token per cycle.

    Parameters
    ----------
    in_shapes : each input's stream shape (``tokens``); maps share the output's ``H, W``
    out_shape : the output stream's shape
    offsets : per input, what is added to its address (flat) or channel (map)
    delayed : per input, whether it is a delayed (recurrent) edge
    in_value_bits : per input, its ``value`` width (direct input), 0 for spikes; the output has
        the widest, and a spike from an input without one carries the value 1

    Members
    -------
    spikes_in_0, spikes_in_1, ... : ``In(token_signature(in_shapes[k], in_value_bits[k]))``
    spikes_out : ``Out(token_signature(out_shape, max(in_value_bits)))``
    """

    def __init__(self, in_shapes: Sequence[StreamShape], out_shape: StreamShape, offsets: Sequence[int],
                 delayed: Sequence[bool], in_value_bits: Sequence[int] | None = None):
        n = len(in_shapes)
        in_value_bits = list(in_value_bits or [0] * n)
        check_merge(in_shapes, out_shape, offsets, delayed, in_value_bits)
        self.in_shapes = list(in_shapes)
        self.out_shape = out_shape
        self.offsets = [int(o) for o in offsets]
        self.delayed = [bool(d) for d in delayed]
        self.in_value_bits = in_value_bits
        self.value_bits = max(in_value_bits)
        members = {f"spikes_in_{k}": In(token_signature(shape, bits))
                   for k, (shape, bits) in enumerate(zip(in_shapes, in_value_bits))}
        members["spikes_out"] = Out(token_signature(out_shape, self.value_bits))
        super().__init__(members)

    @staticmethod
    def memories_for(layer_name: str, in_shapes: Sequence[StreamShape], delayed: Sequence[bool],
                     in_value_bits: Sequence[int] | None = None) -> list[MemorySpec]:
        """The delayed inputs' buffers: ``SyncFIFOBuffered(N + 1)`` keeps ``N`` tokens in its
        memory and one in its output register."""
        bits = in_value_bits or [0] * len(in_shapes)
        return [MemorySpec(layer_name, f"delay buffer {k}", delay_buffer_depth(shape) - 1,
                           Shape.cast(token_layout(shape, v)).width, initialised=False, read_write=True)
                for k, (shape, d, v) in enumerate(zip(in_shapes, delayed, bits)) if d]

    def inputs(self) -> list:
        return [getattr(self, f"spikes_in_{k}") for k in range(len(self.in_shapes))]

    def _heads(self, m: Module) -> list[tuple[Signal, data.View, Signal]]:
        """``(valid, payload, ready)`` of each input as the arbiter sees it: the port itself,
        or for a delayed input the head of its buffer."""
        heads = []
        for k, (port, shape) in enumerate(zip(self.inputs(), self.in_shapes)):
            if not self.delayed[k]:
                heads.append((port.valid, port.payload, port.ready))
                continue
            layout = token_layout(shape, self.in_value_bits[k])
            fifo = SyncFIFOBuffered(width=Shape.cast(layout).width, depth=delay_buffer_depth(shape))
            m.submodules[f"delay{k}"] = fifo
            ready = Signal(name=f"head{k}_ready")
            m.d.comb += [
                fifo.w_data.eq(port.payload),
                fifo.w_en.eq(port.valid),
                port.ready.eq(fifo.w_rdy),
                fifo.r_en.eq(ready),
            ]
            heads.append((fifo.r_rdy, data.View(layout, fifo.r_data), ready))
        return heads

    def _load(self, o_payload: data.View, k: int, payload: data.View) -> list:
        """The statements that load input ``k``'s data token into the output register, its
        address at the input's offset. (Every bit is assigned in the clocked process: a
        combinational signal with constant bits becomes an ``always @*`` without inputs,
        which a four-state simulator never runs.)"""
        loads = [o_payload.tick.eq(0), o_payload.last.eq(0)]
        if is_map(self.out_shape):
            loads += [o_payload.addr.x.eq(payload.addr.x), o_payload.addr.y.eq(payload.addr.y),
                      o_payload.addr.c.eq(payload.addr.c + self.offsets[k])]
        else:
            loads.append(o_payload.addr.eq(payload.addr + self.offsets[k]))
        if self.value_bits:
            loads.append(o_payload.value.eq(payload.value if self.in_value_bits[k] else 1))
        return loads

    def elaborate(self, platform) -> Module:
        m = Module()
        n = len(self.in_shapes)
        out = self.spikes_out
        delayed_mask = sum(1 << k for k in range(n) if self.delayed[k])

        # Per input: has delivered its tick of the current step (a delayed one starts ticked:
        # the zeros of step 0); is dropping its source's final step.
        ticked = Signal(n, init=delayed_mask)
        draining = Signal(n)
        last_seen = Signal()  # a non-delayed input's tick of this step had `last`
        o_valid = Signal()
        o_payload = Signal(token_layout(self.out_shape, self.value_bits))
        prev = Signal(range(max(n, 2)))  # the input granted last: lowest priority next
        load = Signal()
        m.d.comb += [
            out.valid.eq(o_valid),
            out.payload.eq(o_payload),
            load.eq(~o_valid | out.ready),
        ]

        heads = self._heads(m)
        eligible = Signal(n)
        grant = Signal(n)
        for k, (valid, payload, ready) in enumerate(heads):
            with m.If(draining[k]):
                m.d.comb += ready.eq(1)
                with m.If(valid & payload.tick & payload.last):
                    m.d.sync += [draining[k].eq(0), ticked[k].eq(1)]
            # The payload is only looked at while valid: an empty buffer's output register
            # holds a stale token.
            with m.Elif(~ticked[k] & valid):
                with m.If(payload.tick):
                    m.d.comb += ready.eq(1)
                    m.d.sync += ticked[k].eq(1)
                    if not self.delayed[k]:
                        with m.If(payload.last):
                            m.d.sync += last_seen.eq(1)
                with m.Else():
                    m.d.comb += [eligible[k].eq(1), ready.eq(load & grant[k])]

        # Round-robin: the first eligible input after the one granted last.
        with m.Switch(prev):
            for p in range(n):
                with m.Case(p):
                    order = [(p + 1 + j) % n for j in range(n)]
                    with m.If(eligible[order[0]]):
                        m.d.comb += grant[order[0]].eq(1)
                    for k in order[1:]:
                        with m.Elif(eligible[k]):
                            m.d.comb += grant[k].eq(1)

        with m.If(load):
            m.d.sync += o_valid.eq(0)
            for k, (_, payload, _) in enumerate(heads):
                with m.If(grant[k]):
                    m.d.sync += [o_valid.eq(1), prev.eq(k), *self._load(o_payload, k, payload)]
            # Every input has closed the step (none is eligible then): one tick closes it.
            with m.If(ticked == (1 << n) - 1):
                # The next step's ticks are all to come: a delayed input's is its source's
                # tick of this step. After the final step, the delayed inputs drop theirs.
                m.d.sync += [o_valid.eq(1), o_payload.eq(0), o_payload.tick.eq(1), o_payload.last.eq(last_seen),
                             ticked.eq(0), last_seen.eq(0)]
                with m.If(last_seen):
                    m.d.sync += draining.eq(delayed_mask)
        return m
