"""The spike token: the payload of every spike stream (docs/hardware.md, "Spike token streams")."""

from __future__ import annotations

from amaranth.hdl import unsigned
from amaranth.lib import data, stream

from ..widths import address_bits


def token_layout(n: int) -> data.StructLayout:
    """Payload of a stream of spikes over ``n`` addresses, LSB first: ``addr``, ``tick``, ``last``.

    ``tick`` closes a timestep (``addr`` is then 0 and ignored); ``last`` on a tick closes the
    inference. The field order is part of the port contract: the cocotb testbench and the board
    top pack the same bits by hand.
    """
    return data.StructLayout({
        "addr": unsigned(address_bits(n)),
        "tick": unsigned(1),
        "last": unsigned(1),
    })


def token_signature(n: int) -> stream.Signature:
    """A valid/ready stream of :func:`token_layout` tokens over ``n`` addresses."""
    return stream.Signature(token_layout(n))


def pack_token(n: int, *, addr: int = 0, tick: bool = False, last: bool = False) -> int:
    """The integer a ``token_layout(n)`` payload port carries: for testbenches and drivers."""
    if tick:
        addr = 0
    elif not 0 <= addr < n:
        raise ValueError(f"spike address {addr} is outside 0..{n - 1}")
    a = address_bits(n)
    return addr | (int(bool(tick)) << a) | (int(bool(last)) << (a + 1))


def unpack_token(n: int, value: int) -> tuple[int, bool, bool]:
    """``(addr, tick, last)`` of a packed ``token_layout(n)`` payload."""
    a = address_bits(n)
    return value & ((1 << a) - 1), bool((value >> a) & 1), bool((value >> (a + 1)) & 1)
