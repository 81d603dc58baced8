"""`hwgen sim` and `hwgen demo` from the command line: reports, exit codes, bad inputs."""

import json
import re
import textwrap

import numpy as np
import pytest
from cli_helpers import copy_outputs, with_golden_thresholds_raised

from hwgen.cli import main

MODEL = textwrap.dedent("""
    import snntorch as snn
    import torch
    from torch import nn

    def net():
        torch.manual_seed(1)
        model = nn.Sequential(nn.Flatten(), nn.Linear(16, 12), snn.Leaky(beta=0.5, init_hidden=True),
                              nn.Linear(12, 4), snn.Leaky(beta=0.9, init_hidden=True, reset_mechanism="zero"))
        with torch.no_grad():  # bias the weights so that both layers fire at 30% input activity
            model[1].weight.add_(0.15)
            model[3].weight.add_(0.2)
        return model
""")


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("sim_cli")
    (root / "m.py").write_text(MODEL)
    out = root / "out"
    code = main(["generate", f"{root / 'm.py'}:net", "-o", str(out), "--input-shape", "1,4,4",
                 "--timesteps", "8", "--parallel", "5"])
    assert code == 0
    return out


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_sim_reports_zero_mismatches(generated, simulator, capsys):
    assert main(["sim", str(generated), "--samples", "4", "--simulator", simulator]) == 0
    report = json.loads((generated / "sim_report.json").read_text())
    assert report["simulator"] == simulator
    assert report["samples"] == 4 and report["timesteps"] == 8
    assert report["mismatches"] == 0 and report["first_mismatch"] is None
    assert report["spikes_compared"] == 4 * 8 * (12 + 4) + 4 * (4 + 1)
    assert report["cycles_per_inference_mean"] > 0
    coverage = report["coverage"]  # of the golden trace of the 4 samples (tests/test_sim_coverage.py)
    assert coverage["samples"] == 4 and [layer["neurons"] for layer in coverage["layers"]] == [12, 4]
    assert all(0 < layer["weight_words_read"] <= layer["weight_words"] for layer in coverage["layers"])
    printed = capsys.readouterr().out
    assert "0" in printed and "weight words read" in printed


def test_both_harnesses_give_the_same_report(generated):
    """`hwgen sim` runs the capture harness where it can (no run-time-loaded weights here);
    the per-cycle cocotb testbench reports the same, apart from the harness's name."""
    reports = {}
    for harness in ("auto", "cocotb"):
        assert main(["sim", str(generated), "--samples", "5", "--harness", harness]) == 0
        reports[harness] = json.loads((generated / "sim_report.json").read_text())
    assert reports["auto"].pop("harness") == "capture" and reports["cocotb"].pop("harness") == "cocotb"
    assert reports["auto"].pop("run")["sim_cycles"] > 0 and reports["cocotb"].pop("run")["sim_cycles"] > 0
    assert reports["auto"] == reports["cocotb"]


def test_sim_with_an_inputs_file(generated, tmp_path):
    x = (np.random.default_rng(5).random((3, 8, 1, 4, 4)) < 0.3).astype(np.uint8)
    np.save(tmp_path / "x.npy", x)
    assert main(["sim", str(generated), "--inputs", str(tmp_path / "x.npy"), "--simulator", "icarus"]) == 0
    assert json.loads((generated / "sim_report.json").read_text())["samples"] == 3


@pytest.mark.parametrize("array,message", [
    (np.zeros((3, 8, 16), np.uint8), "expected [samples, timesteps, 1, 4, 4]"),
    (np.zeros((3, 10, 1, 4, 4), np.uint8), "10 timesteps, but the hardware was generated for 8"),
    (np.zeros((3, 8, 1, 4, 4), np.float32), "dtype float32"),
    (np.full((3, 8, 1, 4, 4), 2, np.int64), "values 2..2"),
])
def test_sim_refuses_bad_input_files(generated, tmp_path, capsys, array, message):
    np.save(tmp_path / "x.npy", array)
    assert main(["sim", str(generated), "--inputs", str(tmp_path / "x.npy")]) == 2
    assert message in capsys.readouterr().err


def test_sim_accepts_samples_shorter_than_the_hardware(generated, tmp_path):
    """The input's `last` tick ends an inference: 5-step samples on 8-step hardware are checked
    against the golden model's 5 steps."""
    x = (np.random.default_rng(6).random((4, 5, 1, 4, 4)) < 0.4).astype(np.uint8)
    np.save(tmp_path / "x.npy", x)
    assert main(["sim", str(generated), "--inputs", str(tmp_path / "x.npy")]) == 0
    report = json.loads((generated / "sim_report.json").read_text())
    assert (report["samples"], report["timesteps"], report["mismatches"]) == (4, 5, 0)
    assert report["spikes_compared"] == 4 * 5 * (12 + 4) + 4 * (4 + 1)


def test_sim_samples_all(generated, tmp_path, capsys):
    x = (np.random.default_rng(7).random((7, 8, 1, 4, 4)) < 0.3).astype(np.uint8)
    np.save(tmp_path / "x.npy", x)
    assert main(["sim", str(generated), "--inputs", str(tmp_path / "x.npy"), "--samples", "all"]) == 0
    assert json.loads((generated / "sim_report.json").read_text())["samples"] == 7
    # the design was generated without --data: there is no held-out set to take all of
    assert main(["sim", str(generated), "--samples", "all"]) == 2
    assert "--samples all: OUT holds no held-out data" in capsys.readouterr().err
    assert main(["sim", str(generated), "--samples", "most"]) == 2
    assert "expected a number of samples (at least 1) or 'all', got 'most'" in capsys.readouterr().err


def test_sim_catches_a_flipped_weight_bit_in_the_verilog(generated, tmp_path, capsys):
    """One bit of one weight word of the first layer, flipped in hwgen_top.v (the fast capture
    harness runs): the sign of lane 4's weight from input 0, so the error names neuron 4 of
    layer 0."""
    broken = copy_outputs(generated, tmp_path / "broken")
    verilog = (broken / "hwgen_top.v").read_text()
    word = re.search(r"weights\[0\] = (\d+)'h([0-9a-f]+);", verilog)  # the first layer's first word
    assert word, "no first weight word in the Verilog"
    bits = int(word.group(1))
    flipped = f"{int(word.group(2), 16) ^ (1 << (bits - 1)):0{len(word.group(2))}x}"  # a lane's sign bit
    (broken / "hwgen_top.v").write_text(verilog[:word.start(2)] + flipped + verilog[word.end(2):])
    np.save(tmp_path / "x.npy", (np.random.default_rng(8).random((4, 8, 1, 4, 4)) < 0.3).astype(np.uint8))
    assert main(["sim", str(broken), "--inputs", str(tmp_path / "x.npy")]) == 1
    report = json.loads((broken / "sim_report.json").read_text())
    assert report["harness"] == "capture"
    assert (report["first_mismatch"]["layer"], report["first_mismatch"]["neuron"]) == (0, 4)
    assert re.search(r"mismatches between RTL and golden model; first: sample 0, layer 0, timestep \d+, "
                     r"neuron 4, expected 1, got 0", capsys.readouterr().err)
    # the same samples through the unbroken design pass
    assert main(["sim", str(generated), "--inputs", str(tmp_path / "x.npy")]) == 0


def test_sim_fails_and_names_the_first_mismatch(generated, tmp_path, capsys):
    # The RTL was generated from the original integers; a golden model built from altered
    # integers must disagree, and `hwgen sim` must say where.
    corrupted = with_golden_thresholds_raised(generated, tmp_path / "corrupted")
    assert main(["sim", str(corrupted), "--samples", "3", "--simulator", "icarus"]) == 1
    err = capsys.readouterr().err
    # Higher golden thresholds: the RTL fires where the golden model does not.
    assert re.fullmatch(r"hwgen: error: \d+ mismatches between RTL and golden model; first: sample \d+, "
                        r"layer 0, timestep \d+, neuron \d+, expected 0, got 1\n", err), err
    report = json.loads((corrupted / "sim_report.json").read_text())
    assert report["mismatches"] > 0 and report["first_mismatch"]["layer"] == 0


@pytest.mark.slow
def test_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0  # all 450 held-out digits
    report = json.loads((out / "sim_report.json").read_text())
    assert report["samples"] == 450 and report["mismatches"] == 0 and report["harness"] == "capture"
    assert report["accuracy_rtl"] >= 0.85
    assert abs(report["accuracy_rtl"] - report["accuracy_float"]) <= 0.02
    assert report["cycles_vs_model_max"] == 1.0  # the cost model is cycle-exact
    printed = capsys.readouterr().out
    assert "mismatches" in printed and "accuracy RTL" in printed
    # 4 of the 64 pixels never spike in the 450 held-out digits: their weights went unread
    first = report["coverage"]["layers"][0]
    assert first["weight_words_read"] * 64 == first["weight_words"] * (64 - 4) and first["low_coverage"]
    assert "low coverage" in printed


@pytest.mark.slow
def test_conv_demo_end_to_end(tmp_path):
    out = tmp_path / "demo_conv"
    assert main(["demo", "--model", "conv", "--out", str(out)]) == 0
    report = json.loads((out / "sim_report.json").read_text())
    assert report["samples"] == 450 and report["mismatches"] == 0
    assert report["accuracy_rtl"] >= 0.85
    kinds = [layer["type"] for layer in json.loads((out / "report.json").read_text())["hardware"]["layers"]]
    assert kinds == ["conv2d_lif", "max_pool2d", "flatten", "dense_lif"]


@pytest.mark.parametrize("samples", [0, -2, "most", 2.5])
def test_samples_must_be_a_positive_number_or_all(samples, tmp_path):
    """The API's check behind `--samples` (the CLI's parser refuses first): `hwgen sim` and the
    demo, which refuses before it writes OUT."""
    from hwgen.demo import run_demo
    from hwgen.errors import HwgenError
    from hwgen.pipeline import check_samples

    with pytest.raises(HwgenError, match=re.escape(f"--samples must be at least 1 or 'all', got {samples!r}")):
        check_samples(samples)
    with pytest.raises(HwgenError, match="--samples must be at least 1"):
        run_demo(tmp_path / "demo", samples, 4, "verilator", None)
    assert not (tmp_path / "demo").exists()
    check_samples("all")
    check_samples(3)
