"""Bad inputs at every entry point of the CLI, table-driven (docs/errors.md lists them all).

Every case runs ``hwgen`` in-process as a user would and must give exit status 2 (not 3, an
internal error), exactly one ``hwgen: error:`` line on stderr that names the file / layer /
parameter at fault and what would fix it, and leave no output behind: ``generate`` leaves no
OUT folder (nor a staging folder), ``sim`` / ``run`` / ``build`` / ``flash`` leave the OUT they
were given byte for byte as it was. A few cases run the console script in a subprocess, where
a traceback would show.

Cases already covered elsewhere are not repeated here (docs/errors.md names the test):
the NIR frontend's graph errors in tests/test_frontend_nir.py, the torch frontend's layer
rules in tests/test_frontend_torch*.py, the board fit check in tests/test_build.py.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import nir
from hwgen.cli import main
from hwgen.errors import HwgenError
from hwgen.events import EVENT_DTYPE
from hwgen.host import HostLink
from hwgen.quantize import clip_stats

FIXTURE_NIR = Path(__file__).parent / "fixtures" / "cnn_sinabs.nir"

MODELS = textwrap.dedent("""
    import snntorch as snn
    import torch
    from torch import nn

    def tiny():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(6, 5), snn.Leaky(beta=0.75, init_hidden=True),
                             nn.Linear(5, 3), snn.Leaky(beta=0.75, init_hidden=True))

    def conv():  # takes (2, 4, 4): two polarity channels, for event input
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), snn.Leaky(beta=0.75, init_hidden=True),
                             nn.Flatten(), nn.Linear(64, 3), snn.Leaky(beta=0.75, init_hidden=True))

    def with_relu():
        return nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3),
                             snn.Leaky(beta=0.75, init_hidden=True))

    def scaled(w=1.0, b=0.0, thr=1.0):
        m = tiny()
        with torch.no_grad():
            m[0].weight.mul_(w)
            m[0].bias.fill_(b)
            m[1].threshold.fill_(thr)
        return m

    def tiny_weights():  # threshold 1 against weights of 1e-30: 2^100 integer steps
        return scaled(w=1e-30)

    def huge_bias():
        return scaled(b=1e30)

    def tiny_threshold():  # rounds to 0 at the weight scale: raised to 1 and reported
        return scaled(thr=1e-6)

    def big():  # 2048-1024-10: 16 Mbit of 8-bit weights, more than an iCE40UP5K holds
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(2048, 1024), snn.Leaky(beta=0.75, init_hidden=True),
                             nn.Linear(1024, 10), snn.Leaky(beta=0.75, init_hidden=True))

    def wide_range():  # one large weight per neuron, the rest 1/10 of it
        m = tiny()
        with torch.no_grad():
            m[0].weight.fill_(0.1)
            for i in range(5):
                m[0].weight[i, i] = 1.0
        return m
""")


# ----------------------------------------------------------------------------- helpers

def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones too) and its content hash."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def refused(capsys, args, *fragments) -> str:
    """``hwgen *args`` refuses: status 2, one error line holding every fragment."""
    code = main([str(a) for a in args])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("hwgen: error: "), err
    assert "internal error" not in err and "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]


def _events(rows, dtype=EVENT_DTYPE) -> np.ndarray:
    out = np.zeros(len(rows), dtype)
    for i, row in enumerate(rows):
        out[i] = row
    return out


def _nir_graph(path: Path, middle: dict, n_in: int = 4, n_out: int = 3, weight=None, edges=None) -> Path:
    """input(n_in) -> Affine 'fc' -> middle nodes -> output, as a NIR file."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((n_out, n_in)).astype(np.float32) if weight is None else weight
    nodes = {"input": nir.Input(input_type=np.array([n_in])),
             "fc": nir.Affine(weight=w, bias=np.zeros(n_out, np.float32)), **middle,
             "output": nir.Output(output_type=np.array([n_out]))}
    keys = list(nodes)
    nir.write(str(path), nir.NIRGraph(nodes=nodes, edges=edges or list(zip(keys, keys[1:])),
                                      type_check=False))
    return path


def _if(n: int, thr: float = 1.0) -> nir.IF:
    return nir.IF(r=np.ones(n, np.float32), v_threshold=np.full(n, thr, np.float32))


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Every bad (and a few good) input file the cases refer to, by name."""
    d = tmp_path_factory.mktemp("bad_inputs")
    f = {"models": d / "models.py"}
    f["models"].write_text(MODELS)

    sys.path.insert(0, str(d))
    try:
        import importlib
        models = importlib.import_module("models")
        good_state = models.tiny().state_dict()
    finally:
        sys.path.remove(str(d))
        sys.modules.pop("models", None)
    torch.save(good_state, d / "state.pt")
    for key, bad in (("0.weight", float("nan")), ("0.bias", float("inf")),
                     ("1.threshold", float("nan")), ("1.beta", float("-inf"))):
        state = {k: v.clone() for k, v in good_state.items()}
        state[key].view(-1)[0] = bad
        f[f"nan:{key}"] = d / f"nan_{key}.pt"
        torch.save(state, f[f"nan:{key}"])
    torch.save(torch.nn.Linear(2, 2).state_dict(), d / "other_state.pt")
    f["other_state"] = d / "other_state.pt"
    f["state"] = d / "state.pt"

    def write(name: str, content: bytes) -> None:
        f[name] = d / name
        f[name].write_bytes(content)

    write("empty.pt", b"")
    write("text.pt", b"this is not a torch file\n")
    write("trunc.pt", f["state"].read_bytes()[:300])
    write("nir_named.pt", FIXTURE_NIR.read_bytes())
    write("empty.nir", b"")
    write("text.nir", b"hello\n")
    write("trunc.nir", FIXTURE_NIR.read_bytes()[:4096])
    write("pt_named.nir", f["state"].read_bytes())
    f["folder.nir"] = d / "folder.nir"
    f["folder.nir"].mkdir()
    f["nograph.nir"] = d / "nograph.nir"
    with h5py.File(f["nograph.nir"], "w") as h5:
        h5.create_dataset("x", data=np.arange(3))
    n = 3
    f["delay.nir"] = _nir_graph(d / "delay.nir", {"d": nir.Delay(delay=np.ones(n))})
    f["cubalif.nir"] = _nir_graph(d / "cubalif.nir", {"c": nir.CubaLIF(
        tau_syn=np.ones(n), tau_mem=np.ones(n), r=np.ones(n), v_leak=np.zeros(n), v_threshold=np.ones(n))})
    # a cycle through neurons is a recurrent layer; one without neurons cannot be delayed
    f["cycle.nir"] = _nir_graph(
        d / "cycle.nir", {"n": _if(n), "s": nir.Scale(scale=np.full(n, 0.5, np.float32))}, n_in=n,
        edges=[("input", "fc"), ("fc", "n"), ("fc", "s"), ("s", "fc"), ("n", "output")])
    f["shapes.nir"] = _nir_graph(d / "shapes.nir", {"n": _if(5)})  # Affine makes 3, IF takes 5
    nan_w = np.ones((n, 4), np.float32)
    nan_w[1, 2] = np.nan
    f["nan_weight.nir"] = _nir_graph(d / "nan_weight.nir", {"n": _if(n)}, weight=nan_w)
    f["nan_threshold.nir"] = _nir_graph(d / "nan_threshold.nir", {"n": _if(n, thr=float("nan"))})
    f["good.nir"] = _nir_graph(d / "good.nir", {"n": _if(n)})

    np.save(d / "x.npy", np.zeros((2, 6, 6), np.uint8))
    f["x.npy"] = d / "x.npy"
    for name, x in (("float", np.full((2, 6, 6), 0.5, np.float32)),
                    ("negative", np.full((2, 6, 6), -1, np.int64)),
                    ("no_samples", np.zeros((0, 6, 6), np.uint8)),
                    ("no_timesteps", np.zeros((2, 0, 6), np.uint8)),
                    ("shape", np.zeros((2, 6, 7), np.uint8))):
        f[f"data:{name}"] = d / f"data_{name}.npz"
        np.savez(f[f"data:{name}"], x=x)
    f["data:labels"] = d / "data_labels.npz"
    np.savez(f["data:labels"], x=np.zeros((2, 6, 6), np.uint8), y=np.array([0.5, 1.0]))
    f["data:no_x"] = d / "data_no_x.npz"
    np.savez(f["data:no_x"], spikes=np.zeros((2, 6, 6), np.uint8))
    write("data_text.npz", b"x,y\n1,2\n")

    # --inputs for the tiny model: [samples, T=6, 6]
    for name, x in (("shape", np.zeros((2, 6, 7), np.uint8)),
                    ("rank", np.zeros((6, 6), np.uint8)),
                    ("timesteps", np.zeros((2, 8, 6), np.uint8)),
                    ("float", np.zeros((2, 6, 6), np.float32)),
                    ("negative", np.full((2, 6, 6), -1, np.int8)),
                    ("two", np.full((2, 6, 6), 2, np.uint8)),
                    ("empty", np.zeros((0, 6, 6), np.uint8)),
                    ("complex", np.zeros((2, 6, 6), np.complex64))):
        f[f"in:{name}"] = d / f"in_{name}.npy"
        np.save(f[f"in:{name}"], x)
    f["in:object"] = d / "in_object.npy"
    np.save(f["in:object"], np.empty((2, 6, 6), dtype=object), allow_pickle=True)
    f["in:npz"] = d / "in.npz"
    np.savez(f["in:npz"], x=np.zeros((2, 6, 6), np.uint8))
    write("in_text.npy", b"0,1,0,1\n")
    write("in_empty_file.npy", b"")
    write("in_trunc.npy", f["x.npy"].read_bytes()[:100])

    # --events for the conv model: (2, 4, 4)
    ok = _events([(0, 0, 0, 1), (1, 1, 5, 0), (2, 3, 9, 1)])
    f["ev:ok"] = d / "ev_ok.npz"
    np.savez(f["ev:ok"], ok)
    f["ev:missing_p"] = d / "ev_missing_p.npz"
    np.savez(f["ev:missing_p"], _events([(0, 0, 0)], np.dtype([("x", "<i2"), ("y", "<i2"), ("t", "<i8")])))
    f["ev:member_a"] = d / "ev_member_a.npz"  # "...npz:a: not an ..." once printed as an emoji
    np.savez(f["ev:member_a"], a=np.zeros((3, 4)))
    f["ev:plain"] = d / "ev_plain.npz"
    np.savez(f["ev:plain"], np.zeros((3, 4)))
    f["ev:coords"] = d / "ev_coords.npz"
    np.savez(f["ev:coords"], _events([(9, 0, 0, 1)]))
    f["ev:nan_t"] = d / "ev_nan_t.npz"
    np.savez(f["ev:nan_t"], _events([(0, 0, 0.0, 1), (1, 1, np.nan, 0)],
                                    np.dtype([("x", "<i2"), ("y", "<i2"), ("t", "<f8"), ("p", "<i1")])))
    f["ev:float_x"] = d / "ev_float_x.npz"
    np.savez(f["ev:float_x"], _events([(0.5, 0, 0, 1)], np.dtype([("x", "<f4"), ("y", "<i2"), ("t", "<i8"),
                                                                ("p", "<i1")])))
    f["ev:text_t"] = d / "ev_text_t.npz"
    np.savez(f["ev:text_t"], _events([(0, 0, "soon", 1)], np.dtype([("x", "<i2"), ("y", "<i2"), ("t", "<U8"),
                                                                   ("p", "<i1")])))
    f["ev:none"] = d / "ev_none.npz"
    np.savez(f["ev:none"])
    f["ev:npy"] = d / "ev.npy"
    np.save(f["ev:npy"], ok)
    write("ev_empty_file.npz", b"")
    return f


@pytest.fixture(scope="module")
def designs(files, tmp_path_factory) -> dict[str, Path]:
    """Two generated designs: the tiny MLP (6 inputs, T=6) and the conv model (2x4x4, T=4)."""
    root = tmp_path_factory.mktemp("designs")
    out = {"tiny": root / "tiny", "conv": root / "conv"}
    assert main(["generate", f"{files['models']}:tiny", "-o", str(out["tiny"]), "--timesteps", "6",
                 "--parallel", "2"]) == 0
    assert main(["generate", f"{files['models']}:conv", "-o", str(out["conv"]), "--input-shape", "2,4,4",
                 "--timesteps", "4", "--parallel", "2"]) == 0
    return out


# ----------------------------------------------------------------------------- hwgen generate

M = "{models}:tiny"
# (case id, arguments after `generate MODEL -o OUT`, model, fragments of the one error line)
GENERATE = [
    # model files: missing, empty, wrong type, truncated (module:attribute and .pt paths)
    ("pt-missing", [], "{d}/nope.pt", ["nope.pt", "does not exist"]),
    ("pt-empty", [], "{empty.pt}", ["empty.pt", "is empty"]),
    ("pt-text", [], "{text.pt}", ["text.pt", "not a torch.save file"]),
    ("pt-truncated", [], "{trunc.pt}", ["trunc.pt", "damaged zip archive"]),
    ("pt-is-nir", [], "{nir_named.pt}", ["nir_named.pt", "not a torch.save file"]),
    ("pt-is-state-dict", [], "{state}", ["state.pt", "state_dict", "--weights"]),
    ("weights-missing", ["--weights", "{d}/nope.pt"], M, ["nope.pt", "--weights path"]),
    ("weights-folder", ["--weights", "{folder.nir}"], M, ["folder.nir", "is a folder", "state_dict"]),
    ("model-folder", [], "{d}", ["is a folder", "package.module:attribute"]),
    ("weights-empty", ["--weights", "{empty.pt}"], M, ["empty.pt", "is empty"]),
    ("weights-truncated", ["--weights", "{trunc.pt}"], M, ["trunc.pt", "damaged zip archive"]),
    ("weights-nir", ["--weights", "{good.nir}"], M, ["good.nir", "not a torch.save file"]),
    ("weights-other-model", ["--weights", "{other_state}"], M, ["other_state.pt", "does not match",
                                                                 "missing keys"]),
    # NIR files
    ("nir-missing", [], "{d}/nope.nir", ["nope.nir", "does not exist"]),
    ("nir-empty", [], "{empty.nir}", ["empty.nir", "is empty"]),
    ("nir-text", [], "{text.nir}", ["text.nir", "not an HDF5 file"]),
    ("nir-is-pt", [], "{pt_named.nir}", ["pt_named.nir", "not an HDF5 file"]),
    ("nir-truncated", [], "{trunc.nir}", ["trunc.nir", "damaged or truncated"]),
    ("nir-folder", [], "{folder.nir}", ["folder.nir", "is a directory"]),
    ("nir-no-graph", [], "{nograph.nir}", ["nograph.nir", "holds no NIR graph"]),
    ("nir-delay", [], "{delay.nir}", ["node 'd' is Delay", "supported:"]),
    ("nir-cubalif-dt", [], "{cubalif.nir}", ["CubaLIF node 'c' needs a timestep", "--dt"]),
    ("nir-cycle", [], "{cycle.nir}", ["'fc' -> 's' -> 'fc'", "cycle without spiking neurons"]),
    ("nir-shapes", [], "{shapes.nir}", ["node 'n' (IF) takes input 5", "node 'fc' (Affine) produces 3"]),
    ("nir-nan-weight", [], "{nan_weight.nir}", ["'fc'", "weight", "NaN/inf"]),
    ("nir-nan-threshold", [], "{nan_threshold.nir}", ["'n'", "v_threshold", "NaN/inf"]),
    ("nir-input-shape", ["--input-shape", "1,2,2"], "{good.nir}", ["--input-shape 1,2,2", "Input node",
                                                                  "drop --input-shape"]),
    ("nir-weights", ["--weights", "{state}"], "{good.nir}", ["--weights", "carries its own weights"]),
    ("nir-dt-negative", ["--dt", "-1"], "{good.nir}", ["--dt must be a positive", "-1"]),
    ("nir-dt-nan", ["--dt", "nan"], "{good.nir}", ["--dt must be a positive", "nan"]),
    # unsupported layers, shapes
    ("torch-relu", [], "{models}:with_relu", ["ReLU", "Linear", "Leaky"]),
    ("torch-input-shape", ["--input-shape", "7"], M, ["in_features=6", "fix --input-shape"]),
    ("conv-input-shape", ["--input-shape", "3,4,4"], "{models}:conv", ["in_channels=2", "3 channels",
                                                                      "fix --input-shape"]),
    ("conv-no-input-shape", [], "{models}:conv", ["pass --input-shape C,H,W"]),
    # non-finite parameters
    ("nan-weight", ["--weights", "{nan:0.weight}"], M, ["layer '0'", "'weight'", "NaN/inf"]),
    ("inf-bias", ["--weights", "{nan:0.bias}"], M, ["layer '0'", "'bias'", "NaN/inf"]),
    ("nan-threshold", ["--weights", "{nan:1.threshold}"], M, ["layer '1'", "'threshold'", "NaN/inf"]),
    ("inf-beta", ["--weights", "{nan:1.beta}"], M, ["layer '1'", "'beta'", "NaN/inf"]),
    # parameters no integer width can hold at the weights' scale
    ("threshold-vs-tiny-weights", [], "{models}:tiny_weights", ["layer '0'", "threshold 1",
                                                                "32-bit limit", "check the trained"]),
    ("huge-bias", [], "{models}:huge_bias", ["layer '0'", "bias 1e+30", "48-bit limit"]),
    # options out of range (hwgen's checks)
    ("weight-bits-1", ["--weight-bits", "1"], M, ["--weight-bits must be between 2 and 16, got 1"]),
    ("weight-bits-17", ["--weight-bits", "17"], M, ["--weight-bits must be between 2 and 16, got 17"]),
    ("timesteps-0", ["--timesteps", "0"], M, ["--timesteps must be between 1 and 65535, got 0"]),
    ("parallel-0", ["--parallel", "0"], M, ["--parallel must be a whole number of at least 1", "got 0"]),
    ("input-bits-0", ["--input-bits", "0"], M, ["--input-bits must be an integer between 1", "got 0"]),
    ("input-bits-17", ["--input-bits", "17"], M, ["--input-bits must be an integer between 1", "got 17"]),
    ("state-bits-1", ["--state-bits", "1"], M, ["--state-bits must be between 2 and 32, got 1"]),
    ("state-bits-33", ["--state-bits", "33"], M, ["--state-bits must be between 2 and 32, got 33"]),
    ("state-bits-too-small", ["--state-bits", "3"], M, ["layer '0': threshold", "does not fit 3 state bits",
                                                       "raise --state-bits"]),
    ("leak-bits-0", ["--leak-bits", "0"], M, ["--leak-bits must be between 1 and 16, got 0"]),
    ("dt-on-torch", ["--dt", "1e-3"], M, ["--dt and --reset apply to .nir models only"]),
    ("board-unknown", ["--board", "icebreakr"], M, ["unknown board 'icebreakr'", "known boards:"]),
    ("parallel-auto-without-board", ["--parallel", "auto"], M, ["--parallel auto", "give --board"]),
    ("latency-without-auto", ["--latency-us", "5"], M, ["--latency-us", "--parallel auto"]),
    ("board-too-small", ["--board", "icebreaker", "--timesteps", "2"], "{models}:big",
     ["fits icebreaker", "block RAM", "bigger board"]),
    ("latency-negative", ["--board", "icebreaker", "--parallel", "auto", "--latency-us", "-1"], M,
     ["--latency-us must be positive"]),
    # options argparse refuses (one line too)
    ("input-shape-zero", ["--input-shape", "0,3"], M, ["--input-shape", "positive sizes", "--help"]),
    ("input-shape-text", ["--input-shape", "a"], M, ["--input-shape", "comma-separated sizes"]),
    ("weight-bits-text", ["--weight-bits", "x"], M, ["--weight-bits", "invalid int value: 'x'"]),
    ("parallel-text", ["--parallel", "x"], M, ["--parallel", "'x'"]),
    ("reset-unknown", ["--reset", "none"], "{good.nir}", ["--reset", "invalid choice"]),
    # --data / --calibration files
    ("data-missing", ["--data", "{d}/nope.npz"], M, ["nope.npz", "data file not found"]),
    ("data-npy", ["--data", "{x.npy}"], M, ["x.npy", "a single .npy array", "numpy.savez"]),
    ("data-text", ["--data", "{data_text.npz}"], M, ["data_text.npz", "not an .npz archive"]),
    ("data-no-x", ["--data", "{data:no_x}"], M, ["no array named 'x'"]),
    ("data-shape", ["--data", "{data:shape}"], M, ["data_shape.npz", "[2, 6, 7]", "[samples, timesteps, 6]"]),
    ("data-float", ["--data", "{data:float}"], M, ["data_float.npz", "dtype float32", "0/1"]),
    ("data-negative", ["--data", "{data:negative}"], M, ["data_negative.npz", "values -1..-1"]),
    ("data-no-samples", ["--data", "{data:no_samples}"], M, ["data_no_samples.npz", "no samples"]),
    ("data-no-timesteps", ["--data", "{data:no_timesteps}"], M, ["data_no_timesteps.npz", "no timesteps"]),
    ("data-labels", ["--data", "{data:labels}"], M, ["data_labels.npz", "labels y", "one integer class"]),
    ("calibration-float", ["--calibration", "{data:float}"], M, ["data_float.npz", "dtype float32"]),
]


def _fill(text: str, files: dict[str, Path]) -> str:
    """``{name}`` -> the path of ``files[name]``; ``{d}`` -> the folder of the files."""
    names = {**{k: str(v) for k, v in files.items()}, "d": str(files["models"].parent)}
    return re.sub(r"\{([^{}]+)\}", lambda m: names[m.group(1)], text)


@pytest.mark.parametrize("args,model,fragments", [c[1:] for c in GENERATE], ids=[c[0] for c in GENERATE])
def test_generate_refuses(files, tmp_path, capsys, args, model, fragments):
    out = tmp_path / "out"
    refused(capsys, ["generate", _fill(model, files), "-o", out, *(_fill(a, files) for a in args)], *fragments)
    assert not out.exists()
    assert not list(tmp_path.glob(".out.*")), "staging folder left behind"


def test_generate_never_replaces_what_is_not_an_hwgen_output(files, tmp_path, capsys):
    """-o naming a file, or a folder with other things in it, is refused before any work:
    hwgen replaces its output folder as a whole."""
    model = f"{files['models']}:tiny"
    notes = tmp_path / "notes.txt"
    notes.write_text("mine\n")
    refused(capsys, ["generate", model, "-o", notes], "notes.txt", "existing file", "choose another -o")
    assert notes.read_text() == "mine\n"
    refused(capsys, ["generate", model, "-o", tmp_path], str(tmp_path), "not an hwgen output folder")
    assert notes.read_text() == "mine\n" and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    # an empty folder and an earlier result are fine
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["generate", model, "-o", str(empty), "--timesteps", "4"]) == 0
    assert main(["generate", model, "-o", str(empty), "--timesteps", "5"]) == 0
    assert "T=5" in (empty / "hwgen_top.v").read_text()


def test_a_failed_generate_leaves_the_previous_result_unchanged(files, designs, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(designs["tiny"], out)
    before = snapshot(out)
    refused(capsys, ["generate", f"{files['models']}:tiny", "-o", out, "--weights", files["nan:0.weight"]],
            "NaN/inf")
    assert snapshot(out) == before
    assert not list(tmp_path.glob(".out.*"))


# ----------------------------------------------------------------------------- hwgen sim / run

INPUTS = [  # (case id, --inputs file, fragments)
    ("missing", "{d}/nope.npy", ["nope.npy", "input file not found"]),
    ("folder", "{folder.nir}", ["folder.nir", "is a folder"]),
    ("empty-file", "{in_empty_file.npy}", ["in_empty_file.npy", "is empty"]),
    ("text", "{in_text.npy}", ["in_text.npy", "not a .npy file", "numpy.save"]),
    ("npz", "{in:npz}", ["in.npz", "an .npz archive", "numpy.save"]),
    ("truncated", "{in_trunc.npy}", ["in_trunc.npy", "damaged .npy file"]),
    ("object", "{in:object}", ["in_object.npy", "Python objects"]),
    ("shape", "{in:shape}", ["in_shape.npy", "[2, 6, 7]", "expected [samples, timesteps, 6]"]),
    ("rank", "{in:rank}", ["in_rank.npy", "[6, 6]", "expected [samples, timesteps, 6]"]),
    ("timesteps", "{in:timesteps}", ["in_timesteps.npy", "8 timesteps", "generated for 6"]),
    ("float", "{in:float}", ["in_float.npy", "dtype float32", "integers 0/1"]),
    ("complex", "{in:complex}", ["in_complex.npy", "dtype complex64"]),
    ("negative", "{in:negative}", ["in_negative.npy", "values -1..-1"]),
    ("above-one", "{in:two}", ["in_two.npy", "values 2..2", "0/1"]),
    ("no-samples", "{in:empty}", ["in_empty.npy", "no samples"]),
]


@pytest.mark.parametrize("path,fragments", [c[1:] for c in INPUTS], ids=[c[0] for c in INPUTS])
def test_sim_inputs_refused(files, designs, capsys, path, fragments):
    before = snapshot(designs["tiny"])
    refused(capsys, ["sim", designs["tiny"], "--inputs", _fill(path, files)], *fragments)
    assert snapshot(designs["tiny"]) == before


@pytest.mark.parametrize("path,fragments", [c[1:] for c in INPUTS], ids=[c[0] for c in INPUTS])
def test_run_inputs_refused_before_the_port_is_opened(files, designs, capsys, path, fragments):
    # The port does not exist: the input file must be refused first, on its own merits.
    before = snapshot(designs["tiny"])
    refused(capsys, ["run", designs["tiny"], "--port", "/dev/hwgen-no-such-port", "--inputs",
                     _fill(path, files)], *fragments)
    assert snapshot(designs["tiny"]) == before


EVENTS = [  # (case id, extra arguments, fragments)
    ("missing", ["--events", "{d}/nope.npz"], ["nope.npz", "event file not found"]),
    ("empty-file", ["--events", "{ev_empty_file.npz}"], ["ev_empty_file.npz", "is empty"]),
    ("npy", ["--events", "{ev:npy}"], ["ev.npy", "a single .npy array", "numpy.savez"]),
    ("missing-field", ["--events", "{ev:missing_p}"], ["ev_missing_p.npz:arr_0", "missing ['p']",
                                                       "fields t, x, y, p"]),
    ("not-structured", ["--events", "{ev:plain}"], ["ev_plain.npz:arr_0", "not an event array"]),
    ("member-named-a", ["--events", "{ev:member_a}"], ["ev_member_a.npz:a: not an event array"]),
    ("coordinates", ["--events", "{ev:coords}"], ["ev_coords.npz:arr_0", "x 9..9", "4x4 input"]),
    ("nan-time", ["--events", "{ev:nan_t}"], ["ev_nan_t.npz:arr_0", "NaN or inf", "time stamp"]),
    ("float-coordinates", ["--events", "{ev:float_x}"], ["ev_float_x.npz:arr_0", "x (float32)", "integers"]),
    ("text-times", ["--events", "{ev:text_t}"], ["ev_text_t.npz:arr_0", "t (<U8)", "time stamp"]),
    ("no-arrays", ["--events", "{ev:none}"], ["ev_none.npz", "holds no event arrays"]),
    ("duration-0", ["--events", "{ev:ok}", "--duration", "0"], ["--duration must be a positive", "got 0"]),
    ("duration-negative", ["--events", "{ev:ok}", "--duration", "-5"], ["--duration must be a positive"]),
    ("with-inputs", ["--events", "{ev:ok}", "--inputs", "{x.npy}"], ["give --inputs or --events, not both"]),
]


@pytest.mark.parametrize("args,fragments", [c[1:] for c in EVENTS], ids=[c[0] for c in EVENTS])
def test_sim_events_refused(files, designs, capsys, args, fragments):
    before = snapshot(designs["conv"])
    refused(capsys, ["sim", designs["conv"], *(_fill(a, files) for a in args)], *fragments)
    assert snapshot(designs["conv"]) == before


OTHER = [  # (case id, command, fragments); {tiny} / {conv} are the generated designs
    ("sim-events-on-a-dense-model", ["sim", "{tiny}", "--events", "{ev:ok}"],
     ["event input needs a (2, H, W) input map", "[6]"]),
    ("sim-samples-0", ["sim", "{tiny}", "--samples", "0"], ["--samples", "at least 1) or 'all', got '0'"]),
    ("sim-samples-negative", ["sim", "{tiny}", "--samples", "-2"], ["--samples", "at least 1) or 'all', got '-2'"]),
    ("sim-simulator", ["sim", "{tiny}", "--simulator", "modelsim"], ["--simulator", "invalid choice"]),
    ("sim-not-an-output", ["sim", "{d}"], ["not an hwgen output folder", "hwgen generate"]),
    ("run-not-an-output", ["run", "{d}", "--port", "/dev/null", "--inputs", "{x.npy}"],
     ["not an hwgen output folder"]),
    ("run-no-such-port", ["run", "{tiny}", "--port", "/dev/hwgen-no-such-port", "--inputs", "{x.npy}"],
     ["cannot open serial port '/dev/hwgen-no-such-port'", "available ports"]),
    ("run-refused-socket", ["run", "{tiny}", "--port", "socket://127.0.0.1:9", "--inputs", "{x.npy}"],
     ["cannot open serial port 'socket://127.0.0.1:9'"]),
    ("run-baud-0", ["run", "{tiny}", "--port", "/dev/hwgen-no-such-port", "--inputs", "{x.npy}", "--baud", "0"],
     ["--baud", "positive integer", "got 0"]),
    ("run-timeout-0", ["run", "{tiny}", "--port", "/dev/hwgen-no-such-port", "--inputs", "{x.npy}",
                       "--timeout", "0"], ["--timeout", "positive number of seconds"]),
    ("run-without-inputs", ["run", "{tiny}", "--port", "/dev/null"], ["--inputs", "required"]),
    ("build-unknown-board", ["build", "{tiny}", "--board", "icebreakr"],
     ["unknown board 'icebreakr'", "known boards: icebreaker", "boards/README.md"]),
    ("build-not-an-output", ["build", "{d}", "--board", "icebreaker"], ["not an hwgen output folder"]),
    ("flash-unknown-board", ["flash", "{tiny}", "--board", "nope"], ["unknown board 'nope'"]),
    ("flash-no-bitstream", ["flash", "{tiny}", "--board", "icebreaker", "--dry-run"],
     ["no bitstream for icebreaker", "hwgen build"]),
    ("no-command", [], ["required: command"]),
    ("demo-samples-0", ["demo", "--samples", "0", "--out", "{d}/demo_out"], ["--samples", "at least 1) or 'all'"]),
    ("demo-out-is-a-file", ["demo", "--out", "{models}"], ["models.py is an existing file"]),
]


@pytest.mark.parametrize("args,fragments", [c[1:] for c in OTHER], ids=[c[0] for c in OTHER])
def test_other_commands_refuse(files, designs, capsys, args, fragments):
    before = {name: snapshot(path) for name, path in designs.items()}
    filled = [_fill(a, {**files, **designs}) for a in args]
    models = files["models"].read_bytes()
    refused(capsys, filled, *fragments)
    assert {name: snapshot(path) for name, path in designs.items()} == before
    assert files["models"].read_bytes() == models and not (files["models"].parent / "demo_out").exists()


DAMAGED = [  # (case id, file of OUT, new content, fragments): an OUT folder damaged after generate
    ("verilog-truncated", "hwgen_top.v", lambda b: b[:len(b) // 2], ["hwgen_top.v is damaged"]),
    ("model-json-truncated", "model.json", lambda b: b[:100], ["model.json is damaged", "JSONDecodeError"]),
    ("model-json-empty", "model.json", lambda b: b"", ["model.json is damaged"]),
    ("model-json-foreign", "model.json", lambda b: b'{"a": 1}', ["model.json is damaged", "hwgen-ir"]),
    ("float-model-json-binary", "float_model.json", lambda b: b"\x93\xff\x00", ["float_model.json is damaged"]),
    ("options-json-empty", "options.json", lambda b: b"", ["options.json is damaged"]),
    ("options-json-no-parallel", "options.json", lambda b: b"{}", ["options.json holds no valid 'parallel'"]),
    ("data-npz-junk", "data.npz", lambda b: b"junk", ["data.npz: not an .npz archive"]),
]


@pytest.mark.parametrize("name,damage,fragments", [c[1:] for c in DAMAGED], ids=[c[0] for c in DAMAGED])
@pytest.mark.parametrize("command", [["sim", "--samples", "1"], ["build", "--board", "icebreaker"],
                                     ["run", "--port", "/dev/hwgen-no-such-port", "--inputs", "{x.npy}"]],
                         ids=["sim", "build", "run"])
def test_a_damaged_output_folder_is_named(files, designs, tmp_path, capsys, name, damage, fragments, command):
    out = tmp_path / "out"
    shutil.copytree(designs["tiny"], out)
    path = out / name
    path.write_bytes(damage(path.read_bytes() if path.exists() else b""))
    before = snapshot(out)
    refused(capsys, [command[0], out, *(_fill(a, files) for a in command[1:])], *fragments,
            "generate the folder again" if name != "data.npz" else "hwgen generate")
    assert snapshot(out) == before


def test_damaged_run_time_weights_are_named(designs, tmp_path, capsys):
    """A design whose layer 0 weights are loaded at run time (``--board``) keeps them in
    OUT/weights_0.npy; a damaged copy is named, not an internal error."""
    out = tmp_path / "out"
    shutil.copytree(designs["tiny"], out)
    options = json.loads((out / "options.json").read_text())
    (out / "options.json").write_text(json.dumps({**options, "weight_memories": {"0": "ice40_spram"}}))
    (out / "weights_0.npy").write_bytes(b"\x93NUMPY garbage")
    before = snapshot(out)
    refused(capsys, ["sim", out, "--samples", "1"], "weights_0.npy is damaged", "generate the folder again")
    assert snapshot(out) == before


def test_host_api_refuses_bad_link_settings():
    with pytest.raises(HwgenError, match=r"baud rate \(--baud\) must be a positive integer"):
        HostLink("/dev/hwgen-no-such-port", baud=0)
    with pytest.raises(HwgenError, match=r"reply timeout \(--timeout\) must be a positive"):
        HostLink("/dev/hwgen-no-such-port", timeout=-1.0)
    with pytest.raises(HwgenError, match=r"cannot open serial port '/dev/hwgen-no-such-port'"):
        HostLink("/dev/hwgen-no-such-port")


@pytest.mark.parametrize("sample,fragment", [
    (np.zeros((5, 6), np.uint8), "a sample must be [6, 6] (timesteps, input), got [5, 6]"),
    (np.zeros((6,), np.uint8), "a sample must be [6, 6]"),
    (np.zeros((6, 6), np.float32), "a sample must hold integers, not float32"),
    (np.full((6, 6), 2, np.uint8), "sample values 2..2 are outside 0..1"),
    (np.full((6, 6), -1, np.int8), "sample values -1..-1 are outside 0..1"),
], ids=["timesteps", "rank", "float", "above-one", "negative"])
def test_host_api_refuses_bad_samples(sample, fragment):
    """``hwgen.host`` is used without the CLI (no torch): it checks a sample itself."""
    from hwgen.protocol import BoardInfo, sample_tokens

    info = BoardInfo(version=2, design_hash="0" * 16, input_shape=(6,), output_size=3, timesteps=6,
                     parallel=2, input_bits=1, count_bits=3, token_bytes=2, buffer_depth=64,
                     clk_freq_hz=12_000_000, baud=115200)
    with pytest.raises(HwgenError) as exc:
        sample_tokens(sample, info)
    assert fragment in str(exc.value)


# ----------------------------------------------------------------------------- the console script

@pytest.mark.parametrize("args,fragment", [
    (["generate", "{text.nir}", "-o", "{d}/sub_out"], "not an HDF5 file"),
    (["generate", "{models}:tiny", "-o", "{d}/sub_out", "--weight-bits", "x"], "invalid int value"),
    (["sim", "{d}", "--inputs", "{in_text.npy}"], "not an hwgen output folder"),
], ids=["bad-file", "usage", "sim"])
def test_console_script_gives_one_line_and_no_traceback(files, args, fragment):
    proc = subprocess.run([sys.executable, "-m", "hwgen.cli", *(_fill(a, files) for a in args)],
                          capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("hwgen: error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert fragment in proc.stderr and "Traceback" not in proc.stderr
    assert not (files["models"].parent / "sub_out").exists()


# ----------------------------------------------------------------------------- clipping is reported

def test_a_threshold_rounded_up_to_1_is_reported_and_warned(files, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["generate", f"{files['models']}:tiny_threshold", "-o", str(out), "--timesteps", "4"]) == 0
    err = capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())["quantization"]
    clipping = report["layers"][0]["clipping"]
    assert clipping["thresholds_raised"] == 5
    assert clipping["threshold_raised_max"] > 100  # 1e-6 at a scale of 2^8..2^9: ~2000x
    assert report["layers"][1]["clipping"]["thresholds_raised"] == 0
    warning = "hwgen: warning: layer '0': the threshold of 5 neurons rounds below 1"
    assert warning in err and report["warnings"][0] in err
    assert "- warning: layer '0': the threshold of 5 neurons" in (out / "report.md").read_text()


def test_weights_rounded_to_zero_are_counted_and_warned(files, tmp_path, capsys):
    out = tmp_path / "out"
    # 2-bit weights: the largest weight (1.0) takes the one positive level; 0.1 rounds to 0.
    assert main(["generate", f"{files['models']}:wide_range", "-o", str(out), "--timesteps", "4",
                 "--weight-bits", "2"]) == 0
    err = capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())["quantization"]
    clipping = report["layers"][0]["clipping"]
    assert clipping["weights_nonzero"] == 30 and clipping["weights_zeroed"] == 25
    assert clipping["weights_clipped"] == 0
    assert "hwgen: warning: layer '0': 25 of 30 non-zero weights (83%) round to 0 at --weight-bits 2" in err
    assert "| 0 of 30 |" not in (out / "report.md").read_text() and "| 25 of 30 |" in (out / "report.md").read_text()
    # at 8 bits the same layer keeps every weight, and nothing is worth a warning
    out8 = tmp_path / "out8"
    assert main(["generate", f"{files['models']}:wide_range", "-o", str(out8), "--timesteps", "4"]) == 0
    assert "warning" not in capsys.readouterr().err
    report8 = json.loads((out8 / "report.json").read_text())["quantization"]
    assert report8["layers"][0]["clipping"]["weights_zeroed"] == 0 and report8["warnings"] == []


def test_clip_stats_counts_saturated_weights_and_by_how_much():
    # hwgen's scale never clips (the largest weight sets it); at a scale twice too large the
    # count and the excess must show, which is what guards the report against a changed rule.
    weight = np.array([[1.0, -1.0, 0.25, 0.001]])
    scale = np.array([256.0])
    weight_int = np.clip(np.rint(weight * scale), -128, 127).astype(np.int64)
    stats = clip_stats(weight, weight_int, scale, 8, np.array([1.0]))
    assert stats["weights_clipped"] == 2 and stats["weight_clip_max_lsb"] == 129.0  # 256 - 127
    assert stats["weights_zeroed"] == 1 and stats["weights_nonzero"] == 4
    assert stats["thresholds_raised"] == 0
