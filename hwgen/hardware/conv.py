"""The event-driven spiking convolution engine (docs/hardware.md, "Convolution engine").

One engine realises one ``QuantConv2d`` exactly as docs/semantics.md states it, by scattering
each input event into the membranes it reaches:

* an input event ``(ci, y, x)`` adds, for every kernel tap ``(ky, kx)`` whose output position
  ``oy = (y + p_y - ky) / s_y`` is exact and inside the map (and the same for ``x``), the
  weights ``W[c, ci, ky, kx]`` of the ``C_out / groups`` output channels connected to ``ci``
  into the membrane words at ``(oy, ox)``, ``P`` channels (one *channel group*) per cycle;
* a tick runs the fire pass over every membrane word, as the dense engine does, and queues
  the spikes of each word for the serializer.

Taps off the stride grid or outside the map cost nothing: small ROM tables indexed by ``y``
and by ``x`` hold, per input row and column, the first valid tap, the number of valid taps
and the first output coordinate, so the walker visits exactly the in-range taps. The valid
taps of a row form an arithmetic progression (``ky`` in steps of ``s_y``, ``oy`` in steps
of -1), so stepping from one tap to the next adds constants and no division or
multiplication is left at run time.

The datapath is the dense engine's (``lanes.py``, ``spike_queue.py``): stage 0 presents a
weight and a membrane address to synchronous read ports, stage 1 adds and writes back, and the
membrane's transparent read port resolves a read of the word written in the same cycle. The
tables are looked up as a token arrives; a small event buffer in front of stage 0 holds the
next events (with their first weight and membrane addresses) while the walker is busy, and
events that reach no tap are dropped at the port without ever reaching the walker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from amaranth.hdl import Module, Mux, Shape, Signal, Value
from amaranth.lib import data, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from .dense import check_accumulator
from .memories import MemorySpec, load_signature
from .lanes import (lane_memories, lane_memories_list, lane_table, lanes_and_groups, neuron_tables_memories,
                    neuron_values, update_lanes)
from .spike_queue import SpikeQueue, queue_word
from .tokens import address_layout, token_signature

if TYPE_CHECKING:  # the layer kinds build these engines; the engines only read the node's fields
    from ..kinds.conv import QuantConv2d

__all__ = ["ConvLIFEngine", "axis_taps", "check_conv", "conv_tap_counts", "conv_weight_words", "conv_words_read"]


def axis_taps(size: int, kernel: int, stride: int, padding: int, out_size: int
              ) -> list[tuple[int, int, int]]:
    """Per input coordinate ``0 .. size-1`` along one axis: ``(first_tap, taps, first_out)``.

    The valid taps of input coordinate ``i`` are ``first_tap + n * stride`` for
    ``n < taps``, reaching output coordinates ``first_out - n``; ``taps`` may be 0.
    """
    table = []
    for i in range(size):
        valid = [k for k in range(kernel)
                 if (i + padding - k) % stride == 0 and 0 <= (i + padding - k) // stride < out_size]
        if not valid:
            table.append((0, 0, 0))
            continue
        first = valid[0]
        assert valid == list(range(first, first + stride * len(valid), stride))
        table.append((first, len(valid), (i + padding - first) // stride))
    return table


def conv_tap_counts(layer: QuantConv2d) -> np.ndarray:
    """``[H, W]``: how many in-range kernel taps an input event at ``(y, x)`` reaches."""
    _, h, w = layer.input_shape
    _, h_out, w_out = layer.output_shape
    (kh, kw), (sy, sx), (py, px) = layer.kernel, layer.stride, layer.padding
    ny = [n for _, n, _ in axis_taps(h, kh, sy, py, h_out)]
    nx = [n for _, n, _ in axis_taps(w, kw, sx, px, w_out)]
    return np.outer(ny, nx)


def check_conv(layer: QuantConv2d, input_max: int) -> None:
    """Refuse a layer the engine cannot realise exactly, naming it (``ValueError``)."""
    c_in, _, _ = (int(d) for d in layer.input_shape)
    c_out, h_out, w_out = (int(d) for d in layer.output_shape)
    kh, kw = layer.kernel
    n_groups = int(layer.groups)
    if n_groups < 1 or c_in % n_groups or c_out % n_groups:
        raise ValueError(f"layer {layer.name!r}: groups={n_groups} must divide C_in={c_in} "
                         f"and C_out={c_out}")
    if tuple(layer.weight.shape) != (c_out, c_in // n_groups, kh, kw):
        raise ValueError(f"layer {layer.name!r}: weight shape {tuple(layer.weight.shape)} "
                         f"does not match input channels {c_in} and groups {n_groups}")
    if min(layer.stride) < 1 or min(layer.padding) < 0 or h_out < 1 or w_out < 1:
        raise ValueError(f"layer {layer.name!r}: stride {layer.stride}, padding "
                         f"{layer.padding} give an output map of {h_out} x {w_out}")
    check_accumulator(layer, layer.weight.reshape(c_out, -1), input_max)


def _lookup(m: Module, name: str, index: Value, rows: list[tuple[int, ...]]) -> list[Signal]:
    """A small combinational ROM: ``rows[index]``, one signal per column, 0 past the end.

    The tables are as long as one side of the input map, so they become a few LUTs.
    """
    columns = list(zip(*rows))
    outs = [Signal(range(max(col) + 1), name=f"{name}_{n}") for n, col in enumerate(columns)]
    with m.Switch(index):
        for i, row in enumerate(rows):
            if any(row):
                with m.Case(i):
                    m.d.comb += [out.eq(v) for out, v in zip(outs, row)]
    return outs


def conv_weight_words(layer: QuantConv2d, parallel: int) -> np.ndarray:
    """The weight memory of ``layer`` at ``parallel`` lanes, ``[C_in * kh * kw * G, P]``
    (``ConvLIFEngine``'s class docs give the word order)."""
    c_in = layer.input_shape[0]
    kh, kw = layer.kernel
    cog = layer.output_shape[0] // layer.groups
    P, G = lanes_and_groups(cog, parallel)
    cig = c_in // layer.groups
    words = np.zeros((c_in, kh, kw, G * P), dtype=np.int64)
    for ci in range(c_in):
        cg, local = divmod(ci, cig)
        block = layer.weight[cg * cog:(cg + 1) * cog, local]  # [C_out_g, kh, kw]
        words[ci, :, :, :cog] = np.transpose(block, (1, 2, 0))
    return words.reshape(c_in * kh * kw * G, P)


def _tap_reach(size: int, kernel: int, stride: int, padding: int, out_size: int) -> np.ndarray:
    """``[kernel, size]`` bool: tap ``k`` is in range for input coordinate ``i`` (``axis_taps``)."""
    reach = np.zeros((kernel, size), dtype=bool)
    for i, (first, taps, _) in enumerate(axis_taps(size, kernel, stride, padding, out_size)):
        reach[first:first + stride * taps:stride, i] = True
    return reach


def conv_words_read(layer: QuantConv2d, parallel: int, active: np.ndarray) -> np.ndarray:
    """Which words of :func:`conv_weight_words` the engine reads, ``[C_in * kh * kw * G]``
    bool, when the input addresses ``active`` (``[C_in, H, W]`` bool) carry at least one event:
    an event at ``(ci, y, x)`` walks the ``G`` words of each in-range tap ``(ky, kx)``, so a
    tap's words are read once any active position of channel ``ci`` reaches it."""
    c_in, h, w = layer.input_shape
    _, h_out, w_out = layer.output_shape
    (kh, kw), (sy, sx), (py, px) = layer.kernel, layer.stride, layer.padding
    _, G = lanes_and_groups(layer.output_shape[0] // layer.groups, parallel)
    ry = _tap_reach(h, kh, sy, py, h_out).astype(np.int64)  # [kh, H]
    rx = _tap_reach(w, kw, sx, px, w_out).astype(np.int64)  # [kw, W]
    active = np.asarray(active, dtype=np.int64).reshape(c_in, h, w)
    taps = np.einsum("yi,cij,xj->cyx", ry, active, rx) > 0  # [C_in, kh, kw]
    return np.repeat(taps.reshape(-1), G)


def event_layout(layer: QuantConv2d, parallel: int, input_bits: int) -> data.StructLayout:
    """An event as ``ConvLIFEngine``'s decode stage buffers it for the walker."""
    c_in, h, w = (int(d) for d in layer.input_shape)
    _, h_out, w_out = (int(d) for d in layer.output_shape)
    kh, kw = layer.kernel
    _, groups = lanes_and_groups(layer.output_shape[0] // layer.groups, parallel)
    y_count = [n for _, n, _ in axis_taps(h, kh, layer.stride[0], layer.padding[0], h_out)]
    x_count = [n for _, n, _ in axis_taps(w, kw, layer.stride[1], layer.padding[1], w_out)]
    return data.StructLayout({
        "tick": 1,
        "last": 1,
        "value": input_bits,
        "w": range(c_in * kh * kw * groups),  # the first tap's first weight word
        "m": range(h_out * w_out * layer.groups * groups),  # the first tap's first membrane word
        "ny_last": range(max(max(y_count), 1)),  # taps per row and rows of taps, minus one
        "nx_last": range(max(max(x_count), 1)),
    })


class ConvLIFEngine(wiring.Component):
    """One spiking ``Conv2d`` layer, ``parallel`` output channels per cycle.

    ``P`` lanes (``lanes``, capped at ``C_out / groups``, the channels one input channel
    reaches: a depthwise layer has ``P = 1``) serve one *channel group*; ``groups`` (``G``) is
    the number of channel groups per convolution group, ``ceil((C_out / groups) / P)``.

    Members
    -------
    spikes_in : ``In(token_signature(input_shape[, input_bits]))``, map tokens ``{x, y, c}``
    spikes_out : ``Out(token_signature(output_shape))``, map tokens

    Memories (``GG = layer.groups * G`` channel groups per position):

    * weights, ROM: ``C_in * kh * kw * G`` words of ``P`` weights; word
      ``((ci * kh + ky) * kw + kx) * G + g`` holds ``W[cg*C_out_g + g*P + l, ci mod C_in_g,
      ky, kx]`` in lane ``l`` (``cg`` the convolution group of ``ci``, zero past ``C_out_g``);
    * membrane, RAM: ``H_out * W_out * GG`` words (``words``) of ``P`` accumulators of
      ``acc_bits``, word ``(oy * W_out + ox) * GG + cg * G + g``; holds ``u + b`` (for CuBa
      neurons it is the current memory, ``i + b``, next to a membrane memory of ``u``; with
      reset "zero_step" a memory of hold bits: ``lanes.NeuronMemories``, same addressing);
    * thresholds and biases per channel group, ROMs of ``GG`` words unless constant per lane
      (so are reset values and membrane biases, ``lanes.neuron_tables``);
    * the tap tables (``H`` + ``W`` + ``C_in`` rows, combinational);
    * the event buffer (``event_buffer`` entries, first-word fall-through) and the spike
      queue (``queue_depth + 2`` entries of one word's spike mask and position).

    Cost: an input event with ``n`` in-range taps occupies the walker for ``n * G`` cycles; an
    event with none is dropped at the port (it costs its transfer cycle only, hidden behind
    the walker's work while the event buffer has room); a tick occupies the walker for
    ``words`` cycles (the fire pass); ``hwgen.cost`` models the whole chain from this. The walker takes
    the next event from the buffer in the cycle it finishes the previous one, so there is no
    bubble; a token taken at the port reaches the walker ``decode_latency`` cycles later at the
    earliest. Output spikes go out in raster order of position ``(oy, ox)``, channels ascending
    within a position, then the tick. The first token of a fire pass appears
    ``pipeline_latency`` cycles after the edge at which the walker took the tick. The spike
    queue lets the fire pass run ahead of the serializer (a word may hold ``P`` spikes, sent
    one per cycle); when it is full the pass waits (downstream backpressure), never losing
    or repeating a spike. After reset the engine spends ``words`` cycles writing the biases
    back into the membrane, taking no input meanwhile.

    Direct input (``input_bits > 1``, first layer only): tokens carry ``value`` and the engine
    adds ``W·value`` with ``P`` multipliers of ``multiplier_bits = (weight_bits,
    input_bits)`` (signed by unsigned); ``None`` for spikes.
    """

    #: Cycles from the edge at which the walker takes a tick to the first token of its fire
    #: pass (spikes in the first word, ``spikes_out.ready`` high): stage 0, stage 1, the two
    #: cycles of the buffered spike queue and the serializer register, as in the dense engine.
    #: Fire-pass words the spike queue holds (plus two) before the fire pass waits.
    default_queue_depth = 16
    #: Events the decode stage holds for the walker (a first-word fall-through FIFO).
    default_event_buffer = 4
    pipeline_latency = 5
    #: Cycles from the edge at which the port takes an event to the earliest edge at which the
    #: walker takes it out of the (first-word fall-through) event buffer.
    decode_latency = 1

    def __init__(self, layer: QuantConv2d, parallel: int, input_bits: int = 1,
                 input_max: int | None = None, queue_depth: int | None = None, event_buffer: int | None = None,
                 weight_target: str | None = None):
        c_in, h, w = (int(d) for d in layer.input_shape)
        c_out, h_out, w_out = (int(d) for d in layer.output_shape)
        kh, kw = layer.kernel
        if input_bits < 1:
            raise ValueError(f"input_bits must be at least 1, not {input_bits}")
        if input_max is None:
            input_max = max(getattr(layer, "input_max", 1), (1 << input_bits) - 1)
        check_conv(layer, input_max)

        self.layer = layer
        self.input_bits = input_bits
        self.multiplier_bits = (layer.weight_bits, input_bits) if input_bits > 1 else None
        self.channels_per_group = c_out // layer.groups  # C_out_g: reached by one input channel
        self.lanes, self.groups = lanes_and_groups(self.channels_per_group, parallel)
        self.words_per_position = layer.groups * self.groups  # GG
        self.words = h_out * w_out * self.words_per_position
        self.queue_depth = max(1, self.default_queue_depth if queue_depth is None else queue_depth)
        self.event_buffer = max(1, self.default_event_buffer if event_buffer is None else event_buffer)
        self.y_taps = axis_taps(h, kh, layer.stride[0], layer.padding[0], h_out)
        self.x_taps = axis_taps(w, kw, layer.stride[1], layer.padding[1], w_out)
        # Loaded weights (a `weights` member) as in DenseLIFEngine.
        self.weight_target = weight_target
        members = {
            "spikes_in": In(token_signature(layer.input_shape,
                                            input_bits if input_bits > 1 else 0)),
            "spikes_out": Out(token_signature(layer.output_shape)),
        }
        if weight_target is not None:
            members["weights"] = In(load_signature(c_in * kh * kw * self.groups,
                                                   self.lanes * layer.weight_bits))
        super().__init__(members)

    # ------------------------------------------------------------------------- tables

    @classmethod
    def memories_for(cls, layer: QuantConv2d, parallel: int, input_bits: int = 1,
                     weight_target: str | None = None, queue_depth: int | None = None,
                     event_buffer: int | None = None) -> list[MemorySpec]:
        """The memories :meth:`elaborate` builds with these arguments, for the fit check and the
        reports (without building anything)."""
        P, G = lanes_and_groups(layer.output_shape[0] // layer.groups, parallel)
        _, h_out, w_out = layer.output_shape
        kh, kw = layer.kernel
        words = h_out * w_out * layer.groups * G
        queue = max(1, cls.default_queue_depth if queue_depth is None else queue_depth)
        return [*lane_memories_list(layer, P, layer.input_shape[0] * kh * kw * G, words, weight_target),
                *neuron_tables_memories(layer, P, G, layer.groups),
                MemorySpec(layer.name, "event buffer", max(1, cls.default_event_buffer if event_buffer is None else event_buffer),
                           Shape.cast(event_layout(layer, parallel, input_bits)).width,
                           initialised=False, read_write=True, logic_only=True),
                *SpikeQueue.memories_for(layer.name, layer.output_shape, P, queue)]

    def weight_words(self) -> np.ndarray:
        """The weight memory's contents: :func:`conv_weight_words`."""
        return conv_weight_words(self.layer, self.lanes)

    # ------------------------------------------------------------------------- hardware

    def elaborate(self, platform) -> Module:
        m = Module()
        layer = self.layer
        P, G, GG = self.lanes, self.groups, self.words_per_position
        c_in = layer.input_shape[0]
        _, h_out, w_out = layer.output_shape
        kh, kw = layer.kernel
        sy, sx = layer.stride
        cig, cog = c_in // layer.groups, self.channels_per_group
        words = self.words
        n_weights = c_in * kh * kw * G
        direct = self.input_bits > 1

        # Per-channel values as [GG, P] tables, one block of channel groups per
        # convolution group.
        bias = lane_table(layer.bias, P, G, blocks=layer.groups)
        w_rd, state = lane_memories(m, layer, self.weight_words(), np.tile(bias, (h_out * w_out, 1)),
                                    self.weight_target)
        if self.weight_target is not None:
            wiring.connect(m, wiring.flipped(self.weights), w_rd.load)

        # Address steps of the walker (see the module docstring).
        tap_w = sx * G - (G - 1)  # weight word: from the last group of a tap to the next tap
        tap_m = GG + (G - 1)  # membrane word: one position to the left, back to group 0
        row_w = sy * kw * G  # weight word: from a row's first tap to the next row's
        row_m = w_out * GG  # membrane word: one output row up

        # ---- decode: look up the event's taps as it arrives, buffer it for the walker

        token = self.spikes_in.payload
        addr = token.addr
        y_first, y_count, y_out = (list(col) for col in zip(*self.y_taps))
        x_first, x_count, x_out = (list(col) for col in zip(*self.x_taps))
        ny, y_w, y_m = _lookup(m, "ytab", addr.y, [
            (n, f * kw * G, o * row_m) for f, n, o in zip(y_first, y_count, y_out)])
        nx, x_w, x_m = _lookup(m, "xtab", addr.x, [
            (n, f * G, o * GG) for f, n, o in zip(x_first, x_count, x_out)])
        c_w, c_m = _lookup(m, "ctab", addr.c, [
            (ci * kh * kw * G, (ci // cig) * G) for ci in range(c_in)])
        has_taps = (ny != 0) & (nx != 0)

        max_ny, max_nx = max(max(y_count), 1), max(max(x_count), 1)
        layout = event_layout(layer, P, self.input_bits)
        # Events wait here for the walker. The port takes a token whenever there is room, so
        # while the walker is busy (or in a fire pass) events that reach no tap are dropped
        # at one per cycle without costing the walker anything.
        m.submodules.events = events = SyncFIFO(width=Shape.cast(layout).width,
                                                depth=self.event_buffer)
        event = Signal(layout)
        # Nothing is taken during the reset pass (as the dense engine), so that `cycles` of
        # the first inference after reset does not include it.
        resetting = Signal(init=1)
        m.d.comb += [
            event.tick.eq(token.tick),
            event.last.eq(token.last),
            event.w.eq(c_w + y_w + x_w),
            event.m.eq(c_m + y_m + x_m),
            event.ny_last.eq(ny - 1),
            event.nx_last.eq(nx - 1),
            events.w_data.eq(event.as_value()),
            events.w_en.eq(self.spikes_in.valid & ~resetting & (token.tick | has_taps)),
            self.spikes_in.ready.eq(events.w_rdy & ~resetting),
        ]
        if direct:
            m.d.comb += event.value.eq(token.value)
        d = Signal(layout)
        m.d.comb += d.eq(events.r_data)
        walker_free = Signal()
        take = events.r_rdy & walker_free
        m.d.comb += events.r_en.eq(take)
        d_tick, d_last, d_value, d_w, d_m = d.tick, d.last, d.value, d.w, d.m
        d_ny_last, d_nx_last = d.ny_last, d.nx_last

        # ---- stage 0: walk the taps of an event (or the words of a fire pass)

        # The engine leaves reset in a pass that writes the biases back, exactly the state
        # after a `last` tick, without sending anything.
        busy = Signal(init=1)
        fire = Signal(init=1)
        last = Signal(init=1)
        emit = Signal()
        value = Signal(self.input_bits)
        tap_y = Signal(range(max_ny))  # index of the valid tap within the row's taps
        tap_x = Signal(range(max_nx))
        ny_last = Signal(range(max_ny))
        nx_last = Signal(range(max_nx))
        group = Signal(range(G))  # channel group within the convolution group
        w_addr = Signal(range(n_weights))
        m_addr = Signal(range(words))
        w_row = Signal(range(n_weights))  # the first word of the next row of taps
        m_row = Signal(range(words))
        # Fire pass: what stage 1 needs to name the spikes of word m_addr.
        k = Signal(range(GG))  # channel group within the position (the lane tables' row)
        f_group = Signal(range(G))
        f_chan = Signal(range(layer.output_shape[0]))  # channel of lane 0
        f_x = Signal(range(w_out))
        f_y = Signal(range(h_out))

        stall = Signal()  # stage 1 holds a fire-pass result that the spike queue cannot take
        advance = busy & ~stall
        at_end = Signal()
        m.d.comb += [
            at_end.eq(Mux(fire, m_addr == words - 1,
                          (group == G - 1) & (tap_x == nx_last) & (tap_y == ny_last))),
            walker_free.eq(~busy | (advance & at_end)),
            *state.read(m_addr, ~stall),
            w_rd.addr.eq(w_addr),
            w_rd.en.eq(~stall),
        ]
        tables = neuron_values(m, layer, P, G, k, ~stall, blocks=layer.groups)

        with m.If(advance):
            with m.If(at_end):
                m.d.sync += [busy.eq(0), resetting.eq(0)]
            with m.Elif(fire):
                m.d.sync += m_addr.eq(m_addr + 1)
                with m.If(k == GG - 1):  # next position
                    m.d.sync += [k.eq(0), f_group.eq(0), f_chan.eq(0)]
                    with m.If(f_x == w_out - 1):
                        m.d.sync += [f_x.eq(0), f_y.eq(f_y + 1)]
                    with m.Else():
                        m.d.sync += f_x.eq(f_x + 1)
                with m.Else():
                    m.d.sync += k.eq(k + 1)
                    with m.If(f_group == G - 1):  # next convolution group
                        m.d.sync += [f_group.eq(0), f_chan.eq(f_chan + cog - (G - 1) * P)]
                    with m.Else():
                        m.d.sync += [f_group.eq(f_group + 1), f_chan.eq(f_chan + P)]
            with m.Elif(group != G - 1):  # next channel group of the same tap
                m.d.sync += [group.eq(group + 1), w_addr.eq(w_addr + 1), m_addr.eq(m_addr + 1)]
            with m.Elif(tap_x != nx_last):  # next tap of the row: kx + s_x, ox - 1
                m.d.sync += [group.eq(0), tap_x.eq(tap_x + 1),
                             w_addr.eq(w_addr + tap_w), m_addr.eq(m_addr - tap_m)]
            with m.Else():  # next row: ky + s_y, oy - 1
                m.d.sync += [group.eq(0), tap_x.eq(0), tap_y.eq(tap_y + 1),
                             w_addr.eq(w_row), m_addr.eq(m_row),
                             w_row.eq(w_row + row_w), m_row.eq(m_row - row_m)]
        with m.If(take):
            m.d.sync += [
                busy.eq(1),
                fire.eq(d_tick),
                last.eq(d_tick & d_last),
                emit.eq(d_tick),
                value.eq(d_value),
                tap_y.eq(0), tap_x.eq(0), group.eq(0),
                ny_last.eq(d_ny_last), nx_last.eq(d_nx_last),
                w_addr.eq(d_w),
                m_addr.eq(Mux(d_tick, 0, d_m)),
                w_row.eq(d_w + row_w),
                m_row.eq(d_m - row_m),
                k.eq(0), f_group.eq(0), f_chan.eq(0), f_x.eq(0), f_y.eq(0),
            ]

        # ---- stage 1: the memory words are here; compute and write back

        out_addr = address_layout(layer.output_shape)
        s1_valid = Signal()
        s1_fire = Signal()
        s1_last = Signal()
        s1_emit = Signal()
        s1_end = Signal()
        s1_dead = Signal()  # the last channel group of a convolution group: dead lanes
        s1_addr = Signal(range(words))
        s1_value = Signal(self.input_bits)
        s1_base = Signal(out_addr)
        with m.If(~stall):
            m.d.sync += [
                s1_valid.eq(busy),
                s1_fire.eq(fire),
                s1_last.eq(last),
                s1_emit.eq(emit),
                s1_end.eq(at_end),
                s1_dead.eq(f_group == G - 1),
                s1_addr.eq(m_addr),
                s1_value.eq(value),
                s1_base.x.eq(f_x),
                s1_base.y.eq(f_y),
                s1_base.c.eq(f_chan),
            ]

        # Lanes at or past `full_lanes` have no channel in a convolution group's last
        # channel group (s1_dead).
        spikes = update_lanes(m, layer, state, w_rd, value=s1_value if direct else None,
                              tables=tables, fire=s1_fire, last=s1_last,
                              dead=s1_dead, full_lanes=cog - (G - 1) * P)
        state.write(m, s1_addr, s1_valid & ~stall, s1_fire)

        # ---- spike queue and serializer

        m.submodules.queue = queue = SpikeQueue(layer.output_shape, P, depth=self.queue_depth)
        m.d.comb += stall.eq(queue_word(m, queue, valid=s1_valid, emit=s1_emit, base=s1_base,
                                        spikes=spikes, end=s1_end, last=s1_last))
        wiring.connect(m, queue.tokens, wiring.flipped(self.spikes_out))

        return m

