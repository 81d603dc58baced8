"""``hwgen demo``: the digits network through every stage, with the verdict in one table."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
from rich.console import Console

from . import digits
from .errors import HwgenError
from .pipeline import GenerateOptions, generate, simulate
from .quantize import QuantOptions
from .summary import print_sim

CALIBRATION_SAMPLES = 256


def run_demo(out: Path, samples: int, parallel: int, simulator: str, stages, model: str = "mlp") -> int:
    if samples < 1:  # refused before the generate step, which would otherwise write OUT first
        raise HwgenError(f"--samples must be at least 1, got {samples}")
    console = Console(width=None if sys.stdout.isatty() else 132)
    spec = digits.MODELS[model]
    split = digits.load_split(input_shape=spec.input_shape)
    with tempfile.TemporaryDirectory() as tmp:
        # The demo goes through the same files a user would hand to `hwgen generate`.
        heldout = Path(tmp) / "digits_test.npz"
        calibration = Path(tmp) / "digits_calibration.npz"
        np.savez(heldout, x=split.test_x, y=split.test_y)
        np.savez(calibration, x=split.train_x[:CALIBRATION_SAMPLES])
        opts = GenerateOptions(weights=str(spec.checkpoint), input_shape=spec.input_shape,
                               parallel=parallel, data=str(heldout),
                               calibration=str(calibration),
                               quant=QuantOptions(weight_bits=8, timesteps=digits.TIMESTEPS))
        with stages() as progress:
            report = generate(spec.factory, out, opts, progress)
            sim = simulate(out, samples=samples, simulator=simulator, progress=progress)
    fid = report["fidelity"]
    console.print(f"model {spec.factory} (weights {spec.checkpoint.name}); float vs integer on all "
                  f"{fid['samples']} held-out digits: {fid['accuracy_float']:.1%} vs {fid['accuracy_int']:.1%}")
    print_sim(sim, console, title=f"hwgen demo: {samples} held-out digits, RTL vs golden model")
    console.print(f"outputs in {out}/: hwgen_top.v, model.json, report.md/json, sim_report.json")
    return 1 if sim["mismatches"] else 0
