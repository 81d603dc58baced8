"""The spike token: the payload of every spike stream (docs/hardware.md, "Spike token streams").

A stream carries spikes over a *shape*: an ``int`` ``n`` (or a 1-D / 2-D tuple) is a flat
stream of ``n`` addresses; a 3-D tuple ``(C, H, W)`` is a spike *map*, whose address is the
struct ``{x, y, c}`` (LSB first) so that engines never divide to find a position. Testbenches
and drivers speak C-order indices ``c*H*W + y*W + x`` and let :func:`pack_token` /
:func:`unpack_token` convert.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from amaranth.hdl import unsigned
from amaranth.lib import data, stream

from ..widths import address_bits

__all__ = ["StreamShape", "address_layout", "is_map", "pack_token", "shape_size", "token_layout",
           "token_signature", "unpack_token"]

StreamShape = int | Sequence[int]


def is_map(shape: StreamShape) -> bool:
    """A 3-D shape ``(C, H, W)`` travels as a map with a structured address."""
    return not isinstance(shape, (int, np.integer)) and len(shape) == 3


def shape_size(shape: StreamShape) -> int:
    """Number of addresses of a stream over ``shape``."""
    if isinstance(shape, (int, np.integer)):
        return int(shape)
    return int(np.prod([int(d) for d in shape]))


def address_layout(shape: StreamShape) -> data.StructLayout | unsigned:
    """The ``addr`` field: ``{x, y, c}`` for a map, a plain index otherwise."""
    if is_map(shape):
        c, h, w = (int(d) for d in shape)
        return data.StructLayout({
            "x": unsigned(address_bits(w)),
            "y": unsigned(address_bits(h)),
            "c": unsigned(address_bits(c)),
        })
    return unsigned(address_bits(shape_size(shape)))


def token_layout(shape: StreamShape, value_bits: int = 0) -> data.StructLayout:
    """Payload of a stream of spikes over ``shape``, LSB first: ``addr``, ``tick``, ``last``
    and, when ``value_bits`` > 0 (direct multi-bit input), ``value``.

    ``tick`` closes a timestep (``addr`` is then 0 and ignored); ``last`` on a tick closes the
    inference. The field order is part of the port contract: the cocotb testbench and the board
    top pack the same bits by hand.
    """
    fields = {
        "addr": address_layout(shape),
        "tick": unsigned(1),
        "last": unsigned(1),
    }
    if value_bits:
        fields["value"] = unsigned(value_bits)
    return data.StructLayout(fields)


def token_signature(shape: StreamShape, value_bits: int = 0) -> stream.Signature:
    """A valid/ready stream of :func:`token_layout` tokens over ``shape``."""
    return stream.Signature(token_layout(shape, value_bits))


def _address_fields(shape: StreamShape) -> list[int]:
    """Widths of the address fields, LSB first (``[x, y, c]`` for a map)."""
    if is_map(shape):
        c, h, w = (int(d) for d in shape)
        return [address_bits(w), address_bits(h), address_bits(c)]
    return [address_bits(shape_size(shape))]


def pack_token(shape: StreamShape, *, addr: int = 0, tick: bool = False, last: bool = False,
               value: int = 0, value_bits: int = 0) -> int:
    """The integer a ``token_layout(shape, value_bits)`` payload port carries.

    ``addr`` is the C-order index; for a map it is split into its ``x, y, c`` fields.
    """
    n = shape_size(shape)
    if tick:
        addr, value = 0, 0
    elif not 0 <= addr < n:
        raise ValueError(f"spike address {addr} is outside 0..{n - 1}")
    if not 0 <= value < (1 << value_bits):  # value_bits = 0: no field, value must be 0
        raise ValueError(f"value {value} does not fit {value_bits} bits")
    a = sum(_address_fields(shape))
    if is_map(shape):
        _, h, w = (int(d) for d in shape)
        bx, by, _ = _address_fields(shape)
        c, rest = divmod(addr, h * w)
        y, x = divmod(rest, w)
        addr = (c << (bx + by)) | (y << bx) | x
    return addr | (int(bool(tick)) << a) | (int(bool(last)) << (a + 1)) | (value << (a + 2))


def unpack_token(shape: StreamShape, payload: int) -> tuple[int, bool, bool]:
    """``(addr, tick, last)`` of a packed ``token_layout(shape)`` payload, ``addr`` in C-order.

    A map address whose fields lie outside the map (which no engine sends) comes back as
    an index ``>= shape_size(shape)``, so that a checker reports it as out of range.
    """
    a = sum(_address_fields(shape))
    addr = payload & ((1 << a) - 1)
    tick, last = bool((payload >> a) & 1), bool((payload >> (a + 1)) & 1)
    if is_map(shape):
        c, h, w = (int(d) for d in shape)
        bx, by, _ = _address_fields(shape)
        x, y, ch = addr & ((1 << bx) - 1), (addr >> bx) & ((1 << by) - 1), addr >> (bx + by)
        addr = ch * h * w + y * w + x if x < w and y < h and ch < c else shape_size(shape) + addr
    return addr, tick, last
