"""Weights loaded at run time (docs/hardware.md, "Loaded weights"; docs/host_link.md, WEIGHTS).

The same network with loaded weights must give the golden model's spikes and the very cycles
of its bitstream-ROM twin: in Amaranth's simulator (the generic RAM), in cocotb with the
hand-written SPRAM tiling and Yosys' SB_SPRAM256KA model, and on the simulated board, where
the host link's WEIGHTS command fills the memory (and refuses what it must).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

import hwsim
from hwgen import golden, protocol
from hwgen.cli import main
from hwgen.emit import verilog_text
from hwgen.errors import HwgenError
from hwgen.accelerator.top import NetworkTop
from hwgen.accelerator.board_top import board_info, board_verilog_text
from hwgen.hardware.memories import pack_words, spram_blocks
from hwgen.accelerator.top import packed_weights
from hwgen.host import BoardError, HostLink
from hwgen.protocol import CMD_START, CMD_WEIGHTS, WEIGHTS_HEADER, crc8
from hwgen.simulate import run_rtl, simulated_board, weight_memory_sources
from hwgen.testing import random_conv_network, random_quant_network, random_spikes

SIM_CLOCK_HZ, SIM_BAUD, SIM_DIVISOR = 12_000_000, 1_500_000, 8
REPLY_TIMEOUT = 60.0


def _unpack(rows: np.ndarray, lanes: int, bits: int) -> np.ndarray:
    """The inverse of pack_words, written the slow, obvious way."""
    out = np.zeros((len(rows), lanes), dtype=np.int64)
    for i, row in enumerate(rows):
        word = int.from_bytes(row.tobytes(), "little")
        for lane in range(lanes):
            v = (word >> (lane * bits)) & ((1 << bits) - 1)
            out[i, lane] = v - (1 << bits) if v >> (bits - 1) else v
    return out


@pytest.mark.parametrize("lanes,bits", [(1, 8), (3, 5), (8, 8), (5, 2)])
def test_packed_words_hold_every_lane(lanes, bits):
    rng = np.random.default_rng(lanes * bits)
    words = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), size=(17, lanes))
    packed = pack_words(words, bits)
    assert packed.shape == (17, -(-lanes * bits // 8))
    assert (_unpack(packed, lanes, bits) == words).all()


def test_spram_tiling_counts_blocks():
    assert spram_blocks(16384, 16) == 1
    assert spram_blocks(12544, 64) == 4  # 784-128 at P=8
    assert spram_blocks(50176, 16) == 4  # 784-128 at P=2
    assert spram_blocks(16385, 17) == 4


@pytest.mark.parametrize("build", ["dense", "conv"])
def test_loaded_weights_match_golden_and_rom_cycles(build):
    if build == "dense":
        qnet = random_quant_network([20, 13, 6], timesteps=4, seed=5)
    else:
        qnet = random_conv_network((2, 6, 5), [
            {"type": "conv", "out": 6, "kernel": 3, "stride": 1, "padding": 1},
            {"type": "conv", "out": 4, "kernel": 3, "stride": 2, "padding": 1, "groups": 2},
            {"type": "flatten"}, {"type": "dense", "out": 3}], seed=2, timesteps=3)
    x = random_spikes((3, qnet.timesteps, *qnet.input_shape), 0.3, seed=4)
    rom = hwsim.simulate_top(NetworkTop(qnet, 4), x, settle=3)
    plan = {k: "ram" for k in range(len(qnet.spiking_layers))}
    loaded = hwsim.simulate_top(NetworkTop(qnet, 4, weight_memories=plan), x, settle=3)
    want = golden.run(qnet, x)
    for g, w in zip(loaded["spikes"], want.spikes):
        assert (g == w.numpy()).all()
    assert loaded["counts"] == want.counts.tolist()
    assert loaded["cycles"] == rom["cycles"]


def test_spram_shim_in_cocotb_matches_golden_and_rom(tmp_path):
    """rtl_templates/ice40_spram.v over Yosys' SB_SPRAM256KA model (Icarus): 40 words deep
    at P = 4 is one block; the words of layer 1 are deeper than its 16-bit lanes are wide."""
    qnet = random_quant_network([40, 24, 6], timesteps=5, seed=3)
    x = random_spikes((4, 5, 40), 0.3, seed=1)
    trace = golden.run(qnet, x)
    plan = {0: "ice40_spram", 1: "ice40_spram"}
    results = {}
    for name, memories in (("rom", None), ("spram", plan)):
        where = tmp_path / name
        where.mkdir()
        (where / "hwgen_top.v").write_text(verilog_text(qnet, 4, memories))
        results[name] = run_rtl(where / "hwgen_top.v", qnet, x, trace, simulator="icarus",
                                build_dir=where / "sim",
                                weights=packed_weights(qnet, 4, memories or {}),
                                libraries=weight_memory_sources((memories or {}).values()))
    assert "SB_SPRAM256KA" not in (tmp_path / "spram" / "hwgen_top.v").read_text()
    assert results["spram"].passed, results["spram"].first_mismatch
    assert results["spram"].cycles == results["rom"].cycles


def test_weights_without_loading_are_garbage_not_golden(tmp_path):
    """The check above can fail: with the memory left unloaded the spikes differ."""
    qnet = random_quant_network([40, 24, 6], timesteps=5, seed=3)
    x = random_spikes((4, 5, 40), 0.3, seed=1)
    trace = golden.run(qnet, x)
    plan = {0: "ice40_spram"}
    (tmp_path / "hwgen_top.v").write_text(verilog_text(qnet, 4, plan))
    zeros = {k: np.zeros_like(w) for k, w in packed_weights(qnet, 4, plan).items()}
    result = run_rtl(tmp_path / "hwgen_top.v", qnet, x, trace, simulator="icarus",
                     build_dir=tmp_path / "sim", weights=zeros,
                     libraries=weight_memory_sources(plan.values()))
    assert result.mismatches > 0


# ----------------------------------------------------------------------------- the board

@pytest.fixture(scope="module")
def loaded_board(tmp_path_factory):
    root = tmp_path_factory.mktemp("loaded_board")
    qnet = random_quant_network([24, 12, 5], timesteps=5, seed=7)
    plan = {0: "ice40_spram"}
    verilog = root / "hwgen_board.v"
    verilog.write_text(board_verilog_text(qnet, 2, SIM_CLOCK_HZ, SIM_BAUD, weight_memories=plan))
    x = random_spikes((4, 5, 24), 0.4, seed=3)
    return {"root": root, "qnet": qnet, "plan": plan, "verilog": verilog, "x": x,
            "golden": golden.run(qnet, x), "words": packed_weights(qnet, 2, plan),
            "info": board_info(qnet, 2, SIM_CLOCK_HZ, SIM_BAUD, weight_memories=plan)}


def _status(link: HostLink, cmd: int, payload: bytes = b"") -> int:
    with pytest.raises(BoardError) as caught:
        link.request(cmd, payload)
    return caught.value.status


def test_weights_over_the_simulated_host_link(loaded_board):
    b = loaded_board
    words = b["words"][0]
    with simulated_board(b["verilog"], SIM_DIVISOR, simulator="icarus",
                         build_dir=b["root"] / "sim",
                         libraries=weight_memory_sources(b["plan"].values())) as sim, \
            HostLink(sim.url, baud=SIM_BAUD, timeout=REPLY_TIMEOUT) as link:
        info = link.info()
        assert info == b["info"]
        assert info.weight_memories == (protocol.WeightMemory(0, words.shape[1], len(words)),)

        link.load(b["x"][0])
        assert _status(link, CMD_START) == protocol.E_NO_WEIGHTS
        header = WEIGHTS_HEADER.pack
        # a layer without loaded weights, a chunk past the end, a gap, half a word
        assert _status(link, CMD_WEIGHTS, header(1, 0) + words[:2].tobytes()) == protocol.E_BAD_WEIGHTS
        assert _status(link, CMD_WEIGHTS, header(0, len(words) - 1) + words[:2].tobytes()) \
            == protocol.E_BAD_WEIGHTS
        assert _status(link, CMD_WEIGHTS, header(0, 3) + words[:2].tobytes()) == protocol.E_BAD_WEIGHTS
        assert _status(link, CMD_WEIGHTS, header(0, 0) + words[:2].tobytes()[:-1]) == protocol.E_LENGTH
        assert _status(link, CMD_WEIGHTS, header(0, 0)) == protocol.E_LENGTH

        # a corrupted chunk of wrong words is answered CRC and never written
        body = bytes([CMD_WEIGHTS, 0x33]) + header(0, 0) + bytes(words.size)
        link.write_raw(protocol.encode_frame(body)[:-2] + bytes([crc8(body) ^ 0x5A, protocol.END]))
        reply = link.read_frame(time.monotonic() + REPLY_TIMEOUT)
        assert protocol.parse_reply(reply)[:3] == (protocol.E_CRC, CMD_WEIGHTS, 0x33)

        sent = link.load_weights(b["words"])
        assert sent == words.size
        for i, sample in enumerate(b["x"]):
            result = link.infer(sample)
            assert list(result.counts) == b["golden"].counts[i].tolist()
            assert result.prediction == int(b["golden"].prediction[i])


# ----------------------------------------------------------------------------- generate --board

@pytest.fixture(scope="module")
def mnist_icebreaker(tmp_path_factory):
    out = tmp_path_factory.mktemp("m784") / "out"
    assert main(["generate", "hwgen.digits:mnist_mlp", "--weights",
                 str(Path(__file__).parents[1] / "hwgen" / "data" / "digits_mnist784.pt"),
                 "--input-shape", "784", "--timesteps", "25", "--parallel", "auto",
                 "--board", "icebreaker", "-o", str(out)]) == 0
    return out


def test_generate_for_icebreaker_puts_the_784x128_weights_in_spram(mnist_icebreaker):
    out = mnist_icebreaker
    options = json.loads((out / "options.json").read_text())
    report = json.loads((out / "report.json").read_text())
    plan = report["board_plan"]
    assert options["weight_memories"] == {"0": "ice40_spram"}
    chosen = next(c for c in plan["candidates"] if c["parallel"] == options["parallel"])
    assert chosen["fits"] and chosen["spram"] <= 4
    # cheapest: no fitting candidate has fewer estimated LUTs
    assert chosen["lut_estimate"] == min(c["lut_estimate"] for c in plan["candidates"] if c["fits"])
    words = np.load(out / "weights_0.npy")
    assert words.shape == (784 * (128 // options["parallel"]), options["parallel"])
    assert "hwgen_ice40_spram" in (out / "hwgen_top.v").read_text()


def test_parallel_auto_refuses_an_unreachable_latency(tmp_path, capsys):
    code = main(["generate", "hwgen.digits:mnist_mlp", "--weights",
                 str(Path(__file__).parents[1] / "hwgen" / "data" / "digits_mnist784.pt"),
                 "--input-shape", "784", "--timesteps", "25", "--parallel", "auto",
                 "--latency-us", "10", "--board", "icebreaker", "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert "no configuration of this network fits icebreaker within 10 us" in err
    assert "P=8:" in err and "P=2:" in err
    assert not (tmp_path / "out").exists()


def test_parallel_auto_needs_a_board(tmp_path, capsys):
    code = main(["generate", "hwgen.digits:digits_mlp", "--input-shape", "64",
                 "--parallel", "auto", "-o", str(tmp_path / "out")])
    assert code == 2
    assert "--parallel auto chooses P for a board: give --board too" in capsys.readouterr().err


def test_spram_design_refuses_an_ecp5_board(mnist_icebreaker, capsys):
    with pytest.raises(HwgenError, match="generated for icebreaker with weights in iCE40 SPRAM"):
        from hwgen.build import build
        build(mnist_icebreaker, "ulx3s-85f")


@pytest.mark.slow
def test_mnist_scale_network_runs_on_the_simulated_icebreaker(mnist_icebreaker, tmp_path, capsys):
    """The 784-128-10 design as built for the iCEBreaker (weights in SPRAM): `hwgen run`
    uploads its 100 kB of weights over the simulated UART, then runs rate-coded inputs; the
    readouts are the golden model's (about 2 minutes: the upload is 8 M simulated cycles)."""
    from hwgen.design import load_design

    design = load_design(mnist_icebreaker)
    baud = 3_000_000  # clock / 4, the fastest the UART takes: the upload dominates this test
    verilog = tmp_path / "hwgen_board.v"
    verilog.write_text(board_verilog_text(design.qnet, design.parallel, SIM_CLOCK_HZ, baud, leds=4,
                                          weight_memories=design.weight_memories))
    x = (np.random.default_rng(0).random((2, 25, 784)) < 0.15).astype(np.uint8)
    np.save(tmp_path / "inputs.npy", x)
    with simulated_board(verilog, 4, simulator="verilator", build_dir=tmp_path / "sim",
                         libraries=weight_memory_sources(design.weight_memories.values())) as sim:
        code = main(["run", str(mnist_icebreaker), "--port", sim.url, "--inputs",
                     str(tmp_path / "inputs.npy"), "--baud", str(baud), "--timeout", "600"])
    assert code == 0, capsys.readouterr().err
    report = json.loads((mnist_icebreaker / "run_report.json").read_text())
    assert report["mismatches"] == 0 and report["samples"] == 2
    assert report["board"]["weight_memories"][0]["depth"] == 784 * 128 // design.parallel
    assert sim.stats["bytes_to_board"] > 100_352


@pytest.mark.slow
def test_mnist_scale_network_builds_for_the_icebreaker_with_the_spram_shim(mnist_icebreaker):
    """The bitstream: Yosys takes rtl_templates/ice40_spram.v from the platform's files and
    nextpnr places its four SB_SPRAM256KA; timing is met at the board's 12 MHz (about a
    minute)."""
    from hwgen.build import build

    report = build(mnist_icebreaker, "icebreaker")
    assert report["timing_met"] and report["target_mhz"] == 12
    assert report["spram"] == 4
    assert report["bram"] <= 30 and report["lut"] <= 5280
    where = mnist_icebreaker / "build" / "icebreaker"
    assert (where / "ice40_spram.v").read_text() == (
        Path(__file__).parents[1] / "rtl_templates" / "ice40_spram.v").read_text()
    assert (mnist_icebreaker / report["bitstream"]).stat().st_size > 0
