"""The board link: UART, framing, the board top's protocol engine and ``hwgen run``.

The simulated tests run the board top's Verilog (accelerator + UART + protocol engine) under
cocotb as a serial device on a local TCP port (``hwgen.simulate.simulated_board``,
sim/tb_board.py) and talk to it with ``hwgen.host.HostLink`` through pyserial's
``socket://`` URL: the bytes on ``uart_rx`` are the ones the host code writes for a real
port, and ``hwgen run`` is run as a user would, with ``--port socket://...``.
Icarus is used for the default tests (it compiles the board top in under a second); the
digits MLP end to end is marked slow.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from hwgen import golden, host, protocol
from hwgen.cli import main
from hwgen.errors import HwgenError
from hwgen.accelerator.identity import model_hash
from hwgen.hardware.tokens import pack_token, token_layout
from hwgen.accelerator.board_top import board_info, board_verilog_text, crc8_next
from hwgen.hardware.uart import UARTReceiver, UARTTransmitter, uart_divisor
from hwgen.host import BoardError, HostLink
from hwgen.design import load_design
from hwgen.protocol import (CMD_INFO, CMD_LOAD, CMD_READ, CMD_START, END, ESC, BoardInfo,
                            FrameDecoder, FrameError, crc8, encode_frame, parse_reply,
                            sample_tokens, token_bytes, token_fields)
from hwgen.simulate import run_rtl, simulated_board
from hwgen.testing import random_conv_network

# The simulated board: 12 MHz like an iCEBreaker, a UART at clock / 8 so that a byte costs
# 80 cycles of simulation (a real board runs at 115200 baud: divisor 104).
SIM_CLOCK_HZ = 12_000_000
SIM_BAUD = 1_500_000
SIM_DIVISOR = 8
REPLY_TIMEOUT = 60.0  # wall-clock seconds: a simulated board is slow

SMALL_MODEL = textwrap.dedent("""
    import snntorch as snn
    import torch
    from torch import nn

    def small():
        # Random weights scaled up so that both layers fire and the predictions vary.
        torch.manual_seed(2)
        net = nn.Sequential(nn.Linear(20, 12), snn.Leaky(beta=0.875, init_hidden=True),
                            nn.Linear(12, 5), snn.Leaky(beta=0.875, init_hidden=True))
        with torch.no_grad():
            net[0].weight.mul_(3.0).add_(0.05)
            net[2].weight.mul_(3.0).add_(0.15)
        return net
""")


# ----------------------------------------------------------------------------- frames

def test_crc8_check_value_and_zero_residue():
    assert crc8(b"123456789") == 0xF4  # CRC-8/SMBUS check value
    for body in (b"", b"I\x01", bytes(range(256))):
        assert crc8(body + bytes([crc8(body)])) == 0


def test_frames_round_trip_with_escapes_fed_in_any_chunks():
    bodies = [bytes([CMD_LOAD, 7, END, ESC, 0xDC, 0xDD, END, END]), b"I\x01", bytes(range(256))]
    wire = b"".join(encode_frame(b) for b in bodies)
    assert wire.count(END) == 2 * len(bodies)  # no END inside a frame
    rng = random.Random(1)
    for _ in range(20):
        decoder, frames, at = FrameDecoder(), [], 0
        while at < len(wire):
            step = rng.randint(1, 7)
            frames += decoder.feed(wire[at:at + step])
            at += step
        assert [f[:-1] for f in frames] == bodies
        assert all(crc8(f) == 0 for f in frames)


def test_decoder_resynchronises_after_garbage():
    decoder = FrameDecoder()
    garbage = bytes([0x12, ESC, 0x99, 0x34, 0x00])  # no END: it becomes part of a frame
    frames = decoder.feed(garbage + encode_frame(b"\x00I\x05") + encode_frame(b"\x00R\x06"))
    assert len(frames) == 3
    with pytest.raises(FrameError):
        parse_reply(frames[0])  # the garbage, closed by the first frame's leading END
    assert parse_reply(frames[1])[:3] == (0, CMD_INFO, 5)
    assert parse_reply(frames[2])[:3] == (0, CMD_READ, 6)


def test_parse_reply_rejects_short_and_corrupt_frames():
    good = encode_frame(b"\x00S\x09payload")[1:-1]
    assert parse_reply(good) == (0, CMD_START, 9, b"payload")
    with pytest.raises(FrameError, match="CRC"):
        parse_reply(good[:4] + bytes([good[4] ^ 0x10]) + good[5:])
    with pytest.raises(FrameError, match="too short"):
        parse_reply(b"\x00S\x09")


def test_hardware_crc_matches_the_host():
    m = Module()
    crc, byte = Signal(8), Signal(8)
    out = crc8_next(m, crc, byte)
    sim = Simulator(m)
    rng = random.Random(3)
    cases = [(0, 0), (0xFF, 0xFF), *((rng.randrange(256), rng.randrange(256)) for _ in range(200))]

    async def bench(ctx):
        for c, b in cases:
            ctx.set(crc, c)
            ctx.set(byte, b)
            assert ctx.get(out) == crc8(bytes([b]), c), (c, b)

    sim.add_testbench(bench)
    sim.run()


# ----------------------------------------------------------------------------- UART

def _run_uart_rx(divisor: int, bits: list[tuple[int, int]], idle: int = 40) -> tuple[list[int], int]:
    """Drive a receiver's pin with ``bits`` = [(level, cycles), ...]; returns the bytes
    received and the number of framing errors."""
    rx = UARTReceiver(divisor)
    sim = Simulator(rx)
    sim.add_clock(1e-8)
    got, errors = [], [0]

    async def drive(ctx):
        ctx.set(rx.bytes.ready, 1)
        ctx.set(rx.rx, 1)
        await ctx.tick().repeat(5)
        for level, cycles in bits:
            ctx.set(rx.rx, level)
            await ctx.tick().repeat(cycles)
        ctx.set(rx.rx, 1)
        await ctx.tick().repeat(idle * divisor)

    async def watch(ctx):
        async for _, _, valid, payload, framing in ctx.tick().sample(
                rx.bytes.valid, rx.bytes.payload, rx.framing_error):
            if valid:
                got.append(payload)
            errors[0] += framing

    sim.add_testbench(drive)
    sim.add_testbench(watch, background=True)
    sim.run()
    return got, errors[0]


def _serial_bits(data: bytes, bit_cycles: float, stop_level: int = 1) -> list[tuple[int, int]]:
    """8N1 levels for ``data``, back to back, each bit ``bit_cycles`` long (fractional
    lengths are spread over the frame, as a transmitter with another clock would)."""
    levels = []
    for byte in data:
        levels += [0, *((byte >> i) & 1 for i in range(8)), stop_level]
    out, t = [], 0.0
    for level in levels:
        start = round(t)
        t += bit_cycles
        out.append((level, round(t) - start))
    return out


def test_uart_loopback_back_to_back():
    divisor = 5
    m = Module()
    m.submodules.tx = tx = UARTTransmitter(divisor)
    m.submodules.rx = rx = UARTReceiver(divisor)
    m.d.comb += rx.rx.eq(tx.tx)
    data = bytes(random.Random(5).randrange(256) for _ in range(24)) + bytes([0, 0xFF, END])
    sim = Simulator(m)
    sim.add_clock(1e-8)
    got = []

    async def send(ctx):
        ctx.set(rx.bytes.ready, 1)
        for byte in data:
            ctx.set(tx.bytes.payload, byte)
            ctx.set(tx.bytes.valid, 1)
            await ctx.tick().until(tx.bytes.ready)
        ctx.set(tx.bytes.valid, 0)
        await ctx.tick().repeat(20 * divisor)

    async def watch(ctx):
        async for _, _, valid, payload in ctx.tick().sample(rx.bytes.valid, rx.bytes.payload):
            if valid:
                got.append(payload)

    sim.add_testbench(send)
    sim.add_testbench(watch, background=True)
    sim.run()
    assert bytes(got) == data


@pytest.mark.parametrize("rate", [0.97, 1.0, 1.03])
def test_uart_receiver_tolerates_a_transmitter_3_percent_off(rate):
    divisor = 16
    data = bytes(random.Random(7).randrange(256) for _ in range(16)) + b"\x00\xff\x55"
    got, errors = _run_uart_rx(divisor, _serial_bits(data, divisor * rate))
    assert bytes(got) == data and errors == 0


def test_uart_framing_error_drops_the_byte_and_recovers():
    divisor = 8
    bits = (_serial_bits(b"\x5a", divisor) + _serial_bits(b"\x33", divisor, stop_level=0)
            + [(0, 3 * divisor), (1, 2 * divisor)]  # the line stays low a while (a break)
            + _serial_bits(b"\xa5", divisor))
    got, errors = _run_uart_rx(divisor, bits)
    assert got == [0x5A, 0xA5] and errors == 1


def test_uart_divisor_refuses_rates_the_clock_cannot_make():
    assert uart_divisor(12_000_000, 115200) == 104
    assert uart_divisor(48_000_000, 115200) == 417
    with pytest.raises(ValueError, match="too slow"):
        uart_divisor(1_000_000, 400_000)
    with pytest.raises(ValueError, match="within 2%"):
        uart_divisor(10_000_000, 2_200_000)  # divisor 5 gives 2 Mbaud, 9 % off


# ----------------------------------------------------------------------------- payloads

def test_sample_tokens_match_the_hardware_packing():
    rng = np.random.default_rng(4)
    for shape, bits in (((20,), 1), ((2, 3, 5), 3), ((1, 8, 8), 1)):
        timesteps = 4
        info = BoardInfo(1, "0123456789abcdef", shape, 5, timesteps, 2, bits, 3,
                         token_bytes(shape, bits), 1000, SIM_CLOCK_HZ, SIM_BAUD)
        x = rng.integers(0, 1 << bits, size=(timesteps, *shape)) * (rng.random((timesteps, *shape)) < 0.3)
        stream = shape if len(shape) == 3 else int(np.prod(shape))
        value_bits = bits if bits > 1 else 0
        expected = []
        for t in range(timesteps):
            for i in np.flatnonzero(x[t]).tolist():
                value = int(x[t].reshape(-1)[i]) if value_bits else 0
                expected.append(pack_token(stream, addr=i, value=value, value_bits=value_bits))
            expected.append(pack_token(stream, tick=True, last=t == timesteps - 1,
                                       value_bits=value_bits))
        assert sample_tokens(x, info).tolist() == expected
        assert len(protocol.encode_sample(x, info)) == len(expected) * info.token_bytes
    with pytest.raises(HwgenError, match=r"must be \[4, 20\]"):
        sample_tokens(np.zeros((5, 20), dtype=np.uint8), BoardInfo(
            1, "00" * 8, (20,), 5, 4, 2, 1, 3, 1, 100, 1, 1))


def test_board_info_round_trip_and_the_board_top_agrees_on_token_bytes():
    qnet = random_conv_network((2, 5, 6), [{"type": "conv", "out": 3, "kernel": 3},
                                           {"type": "dense", "out": 4}], input_bits=3)
    info = board_info(qnet, 2, SIM_CLOCK_HZ, SIM_BAUD)
    assert info.input_shape == (2, 5, 6) and info.input_bits == 3 and info.output_size == 4
    assert token_layout((2, 5, 6), 3).size == token_fields((2, 5, 6), 3)[1] == 12
    assert info.token_bytes == token_bytes((2, 5, 6), 3) == 2
    assert info.design_hash == model_hash(qnet, 2)
    assert BoardInfo.unpack(info.pack()) == info
    with pytest.raises(HwgenError, match="protocol version 9"):
        BoardInfo.unpack(bytes([9]) + info.pack()[1:])
    with pytest.raises(ValueError, match="cannot even hold"):
        board_info(qnet, 2, SIM_CLOCK_HZ, SIM_BAUD, buffer_depth=qnet.timesteps - 1)
    with pytest.raises(ValueError, match="within 2%"):
        board_info(qnet, 2, SIM_CLOCK_HZ, 1_300_000)


def test_the_host_module_imports_neither_torch_nor_amaranth():
    code = ("import hwgen.host, hwgen.protocol, sys; "
            "assert 'torch' not in sys.modules, 'torch'; "
            "assert 'amaranth' not in sys.modules, 'amaranth'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent.parent)


# ----------------------------------------------------------------------------- the link, no board

class Silent:
    """A serial-like object that never answers."""

    def __init__(self):
        self.written = b""

    def write(self, data):
        self.written += data
        return len(data)

    def read(self, n):
        time.sleep(0.005)
        return b""


def test_a_port_that_does_not_exist_is_named_with_the_available_ones():
    with pytest.raises(HwgenError, match=r"cannot open serial port '/dev/nonexistent-hwgen'.*"
                                         r"available ports: "):
        HostLink("/dev/nonexistent-hwgen")


def test_no_reply_times_out_after_the_retries():
    port = Silent()
    link = HostLink(port, timeout=0.05, retries=1)
    started = time.monotonic()
    with pytest.raises(HwgenError, match=r"no reply from the board .* to INFO .* 2 attempts"):
        link.info()
    assert time.monotonic() - started < 2
    assert FrameDecoder().feed(port.written)[0][:1] == bytes([CMD_INFO])
    assert len(FrameDecoder().feed(port.written)) == 2


# ----------------------------------------------------------------------------- simulated board

@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A small generated design (20-12-5, T = 6, P = 2), 12 input samples, its board top."""
    root = tmp_path_factory.mktemp("host_link")
    models = root / "models.py"
    models.write_text(SMALL_MODEL)
    out = root / "out"
    assert main(["generate", f"{models}:small", "-o", str(out), "--timesteps", "6",
                 "--parallel", "2"]) == 0
    x = (np.random.default_rng(0).random((12, 6, 20)) < 0.4).astype(np.uint8)
    inputs = root / "inputs.npy"
    np.save(inputs, x)
    design = load_design(out)
    verilog = root / "hwgen_board.v"
    verilog.write_text(board_verilog_text(design.qnet, design.parallel, SIM_CLOCK_HZ, SIM_BAUD,
                                          leds=4))
    assert uart_divisor(SIM_CLOCK_HZ, SIM_BAUD) == SIM_DIVISOR
    info = board_info(design.qnet, design.parallel, SIM_CLOCK_HZ, SIM_BAUD)
    return SimpleNamespace(root=root, out=out, x=x, inputs=inputs, design=design,
                           verilog=verilog, info=info, golden=golden.run(design.qnet, x))


@pytest.fixture
def board(small):
    """A freshly reset simulated board (the Icarus build is reused from test to test)."""
    with simulated_board(small.verilog, SIM_DIVISOR, simulator="icarus",
                         build_dir=small.root / "board_sim") as sim:
        yield sim
    assert sim.stats["framing_errors"] == 0


def _expect_status(link: HostLink, status: int, cmd: int, payload: bytes = b""):
    with pytest.raises(BoardError) as caught:
        link.request(cmd, payload)
    assert caught.value.status == status, str(caught.value)


def test_protocol_and_its_errors_on_the_simulated_board(small, board):
    with HostLink(board.url, baud=SIM_BAUD, timeout=REPLY_TIMEOUT) as link:
        info = link.info()
        assert info == small.info
        assert info.design_hash == json.loads((small.out / "report.json").read_text())["design_hash"]

        # nothing loaded, nothing run yet
        _expect_status(link, protocol.E_NO_RESULT, CMD_READ)
        _expect_status(link, protocol.E_NO_SAMPLE, CMD_START)
        # unknown command, a payload where none belongs
        _expect_status(link, protocol.E_UNKNOWN, ord("X"))
        _expect_status(link, protocol.E_LENGTH, CMD_INFO, b"\x00")

        # a corrupted request: the board answers CRC, echoing command and sequence number
        body = bytes([CMD_INFO, 0x55])
        bad_crc = crc8(body) ^ 0x01
        assert bad_crc not in (END, ESC)
        link.write_raw(bytes([END]) + body + bytes([bad_crc, END]))
        reply = link.read_frame(time.monotonic() + REPLY_TIMEOUT)
        assert parse_reply(reply)[:3] == (protocol.E_CRC, CMD_INFO, 0x55)
        # a frame too short to hold command, sequence number and CRC
        link.write_raw(bytes([END, CMD_INFO, END]))
        reply = link.read_frame(time.monotonic() + REPLY_TIMEOUT)
        assert parse_reply(reply)[0] == protocol.E_LENGTH

        # garbage on the line, with and without an END in it: the next request still works
        link.write_raw(bytes([0x12, 0x34, END, 0x56, ESC, 0x77]))
        assert BoardInfo.unpack(link.request(CMD_INFO)) == info

        # LOADs the board must refuse, each leaving no sample loaded
        tokens = sample_tokens(small.x[0], info).tolist()
        address_bits, payload_bits = token_fields(info.input_shape, info.input_bits)
        tick = 1 << address_bits
        spike = tokens.index(next(t for t in tokens if not t & tick))

        def load(tokens_):
            return link.request(CMD_LOAD, bytes(tokens_))

        refused = {
            "too big": ([tick] * (info.buffer_depth + 1), protocol.E_TOO_BIG),
            "a tick short": (tokens[:-1], protocol.E_BAD_SAMPLE),
            "a spike after the last tick": (tokens + [1], protocol.E_BAD_SAMPLE),
            "an address past the input": (tokens[:spike] + [25] + tokens[spike + 1:],
                                          protocol.E_BAD_SAMPLE),
            "a bit above the token": (tokens[:spike] + [tokens[spike] | 1 << payload_bits]
                                      + tokens[spike + 1:], protocol.E_BAD_SAMPLE),
        }
        for what, (bad, status) in refused.items():
            with pytest.raises(BoardError) as caught:
                load(bad)
            assert caught.value.status == status, what
            _expect_status(link, protocol.E_NO_SAMPLE, CMD_START)

        # the board sets `last` on the T-th tick itself
        unmarked = tokens[:-1] + [tokens[-1] & ~(tick << 1)]
        assert unmarked != tokens
        load(unmarked)
        first = link.start()
        assert first.prediction == int(small.golden.prediction[0])
        assert list(first.counts) == small.golden.counts[0].tolist()
        assert link.read_result() == first

        # and a sample through the host encoding, then READ_RESULT again
        second = link.infer(small.x[1])
        assert list(second.counts) == small.golden.counts[1].tolist()
        assert link.read_result() == second
        # a START repeats the loaded sample's inference exactly
        assert link.start() == second


class CorruptNextWrite:
    """Passes a pyserial port through, flipping a bit of the first payload byte of the next
    frame written (a token of the small design: below 0x80, so never escaped)."""

    def __init__(self, port):
        self.port, self.armed, self.name = port, False, port.name

    def write(self, data):
        if self.armed:
            self.armed = False
            data = bytearray(data)  # END, cmd, seq, payload..., crc, END
            assert data[3] < 0x80
            data[3] ^= 0x01
        return self.port.write(bytes(data))

    def read(self, n):
        return self.port.read(n)

    @property
    def in_waiting(self):
        return self.port.in_waiting

    def reset_input_buffer(self):
        self.port.reset_input_buffer()


def test_a_request_garbled_on_the_way_is_sent_again(small, board):
    port = host.open_port(board.url, SIM_BAUD)
    try:
        wrapped = CorruptNextWrite(port)
        link = HostLink(wrapped, baud=SIM_BAUD, timeout=REPLY_TIMEOUT)
        link.info()
        wrapped.armed = True  # the board sees a bad CRC, answers so, the host resends
        result = link.infer(small.x[2])
        assert list(result.counts) == small.golden.counts[2].tolist()
        assert not wrapped.armed
    finally:
        port.close()


def test_hwgen_run_matches_the_golden_model_on_the_simulated_board(small, board, capsys):
    code = main(["run", str(small.out), "--port", board.url, "--inputs", str(small.inputs),
                 "--baud", str(SIM_BAUD), "--timeout", str(REPLY_TIMEOUT)])
    assert code == 0, capsys.readouterr().err
    report = json.loads((small.out / "run_report.json").read_text())
    assert report["samples"] == len(small.x) >= 10
    assert report["mismatches"] == 0
    assert report["predictions"] == small.golden.prediction.tolist()
    assert report["counts"] == small.golden.counts.tolist()
    assert len(set(report["predictions"])) > 1  # the test would notice a stuck readout
    assert report["design_hash"] == report["board"]["design_hash"]
    # The board replays the buffer at one token per cycle: the accelerator takes exactly the
    # cycles it takes under `hwgen sim`'s testbench, which offers tokens back to back.
    rtl = run_rtl(small.out / "hwgen_top.v", small.design.qnet, small.x, small.golden,
                  simulator="icarus", build_dir=small.root / "rtl_sim")
    assert rtl.mismatches == 0
    assert report["cycles"] == rtl.cycles


def test_hwgen_run_exits_non_zero_on_a_mismatch(small, board, capsys, monkeypatch):
    import hwgen.run

    honest = hwgen.run.run_samples

    def one_count_off(link, x, progress):
        results = honest(link, x[:3], progress)
        r = results[1]
        results[1] = protocol.Result(r.prediction, (r.counts[0] + 1, *r.counts[1:]), r.cycles)
        return results

    monkeypatch.setattr(hwgen.run, "run_samples", one_count_off)
    inputs = small.root / "three.npy"
    np.save(inputs, small.x[:3])
    code = main(["run", str(small.out), "--port", board.url, "--inputs", str(inputs),
                 "--timeout", str(REPLY_TIMEOUT)])
    err = capsys.readouterr().err
    assert code == 1
    assert "1 mismatches between the board and the golden model; first: sample 1, count of " \
           "neuron 0" in err
    assert json.loads((small.out / "run_report.json").read_text())["mismatches"] == 1


def test_hwgen_run_refuses_a_board_that_runs_another_design(small, board, capsys, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(small.out, other)
    (other / "run_report.json").unlink(missing_ok=True)
    (other / "options.json").write_text(json.dumps({"parallel": 1}) + "\n")  # another hash
    code = main(["run", str(other), "--port", board.url, "--inputs", str(small.inputs),
                 "--timeout", str(REPLY_TIMEOUT)])
    err = capsys.readouterr().err
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("hwgen: error: the board on socket://"), err
    assert f"runs design {small.info.design_hash}, but {other} is design" in err
    assert not (other / "run_report.json").exists()


def test_hwgen_run_on_a_bad_port_names_it(small, capsys):
    code = main(["run", str(small.out), "--port", "/dev/nonexistent-hwgen", "--inputs",
                 str(small.inputs)])
    err = capsys.readouterr().err
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "cannot open serial port '/dev/nonexistent-hwgen'" in err
    assert "available ports:" in err


@pytest.mark.slow
def test_digits_mlp_on_the_simulated_board(tmp_path, capsys):
    """The demo's 64-64-10 MLP (P = 4, T = 16): 12 held-out digits through `hwgen run`."""
    from hwgen import digits

    split = digits.load_split()
    data = tmp_path / "heldout.npz"
    np.savez(data, x=split.test_x[:64], y=split.test_y[:64])
    inputs = tmp_path / "digits.npy"
    np.save(inputs, split.test_x[:12])
    out = tmp_path / "out"
    assert main(["generate", digits.MODEL_SPEC, "--weights", str(digits.CHECKPOINT), "-o",
                 str(out), "--data", str(data), "--parallel", "4"]) == 0
    design = load_design(out)
    verilog = tmp_path / "hwgen_board.v"
    verilog.write_text(board_verilog_text(design.qnet, design.parallel, SIM_CLOCK_HZ, SIM_BAUD,
                                          leds=4))
    with simulated_board(verilog, SIM_DIVISOR, simulator="icarus",
                         build_dir=tmp_path / "board_sim") as sim:
        code = main(["run", str(out), "--port", sim.url, "--inputs", str(inputs),
                     "--timeout", str(REPLY_TIMEOUT)])
    assert code == 0, capsys.readouterr().err
    report = json.loads((out / "run_report.json").read_text())
    trace = golden.run(design.qnet, split.test_x[:12])
    assert report["samples"] == 12 and report["mismatches"] == 0
    assert report["predictions"] == trace.prediction.tolist()
    assert report["counts"] == trace.counts.tolist()
