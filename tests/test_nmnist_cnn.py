"""The NIR paper's N-MNIST CNN (tests/fixtures/cnn_sinabs.nir) through the whole pipeline.

`hwgen generate` takes the file as is; `hwgen sim` runs synthetic DVS-like event samples
(sparse, both polarities) on Verilator and must report 0 mismatches on every spike of every
layer at every timestep.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from hwgen.cli import main
from hwgen.events import synthetic_dvs

FIXTURE = Path(__file__).parent / "fixtures" / "cnn_sinabs.nir"
TIMESTEPS = 10
SAMPLES = 20


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("nmnist") / "out"
    assert main(["generate", str(FIXTURE), "-o", str(out), "--timesteps", str(TIMESTEPS), "--parallel", "8"]) == 0
    return out


def test_report_gives_memories_per_layer_and_device_verdicts(generated):
    report = json.loads((generated / "report.json").read_text())
    hw = report["hardware"]
    kinds = [layer["type"] for layer in hw["layers"]]
    assert kinds == ["conv2d_lif", "conv2d_lif", "sum_pool2d", "conv2d_lif", "sum_pool2d", "flatten",
                     "dense_lif", "dense_lif"]
    for layer in hw["layers"]:
        if "groups" in layer:
            assert layer["weight_memory_bits"] > 0 and layer["membrane_memory_bits"] > 0
    assert set(hw["fit"]) == {"ice40up5k", "ecp5-25f"}
    for verdict in hw["fit"].values():
        assert isinstance(verdict["fits"], bool) and verdict["placement"]
    markdown = (generated / "report.md").read_text()
    assert "iCE40UP5K" in markdown and "ECP5-25F" in markdown
    assert any("Sinabs" in note or "subtract" in note for note in report["frontend_notes"])


@pytest.mark.slow
def test_sinabs_cnn_is_bit_exact_on_dvs_events(generated, tmp_path):
    events = synthetic_dvs(SAMPLES, 34, 34, duration_us=100_000, seed=11)
    archive = tmp_path / "events.npz"
    np.savez(archive, **{f"sample_{i:03d}": e for i, e in enumerate(events)})
    code = main(["sim", str(generated), "--events", str(archive), "--duration", "100000",
                 "--simulator", "verilator"])
    report = json.loads((generated / "sim_report.json").read_text())
    assert code == 0, report["first_mismatch"]
    assert report["samples"] == SAMPLES and report["timesteps"] == TIMESTEPS
    assert report["mismatches"] == 0
    neurons = 16 * 16 * 16 * 2 + 8 * 8 * 8 + 256 + 10
    assert report["spikes_compared"] == SAMPLES * TIMESTEPS * neurons + SAMPLES * 11
