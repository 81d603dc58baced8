"""The spike token: the payload of every spike stream (docs/hardware.md, "Spike token streams").

A stream carries spikes over a *shape*: an ``int`` ``n`` (or a 1-D / 2-D tuple) is a flat
stream of ``n`` addresses; a 3-D tuple ``(C, H, W)`` is a spike *map*, whose address is the
struct ``{x, y, c}`` (LSB first) so that engines never divide to find a position. Testbenches
and drivers speak C-order indices ``c*H*W + y*W + x`` and let :func:`pack_token` /
:func:`unpack_token` convert.

This module holds the Amaranth side (layouts, signatures). How a token packs into an
integer (and the shape helpers ``is_map`` / ``shape_size``) is part of the host-link protocol
and lives in ``hwgen.protocol``; those names are re-exported here.
"""

from __future__ import annotations

from amaranth.hdl import unsigned
from amaranth.lib import data, stream

from ..protocol import StreamShape, address_fields, is_map, pack_token, shape_size, unpack_token

__all__ = ["StreamShape", "address_layout", "is_map", "pack_token", "shape_size", "token_layout",
           "token_signature", "unpack_token"]


def address_layout(shape: StreamShape) -> data.StructLayout | unsigned:
    """The ``addr`` field: ``{x, y, c}`` for a map, a plain index otherwise (the field widths
    of ``hwgen.protocol.address_fields``)."""
    fields = address_fields(shape)
    if is_map(shape):
        x, y, c = fields
        return data.StructLayout({
            "x": unsigned(x),
            "y": unsigned(y),
            "c": unsigned(c),
        })
    return unsigned(fields[0])


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
