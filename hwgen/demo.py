"""``hwgen demo``: the digits network through every stage, with the verdict in one table."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
from rich.console import Console

from . import digits
from .pipeline import GenerateOptions, check_samples, generate, simulate
from .quantize import QuantOptions
from .summary import print_sim

CALIBRATION_SAMPLES = 256


def run_demo(out: Path, samples: int | str, parallel: int, simulator: str, stages, model: str = "mlp") -> int:
    check_samples(samples)  # before the generate step, which would otherwise write OUT first
    console = Console(width=None if sys.stdout.isatty() else 132)
    spec = digits.MODELS[model]
    split = spec.load_split()
    with tempfile.TemporaryDirectory() as tmp:
        # The demo goes through the same files a user would hand to `hwgen generate`.
        heldout = Path(tmp) / "digits_test.npz"
        calibration = Path(tmp) / "digits_calibration.npz"
        np.savez(heldout, x=split.test_x, y=split.test_y)
        np.savez(calibration, x=split.train_x[:CALIBRATION_SAMPLES])
        opts = GenerateOptions(weights=str(spec.checkpoint), input_shape=spec.input_shape,
                               parallel=parallel, data=str(heldout),
                               calibration=str(calibration),
                               quant=QuantOptions(weight_bits=spec.weight_bits, timesteps=spec.timesteps,
                                                  per_channel=spec.per_channel))
        with stages() as progress:
            report = generate(spec.factory, out, opts, progress)
            sim = simulate(out, samples=samples, simulator=simulator, progress=progress)
    fid = report["fidelity"]
    console.print(f"model {spec.factory} (weights {spec.checkpoint.name}); float vs integer on all "
                  f"{fid['samples']} held-out digits: {fid['accuracy_float']:.1%} vs {fid['accuracy_int']:.1%}")
    if model == "rnn":  # what the memory across timesteps is worth: the same network without it
        console.print(f"the same network with its recurrent weights set to zero: "
                      f"{_without_recurrence_accuracy(spec, split):.1%} (float)")
    print_sim(sim, console, title=f"hwgen demo: {sim['samples']} held-out digits, RTL vs golden model")
    console.print(f"outputs in {out}/: hwgen_top.v, model.json, report.md/json, sim_report.json")
    return 1 if sim["mismatches"] else 0


def _without_recurrence_accuracy(spec: digits.DemoModel, split: digits.DigitsSplit) -> float:
    from .frontend.torch_load import load_torch_model

    model = load_torch_model(spec.factory, weights=str(spec.checkpoint))
    return digits.heldout_accuracy(digits.rnn_without_recurrence(model), split)
