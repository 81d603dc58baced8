"""A UART (8N1) for the board's USB serial: a receiver and a transmitter on byte streams.

Why hand-written: the maintained Amaranth UART, ``amaranth_stdio.serial``, is only published
on GitHub; its PyPI name (``amaranth-stdio``) holds a version-0 placeholder, so it cannot be
a pinned dependency of this package. The two components below are the minimum the host link
needs (8 data bits, no parity, one stop bit, a fixed divisor from the clock and baud rate)
and are tested on their own in tests/test_host_link.py (loopback, back-to-back bytes, a
baud rate 3 % off, framing errors).

Both sides count ``divisor = round(clk_freq_hz / baud)`` clock cycles per bit. The receiver
synchronises its pin (two flip-flops), waits half a bit after the falling edge of the start
bit, checks the start bit is still low, then samples each data bit in its middle and the
stop bit; a byte whose stop bit is low is dropped (``framing_error`` pulses) and the
receiver waits for the line to go high again (a break) before it looks for the next start
bit. Because it re-synchronises on every start bit, a transmitter up to about 4 % off the
nominal rate is still read correctly.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["UARTReceiver", "UARTTransmitter", "uart_divisor"]

MAX_BAUD_ERROR = 0.02  # the two ends of a link may each be off by this much and still agree
MIN_DIVISOR = 4  # the receiver samples in the middle of a bit: it needs a few cycles per bit


def uart_divisor(clk_freq_hz: float, baud: int) -> int:
    """Clock cycles per bit for ``baud`` at ``clk_freq_hz``.

    Raises ``ValueError`` when the rounded divisor is too small to sample a bit in its middle
    or makes the actual rate more than 2 % off ``baud``.
    """
    if baud <= 0 or clk_freq_hz <= 0:
        raise ValueError(f"clock ({clk_freq_hz} Hz) and baud rate ({baud}) must be positive")
    divisor = round(clk_freq_hz / baud)
    if divisor < MIN_DIVISOR:
        raise ValueError(f"a {clk_freq_hz / 1e6:g} MHz clock is too slow for {baud} baud: "
                         f"the UART needs at least {MIN_DIVISOR} cycles per bit")
    error = abs(clk_freq_hz / divisor - baud) / baud
    if error > MAX_BAUD_ERROR:
        raise ValueError(f"a {clk_freq_hz / 1e6:g} MHz clock cannot make {baud} baud within "
                         f"{MAX_BAUD_ERROR:.0%} (divisor {divisor} gives "
                         f"{clk_freq_hz / divisor:.0f} baud, {error:.1%} off)")
    return divisor


class UARTReceiver(wiring.Component):
    """8N1 receiver. ``rx`` is the pin (idle high, any clock domain: it is synchronised).

    Members
    -------
    rx : ``In(1)``
    bytes : ``Out(stream.Signature(8))``, one transfer per received byte. The byte waits in
        a one-entry register; if the next byte completes before it was taken, it is
        replaced and ``overrun`` pulses.
    framing_error : ``Out(1)``, pulses for a byte whose stop bit was low (it is dropped)
    overrun : ``Out(1)``
    """

    def __init__(self, divisor: int):
        if divisor < MIN_DIVISOR:
            raise ValueError(f"the UART needs at least {MIN_DIVISOR} cycles per bit, not {divisor}")
        self.divisor = divisor
        super().__init__({
            "rx": In(1, init=1),
            "bytes": Out(stream.Signature(8)),
            "framing_error": Out(1),
            "overrun": Out(1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        rx = Signal(init=1)
        m.submodules.sync_rx = FFSynchronizer(self.rx, rx, init=1)

        timer = Signal(range(self.divisor))
        bit = Signal(range(8))
        shift = Signal(8)

        with m.If(self.bytes.valid & self.bytes.ready):
            m.d.sync += self.bytes.valid.eq(0)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += timer.eq(self.divisor // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(rx):  # a glitch, not a start bit
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += [timer.eq(self.divisor - 1), bit.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [shift.eq(Cat(shift[1:], rx)), timer.eq(self.divisor - 1),
                                 bit.eq(bit + 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(rx):
                    m.d.sync += [self.bytes.payload.eq(shift), self.bytes.valid.eq(1)]
                    m.d.comb += self.overrun.eq(self.bytes.valid & ~self.bytes.ready)
                    m.next = "IDLE"
                with m.Else():
                    m.d.comb += self.framing_error.eq(1)
                    m.next = "BREAK"
            with m.State("BREAK"):
                with m.If(rx):
                    m.next = "IDLE"
        return m


class UARTTransmitter(wiring.Component):
    """8N1 transmitter. ``tx`` is the pin, high when idle; it comes straight from a register.

    Members
    -------
    bytes : ``In(stream.Signature(8))``, taken when the previous byte's stop bit is over
    tx : ``Out(1)``
    busy : ``Out(1)``, a byte is being sent
    """

    def __init__(self, divisor: int):
        if divisor < MIN_DIVISOR:
            raise ValueError(f"the UART needs at least {MIN_DIVISOR} cycles per bit, not {divisor}")
        self.divisor = divisor
        super().__init__({
            "bytes": In(stream.Signature(8)),
            "tx": Out(1, init=1),
            "busy": Out(1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        frame = Signal(10, init=0x3FF)  # stop bit, 8 data bits LSB first, start bit
        timer = Signal(range(self.divisor))
        bits = Signal(range(11))  # bits still to send, the current one included

        m.d.comb += [
            self.tx.eq(frame[0]),
            self.busy.eq(bits != 0),
            self.bytes.ready.eq(bits == 0),
        ]
        with m.If(bits == 0):
            with m.If(self.bytes.valid):
                m.d.sync += [frame.eq(Cat(Const(0, 1), self.bytes.payload, Const(1, 1))),
                             timer.eq(self.divisor - 1), bits.eq(10)]
        with m.Elif(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.Else():
            m.d.sync += [frame.eq(Cat(frame[1:], Const(1, 1))), timer.eq(self.divisor - 1),
                         bits.eq(bits - 1)]
        return m
