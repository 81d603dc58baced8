"""The host-link protocol: everything the board top and the host agree on, in one place.

Both ends import it: ``hwgen.accelerator.board_top.BoardTop`` (the board) builds its framing,
command engine and INFO reply from these constants and ``BoardInfo.pack``; ``hwgen.host``
(the client on pyserial) frames, checks and decodes with the functions below. The protocol
itself is documented in docs/host_link.md. This module needs numpy and nothing heavier (no
torch, no Amaranth, no pyserial), so that a board's host machine runs it with a minimal
install.

In short: every frame is SLIP-delimited (``END`` 0xC0 before and after, 0xC0 and 0xDB inside
escaped as 0xDB 0xDC / 0xDB 0xDD) and ends with a CRC-8 (polynomial 0x07, initial value 0)
of the bytes before it. A request is ``cmd, seq, payload, crc``; the reply echoes them:
``status, cmd, seq, payload, crc``. ``END`` always ends a frame, so garbage on the line costs
at most the frame it hits. Multi-byte fields are little-endian.

Contents: the defaults (protocol version, baud rate, the board top's Verilog module name),
SLIP framing, the CRC, frames, command and status codes, the INFO / WEIGHTS / RESULT
payloads, and token packing (how a spike token of a stream over a shape is packed into an
integer, and a sample into the bytes of a LOAD).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from .errors import HwgenError
from .widths import address_bits

__all__ = [
    "BOARD_TOP_NAME", "DEFAULT_BAUD", "PROTOCOL_VERSION", "BoardInfo", "FrameDecoder",
    "FrameError", "Result", "StreamShape", "WeightMemory", "address_fields", "crc8",
    "encode_frame", "encode_sample", "is_map", "pack_token", "parse_reply", "result_bytes",
    "sample_tokens", "shape_size", "slip_escape", "token_addresses", "token_bytes",
    "token_fields", "unpack_token",
]

# ----------------------------------------------------------------------------- defaults

PROTOCOL_VERSION = 2  # 2: WEIGHTS, run-time-loaded weight memories in INFO
DEFAULT_BAUD = 115200  # the board top's UART, and the host's unless told otherwise
BOARD_TOP_NAME = "hwgen_board"  # the board top's Verilog module (and the board build's toplevel)

# ----------------------------------------------------------------------------- codes

# SLIP framing (RFC 1055)
END, ESC, ESC_END, ESC_ESC = 0xC0, 0xDB, 0xDC, 0xDD

# commands
CMD_INFO, CMD_LOAD, CMD_START, CMD_READ, CMD_WEIGHTS = b"I"[0], b"L"[0], b"S"[0], b"R"[0], b"W"[0]
COMMANDS = {CMD_INFO: "INFO", CMD_LOAD: "LOAD", CMD_START: "START", CMD_READ: "READ_RESULT",
            CMD_WEIGHTS: "WEIGHTS"}

# reply status
(OK, E_CRC, E_UNKNOWN, E_LENGTH, E_TOO_BIG, E_BAD_SAMPLE, E_NO_SAMPLE, E_NO_RESULT,
 E_BAD_WEIGHTS, E_NO_WEIGHTS) = range(10)
STATUS_TEXT = {
    OK: "ok",
    E_CRC: "the board received a corrupted frame (CRC mismatch)",
    E_UNKNOWN: "the board does not know this command",
    E_LENGTH: "the frame's length is wrong for its command (or a LOAD is not whole tokens)",
    E_TOO_BIG: "the sample has more tokens than the board's sample buffer holds",
    E_BAD_SAMPLE: "the sample is malformed (not exactly T ticks, a spike after the last tick, "
                  "an address outside the input, or bits set above the token)",
    E_NO_SAMPLE: "START without a valid loaded sample",
    E_NO_RESULT: "READ_RESULT before any inference finished",
    E_BAD_WEIGHTS: "a WEIGHTS chunk for a layer without loaded weights, past the layer's "
                   "memory, or starting beyond the words loaded so far",
    E_NO_WEIGHTS: "START before every run-time-loaded weight memory was loaded (WEIGHTS)",
}

MAX_FRAME = 1 << 20  # the host decoder drops longer frames (runaway garbage)


class FrameError(ValueError):
    """A received frame is too short or fails its CRC."""


# ----------------------------------------------------------------------------- frames

def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        c = byte
        for _ in range(8):
            c = ((c << 1) ^ 0x07) & 0xFF if c & 0x80 else (c << 1) & 0xFF
        table.append(c)
    return table


_CRC_TABLE = _crc_table()


def crc8(data: bytes, crc: int = 0) -> int:
    """CRC-8, polynomial x^8 + x^2 + x + 1 (0x07), initial value 0, no reflection or final
    XOR. Appending it to a message makes the CRC of the whole 0."""
    for byte in data:
        crc = _CRC_TABLE[crc ^ byte]
    return crc


def slip_escape(data: bytes) -> bytes:
    return data.replace(bytes([ESC]), bytes([ESC, ESC_ESC])).replace(bytes([END]),
                                                                     bytes([ESC, ESC_END]))


def encode_frame(body: bytes) -> bytes:
    """``END, escaped(body, crc8(body)), END``: one frame on the wire."""
    body = bytes(body)
    return bytes([END]) + slip_escape(body + bytes([crc8(body)])) + bytes([END])


class FrameDecoder:
    """Splits a byte stream into frames at ``END``; feed it any chunks.

    Returns the unescaped frames (CRC byte included, not yet checked); empty frames (two
    ``END`` in a row) are skipped. An ``ESC`` followed by anything but ``ESC_END`` /
    ``ESC_ESC`` passes that byte on (RFC 1055), so the CRC rejects the frame.
    """

    def __init__(self):
        self._frame = bytearray()
        self._escaped = False
        self._overlong = False

    def feed(self, data: bytes) -> list[bytes]:
        frames = []
        for byte in data:
            if byte == END:
                if self._frame and not self._overlong:
                    frames.append(bytes(self._frame))
                self._frame.clear()
                self._escaped = self._overlong = False
            elif self._escaped:
                self._escaped = False
                self._frame.append(END if byte == ESC_END else ESC if byte == ESC_ESC else byte)
            elif byte == ESC:
                self._escaped = True
            else:
                self._frame.append(byte)
            if len(self._frame) > MAX_FRAME:
                self._frame.clear()
                self._overlong = True
        return frames


def parse_reply(frame: bytes) -> tuple[int, int, int, bytes]:
    """``(status, cmd, seq, payload)`` of a reply frame; ``FrameError`` if it is too short
    or its CRC fails."""
    if len(frame) < 4:
        raise FrameError(f"a {len(frame)}-byte frame is too short for a reply")
    if crc8(frame) != 0:
        raise FrameError("reply CRC mismatch")
    return frame[0], frame[1], frame[2], bytes(frame[3:-1])


# ----------------------------------------------------------------------------- payloads

INFO_HEADER = struct.Struct("<B8sB3IIHHBBBIIIHB")  # INFO before its weight memories
_WEIGHT_MEMORY = struct.Struct("<BBI")  # layer, word bytes, depth (words)
WEIGHTS_HEADER = struct.Struct("<BI")  # layer, first word


@dataclass(frozen=True)
class WeightMemory:
    """A weight memory the board loads at run time (INFO): spiking layer ``layer``'s
    ``depth`` words of ``word_bytes`` bytes (docs/host_link.md, "WEIGHTS")."""

    layer: int
    word_bytes: int
    depth: int


@dataclass(frozen=True)
class BoardInfo:
    """The INFO reply: what the board runs (docs/host_link.md, "INFO")."""

    version: int
    design_hash: str  # hwgen.emit.model_hash: 16 hex digits
    input_shape: tuple[int, ...]  # (N,) for a flat input stream, (C, H, W) for a map
    output_size: int
    timesteps: int
    parallel: int
    input_bits: int
    count_bits: int
    token_bytes: int
    buffer_depth: int  # tokens the board's sample buffer holds
    clk_freq_hz: int
    baud: int
    chunk_bytes: int = 0  # most word bytes one WEIGHTS frame may carry
    weight_memories: tuple[WeightMemory, ...] = ()

    def pack(self) -> bytes:
        dims = list(self.input_shape) + [1] * (3 - len(self.input_shape))
        head = INFO_HEADER.pack(self.version, bytes.fromhex(self.design_hash),
                                len(self.input_shape), *dims, self.output_size, self.timesteps,
                                self.parallel, self.input_bits, self.count_bits, self.token_bytes,
                                self.buffer_depth, self.clk_freq_hz, self.baud, self.chunk_bytes,
                                len(self.weight_memories))
        return head + b"".join(_WEIGHT_MEMORY.pack(w.layer, w.word_bytes, w.depth)
                               for w in self.weight_memories)

    @classmethod
    def unpack(cls, payload: bytes) -> BoardInfo:
        if len(payload) < 1:
            raise FrameError("empty INFO reply")
        if payload[0] != PROTOCOL_VERSION:
            raise HwgenError(f"the board speaks host-link protocol version {payload[0]}, this "
                             f"hwgen speaks {PROTOCOL_VERSION}: rebuild the board with this hwgen")
        if len(payload) < INFO_HEADER.size:
            raise FrameError(f"INFO reply of {len(payload)} bytes, expected at least {INFO_HEADER.size}")
        (version, digest, rank, d0, d1, d2, output_size, timesteps, parallel, input_bits,
         count_bits, token_bytes, depth, clk, baud, chunk, memories) = \
            INFO_HEADER.unpack_from(payload)
        if len(payload) != INFO_HEADER.size + memories * _WEIGHT_MEMORY.size:
            raise FrameError(f"INFO reply of {len(payload)} bytes, expected "
                             f"{INFO_HEADER.size + memories * _WEIGHT_MEMORY.size}")
        if rank not in (1, 3):
            raise FrameError(f"INFO reply with an input rank of {rank}")
        weights = tuple(WeightMemory(*_WEIGHT_MEMORY.unpack_from(payload, INFO_HEADER.size + i * _WEIGHT_MEMORY.size))
                        for i in range(memories))
        return cls(version, digest.hex(), (d0, d1, d2)[:rank], output_size, timesteps, parallel,
                   input_bits, count_bits, token_bytes, depth, clk, baud, chunk, weights)

    @property
    def input_size(self) -> int:
        return int(np.prod(self.input_shape))

    @property
    def count_bytes(self) -> int:
        return -(-self.count_bits // 8)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        d["weight_memories"] = [asdict(w) for w in self.weight_memories]
        return d


@dataclass(frozen=True)
class Result:
    """The readout of one inference on the board (READ_RESULT)."""

    prediction: int
    counts: tuple[int, ...]
    cycles: int

    @classmethod
    def unpack(cls, payload: bytes, info: BoardInfo) -> Result:
        width = info.count_bytes
        expected = result_bytes(info)
        if len(payload) != expected:
            raise FrameError(f"result of {len(payload)} bytes, expected {expected}")
        cycles, prediction = struct.unpack_from("<II", payload)
        counts = tuple(int.from_bytes(payload[8 + k * width: 8 + (k + 1) * width], "little")
                       for k in range(info.output_size))
        return cls(prediction, counts, cycles)


def result_bytes(info: BoardInfo) -> int:
    """Bytes of a RESULT payload: cycles (u32), prediction (u32), every count."""
    return 8 + info.output_size * info.count_bytes


# ----------------------------------------------------------------------------- tokens

# How a spike token is packed (docs/hardware.md, "Spike token streams"): LSB first the
# address, ``tick`` at bit A, ``last`` at A + 1 and, for direct multi-bit input, ``value``
# from A + 2. A stream over a shape: an ``int`` ``n`` (or a 1-D / 2-D tuple) is a flat
# stream of ``n`` addresses; a 3-D tuple ``(C, H, W)`` is a spike *map*, whose address is the
# fields ``x, y, c`` (LSB first), so that engines never divide to find a position. Callers
# speak C-order indices ``c*H*W + y*W + x``. The Amaranth layout of the same bits is
# ``hwgen.hardware.tokens.token_layout``; the cocotb testbenches pack them on their own.

StreamShape = int | Sequence[int]


def is_map(shape: StreamShape) -> bool:
    """A 3-D shape ``(C, H, W)`` travels as a map with a structured address."""
    return not isinstance(shape, (int, np.integer)) and len(shape) == 3


def shape_size(shape: StreamShape) -> int:
    """Number of addresses of a stream over ``shape``."""
    if isinstance(shape, (int, np.integer)):
        return int(shape)
    return int(np.prod([int(d) for d in shape]))


def address_fields(shape: StreamShape) -> list[int]:
    """Widths of the address fields, LSB first (``[x, y, c]`` for a map, one otherwise)."""
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
    a = sum(address_fields(shape))
    if is_map(shape):
        _, h, w = (int(d) for d in shape)
        bx, by, _ = address_fields(shape)
        c, rest = divmod(addr, h * w)
        y, x = divmod(rest, w)
        addr = (c << (bx + by)) | (y << bx) | x
    return addr | (int(bool(tick)) << a) | (int(bool(last)) << (a + 1)) | (value << (a + 2))


def unpack_token(shape: StreamShape, payload: int) -> tuple[int, bool, bool]:
    """``(addr, tick, last)`` of a packed ``token_layout(shape)`` payload, ``addr`` in C-order.

    A map address whose fields lie outside the map (which no engine sends) comes back as
    an index ``>= shape_size(shape)``, so that a checker reports it as out of range.
    """
    a = sum(address_fields(shape))
    addr = payload & ((1 << a) - 1)
    tick, last = bool((payload >> a) & 1), bool((payload >> (a + 1)) & 1)
    if is_map(shape):
        c, h, w = (int(d) for d in shape)
        bx, by, _ = address_fields(shape)
        x, y, ch = addr & ((1 << bx) - 1), (addr >> bx) & ((1 << by) - 1), addr >> (bx + by)
        addr = ch * h * w + y * w + x if x < w and y < h and ch < c else shape_size(shape) + addr
    return addr, tick, last


def token_fields(input_shape: tuple[int, ...], input_bits: int) -> tuple[int, int]:
    """``(address bits A, payload bits)`` of the input token stream (docs/hardware.md)."""
    a = sum(address_fields(input_shape))
    return a, a + 2 + (input_bits if input_bits > 1 else 0)


def token_bytes(input_shape: tuple[int, ...], input_bits: int) -> int:
    """Bytes per token on the wire: the payload rounded up to whole bytes."""
    return -(-token_fields(input_shape, input_bits)[1] // 8)


def token_addresses(input_shape: tuple[int, ...]) -> np.ndarray:
    """The packed address of every C-order input index (``uint64``), as :func:`pack_token`
    packs it."""
    n = int(np.prod(input_shape))
    index = np.arange(n, dtype=np.uint64)
    if not is_map(input_shape):
        return index
    c, h, w = input_shape
    bx, by, _ = address_fields(input_shape)
    ch, rest = np.divmod(index, np.uint64(h * w))
    y, x = np.divmod(rest, np.uint64(w))
    return (ch << np.uint64(bx + by)) | (y << np.uint64(bx)) | x


def sample_tokens(sample: np.ndarray, info: BoardInfo) -> np.ndarray:
    """The input token stream of one inference (docs/hardware.md), as integers.

    ``sample`` is ``[T, *input_shape]`` (or ``[T, N]``, C-order): per timestep one token per
    non-zero input in C-order (carrying its value for direct input), then a tick; the last
    tick has ``last`` set. Raises ``HwgenError`` for a sample of the wrong shape or range.
    """
    x = np.asarray(sample)
    if x.ndim < 2 or x.shape[0] != info.timesteps or int(np.prod(x.shape[1:])) != info.input_size:
        raise HwgenError(f"a sample must be [{info.timesteps}, "
                         f"{', '.join(map(str, info.input_shape))}] (timesteps, input), "
                         f"got {list(x.shape)}")
    if not (np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_):
        raise HwgenError(f"a sample must hold integers, not {x.dtype}")
    top = (1 << info.input_bits) - 1
    if x.size and (x.min() < 0 or x.max() > top):
        raise HwgenError(f"sample values {int(x.min())}..{int(x.max())} are outside 0..{top}")
    x = x.reshape(info.timesteps, info.input_size).astype(np.uint64)
    a, _ = token_fields(info.input_shape, info.input_bits)
    table = token_addresses(info.input_shape)
    tick, last = np.uint64(1 << a), np.uint64(1 << (a + 1))
    value_shift = np.uint64(a + 2)
    parts = []
    for t in range(info.timesteps):
        active = np.flatnonzero(x[t])
        tokens = table[active]
        if info.input_bits > 1:
            tokens = tokens | (x[t, active] << value_shift)
        parts.append(tokens)
        parts.append(np.array([tick | (last if t == info.timesteps - 1 else np.uint64(0))],
                              dtype=np.uint64))
    return np.concatenate(parts)


def encode_sample(sample: np.ndarray, info: BoardInfo) -> bytes:
    """The LOAD payload of ``sample``: its tokens, ``token_bytes`` each, little-endian."""
    tokens = sample_tokens(sample, info)
    if len(tokens) > info.buffer_depth:
        raise HwgenError(f"the sample needs {len(tokens)} tokens ({len(tokens) - info.timesteps} "
                         f"input events + {info.timesteps} ticks) but the board buffers "
                         f"{info.buffer_depth}: use a sparser input or build the board top "
                         f"with a larger buffer_depth")
    return tokens.astype("<u8").view(np.uint8).reshape(-1, 8)[:, :info.token_bytes].tobytes()
