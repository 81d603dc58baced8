"""Pooling and flattening of spike maps as address remaps (docs/hardware.md, "Pooling and
flatten units").

None of these units holds a neuron: they rewrite the addresses of events on their way to the
next layer (docs/semantics.md, "Convolution, pooling, flatten").

* :class:`SumPoolRemap`: a spike at ``(c, y, x)`` becomes one event at every window containing
  it, so the next layer sees the window's count as that many events.
* :class:`MaxPoolDedup`: the same remap, then only the first event of each window in a
  timestep passes (an OR).
* :class:`FlattenRemap`: ``(c, y, x)`` to the C-order index ``c*H*W + y*W + x``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..widths import address_bits
from .conv import _lookup, axis_taps
from .memories import MemorySpec
from .tokens import StreamShape, is_map, shape_size, token_signature

if TYPE_CHECKING:  # the layer kinds build these engines; the engines only read the node's fields
    from ..kinds.pool import MaxPool2d, SumPool2d

__all__ = ["FlattenRemap", "MaxPoolDedup", "SumPoolRemap", "flatten_is_identity"]


def _check_pool(layer: SumPool2d) -> None:
    c, h, w = layer.input_shape
    _, h_out, w_out = layer.output_shape
    if min(layer.kernel) < 1 or min(layer.stride) < 1 or min(layer.padding) < 0 \
            or h_out < 1 or w_out < 1:
        raise ValueError(f"pool {layer.name!r}: kernel {layer.kernel}, stride {layer.stride}, "
                         f"padding {layer.padding} on a {h} x {w} map give no output")


class SumPoolRemap(wiring.Component):
    """A spike at ``(c, y, x)`` becomes an event at each window ``(c, oy, ox)`` containing it.

    Any kernel, stride and padding: the windows containing an input row ``y`` are found in a
    table per row (and per column), the same tables as the convolution engine's taps. With
    ``stride >= kernel`` (no overlap, e.g. 2 x 2 stride 2) a spike lies in at most one window
    and the unit is a single register stage passing one token per cycle (a spike in no window,
    past the last full window, is dropped). With overlapping windows a spike in ``n`` windows
    takes ``n`` cycles, the largest window first (``oy`` then ``ox`` descending).

    Members
    -------
    spikes_in : ``In(token_signature(input_shape))``
    spikes_out : ``Out(token_signature(output_shape))``
    """

    #: Cycles from the edge accepting a token to the edge at which its first event can be taken.
    latency = 1

    def __init__(self, layer: SumPool2d):
        _check_pool(layer)
        self.layer = layer
        _, h, w = layer.input_shape
        _, h_out, w_out = layer.output_shape
        self.y_windows = axis_taps(h, layer.kernel[0], layer.stride[0], layer.padding[0], h_out)
        self.x_windows = axis_taps(w, layer.kernel[1], layer.stride[1], layer.padding[1], w_out)
        #: Most windows one spike lies in.
        self.max_windows = max(n for _, n, _ in self.y_windows) * max(n for _, n, _ in self.x_windows)
        super().__init__({
            "spikes_in": In(token_signature(layer.input_shape)),
            "spikes_out": Out(token_signature(layer.output_shape)),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        layer = self.layer
        _, h_out, w_out = layer.output_shape
        max_ny = max(max(n for _, n, _ in self.y_windows), 1)
        max_nx = max(max(n for _, n, _ in self.x_windows), 1)

        token = self.spikes_in.payload
        ny, oy = _lookup(m, "ytab", token.addr.y, [(n, o) for _, n, o in self.y_windows])
        nx, ox = _lookup(m, "xtab", token.addr.x, [(n, o) for _, n, o in self.x_windows])

        valid = Signal()
        tick = Signal()
        last = Signal()
        c = Signal(range(layer.input_shape[0]))
        y = Signal(range(h_out))
        x = Signal(range(w_out))
        x_first = Signal(range(w_out))  # the column each row of windows starts from
        i = Signal(range(max_ny))  # window row within this spike's windows
        j = Signal(range(max_nx))
        i_last = Signal(range(max_ny))
        j_last = Signal(range(max_nx))
        done = tick | ((i == i_last) & (j == j_last))  # the held token's last event

        out = self.spikes_out
        m.d.comb += [
            out.valid.eq(valid),
            out.payload.addr.c.eq(c),
            out.payload.addr.y.eq(Mux(tick, 0, y)),
            out.payload.addr.x.eq(Mux(tick, 0, x)),
            out.payload.tick.eq(tick),
            out.payload.last.eq(tick & last),
            self.spikes_in.ready.eq(~valid | (out.ready & done)),
        ]
        with m.If(out.valid & out.ready):
            with m.If(done):
                m.d.sync += valid.eq(0)
            with m.Elif(j != j_last):
                m.d.sync += [j.eq(j + 1), x.eq(x - 1)]
            with m.Else():
                m.d.sync += [j.eq(0), i.eq(i + 1), x.eq(x_first), y.eq(y - 1)]
        with m.If(self.spikes_in.valid & self.spikes_in.ready):
            m.d.sync += [
                valid.eq(token.tick | ((ny != 0) & (nx != 0))),  # no window: dropped
                tick.eq(token.tick),
                last.eq(token.last),
                c.eq(Mux(token.tick, 0, token.addr.c)),
                y.eq(oy), x.eq(ox), x_first.eq(ox),
                i.eq(0), j.eq(0), i_last.eq(ny - 1), j_last.eq(nx - 1),
            ]
        return m


class _WindowDedup(wiring.Component):
    """Passes the first event of each address of a map in a timestep and drops the others.

    Two bitmaps (``C * H`` rows of ``W`` bits, a bit per address) take turns: timestep ``t``
    tests and sets bits in bank ``t mod 2`` while the other bank, used by timestep ``t - 1``,
    is cleared in the background one row per cycle. So nothing is cleared on the critical
    path unless a timestep lasts fewer cycles than the map has rows: then its tick waits
    until the clear is done. After reset both banks are cleared (``C * H`` cycles, input not
    ready).

    One register stage: the bitmap row is read as the token is taken; the next cycle the
    token passes (first event or tick) or is dropped (a repeat, in that cycle). A repeat
    right behind its first event sees the first one's bit through the transparent read port.
    """

    def __init__(self, shape: tuple[int, int, int]):
        self._shape = tuple(int(d) for d in shape)
        super().__init__({
            "spikes_in": In(token_signature(self._shape)),
            "spikes_out": Out(token_signature(self._shape)),
        })

    @staticmethod
    def memories_for(layer_name: str, shape: tuple[int, int, int]) -> list[MemorySpec]:
        """The two bitmaps :meth:`elaborate` builds."""
        n_c, h, w = (int(d) for d in shape)
        return [MemorySpec(layer_name, f"window bitmap {b}", n_c * h, w, initialised=False, read_write=True)
                for b in range(2)]

    def elaborate(self, platform) -> Module:
        m = Module()
        n_c, h, w = self._shape
        rows = n_c * h

        banks = []
        for b in range(2):
            mem = Memory(shape=unsigned(w), depth=rows, init=[])
            m.submodules[f"bank{b}"] = mem
            wr = mem.write_port()
            rd = mem.read_port(transparent_for=(wr,))
            banks.append((rd, wr))

        token = self.spikes_in.payload
        accepted = self.spikes_in.valid & self.spikes_in.ready
        for rd, _ in banks:
            m.d.comb += [rd.addr.eq(token.addr.c * h + token.addr.y), rd.en.eq(accepted)]

        parity = Signal()  # the bank of the timestep whose tokens are in the stage
        resetting = Signal(init=1)  # clearing both banks after reset
        clearing = Signal(init=1)
        clear_bank = Signal()
        clear_row = Signal(range(rows))

        valid = Signal()
        held = Signal.like(token)
        row = Signal(range(rows))
        bits = Mux(parity, banks[1][0].data, banks[0][0].data)
        seen = bits.bit_select(held.addr.x, 1)

        out = self.spikes_out
        # A tick waits for the other bank's clear: the next timestep is going to use it.
        m.d.comb += [
            out.valid.eq(valid & Mux(held.tick, ~clearing, ~seen)),
            out.payload.eq(held),
        ]
        sent = out.valid & out.ready
        leaving = ~valid | sent | (valid & ~held.tick & seen)
        m.d.comb += self.spikes_in.ready.eq(leaving & ~resetting)
        with m.If(leaving):
            m.d.sync += valid.eq(0)
        with m.If(accepted):
            m.d.sync += [valid.eq(1), held.eq(token), row.eq(token.addr.c * h + token.addr.y)]

        with m.If(sent & held.tick):
            # Timestep over: its bank is cleared for the timestep after next.
            m.d.sync += [parity.eq(~parity), clearing.eq(1), clear_bank.eq(parity),
                         clear_row.eq(0)]
        with m.Elif(clearing):
            with m.If(clear_row == rows - 1):
                m.d.sync += [clearing.eq(0), resetting.eq(0)]
            with m.Else():
                m.d.sync += clear_row.eq(clear_row + 1)

        for b, (rd, wr) in enumerate(banks):
            cleared_here = clearing & (resetting | (clear_bank == b))
            with m.If(cleared_here):
                m.d.comb += [wr.addr.eq(clear_row), wr.data.eq(0), wr.en.eq(1)]
            with m.Else():
                m.d.comb += [
                    wr.addr.eq(row),
                    wr.data.eq(rd.data | (1 << held.addr.x)),
                    wr.en.eq(sent & ~held.tick & (parity == b)),
                ]
        return m


class MaxPoolDedup(wiring.Component):
    """Max pooling of spikes: the windows of each spike (:class:`SumPoolRemap`), then only the
    first event of each window in a timestep passes (an OR).

    Two register stages (remap, then the bitmap test), one token per cycle. The bitmaps cost
    ``2 * C * H_out * W_out`` bits and are cleared in the background (see ``_WindowDedup``):
    a tick waits only if the previous timestep ended fewer than ``C * H_out`` cycles ago.

    Members
    -------
    spikes_in : ``In(token_signature(input_shape))``
    spikes_out : ``Out(token_signature(output_shape))``
    """

    latency = 2

    def __init__(self, layer: MaxPool2d):
        _check_pool(layer)
        self.layer = layer
        self.clear_cycles = layer.output_shape[0] * layer.output_shape[1]
        super().__init__({
            "spikes_in": In(token_signature(layer.input_shape)),
            "spikes_out": Out(token_signature(layer.output_shape)),
        })

    @staticmethod
    def memories_for(layer: MaxPool2d) -> list[MemorySpec]:
        """The memories :meth:`elaborate` builds: :class:`_WindowDedup`'s bitmaps."""
        return _WindowDedup.memories_for(layer.name, layer.output_shape)

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.remap = remap = SumPoolRemap(self.layer)
        m.submodules.dedup = dedup = _WindowDedup(self.layer.output_shape)
        wiring.connect(m, wiring.flipped(self.spikes_in), remap.spikes_in)
        wiring.connect(m, remap.spikes_out, dedup.spikes_in)
        wiring.connect(m, dedup.spikes_out, wiring.flipped(self.spikes_out))
        return m


def flatten_is_identity(shape: StreamShape) -> bool:
    """Whether the packed ``{x, y, c}`` address of a ``(C, H, W)`` map already is its C-order
    index: ``H`` and ``W`` powers of two, at least 2 (a size-1 field still takes one bit)."""
    _, h, w = (int(d) for d in shape)
    return w == 1 << address_bits(w) and h == 1 << address_bits(h)


class FlattenRemap(wiring.Component):
    """``(c, y, x)`` map addresses to C-order indices ``c*H*W + y*W + x``.

    Where ``H`` and ``W`` are powers of two (at least 2) the packed ``{x, y, c}`` address
    already is the index: the unit is wires (``latency = 0``). Otherwise one register stage
    with two constant multiplies, one token per cycle (``latency = 1``). A ``value`` field
    (direct input) passes through.

    Members
    -------
    spikes_in : ``In(token_signature(shape, value_bits))``
    spikes_out : ``Out(token_signature(C*H*W, value_bits))``
    """

    def __init__(self, shape: StreamShape, value_bits: int = 0):
        if not is_map(shape):
            raise ValueError(f"FlattenRemap takes a (C, H, W) map, not {shape!r}")
        self._shape = tuple(int(d) for d in shape)
        self._value_bits = value_bits
        self.identity = flatten_is_identity(self._shape)
        self.latency = 0 if self.identity else 1
        super().__init__({
            "spikes_in": In(token_signature(self._shape, value_bits)),
            "spikes_out": Out(token_signature(shape_size(self._shape), value_bits)),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        _, h, w = self._shape
        src, out = self.spikes_in, self.spikes_out
        a = src.payload.addr
        flat = a.as_value() if self.identity else a.c * (h * w) + a.y * w + a.x

        if self.identity:
            m.d.comb += [
                out.valid.eq(src.valid),
                src.ready.eq(out.ready),
                out.payload.addr.eq(flat),
                out.payload.tick.eq(src.payload.tick),
                out.payload.last.eq(src.payload.last),
            ]
            if self._value_bits:
                m.d.comb += out.payload.value.eq(src.payload.value)
            return m

        m.d.comb += src.ready.eq(~out.valid | out.ready)
        with m.If(out.valid & out.ready):
            m.d.sync += out.valid.eq(0)
        with m.If(src.valid & src.ready):
            m.d.sync += [
                out.valid.eq(1),
                out.payload.addr.eq(flat),
                out.payload.tick.eq(src.payload.tick),
                out.payload.last.eq(src.payload.last),
            ]
            if self._value_bits:
                m.d.sync += out.payload.value.eq(src.payload.value)
        return m
