"""The benchmark's models and their inputs: what ``hwgen bench`` generates and simulates."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import digits
from ..events import bin_events, synthetic_dvs
from ..pipeline import GenerateOptions, generate
from ..quantize import QuantOptions

REPO = Path(__file__).resolve().parent.parent.parent
CNN_NIR = REPO / "tests" / "fixtures" / "cnn_sinabs.nir"
CNN_TIMESTEPS = 10
BRAILLE_NIR = {reset: REPO / "tests" / "fixtures" / f"braille_noDelay_{name}.nir"
               for reset, name in (("zero", "bias_zero"), ("subtract", "noBias_subtract"))}
BRAILLE_TIMESTEPS = 256
CALIBRATION_SAMPLES = 256


@dataclass
class Inputs:
    calibration: np.ndarray  # [S, T, *shape] spikes for the quantizer's state widths
    heldout: np.ndarray  # what the RTL runs measure (and fidelity, with labels)
    labels: np.ndarray | None
    description: str


@dataclass(frozen=True)
class BenchModel:
    key: str
    title: str
    source: str  # module:attribute factory or a .nir path, as given to `hwgen generate`
    weights: str | None
    input_shape: tuple[int, ...]
    timesteps: int
    parallel_full: tuple[int, ...]  # P measured in the full mode
    parallel_quick: tuple[int, ...]  # ... and in the quick mode
    load_inputs: Callable[[], Inputs] = field(compare=False, repr=False)
    samples_full: int = 8
    samples_quick: int = 3
    weight_bits: int = 8
    per_channel: bool = False
    reset: str | None = None  # NIR only: the reset the graph's exporter used (``--reset``)
    # the samples of the tool-speed run of the whole set (default: the held-out ones)
    speed_inputs: Callable[[], np.ndarray] | None = field(default=None, compare=False, repr=False)

    def options(self, parallel: int, weight_bits: int | None = None, **extra) -> GenerateOptions:
        return GenerateOptions(weights=self.weights, input_shape=None if self.source.endswith(".nir")
                               else self.input_shape, parallel=parallel, reset=self.reset,
                               quant=QuantOptions(weight_bits=weight_bits or self.weight_bits,
                                                  timesteps=self.timesteps, per_channel=self.per_channel), **extra)

    def generate(self, out: Path, parallel: int, inputs: Inputs, weight_bits: int | None = None,
                 **extra) -> dict:
        """``hwgen generate`` of this model into ``out`` (held-out data shipped, as the demo does)."""
        with tempfile.TemporaryDirectory() as tmp:
            calibration = Path(tmp) / "calibration.npz"
            heldout = Path(tmp) / "heldout.npz"
            np.savez(calibration, x=inputs.calibration)
            if inputs.labels is not None:
                np.savez(heldout, x=inputs.heldout, y=inputs.labels)
            else:
                np.savez(heldout, x=inputs.heldout)
            opts = self.options(parallel, weight_bits, **extra)
            opts.calibration, opts.data = str(calibration), str(heldout)
            return generate(self.source, out, opts)


def _digits_inputs(name: str) -> Callable[[], Inputs]:
    def load() -> Inputs:
        spec = digits.MODELS[name]
        split = spec.load_split()
        where = ("sklearn 8x8 digits laid out as MNIST (bilinear to 20x20, 4-px border)" if spec.image_size == 28
                 else "sklearn 8x8 digits")
        coded = (f"read row by row (a row per step, 16 thermometer inputs), T={spec.timesteps}"
                 if spec.encoding == "rows" else f"rate-coded over T={spec.timesteps}")
        return Inputs(split.train_x[:CALIBRATION_SAMPLES], split.test_x, split.test_y,
                      f"{where}, {coded}, 450 held-out samples")
    return load


def _cnn_binned(samples: int, seed: int) -> np.ndarray:
    # The NIR file carries no data set: DVS-like synthetic events (an edge sweeping across
    # the 34x34 sensor plus noise, hwgen/events.py) binned into the model's timesteps.
    events = synthetic_dvs(samples, 34, 34, duration_us=100_000, seed=seed)
    return np.stack([bin_events(e, (2, 34, 34), CNN_TIMESTEPS, duration=100_000) for e in events])


def _cnn_inputs() -> Inputs:
    binned = _cnn_binned
    return Inputs(binned(32, 1), binned(16, 11), None,
                  f"synthetic DVS events (moving edge + noise, hwgen.events.synthetic_dvs), T={CNN_TIMESTEPS}")


def _braille_inputs() -> Inputs:
    # The NIR files carry no data set (the Braille recordings are not redistributed here):
    # synthetic taxel events, each of the 12 channels bursting at its own random times.
    def events(samples: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        rate = rng.uniform(0.0, 0.25, size=(samples, 1, 12)) * (rng.random((samples, BRAILLE_TIMESTEPS, 12)) < 0.3)
        return (rng.random((samples, BRAILLE_TIMESTEPS, 12)) < rate).astype(np.uint8)
    return Inputs(events(32, 1), events(20, 21), None,
                  f"synthetic 12-channel taxel events (random bursts), T={BRAILLE_TIMESTEPS}")


def _spec(name: str) -> digits.DemoModel:
    return digits.MODELS[name]


MODELS: dict[str, BenchModel] = {
    "digits_mlp": BenchModel("digits_mlp", "digits MLP 64-64-10", _spec("mlp").factory, str(_spec("mlp").checkpoint),
                             _spec("mlp").input_shape, _spec("mlp").timesteps, (1, 4, 16, 64), (4,),
                             _digits_inputs("mlp")),
    "digits_conv": BenchModel("digits_conv", "digits conv 8c3-maxpool-10", _spec("conv").factory,
                              str(_spec("conv").checkpoint), _spec("conv").input_shape, _spec("conv").timesteps,
                              (1, 2, 4, 8), (4,), _digits_inputs("conv")),
    "cnn_sinabs": BenchModel("cnn_sinabs", "NIR paper N-MNIST CNN (cnn_sinabs.nir)", str(CNN_NIR), None,
                             (2, 34, 34), CNN_TIMESTEPS, (4, 8), (), _cnn_inputs, samples_full=3,
                             speed_inputs=lambda: _cnn_binned(64, 12)),
    "mnist784": BenchModel("mnist784", "MNIST-scale LIF MLP 784-128-10", _spec("mnist784").factory,
                           str(_spec("mnist784").checkpoint), _spec("mnist784").input_shape,
                           _spec("mnist784").timesteps, (2, 8, 32, 128), (8,), _digits_inputs("mnist784"),
                           samples_full=4, samples_quick=2),
    "digits_rnn": BenchModel("digits_rnn", "digits RNN 16-64(recurrent)-10, row by row", _spec("rnn").factory,
                             str(_spec("rnn").checkpoint), _spec("rnn").input_shape, _spec("rnn").timesteps,
                             (1, 4, 16), (4,), _digits_inputs("rnn"), weight_bits=_spec("rnn").weight_bits,
                             per_channel=_spec("rnn").per_channel),
    # 12-bit weights: at 8 the recurrent layer's threshold is 8 integer steps, too coarse for
    # the bias_zero graph (docs/nir.md, "The NIR paper's Braille networks"). Each is run at
    # the P of its iCEBreaker build (runner.FULL) too, so that the build row has a latency.
    "braille_zero": BenchModel("braille_zero", "NIR paper Braille RNN, CuBa, reset to zero",
                               str(BRAILLE_NIR["zero"]), None, (12,), BRAILLE_TIMESTEPS, (1, 2, 8), (8,),
                               _braille_inputs, samples_full=20, samples_quick=4, weight_bits=12,
                               reset="zero"),
    "braille_subtract": BenchModel("braille_subtract", "NIR paper Braille RNN, CuBa, subtract",
                                   str(BRAILLE_NIR["subtract"]), None, (12,), BRAILLE_TIMESTEPS, (1, 8), (8,),
                                   _braille_inputs, samples_full=20, samples_quick=4, weight_bits=12,
                                   reset="subtract"),
}
