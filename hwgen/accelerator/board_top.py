"""``BoardTop``: the accelerator behind a UART, speaking the host-link protocol.

The protocol (framing, commands, replies, errors) is documented in docs/host_link.md; its
codes, defaults and payloads come from ``hwgen.protocol``, which the host
(``hwgen.host.HostLink``) speaks it with too: the INFO payload is packed by the same
``hwgen.protocol.BoardInfo`` the host unpacks it with.

Data path::

    uart_rx ─► UARTReceiver ─► RX FIFO ─► SLIP decode ─► command engine ─► sample buffer (BRAM)
                                                               │                 │ START
                                                               │                 ▼
    uart_tx ◄─ UARTTransmitter ◄─ SLIP encode ◄─ reply ◄───────┴──── NetworkTop (hwgen_top)

* A LOAD frame's tokens are written into the sample buffer as they arrive and checked on
  the way (whole tokens, an address inside the input, exactly ``T`` ticks, nothing after the
  last tick, no bits above the token); ``last`` is set by the board on the ``T``-th tick
  whatever the host sent. The sample counts as loaded only when the frame's CRC is good and
  every check passed.
* START replays the buffer into ``spikes_in`` at one token per clock (the accelerator runs
  at full speed: its ``cycles`` equal those of ``hwgen sim`` for the same sample) and, on
  ``done``, replies with the readout (prediction, counts, cycles), which READ_RESULT
  returns again until the next inference.
* Bytes that arrive while the engine runs an inference or sends a reply wait in the RX
  FIFO (``rx_fifo_depth`` bytes), so a request that follows garbage on the line closely is
  not lost while the board answers the garbage.

Members
-------
uart_rx : ``In(1)`` (idle high), the board's UART receive pin (host -> board)
uart_tx : ``Out(1)`` (idle high), the board's UART transmit pin (board -> host)
leds : ``Out(leds)``, only when ``leds > 0``: bit 0 an inference is running, bit 1 the last
    reply was an error, bit 2 a sample is loaded, bits 3.. the low bits of the last
    prediction
"""

from __future__ import annotations

from collections.abc import Mapping

from amaranth.back import verilog
from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..hardware.memories import MemorySpec
from ..hardware.tokens import is_map, shape_size, token_layout
from ..hardware.uart import UARTReceiver, UARTTransmitter, uart_divisor
from ..ir import QuantNetwork
from ..protocol import (BOARD_TOP_NAME, CMD_INFO, CMD_LOAD, CMD_READ, CMD_START, CMD_WEIGHTS,
                        DEFAULT_BAUD, E_BAD_SAMPLE, E_BAD_WEIGHTS, E_CRC, E_LENGTH, E_NO_RESULT,
                        E_NO_SAMPLE, E_NO_WEIGHTS, E_TOO_BIG, E_UNKNOWN, END, ESC, ESC_END,
                        ESC_ESC, OK, PROTOCOL_VERSION, WEIGHTS_HEADER, BoardInfo, WeightMemory)
from ..widths import unsigned_bits
from .identity import model_hash
from .top import NetworkTop, packed_weights, plan_units

__all__ = ["BoardTop", "SlipEncoder", "board_info", "board_verilog_text", "crc8_next",
           "default_buffer_depth"]

# tokens: a rate-coded 28x28 digit over 25 steps (about 15 % active) needs about 2,950
MAX_DEFAULT_BUFFER = 4096
RX_FIFO_DEPTH = 128  # bytes received while the board is busy (BoardTop's default)
WEIGHT_CHUNK_BYTES = 512  # word bytes per WEIGHTS frame: the chunk FIFO, one block RAM


def default_buffer_depth(qnet: QuantNetwork) -> int:
    """Tokens in the sample buffer: a whole sample with every input active
    (``T * (N_in + 1)``), at most 4096 (sparse inputs of large maps need far fewer)."""
    return min(qnet.timesteps * (qnet.input_size + 1), MAX_DEFAULT_BUFFER)


def board_top_memories(qnet: QuantNetwork) -> list[MemorySpec]:
    """The memories the board top adds to the network's, for the fit check (nothing is
    built yet): the host link's sample buffer and its UART receive FIFO, at their defaults."""
    _, shape, value_bits = plan_units(qnet)
    payload = token_layout(shape, value_bits).size
    return [MemorySpec("board", "sample buffer", default_buffer_depth(qnet), payload, initialised=False,
                       read_write=True),
            MemorySpec("board", "uart rx fifo", RX_FIFO_DEPTH, 8, initialised=False, read_write=True)]


def board_info(qnet: QuantNetwork, parallel: int, clk_freq_hz: float, baud: int = DEFAULT_BAUD,
               buffer_depth: int | None = None,
               weight_memories: Mapping[int, str] | None = None) -> BoardInfo:
    """The INFO reply of ``BoardTop(qnet, parallel, clk_freq_hz, baud, buffer_depth=...,
    weight_memories=...)``, without building any hardware. Raises ``ValueError`` for what the
    board top refuses."""

    _, shape, value_bits = plan_units(qnet)
    depth = int(buffer_depth or default_buffer_depth(qnet))
    if depth < qnet.timesteps:
        raise ValueError(f"buffer_depth {depth} cannot even hold the {qnet.timesteps} ticks "
                         f"of a sample")
    output_size = qnet.output_size  # the readout's layer (in a graph, not always the last)
    if output_size >= 1 << 32 or qnet.timesteps >= 1 << 16 or parallel >= 1 << 16:
        raise ValueError("the INFO reply cannot describe this network (sizes too large)")
    uart_divisor(clk_freq_hz, baud)  # refuse a baud rate the clock cannot make
    memories = tuple(WeightMemory(k, int(w.shape[1]), int(w.shape[0]))
                     for k, w in packed_weights(qnet, parallel, weight_memories or {}).items())
    for memory in memories:
        if memory.word_bytes > WEIGHT_CHUNK_BYTES:
            raise ValueError(f"layer {memory.layer}: {memory.word_bytes}-byte weight words do not "
                             f"fit a {WEIGHT_CHUNK_BYTES}-byte WEIGHTS frame")
    return BoardInfo(
        version=PROTOCOL_VERSION, design_hash=model_hash(qnet, parallel, weight_memories),
        input_shape=tuple(int(d) for d in shape) if is_map(shape) else (shape_size(shape),),
        output_size=output_size, timesteps=qnet.timesteps, parallel=parallel,
        input_bits=qnet.input_bits, count_bits=unsigned_bits(qnet.timesteps),
        token_bytes=-(-token_layout(shape, value_bits).size // 8), buffer_depth=depth,
        clk_freq_hz=int(round(clk_freq_hz)), baud=int(baud),
        chunk_bytes=WEIGHT_CHUNK_BYTES if memories else 0, weight_memories=memories)


def crc8_next(m: Module, crc: Value, byte: Value) -> Value:
    """CRC-8 (polynomial 0x07, as ``hwgen.protocol.crc8``) of ``crc`` extended by ``byte``.

    Each of the eight shift steps is a wire (a signal of ``m``): as one nested expression
    every step would copy the previous one twice.
    """
    c = Signal(8)
    m.d.comb += c.eq(crc ^ byte)
    for _ in range(8):
        shifted = Cat(Const(0, 1), c[:7])
        step = Signal(8)
        m.d.comb += step.eq(Mux(c[7], shifted ^ 0x07, shifted))
        c = step
    return c


class SlipEncoder(wiring.Component):
    """Byte tokens to the wire: a data byte goes out as is, or escaped (``END`` as ``ESC
    ESC_END``, ``ESC`` as ``ESC ESC_ESC``); an ``end`` token sends ``END``.

    Members
    -------
    i : ``In(stream.Signature({data: 8, end: 1}))``
    o : ``Out(stream.Signature(8))``
    """

    def __init__(self):
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({"data": 8, "end": 1}))),
            "o": Out(stream.Signature(8)),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        second = Signal()  # the second byte of an escape is due
        second_byte = Signal(8)
        byte = self.i.payload.data
        special = (byte == END) | (byte == ESC)
        with m.If(second):
            m.d.comb += [self.o.payload.eq(second_byte), self.o.valid.eq(1)]
            with m.If(self.o.ready):
                m.d.sync += second.eq(0)
        with m.Else():
            m.d.comb += [
                self.o.valid.eq(self.i.valid),
                self.i.ready.eq(self.o.ready),
                self.o.payload.eq(Mux(self.i.payload.end, END, Mux(special, ESC, byte))),
            ]
            with m.If(self.i.valid & self.o.ready & ~self.i.payload.end & special):
                m.d.sync += [second.eq(1),
                             second_byte.eq(Mux(byte == END, ESC_END, ESC_ESC))]
        return m


class BoardTop(wiring.Component):
    """``NetworkTop`` for ``qnet`` (``parallel`` lanes) behind a UART at ``baud``.

    ``clk_freq_hz`` is the frequency of the ``sync`` domain the top runs in (the board's
    clock); the UART divides it to ``baud`` (``ValueError`` if that is more than 2 % off).
    ``buffer_depth`` is the number of input tokens a sample may have (events plus one tick
    per timestep; default :func:`default_buffer_depth`); ``leds`` the width of the optional
    ``leds`` port; ``rx_fifo_depth`` the bytes received while the board is busy.
    """

    def __init__(self, qnet: QuantNetwork, parallel: int, clk_freq_hz: float,
                 baud: int = DEFAULT_BAUD, *, buffer_depth: int | None = None, leds: int = 0,
                 rx_fifo_depth: int = RX_FIFO_DEPTH, weight_memories: Mapping[int, str] | None = None):
        self.qnet = qnet
        self.parallel = parallel
        self.info = board_info(qnet, parallel, clk_freq_hz, baud, buffer_depth, weight_memories)
        self.accelerator = NetworkTop(qnet, parallel, weight_memories=weight_memories)
        self.divisor = uart_divisor(clk_freq_hz, baud)
        self.buffer_depth = self.info.buffer_depth
        if rx_fifo_depth < 16:
            raise ValueError(f"rx_fifo_depth must be at least 16 bytes, not {rx_fifo_depth}")
        self.rx_fifo_depth = rx_fifo_depth
        self.led_count = leds
        self.input_layout = token_layout(self.accelerator.input_shape,
                                         self.accelerator.input_value_bits)
        self.payload_bits = self.input_layout.size
        self.token_bytes = self.info.token_bytes
        self.output_size = self.info.output_size
        assert self.token_bytes == -(-self.payload_bits // 8)
        assert self.output_size == shape_size(self.accelerator.output_shape)

        members = {"uart_rx": In(1, init=1), "uart_tx": Out(1, init=1)}
        if leds:
            members["leds"] = Out(leds)
        super().__init__(members)

    # ------------------------------------------------------------------------- helpers

    def _address_ok(self, token) -> Value:
        """The token's address lies inside the input (a map: each field inside its axis)."""
        shape = self.accelerator.input_shape
        if is_map(shape):
            c, h, w = (int(d) for d in shape)
            return (token.addr.x < w) & (token.addr.y < h) & (token.addr.c < c)
        return token.addr < shape_size(shape)

    def _result_bytes(self, accel: NetworkTop) -> list[Value]:
        """The RESULT payload: cycles (u32), prediction (u32), then every count."""
        out = [accel.cycles[8 * k:8 * k + 8] for k in range(4)]
        prediction = Cat(accel.prediction, Const(0, 32))[:32]
        out += [prediction[8 * k:8 * k + 8] for k in range(4)]
        width = -(-accel.count_bits // 8)
        for n in range(self.output_size):
            count = Cat(accel.counts[n], Const(0, 8 * width))[:8 * width]
            out += [count[8 * k:8 * k + 8] for k in range(width)]
        return out

    # ------------------------------------------------------------------------- hardware

    def elaborate(self, platform) -> Module:
        m = Module()
        qnet = self.qnet
        timesteps = qnet.timesteps
        m.submodules.accelerator = accel = self.accelerator
        m.submodules.uart_rx = rx = UARTReceiver(self.divisor)
        m.submodules.uart_tx = tx = UARTTransmitter(self.divisor)
        m.submodules.rx_fifo = fifo = SyncFIFOBuffered(width=8, depth=self.rx_fifo_depth)
        m.submodules.slip_tx = slip = SlipEncoder()
        m.submodules.buffer = buffer = Memory(shape=self.payload_bits, depth=self.buffer_depth,
                                              init=[])
        write = buffer.write_port()
        read = buffer.read_port()

        m.d.comb += [
            rx.rx.eq(self.uart_rx),
            self.uart_tx.eq(tx.tx),
            fifo.w_data.eq(rx.bytes.payload),
            fifo.w_en.eq(rx.bytes.valid),
            rx.bytes.ready.eq(fifo.w_rdy),
        ]
        wiring.connect(m, slip.o, tx.bytes)

        # ---- SLIP decode: FIFO bytes -> one registered (data | end) event per cycle

        receiving = Signal()  # the command engine takes bytes (state RECV)
        escaped = Signal()
        got_data = Signal()  # registered: `byte` is a frame byte
        got_end = Signal()  # registered: an END closed a frame
        byte = Signal(8)
        pop = fifo.r_rdy & receiving & ~got_end  # after an END, wait for the engine
        m.d.comb += fifo.r_en.eq(pop)
        raw = fifo.r_data
        m.d.sync += [got_data.eq(0), got_end.eq(0)]
        with m.If(pop):
            with m.If(raw == END):
                m.d.sync += [got_end.eq(1), escaped.eq(0)]
            with m.Elif(escaped):
                m.d.sync += [escaped.eq(0), got_data.eq(1),
                             byte.eq(Mux(raw == ESC_END, END, Mux(raw == ESC_ESC, ESC, raw)))]
            with m.Elif(raw == ESC):
                m.d.sync += escaped.eq(1)
            with m.Else():
                m.d.sync += [got_data.eq(1), byte.eq(raw)]

        # ---- the request being received

        count = Signal(range(8))  # bytes of the frame so far, saturating at 7
        cmd = Signal(8)
        seq = Signal(8)
        crc = Signal(8)
        pending = Signal(8)  # the previous byte: payload, unless END follows (then the CRC)

        # LOAD state, reset by a LOAD command byte
        n_tokens = Signal(range(self.buffer_depth + 1))
        ticks = Signal(range(timesteps + 1))
        part = Signal(range(self.token_bytes))  # bytes of the current token so far
        assembled = Signal(8 * self.token_bytes)
        too_big = Signal()
        bad = Signal()
        loaded = Signal()
        result_valid = Signal()

        word = Signal(8 * self.token_bytes)
        m.d.comb += word.eq(Cat(assembled[8:], pending))
        token = data.View(self.input_layout, word[:self.payload_bits])
        extra_bits = word[self.payload_bits:] if 8 * self.token_bytes > self.payload_bits \
            else Const(0, 1)
        closing = ticks == timesteps - 1
        canonical_tick = Signal(self.input_layout)
        m.d.comb += [canonical_tick.tick.eq(1), canonical_tick.last.eq(closing)]
        spike = Signal(self.input_layout)
        m.d.comb += [spike.eq(token), spike.last.eq(0)]

        payload_byte = got_data & (count >= 3) & (cmd == CMD_LOAD)
        token_done = payload_byte & (part == self.token_bytes - 1)
        m.d.comb += [
            write.addr.eq(n_tokens),
            write.data.eq(Mux(token.tick, canonical_tick, spike)),
            write.en.eq(token_done & (n_tokens != self.buffer_depth)),
        ]

        weights = _WeightLoader(m, self, accel, got_data & (count >= 3) & (cmd == CMD_WEIGHTS),
                                pending) if self.info.weight_memories else None

        with m.If(got_data):
            m.d.sync += [crc.eq(crc8_next(m, crc, byte)), count.eq(Mux(count == 7, 7, count + 1))]
            with m.If(count == 0):
                m.d.sync += cmd.eq(byte)
                with m.If(byte == CMD_LOAD):
                    m.d.sync += [n_tokens.eq(0), ticks.eq(0), part.eq(0), too_big.eq(0),
                                 bad.eq(0), loaded.eq(0)]
                if weights is not None:
                    with m.If(byte == CMD_WEIGHTS):
                        m.d.sync += weights.restart()
            with m.Elif(count == 1):
                m.d.sync += seq.eq(byte)
            with m.Else():
                m.d.sync += pending.eq(byte)
        with m.If(payload_byte):
            m.d.sync += [assembled.eq(word), part.eq(Mux(token_done, 0, part + 1))]
        with m.If(token_done):
            with m.If(n_tokens == self.buffer_depth):
                m.d.sync += too_big.eq(1)
            with m.Else():
                m.d.sync += n_tokens.eq(n_tokens + 1)
            with m.If(extra_bits != 0):
                m.d.sync += bad.eq(1)
            with m.If(ticks == timesteps):  # nothing may follow the last tick
                m.d.sync += bad.eq(1)
            with m.Elif(token.tick):
                m.d.sync += ticks.eq(ticks + 1)
            with m.Elif(~self._address_ok(token)):
                m.d.sync += bad.eq(1)

        # ---- replay of the buffer into the accelerator

        ptr = Signal(range(self.buffer_depth + 1))
        out_valid = Signal()
        running = Signal()
        fetch = running & (~out_valid | accel.spikes_in.ready)
        m.d.comb += [
            read.addr.eq(ptr),
            read.en.eq(fetch),
            accel.spikes_in.payload.eq(read.data),
            accel.spikes_in.valid.eq(out_valid),
        ]
        with m.If(fetch):
            m.d.sync += out_valid.eq(ptr != n_tokens)
            with m.If(ptr != n_tokens):
                m.d.sync += ptr.eq(ptr + 1)

        # ---- replies: [status, cmd, seq, payload...] + CRC, SLIP-framed

        KIND_EMPTY, KIND_INFO, KIND_RESULT = 0, 1, 2
        status = Signal(8)
        kind = Signal(2)
        reply_crc = Signal(8)
        header = [status, cmd, seq]
        info_bytes = header + [Const(b, 8) for b in self.info.pack()]
        result_bytes = header + self._result_bytes(accel)
        index = Signal(range(max(len(info_bytes), len(result_bytes)) + 1))
        reply_byte = Signal(8)
        last_index = Signal.like(index)
        with m.Switch(kind):
            with m.Case(KIND_INFO):
                m.d.comb += [reply_byte.eq(Array(info_bytes)[index]),
                             last_index.eq(len(info_bytes) - 1)]
            with m.Case(KIND_RESULT):
                m.d.comb += [reply_byte.eq(Array(result_bytes)[index]),
                             last_index.eq(len(result_bytes) - 1)]
            with m.Default():
                m.d.comb += [reply_byte.eq(Array(header)[index]), last_index.eq(2)]

        error = Signal()  # the last reply was an error (for the LEDs)

        def reply(code: int, what: int = KIND_EMPTY) -> list:
            return [status.eq(code), kind.eq(what)]

        # ---- the command engine

        with m.FSM() as fsm:
            with m.State("RECV"):
                with m.If(got_end & (count != 0)):
                    m.d.sync += [count.eq(0), crc.eq(0)]
                    m.next = "REPLY_OPEN"
                    with m.If(count < 3):
                        m.d.sync += reply(E_LENGTH)
                    with m.Elif(crc != 0):
                        m.d.sync += reply(E_CRC)
                    with m.Elif(cmd == CMD_LOAD):
                        with m.If(part != 0):
                            m.d.sync += reply(E_LENGTH)
                        with m.Elif(too_big):
                            m.d.sync += reply(E_TOO_BIG)
                        with m.Elif(bad | (ticks != timesteps)):
                            m.d.sync += reply(E_BAD_SAMPLE)
                        with m.Else():
                            m.d.sync += [*reply(OK), loaded.eq(1)]
                    with m.Elif((cmd == CMD_WEIGHTS) & (weights is not None)):
                        if weights is not None:
                            with m.If(~weights.whole_words):
                                m.d.sync += reply(E_LENGTH)
                            with m.Elif(~weights.in_range):
                                m.d.sync += reply(E_BAD_WEIGHTS)
                            with m.Else():
                                m.d.sync += [*reply(OK), *weights.begin_commit()]
                                m.next = "COMMIT"
                    with m.Elif((cmd != CMD_INFO) & (cmd != CMD_START) & (cmd != CMD_READ)):
                        m.d.sync += reply(E_UNKNOWN)
                    with m.Elif(count != 3):
                        m.d.sync += reply(E_LENGTH)
                    with m.Elif(cmd == CMD_INFO):
                        m.d.sync += reply(OK, KIND_INFO)
                    with m.Elif(cmd == CMD_START):
                        with m.If(~loaded):
                            m.d.sync += reply(E_NO_SAMPLE)
                        with m.Elif(~(weights.complete if weights is not None else Const(1))):
                            m.d.sync += reply(E_NO_WEIGHTS)
                        with m.Else():
                            m.d.sync += [ptr.eq(0), out_valid.eq(0), running.eq(1)]
                            m.next = "RUN"
                    with m.Else():  # READ_RESULT
                        with m.If(~result_valid):
                            m.d.sync += reply(E_NO_RESULT)
                        with m.Else():
                            m.d.sync += reply(OK, KIND_RESULT)
                with m.Elif(got_end):
                    m.d.sync += crc.eq(0)  # an empty frame (END END): nothing to answer
            with m.State("RUN"):
                with m.If(accel.done):
                    m.d.sync += [running.eq(0), result_valid.eq(1), *reply(OK, KIND_RESULT)]
                    m.next = "REPLY_OPEN"
            with m.State("COMMIT"):  # a checked WEIGHTS chunk goes into its memory
                if weights is not None:
                    with m.If(weights.commit()):
                        m.next = "REPLY_OPEN"
            with m.State("REPLY_OPEN"):
                # A refused WEIGHTS frame leaves its bytes in the chunk FIFO: drop them first.
                empty = weights.drain() if weights is not None else Const(1)
                m.d.comb += [slip.i.valid.eq(empty), slip.i.payload.end.eq(1)]
                with m.If(slip.i.ready & empty):
                    m.d.sync += [index.eq(0), reply_crc.eq(0)]
                    m.next = "REPLY_BODY"
            with m.State("REPLY_BODY"):
                m.d.comb += [slip.i.valid.eq(1), slip.i.payload.data.eq(reply_byte)]
                with m.If(slip.i.ready):
                    m.d.sync += [index.eq(index + 1), reply_crc.eq(crc8_next(m, reply_crc, reply_byte))]
                    with m.If(index == last_index):
                        m.next = "REPLY_CRC"
            with m.State("REPLY_CRC"):
                m.d.comb += [slip.i.valid.eq(1), slip.i.payload.data.eq(reply_crc)]
                with m.If(slip.i.ready):
                    m.next = "REPLY_CLOSE"
            with m.State("REPLY_CLOSE"):
                m.d.comb += [slip.i.valid.eq(1), slip.i.payload.end.eq(1)]
                with m.If(slip.i.ready):
                    m.d.sync += error.eq(status != OK)
                    m.next = "RECV"
        # A continuous assignment rather than a comb statement in the FSM's `always @*`
        # process: a simulator that does not run such a process at time 0 (Icarus with
        # -g2012) would leave `receiving` X, and the FSM waits in RECV for bytes that
        # `receiving` lets in.
        m.d.comb += receiving.eq(fsm.ongoing("RECV"))

        if self.led_count:
            prediction = Mux(result_valid, accel.prediction, 0)
            m.d.comb += self.leds.eq(Cat(running, error, loaded, prediction)[:self.led_count])

        return m


class _WeightLoader:
    """The WEIGHTS command of a board top with run-time-loaded weights (docs/host_link.md).

    A frame's header (layer, first word) is kept in registers and its word bytes in a FIFO
    of ``WEIGHT_CHUNK_BYTES`` while the frame arrives; only after its CRC and every check
    passed (``whole_words``, ``in_range``) does COMMIT write the words into the layer's
    ``weights_K`` stream, one per ``word_bytes`` cycles. A refused frame's bytes are dropped
    (``drain``). ``complete`` once every memory was loaded from word 0 to its end without a
    gap: a chunk may start anywhere up to the words loaded so far (a resent chunk rewrites).
    Built from the board top's elaborate (its signals live in the board top's module ``m``).
    """

    def __init__(self, m: Module, top: BoardTop, accel: NetworkTop, payload_byte: Value,
                 byte: Value):
        self.m = m
        memories = top.info.weight_memories
        self.memories = memories
        self.ports = [getattr(accel, f"weights_{w.layer}") for w in memories]
        m.submodules.weight_chunk = self.fifo = fifo = SyncFIFOBuffered(width=8, depth=WEIGHT_CHUNK_BYTES)
        widest = max(w.word_bytes for w in memories)
        header = WEIGHTS_HEADER.size
        self.index = Signal(range(header + 1))  # header bytes received, saturating
        self.layer = Signal(8)
        self.first = Signal(32)
        self.part = Signal(range(widest))  # bytes of the current word
        self.words = Signal(range(WEIGHT_CHUNK_BYTES + 1))
        self.overflow = Signal()
        self.addr = Signal(32)  # COMMIT: the next word's address
        self.assembly = Signal(8 * widest)
        self.loaded = [Signal(range(w.depth + 1), name=f"weights_loaded_{w.layer}") for w in memories]

        slot_of = Signal(range(len(memories) + 1))  # len(memories): no such layer
        m.d.comb += slot_of.eq(len(memories))
        for i, w in enumerate(memories):
            with m.If(self.layer == w.layer):
                m.d.comb += slot_of.eq(i)
        self.slot = slot_of
        self.word_bytes = Signal(range(widest + 1))
        self.depth = Signal(32)
        self.loaded_here = Signal(32)
        m.d.comb += self.word_bytes.eq(1)
        for i, w in enumerate(memories):
            with m.If(slot_of == i):
                m.d.comb += [self.word_bytes.eq(w.word_bytes), self.depth.eq(w.depth),
                             self.loaded_here.eq(self.loaded[i])]

        with m.If(payload_byte):
            with m.If(self.index < header):
                m.d.sync += self.index.eq(self.index + 1)
                with m.If(self.index == 0):
                    m.d.sync += self.layer.eq(byte)
                with m.Else():
                    m.d.sync += self.first.eq(Cat(self.first[8:], byte))
            with m.Else():
                m.d.comb += [fifo.w_data.eq(byte), fifo.w_en.eq(fifo.w_rdy)]
                with m.If(~fifo.w_rdy):
                    m.d.sync += self.overflow.eq(1)
                with m.If(self.part == self.word_bytes - 1):
                    m.d.sync += [self.part.eq(0), self.words.eq(self.words + 1)]
                with m.Else():
                    m.d.sync += self.part.eq(self.part + 1)

        self.whole_words = ((self.index == header) & (self.part == 0) & (self.words != 0)
                            & ~self.overflow)
        self.in_range = ((slot_of != len(memories)) & (self.first <= self.loaded_here)
                         & (self.first + self.words <= self.depth))
        self.complete = Cat(*(self.loaded[i] == w.depth for i, w in enumerate(memories))).all()

    def restart(self) -> list:
        return [self.index.eq(0), self.part.eq(0), self.words.eq(0), self.overflow.eq(0)]

    def begin_commit(self) -> list:
        return [self.addr.eq(self.first), self.part.eq(0)]

    def commit(self) -> Value:
        """COMMIT, one cycle: pop a byte, write a finished word; true once all are written."""
        m, fifo = self.m, self.fifo
        m.d.comb += fifo.r_en.eq(1)
        word = Cat(self.assembly[8:], fifo.r_data)
        finishing = fifo.r_rdy & (self.part == self.word_bytes - 1)
        with m.If(fifo.r_rdy):
            m.d.sync += self.assembly.eq(word)
            with m.If(finishing):
                m.d.sync += [self.part.eq(0), self.addr.eq(self.addr + 1)]
            with m.Else():
                m.d.sync += self.part.eq(self.part + 1)
        widest = len(self.assembly) // 8
        for i, (w, port) in enumerate(zip(self.memories, self.ports)):
            # The word's w.word_bytes bytes are the top of `word`, its first byte lowest.
            m.d.comb += [
                port.valid.eq(finishing & (self.slot == i)),
                port.payload.addr.eq(self.addr),
                port.payload.data.eq(word[8 * (widest - w.word_bytes):]),
            ]
        done = fifo.level == 0
        with m.If(done):
            for i, loaded in enumerate(self.loaded):
                with m.If((self.slot == i) & (self.first + self.words > loaded)):
                    m.d.sync += loaded.eq(self.first + self.words)
        return done

    def drain(self) -> Value:
        """Drop what a refused frame left in the chunk FIFO; true when it is empty."""
        self.m.d.comb += self.fifo.r_en.eq(1)
        return self.fifo.level == 0


def board_verilog_text(qnet: QuantNetwork, parallel: int, clk_freq_hz: float,
                       baud: int = DEFAULT_BAUD, **options) -> str:
    """``BoardTop`` as one Verilog module named ``hwgen_board`` (``BOARD_TOP_NAME``; ports
    ``clk``, ``rst``, ``uart_rx``, ``uart_tx``[, ``leds``])."""
    from .. import __version__

    top = BoardTop(qnet, parallel, clk_freq_hz, baud, **options)
    body = verilog.convert(top, name=BOARD_TOP_NAME, emit_src=False)
    return (f"// Generated by hwgen {__version__}: do not edit.\n"
            f"// board top: design hash {model_hash(qnet, parallel)}; P={parallel}, "
            f"T={qnet.timesteps}; {clk_freq_hz / 1e6:g} MHz, {baud} baud (divisor "
            f"{top.divisor}); protocol: docs/host_link.md\n") + body
