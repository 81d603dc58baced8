"""`hwgen generate` end to end on the CLI: outputs, determinism, and every bad-input path.

Each bad input must give one line naming the cause, exit status 2, and no OUT folder.
"""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from hwgen import digits

from cli_helpers import assert_clean_failure, run_cli

TINY_MODEL = textwrap.dedent("""
    import snntorch as snn
    import torch
    from torch import nn

    def tiny():
        torch.manual_seed(0)  # a "trained" model: the same weights every time it is built
        return nn.Sequential(nn.Linear(6, 5), snn.Leaky(beta=0.75, init_hidden=True),
                             nn.Linear(5, 3), snn.Leaky(beta=0.75, init_hidden=True))

    def conv_only():
        return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), snn.Leaky(beta=0.75, init_hidden=True))

    def with_relu():
        return nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3),
                             snn.Leaky(beta=0.75, init_hidden=True))
""")


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "models.py"
    path.write_text(TINY_MODEL)
    return path


def test_generate_writes_every_artefact(model_file, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = run_cli(["generate", f"{model_file}:tiny", "-o", out, "--timesteps", "6", "--parallel", "2"], capsys)
    assert code == 0, err
    for name in ("hwgen_top.v", "model.json", "float_model.json", "report.md", "report.json"):
        assert (out / name).is_file(), name
    verilog = (out / "hwgen_top.v").read_text()
    assert "module hwgen_top(" in verilog
    assert str(tmp_path) not in verilog  # no absolute paths: output must not depend on where it ran


def test_same_model_and_options_give_byte_identical_verilog(model_file, tmp_path, capsys):
    args = [f"{model_file}:tiny", "--timesteps", "6", "--parallel", "3"]
    assert run_cli(["generate", *args, "-o", tmp_path / "a"], capsys)[0] == 0
    assert run_cli(["generate", *args, "-o", tmp_path / "b"], capsys)[0] == 0
    assert (tmp_path / "a/hwgen_top.v").read_bytes() == (tmp_path / "b/hwgen_top.v").read_bytes()
    assert (tmp_path / "a/model.json").read_bytes() == (tmp_path / "b/model.json").read_bytes()


def test_missing_model_file(tmp_path, capsys):
    out = tmp_path / "out"
    code, err = run_cli(["generate", tmp_path / "nope.pt", "-o", out], capsys)
    assert_clean_failure(code, err, out, "nope.pt")


def test_a_file_that_is_not_a_model(tmp_path, capsys):
    junk = tmp_path / "notes.pt"
    junk.write_text("this is not a torch file\n")
    out = tmp_path / "out"
    code, err = run_cli(["generate", junk, "-o", out], capsys)
    assert_clean_failure(code, err, out, "notes.pt")


def test_unsupported_layer_is_named_with_the_supported_list(model_file, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = run_cli(["generate", f"{model_file}:with_relu", "-o", out], capsys)
    assert_clean_failure(code, err, out, "ReLU", "Linear", "Leaky")


def test_a_network_without_a_classifier_layer_is_refused(model_file, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = run_cli(["generate", f"{model_file}:conv_only", "-o", out, "--input-shape", "1,20,20"], capsys)
    assert_clean_failure(code, err, out, "layer '0' is the last layer and has 3200 neurons", "classifier layer")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights(tmp_path, capsys, bad):
    state = torch.load(digits.CHECKPOINT, weights_only=True)
    state["2.weight"][3, 7] = bad
    weights = tmp_path / "bad.pt"
    torch.save(state, weights)
    out = tmp_path / "out"
    code, err = run_cli(["generate", digits.MODEL_SPEC, "--weights", weights, "-o", out], capsys)
    assert_clean_failure(code, err, out, "layer '2'", "'weight'", "NaN/inf")


@pytest.mark.parametrize("option,value,message", [
    ("--weight-bits", "0", "--weight-bits must be between 2 and 16, got 0"),
    ("--weight-bits", "17", "--weight-bits must be between 2 and 16, got 17"),
    ("--parallel", "0", "--parallel must be a whole number of at least 1, or auto; got 0"),
    ("--timesteps", "0", "--timesteps must be between 1 and 65535, got 0"),
])
def test_out_of_range_options(model_file, tmp_path, capsys, option, value, message):
    out = tmp_path / "out"
    code, err = run_cli(["generate", f"{model_file}:tiny", "-o", out, option, value], capsys)
    assert_clean_failure(code, err, out, message)


def test_a_failed_generate_keeps_the_previous_output(model_file, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_cli(["generate", f"{model_file}:tiny", "-o", out, "--timesteps", "4"], capsys)[0] == 0
    before = (out / "hwgen_top.v").read_bytes()
    code, _ = run_cli(["generate", f"{model_file}:tiny", "-o", out, "--weight-bits", "0"], capsys)
    assert code == 2
    assert (out / "hwgen_top.v").read_bytes() == before


def test_data_file_with_the_wrong_shape(model_file, tmp_path, capsys):
    data = tmp_path / "data.npz"
    np.savez(data, x=np.zeros((3, 4, 7), dtype=np.uint8))
    out = tmp_path / "out"
    code, err = run_cli(["generate", f"{model_file}:tiny", "-o", out, "--data", data], capsys)
    assert_clean_failure(code, err, out, "data.npz", "[3, 4, 7]", "[samples, timesteps, 6]")


def test_timesteps_that_disagree_with_the_data_are_refused(model_file, tmp_path, capsys):
    """--data sets T; an explicit --timesteps that differs is a contradiction, not a default."""
    data = tmp_path / "data.npz"
    np.savez(data, x=np.zeros((3, 4, 6), dtype=np.uint8))
    out = tmp_path / "out"
    code, err = run_cli(["generate", f"{model_file}:tiny", "-o", out, "--data", data,
                         "--timesteps", "6"], capsys)
    assert_clean_failure(code, err, out, "--timesteps 6", "data.npz holds 4 timesteps")
    assert run_cli(["generate", f"{model_file}:tiny", "-o", out, "--data", data,
                    "--timesteps", "4"], capsys)[0] == 0
    assert run_cli(["generate", f"{model_file}:tiny", "-o", tmp_path / "out2", "--data", data],
                   capsys)[0] == 0


def test_sim_on_a_folder_that_is_not_an_output(tmp_path, capsys):
    code, err = run_cli(["sim", tmp_path], capsys)
    assert code == 2 and "not an hwgen output folder" in err


def test_console_script_exits_non_zero_with_one_line(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "hwgen.cli", "generate", str(tmp_path / "missing.pt"),
                           "-o", str(out)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "missing.pt" in proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists()
