"""The host side of the board link: frames, the sample encoding and ``HostLink`` on pyserial.

The protocol is documented in docs/host_link.md; the board side is
``hwgen.accelerator.board_top.BoardTop``. This module imports neither torch nor Amaranth (only
numpy and pyserial), so it runs on a board's host machine with a minimal install::

    from hwgen.host import HostLink
    with HostLink("/dev/ttyUSB1") as link:
        print(link.info())
        result = link.infer(sample)  # sample [T, *input_shape]

In short: every frame is SLIP-delimited (``END`` 0xC0 before and after, 0xC0 and 0xDB inside
escaped as 0xDB 0xDC / 0xDB 0xDD) and ends with a CRC-8 (polynomial 0x07, initial value 0)
of the bytes before it. A request is ``cmd, seq, payload, crc``; the reply echoes them:
``status, cmd, seq, payload, crc``. ``END`` always ends a frame, so garbage on the line costs
at most the frame it hits, and a reply whose ``cmd, seq`` do not match the request (the
board answering a garbage frame) is skipped.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from .errors import HwgenError
from .widths import address_bits

__all__ = [
    "BoardError", "BoardInfo", "FrameDecoder", "HostLink", "Result", "WeightMemory", "crc8", "encode_frame",
    "encode_sample", "parse_reply", "sample_tokens",
]

PROTOCOL_VERSION = 2  # 2: WEIGHTS, run-time-loaded weight memories in INFO
DEFAULT_BAUD = 115200
DEFAULT_TIMEOUT = 1.0  # seconds to wait for a reply, beyond the bytes' time on the wire

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


class BoardError(HwgenError):
    """The board answered a request with an error status."""

    def __init__(self, status: int, command: int, port: str):
        self.status = status
        self.command = command
        what = STATUS_TEXT.get(status, f"unknown error status {status}")
        super().__init__(f"the board on {port} refused {COMMANDS.get(command, hex(command))}: "
                         f"{what} (status {status})")


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

_INFO = struct.Struct("<B8sB3IIHHBBBIIIHB")
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
        head = _INFO.pack(self.version, bytes.fromhex(self.design_hash), len(self.input_shape),
                          *dims, self.output_size, self.timesteps, self.parallel,
                          self.input_bits, self.count_bits, self.token_bytes, self.buffer_depth,
                          self.clk_freq_hz, self.baud, self.chunk_bytes,
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
        if len(payload) < _INFO.size:
            raise FrameError(f"INFO reply of {len(payload)} bytes, expected at least {_INFO.size}")
        (version, digest, rank, d0, d1, d2, output_size, timesteps, parallel, input_bits,
         count_bits, token_bytes, depth, clk, baud, chunk, memories) = \
            _INFO.unpack_from(payload)
        if len(payload) != _INFO.size + memories * _WEIGHT_MEMORY.size:
            raise FrameError(f"INFO reply of {len(payload)} bytes, expected "
                             f"{_INFO.size + memories * _WEIGHT_MEMORY.size}")
        if rank not in (1, 3):
            raise FrameError(f"INFO reply with an input rank of {rank}")
        weights = tuple(WeightMemory(*_WEIGHT_MEMORY.unpack_from(payload, _INFO.size + i * _WEIGHT_MEMORY.size))
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


def token_fields(input_shape: tuple[int, ...], input_bits: int) -> tuple[int, int]:
    """``(address bits A, payload bits)`` of the input token stream (docs/hardware.md)."""
    if len(input_shape) == 3:
        c, h, w = input_shape
        a = address_bits(w) + address_bits(h) + address_bits(c)
    else:
        a = address_bits(int(np.prod(input_shape)))
    return a, a + 2 + (input_bits if input_bits > 1 else 0)


def token_bytes(input_shape: tuple[int, ...], input_bits: int) -> int:
    """Bytes per token on the wire: the payload rounded up to whole bytes."""
    return -(-token_fields(input_shape, input_bits)[1] // 8)


def _addresses(input_shape: tuple[int, ...]) -> np.ndarray:
    """The packed address of every C-order input index."""
    n = int(np.prod(input_shape))
    index = np.arange(n, dtype=np.uint64)
    if len(input_shape) != 3:
        return index
    c, h, w = input_shape
    bx, by = address_bits(w), address_bits(h)
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
    table = _addresses(info.input_shape)
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


@dataclass(frozen=True)
class Result:
    """The readout of one inference on the board (READ_RESULT)."""

    prediction: int
    counts: tuple[int, ...]
    cycles: int

    @classmethod
    def unpack(cls, payload: bytes, info: BoardInfo) -> Result:
        width = info.count_bytes
        expected = 8 + info.output_size * width
        if len(payload) != expected:
            raise FrameError(f"result of {len(payload)} bytes, expected {expected}")
        cycles, prediction = struct.unpack_from("<II", payload)
        counts = tuple(int.from_bytes(payload[8 + k * width: 8 + (k + 1) * width], "little")
                       for k in range(info.output_size))
        return cls(prediction, counts, cycles)


# ----------------------------------------------------------------------------- the link

def available_ports() -> list[str]:
    try:
        from serial.tools import list_ports
        return sorted(p.device for p in list_ports.comports())
    except Exception:  # noqa: BLE001 - listing is a courtesy in an error message
        return []


def open_port(port: str, baud: int):
    """Open a serial port (a device path, or a pyserial URL such as ``socket://host:port``).

    Raises ``HwgenError`` naming the port and the ports that do exist when it cannot be opened.
    """
    import serial

    try:
        return serial.serial_for_url(port, baudrate=baud, timeout=0.05, write_timeout=None)
    except (serial.SerialException, ValueError, OSError) as exc:
        ports = available_ports()
        listing = ", ".join(ports) if ports else "none found"
        raise HwgenError(f"cannot open serial port {port!r} ({exc}); available ports: "
                         f"{listing}") from None


class HostLink:
    """Request / reply over the board's serial link (docs/host_link.md).

    ``port`` is a device path or pyserial URL (opened here, at ``baud``), or an open
    serial-like object with ``read(n)`` and ``write(data)`` whose ``read`` returns what has
    arrived (possibly nothing) after a short timeout. ``timeout`` is how long to wait for a
    reply beyond the time its request and reply take on the wire at ``baud``; a request that
    times out or is garbled on the way is sent again up to ``retries`` times (every request
    is idempotent), then ``HwgenError`` is raised.
    """

    def __init__(self, port, baud: int = DEFAULT_BAUD, timeout: float = DEFAULT_TIMEOUT,
                 retries: int = 2):
        # Checked before the port opens: a zero baud rate divides by zero in the wire time.
        if not (isinstance(baud, int) and baud > 0):
            raise HwgenError(f"baud rate (--baud) must be a positive integer (the board top's is {DEFAULT_BAUD}), got {baud!r}")
        if not (isinstance(timeout, (int, float)) and timeout > 0 and timeout != float("inf")):
            raise HwgenError(f"reply timeout (--timeout) must be a positive number of seconds, got {timeout!r}")
        if not (isinstance(retries, int) and retries >= 0):
            raise HwgenError(f"retries must be a non-negative integer, got {retries!r}")
        self.baud = baud
        self.timeout = timeout
        self.retries = retries
        if isinstance(port, str):
            self.port_name = port
            self._port = open_port(port, baud)
            self._owned = True
        else:
            if not (hasattr(port, "read") and hasattr(port, "write")):
                raise TypeError("port must be a port name or an object with read() and write()")
            self.port_name = getattr(port, "name", None) or getattr(port, "port", None) or repr(port)
            self._port = port
            self._owned = False
        self._decoder = FrameDecoder()
        self._frames: list[bytes] = []
        self._seq = 0
        self._info: BoardInfo | None = None
        self._flush_input()

    # -- plumbing

    def close(self) -> None:
        if self._owned:
            self._port.close()

    def __enter__(self) -> HostLink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _flush_input(self) -> None:
        reset = getattr(self._port, "reset_input_buffer", None)
        if reset is not None:
            try:
                reset()
            except Exception:  # noqa: BLE001 - best effort (e.g. a socket not yet connected)
                pass
        self._decoder = FrameDecoder()
        self._frames.clear()

    def _io_error(self, exc: Exception) -> HwgenError:
        return HwgenError(f"serial port {self.port_name}: {exc}")

    def _wire_seconds(self, nbytes: int) -> float:
        return nbytes * 10 / self.baud

    def write_raw(self, data: bytes) -> None:
        """Send bytes as they are (tests use it to send broken frames)."""
        import serial

        try:
            self._port.write(data)
            flush = getattr(self._port, "flush", None)
            if flush is not None:
                flush()
        except (serial.SerialException, OSError) as exc:
            raise self._io_error(exc) from None

    def read_frame(self, deadline: float) -> bytes | None:
        """The next complete frame received, or ``None`` once ``deadline`` (monotonic) passed."""
        import serial

        while not self._frames:
            if time.monotonic() >= deadline:
                return None
            try:
                waiting = getattr(self._port, "in_waiting", 0)
                chunk = self._port.read(max(1, int(waiting or 0)))
            except (serial.SerialException, OSError) as exc:
                raise self._io_error(exc) from None
            if chunk:
                self._frames.extend(self._decoder.feed(chunk))
        return self._frames.pop(0)

    def request(self, cmd: int, payload: bytes = b"", reply_bytes: int = 64) -> bytes:
        """Send one request and return the payload of its OK reply.

        Raises ``BoardError`` when the board answers with an error status, ``HwgenError``
        when no valid reply arrives in time (after the retries).
        """
        name = COMMANDS.get(cmd, hex(cmd))
        problem = "no reply"
        for _ in range(self.retries + 1):
            self._seq = (self._seq + 1) & 0xFF
            seq = self._seq
            frame = encode_frame(bytes([cmd, seq]) + payload)
            self.write_raw(frame)
            deadline = (time.monotonic() + self.timeout
                        + self._wire_seconds(len(frame) + 2 * reply_bytes + 4))
            while True:
                reply = self.read_frame(deadline)
                if reply is None:
                    break  # timed out: send again
                try:
                    status, r_cmd, r_seq, body = parse_reply(reply)
                except FrameError as exc:
                    problem = f"a garbled reply ({exc})"
                    continue  # a garbled reply: ours will not come, wait for the deadline
                if (r_cmd, r_seq) != (cmd, seq):
                    continue  # a stale reply, or the answer to garbage on the line
                if status == OK:
                    return body
                if status == E_CRC:  # our request was garbled on the way: send again
                    problem = STATUS_TEXT[E_CRC]
                    break
                raise BoardError(status, cmd, self.port_name)
            self._flush_input()
        raise HwgenError(
            f"{problem} from the board on {self.port_name} to {name} within "
            f"{self.timeout:g} s after {self.retries + 1} attempts: is the board programmed "
            f"with an hwgen board top (`hwgen flash`), and does it run at {self.baud} baud?")

    # -- commands

    def info(self) -> BoardInfo:
        """What the board runs: the design hash, sizes, buffer depth, clock and baud rate."""
        if self._info is None:
            info = BoardInfo.unpack(self.request(CMD_INFO, reply_bytes=_INFO.size))
            expected = token_bytes(info.input_shape, info.input_bits)
            if info.token_bytes != expected:
                raise HwgenError(f"the board reports {info.token_bytes}-byte tokens for input "
                                 f"{list(info.input_shape)}, this hwgen packs {expected}")
            self._info = info
        return self._info

    def _result_bytes(self) -> int:
        info = self.info()
        return 8 + info.output_size * info.count_bytes

    def load(self, sample: np.ndarray) -> int:
        """Send one sample ``[T, *input_shape]`` into the board's buffer; returns its tokens."""
        payload = encode_sample(sample, self.info())
        self.request(CMD_LOAD, payload, reply_bytes=0)
        return len(payload) // self.info().token_bytes

    def start(self) -> Result:
        """Run one inference on the loaded sample and return its readout."""
        return Result.unpack(self.request(CMD_START, reply_bytes=self._result_bytes()),
                             self.info())

    def read_result(self) -> Result:
        """The readout of the last finished inference, again."""
        return Result.unpack(self.request(CMD_READ, reply_bytes=self._result_bytes()),
                             self.info())

    def load_weights(self, words: dict[int, np.ndarray],
                     progress: Callable[[int, int], None] | None = None) -> int:
        """Load every run-time-loaded weight memory the board has (INFO) with ``words``
        (``{layer: uint8 [depth, word_bytes]}``, ``OUT/weights_K.npy`` as ``hwgen generate``
        writes them), in chunks of the board's WEIGHTS frame size; returns the bytes sent.
        ``progress(done, total)`` is called after each chunk."""
        info = self.info()
        wanted = {w.layer: w for w in info.weight_memories}
        if set(words) != set(wanted):
            raise HwgenError(f"the board loads the weights of layers {sorted(wanted)} at run time, "
                             f"but weights were given for layers {sorted(words)}")
        total = sum(w.depth * w.word_bytes for w in wanted.values())
        sent = 0
        for layer, memory in sorted(wanted.items()):
            table = np.ascontiguousarray(words[layer], dtype=np.uint8)
            if table.shape != (memory.depth, memory.word_bytes):
                raise HwgenError(f"layer {layer}: the board's weight memory is {memory.depth} words of "
                                 f"{memory.word_bytes} bytes, the given words are {list(table.shape)}: "
                                 "were they generated for this design?")
            per_frame = max(1, info.chunk_bytes // memory.word_bytes)
            for first in range(0, memory.depth, per_frame):
                chunk = table[first:first + per_frame].tobytes()
                self.request(CMD_WEIGHTS, WEIGHTS_HEADER.pack(layer, first) + chunk, reply_bytes=0)
                sent += len(chunk)
                if progress is not None:
                    progress(sent, total)
        return sent

    def infer(self, sample: np.ndarray) -> Result:
        """LOAD then START: one inference of ``sample`` ``[T, *input_shape]`` on the board."""
        self.load(sample)
        return self.start()

