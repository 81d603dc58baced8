"""The NIR paper's recurrent Braille networks end to end: NIR graph with a cycle and CuBa
neurons -> generate -> RTL in cocotb, every spike of both layers against the golden model,
on synthetic 12-channel taxel events of 256 timesteps (the bench's inputs)."""

from pathlib import Path

import numpy as np
import pytest

from hwgen.bench.models import BRAILLE_NIR, BRAILLE_TIMESTEPS, _braille_inputs
from hwgen.pipeline import GenerateOptions, generate, simulate
from hwgen.quantize import QuantOptions


@pytest.fixture(scope="module")
def events(tmp_path_factory) -> tuple[Path, Path]:
    inputs = _braille_inputs()
    root = tmp_path_factory.mktemp("braille_data")
    np.savez(root / "calibration.npz", x=inputs.calibration)
    np.savez(root / "heldout.npz", x=inputs.heldout)
    return root / "calibration.npz", root / "heldout.npz"


@pytest.mark.parametrize("reset, samples", [("zero", 20), ("subtract", 4)])
def test_braille_graph_is_bit_exact_in_rtl(reset, samples, events, tmp_path):
    calibration, heldout = events
    opts = GenerateOptions(parallel=2, reset=reset, calibration=str(calibration), data=str(heldout),
                           quant=QuantOptions(weight_bits=12, timesteps=BRAILLE_TIMESTEPS))
    report = generate(str(BRAILLE_NIR[reset]), tmp_path, opts)
    assert sorted(report["graph"]["lif1.lif"]) == [["input", 0], ["lif1.lif", 1]]  # the recurrent edge
    assert [layer["current"]["delay"] for layer in report["quantization"]["layers"]] == [1, 1]  # NIR's CubaLIF
    agreement = report["fidelity"]["spike_agreement"]
    assert len(agreement) == 2 and min(agreement) > 0.8, agreement  # float vs integer, reported
    sim = simulate(tmp_path, samples=samples)
    assert sim["samples"] == samples and sim["timesteps"] == BRAILLE_TIMESTEPS
    assert sim["mismatches"] == 0, sim["first_mismatch"]
    # every spike decision of both layers at every step (and the readout's counts)
    assert sim["spikes_compared"] >= samples * BRAILLE_TIMESTEPS * (report["hardware"]["layers"][0]["out"][0] + 7)
