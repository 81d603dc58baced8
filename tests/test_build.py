"""`hwgen build` and `hwgen flash`: boards, the fit check before synthesis, openFPGALoader,
and (slow) real bitstreams with the YoWASP toolchain.

The slow builds are the acceptance runs of the board issue: the digits MLP for the
iCEBreaker, the ULX3S 85F and the OrangeCrab 25F with timing met at the board clock, the
digits conv model for an ECP5 board, the NIR paper's CNN on ECP5 (and its iCE40UP5K
verdict), and the Tang Nano 9K with the open Gowin flow. Each prints its numbers
(pytest -s) and they are in each OUT/build/<board>/build_report.json.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from hwgen.boards import BOARDS, get_board
from hwgen import digits
from hwgen.accelerator.board_top import board_top_memories
from hwgen.build import NAME, check_fit
from hwgen.cli import main
from hwgen.devices import board_fit
from hwgen.errors import HwgenError
from hwgen.flash import openfpgaloader
from hwgen.design import load_design
from hwgen.pipeline import GenerateOptions, generate
from hwgen.quantize import QuantOptions

CNN = Path(__file__).parent / "fixtures" / "cnn_sinabs.nir"


def _digits(name: str, out: Path) -> Path:
    """The demo's digits model, generated as `hwgen demo` does (calibration only)."""
    spec = digits.MODELS[name]
    split = digits.load_split(input_shape=spec.input_shape)
    with tempfile.TemporaryDirectory() as tmp:
        calibration = Path(tmp) / "calibration.npz"
        np.savez(calibration, x=split.train_x[:256])
        opts = GenerateOptions(weights=str(spec.checkpoint), input_shape=spec.input_shape, parallel=4,
                               calibration=str(calibration),
                               quant=QuantOptions(weight_bits=8, timesteps=digits.TIMESTEPS))
        generate(spec.factory, out, opts)
    return out


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    return _digits("mlp", tmp_path_factory.mktemp("mlp") / "out")


@pytest.fixture(scope="module")
def conv(tmp_path_factory):
    return _digits("conv", tmp_path_factory.mktemp("conv") / "out")


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    out = tmp_path_factory.mktemp("cnn") / "out"
    assert main(["generate", str(CNN), "-o", str(out), "--timesteps", "10", "--parallel", "8"]) == 0
    return out


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("hwgen: error: "), err
    return lines[0]


# ---- boards


def test_every_board_names_its_facts():
    for name, cls in BOARDS.items():
        board = cls()
        facts = board.describe()
        assert facts["board"] == name
        assert facts["clock"].endswith("MHz") and board.clock_hz > 0
        assert "rx " in facts["uart"] and "tx " in facts["uart"] and "None" not in facts["uart"]
        assert facts["leds"] >= 2
        assert facts["lut"] > 0 and facts["dsp"] > 0 and "kbit" in facts["memory"]
        assert set(board.tool_paths()) >= {"yosys"}  # every tool is installed
    assert get_board("icebreaker")().describe()["memory"] == "30 EBR x 4 kbit, 4 SPRAM x 256 kbit"
    assert get_board("icebreaker")().clock_hz == 12e6


def test_openfpgaloader_knows_every_board_name():
    listing = subprocess.run([openfpgaloader(), "--list-boards"], capture_output=True, text=True).stdout
    known = {line.split()[0] for line in listing.splitlines() if line.strip()}
    for cls in BOARDS.values():
        assert cls.facts.openfpgaloader in known, cls.facts.openfpgaloader


def test_a_bad_board_name_lists_the_known_ones(mlp, capsys):
    with pytest.raises(HwgenError, match="unknown board 'icebreakr'; known boards: icebreaker, "):
        get_board("icebreakr")
    for command in (["build", str(mlp), "--board", "nope"], ["flash", str(mlp), "--board", "nope"]):
        assert main(command) == 2
        line = _one_error_line(capsys.readouterr().err)
        assert "unknown board 'nope'" in line and "ulx3s-85f" in line and "boards/README.md" in line
    assert not (mlp / "build").exists()


# ---- the fit check, before any tool runs


def test_the_cnn_does_not_fit_the_icebreaker_and_says_why(cnn, capsys):
    assert main(["build", str(cnn), "--board", "icebreaker"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    design = load_design(cnn)
    verdict = board_fit(design.qnet, 8, "ice40up5k", board_top_memories(design.qnet))
    assert verdict.blocks_needed > 30
    # the resource, needed vs available, and the options
    assert (f"block RAM (EBR, 4 kbit each): needs {verdict.blocks_needed}, iCEBreaker v1.0 (iCE40UP5K-SG48) "
            "has 30") in line
    assert "LUT4s: needs about " in line and "(estimate), iCEBreaker" in line
    assert "--weight-bits" in line and "--parallel" in line
    assert "a bigger board (" in line and "ulx3s-85f" in line
    assert not (cnn / "build").exists()  # stopped before synthesis


def test_weights_that_fit_only_in_spram_point_to_generate_for_the_board(tmp_path):
    """784-128-10 at P=4 generated without --board: 800 kbit of weights in ROM need 196 EBR.
    Planned into SPRAM (loaded over the host link) it fits; the refusal says how."""
    from hwgen.testing import random_quant_network

    qnet = random_quant_network([784, 128, 10], weight_bits=8, state_bits=12)
    verdict = board_fit(qnet, 4, "ice40up5k")
    assert not verdict.fits and verdict.spram_would_help
    assert all(p["placed_in"] != "SPRAM" for p in verdict.placement)
    planned = board_fit(qnet, 4, "ice40up5k", weight_memories={0: "ice40_spram"})
    assert planned.spram_needed == 4 and planned.blocks_needed <= 30
    assert [p["placed_in"] for p in planned.placement if p["role"].startswith("weights (loaded")] == ["SPRAM"]

    class Design:
        pass

    design = Design()
    design.qnet, design.parallel, design.weight_memories = qnet, 4, {}
    with pytest.raises(HwgenError) as exc:
        check_fit(design, get_board("icebreaker"))
    text = str(exc.value)
    assert "SPRAM" in text and "loaded over the host link" in text and "--board icebreaker" in text


def test_fit_estimate_places_memories_as_yosys_does(mlp):
    design = load_design(mlp)
    verdict = board_fit(design.qnet, design.parallel, "ice40up5k")
    places = {(p["layer"], p["role"]): p["placed_in"] for p in verdict.placement}
    assert places["0", "weights"] == "EBR" and places["0", "membranes"] == "EBR"
    assert places["2", "membranes"] == "logic"  # 3 words: cheaper in flip-flops
    assert not any(p["placed_in"] == "SPRAM" for p in verdict.placement)
    ecp5 = board_fit(design.qnet, design.parallel, "ecp5-25f")
    assert {p["placed_in"] for p in ecp5.placement} <= {"DP16KD", "LUT RAM", "logic"}
    assert ecp5.fits and ecp5.lut < ecp5.lut_available


def test_the_board_top_memories_count_in_the_fit(mlp):
    design = load_design(mlp)
    extra = board_top_memories(design.qnet)
    if extra:  # the host-link board top: its sample buffer and UART FIFO take block RAM too
        assert {m.role for m in extra} == {"sample buffer", "uart rx fifo"}
        with_top = board_fit(design.qnet, design.parallel, "ice40up5k", extra)
        assert with_top.blocks_needed > board_fit(design.qnet, design.parallel, "ice40up5k").blocks_needed


# ---- flash


def _fake_bitstream(out: Path, board: str) -> Path:
    cls = get_board(board)
    path = out / "build" / board / f"{NAME}.{cls.facts.bitstream}"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\xff" * 64)
    return path


def test_flash_dry_run_prints_the_exact_command(tmp_path, capsys):
    bitstream = _fake_bitstream(tmp_path, "ulx3s-85f")
    assert main(["flash", str(tmp_path), "--board", "ulx3s-85f", "--dry-run"]) == 0
    out = capsys.readouterr().out.strip()
    assert out == f"{openfpgaloader()} -b ulx3s {bitstream}"


def test_flash_without_a_board_attached_fails_with_the_tools_message(tmp_path, capsys):
    _fake_bitstream(tmp_path, "icebreaker")
    assert main(["flash", str(tmp_path), "--board", "icebreaker"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "openFPGALoader -b ice40_generic failed (exit status 1)" in line
    assert "unable to open ftdi device" in line
    # the tool's own detection says the same
    detect = subprocess.run([openfpgaloader(), "--detect"], capture_output=True, text=True)
    assert detect.returncode != 0 and "unable to open ftdi device" in detect.stdout + detect.stderr


def test_flash_without_a_bitstream_says_to_build(tmp_path, capsys):
    assert main(["flash", str(tmp_path), "--board", "orangecrab-25f", "--dry-run"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "no bitstream for orangecrab-25f" in line and f"hwgen build {tmp_path} --board orangecrab-25f" in line


def test_build_of_a_folder_that_is_not_an_hwgen_output(tmp_path, capsys):
    assert main(["build", str(tmp_path), "--board", "icebreaker"]) == 2
    assert "not an hwgen output folder" in _one_error_line(capsys.readouterr().err)


def test_a_failing_tool_is_named_with_its_own_error_lines(tmp_path):
    from hwgen.build import _run

    (tmp_path / f"{NAME}.rpt").write_text("1. Executing ...\nERROR: Assert `x' failed in rtlil.cc\n")
    with pytest.raises(HwgenError) as exc:  # yosys runs quiet: its error is in its .rpt log
        _run("yosys", ["sh", "-c", "exit 1"], tmp_path, {}, tmp_path / "yosys.log")
    text = str(exc.value)
    assert "yosys (synthesis) failed with exit status 1: ERROR: Assert `x' failed in rtlil.cc" in text
    assert f"{NAME}.rpt" in text


# ---- real builds (YoWASP Yosys + nextpnr + packer)


def _build(out: Path, board: str, capsys) -> dict:
    code = main(["build", str(out), "--board", board])
    captured = capsys.readouterr()
    where = out / "build" / board
    assert (where / "build_report.json").is_file(), captured.err
    report = json.loads((where / "build_report.json").read_text())
    with capsys.disabled():
        est = report["estimate_vs_actual"]
        print(f"\n{out.parent.name} on {board}: {report['lut']} LUT (est {est['lut']['estimate']}), "
              f"{report['ff']} FF (est {est['ff']['estimate']}), {report['bram']} BRAM "
              f"(est {est['bram']['estimate']}), {report['spram']} SPRAM, {report['dsp']} DSP; Fmax "
              f"{report['fmax_mhz']} MHz / {report['target_mhz']:g}; {report['seconds']} s")
    assert code == (0 if report["timing_met"] else 1), captured.err
    for key in ("board", "device", "lut", "ff", "bram", "spram", "dsp", "fmax_mhz", "target_mhz",
                "timing_met", "bitstream", "seconds"):
        assert key in report
    bitstream = out / report["bitstream"]
    assert bitstream.is_file() and bitstream.stat().st_size > 1000
    for log in (f"{NAME}.rpt", f"{NAME}.tim", "yosys.log"):
        assert (where / log).is_file()
    # every memory the estimate put in block RAM is block RAM in the bitstream
    assert report["bram"] >= report["estimate"]["blocks_needed"] * 0.8
    return report


@pytest.mark.slow
@pytest.mark.parametrize("board", ["icebreaker", "ulx3s-85f", "orangecrab-25f"])
def test_digits_mlp_builds_with_timing_met(mlp, board, capsys):
    report = _build(mlp, board, capsys)
    assert report["timing_met"] and report["fmax_mhz"] >= report["target_mhz"]
    assert report["spram"] == 0
    flashed = main(["flash", str(mlp), "--board", board, "--dry-run"])
    assert flashed == 0 and str(mlp / report["bitstream"]) in capsys.readouterr().out


@pytest.mark.slow
def test_digits_conv_builds_for_ecp5(conv, capsys):
    report = _build(conv, "ulx3s-85f", capsys)
    assert report["timing_met"]


@pytest.mark.slow
def test_nir_cnn_builds_for_ecp5(cnn, capsys):
    report = _build(cnn, "orangecrab-25f", capsys)  # the smaller ECP5 is enough
    assert report["timing_met"]
    assert report["bram"] >= 30  # its memories went to DP16KD, not LUTs
    assert not report["warnings"]


@pytest.mark.slow
def test_tang_nano_9k_builds_with_the_open_gowin_flow(mlp, capsys):
    """Yosys synth_gowin, nextpnr-himbaechel (in place of the legacy nextpnr-gowin that
    Amaranth 0.5 calls) and Apicula's gowin_pack: the best-effort board builds too."""
    report = _build(mlp, "tangnano9k", capsys)
    assert report["timing_met"] and report["device"] == "GW1NR-9"
    assert report["bitstream"].endswith(".fs")
