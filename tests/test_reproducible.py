"""Reproducibility: the same model and options give the same files, byte for byte.

What is promised (docs/errors.md, "Reproducibility"):

* ``hwgen generate``: every file of OUT is byte-identical for the same command line, whatever
  the output folder, the working directory or Python's hash seed (``PYTHONHASHSEED``);
  ``hwgen_top.v`` and the design hash do not even depend on where the model file lives
  (``model.json`` and the reports record the model argument, so they do).
* ``hwgen build``: the same OUT, board and ``--seed`` give the same bitstream, recorded as
  ``bitstream_sha256`` in ``build_report.json``. The build reports themselves hold times and
  are not promised identical.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from hwgen.cli import main

MODEL = textwrap.dedent("""
    import snntorch as snn
    import torch
    from torch import nn

    def net():
        torch.manual_seed(3)
        return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), snn.Leaky(beta=0.75, init_hidden=True),
                             nn.MaxPool2d(2), nn.Flatten(), nn.Linear(36, 3),
                             snn.Leaky(beta=0.875, init_hidden=True))

    def tiny():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(6, 5), snn.Leaky(beta=0.75, init_hidden=True),
                             nn.Linear(5, 3), snn.Leaky(beta=0.75, init_hidden=True))
""")


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def hwgen_subprocess(args: list, cwd: Path, hash_seed: str) -> None:
    """``hwgen *args`` in a fresh interpreter with its own working directory and hash seed."""
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    proc = subprocess.run([sys.executable, "-m", "hwgen.cli", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_generate_is_byte_identical_across_folders_and_hash_seeds(tmp_path, capsys):
    model = tmp_path / "models.py"
    model.write_text(MODEL)
    data = tmp_path / "data.npz"
    rng = np.random.default_rng(0)
    np.savez(data, x=(rng.random((8, 5, 1, 6, 6)) < 0.3).astype(np.uint8), y=rng.integers(0, 3, 8))
    args = ["generate", f"{model}:net", "--input-shape", "1,6,6", "--parallel", "3", "--data", data]

    assert main([str(a) for a in [*args, "-o", tmp_path / "a"]]) == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    hwgen_subprocess([*args, "-o", elsewhere / "b"], cwd=elsewhere, hash_seed="4242")

    a, b = files_of(tmp_path / "a"), files_of(elsewhere / "b")
    assert {"hwgen_top.v", "model.json", "float_model.json", "report.json", "report.md", "options.json",
            "data.npz"} <= set(a)
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name] == b[name], f"{name} differs between two runs of the same command"

    # The same network from a model file in another place: the same hardware and design hash.
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.copy(model, moved / "other_name.py")
    assert main([str(a) for a in ["generate", f"{moved / 'other_name.py'}:net", "--input-shape", "1,6,6",
                                  "--parallel", "3", "--data", data, "-o", tmp_path / "c"]]) == 0
    assert (tmp_path / "c/hwgen_top.v").read_bytes() == a["hwgen_top.v"]
    design_hash = json.loads(a["report.json"])["design_hash"]
    assert json.loads((tmp_path / "c/report.json").read_text())["design_hash"] == design_hash


@pytest.mark.slow
def test_the_same_design_builds_to_the_same_bitstream(tmp_path, capsys):
    """Two iCEBreaker builds of one design, in different folders and interpreters (hash seeds):
    the same bitstream, and its sha256 in both build reports. About 25 s per build."""
    (tmp_path / "models.py").write_text(MODEL)
    first = tmp_path / "first"
    assert main(["generate", f"{tmp_path / 'models.py'}:tiny", "-o", str(first), "--timesteps", "6",
                 "--parallel", "2"]) == 0
    second = tmp_path / "second"
    shutil.copytree(first, second)

    assert main(["build", str(first), "--board", "icebreaker"]) == 0
    hwgen_subprocess(["build", second, "--board", "icebreaker"], cwd=tmp_path, hash_seed="4242")

    reports = [json.loads((out / "build/icebreaker/build_report.json").read_text()) for out in (first, second)]
    digests = [hashlib.sha256((out / r["bitstream"]).read_bytes()).hexdigest()
               for out, r in zip((first, second), reports)]
    assert reports[0]["seed"] == reports[1]["seed"] == 1
    assert digests[0] == digests[1], "the same design, board and seed gave two different bitstreams"
    assert reports[0]["bitstream_sha256"] == reports[1]["bitstream_sha256"] == digests[0]
