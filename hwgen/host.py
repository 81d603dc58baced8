"""The host side of the board link: ``HostLink``, requests and replies on pyserial.

The protocol (frames, CRC, commands, status codes, payloads, token packing) lives in
``hwgen.protocol`` and is documented in docs/host_link.md; the board side is
``hwgen.accelerator.board_top.BoardTop``. This module imports neither torch nor Amaranth (only
numpy and pyserial), so it runs on a board's host machine with a minimal install::

    from hwgen.host import HostLink
    with HostLink("/dev/ttyUSB1") as link:
        print(link.info())
        result = link.infer(sample)  # sample [T, *input_shape]

A request that times out or comes back garbled is sent again (every request is idempotent);
a reply whose ``cmd, seq`` do not match the request (the board answering a garbage frame) is
skipped.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from .errors import HwgenError
from .protocol import (CMD_INFO, CMD_LOAD, CMD_READ, CMD_START, CMD_WEIGHTS, COMMANDS,
                       DEFAULT_BAUD, E_CRC, INFO_HEADER, OK, STATUS_TEXT, WEIGHTS_HEADER,
                       BoardInfo, FrameDecoder, FrameError, Result, WeightMemory, encode_frame,
                       encode_sample, parse_reply, result_bytes, token_bytes)

__all__ = ["BoardError", "BoardInfo", "HostLink", "Result", "WeightMemory", "available_ports",
           "open_port"]

DEFAULT_TIMEOUT = 1.0  # seconds to wait for a reply, beyond the bytes' time on the wire


class BoardError(HwgenError):
    """The board answered a request with an error status."""

    def __init__(self, status: int, command: int, port: str):
        self.status = status
        self.command = command
        what = STATUS_TEXT.get(status, f"unknown error status {status}")
        super().__init__(f"the board on {port} refused {COMMANDS.get(command, hex(command))}: "
                         f"{what} (status {status})")


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
            info = BoardInfo.unpack(self.request(CMD_INFO, reply_bytes=INFO_HEADER.size))
            expected = token_bytes(info.input_shape, info.input_bits)
            if info.token_bytes != expected:
                raise HwgenError(f"the board reports {info.token_bytes}-byte tokens for input "
                                 f"{list(info.input_shape)}, this hwgen packs {expected}")
            self._info = info
        return self._info

    def _result_bytes(self) -> int:
        return result_bytes(self.info())

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

