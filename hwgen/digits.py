"""The embedded demo: scikit-learn's bundled 8x8 digits (no download) and two small LIF nets.

``scripts/train_digits.py`` trains them and ships their state_dicts in ``hwgen/data/``;
``hwgen demo`` loads them through the ordinary ``module:attribute --weights`` frontend path,
exactly as a user's model would be.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import snntorch as snn
import snntorch.utils
import torch
from torch import nn

from .encode import rate_encode

TIMESTEPS = 16
HIDDEN = 64
BETA = 1.0 - 2.0 ** -3  # a shift in hardware: no multiplier
DATA = Path(__file__).parent / "data"


def digits_mlp() -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(64, HIDDEN),
        snn.Leaky(beta=BETA, init_hidden=True),
        nn.Linear(HIDDEN, 10),
        snn.Leaky(beta=BETA, init_hidden=True),
    )


def digits_conv() -> nn.Sequential:
    # Max pooling sits after the neuron: it pools spikes (an OR per window), which the
    # event-driven hardware does by dropping repeated events of a window.
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        snn.Leaky(beta=BETA, init_hidden=True),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 10),
        snn.Leaky(beta=BETA, init_hidden=True),
    )


@dataclass(frozen=True)
class DemoModel:
    name: str
    factory: str  # module:attribute spec, as a user would pass it
    input_shape: tuple[int, ...]
    epochs: int

    @property
    def checkpoint(self) -> Path:
        return DATA / f"digits_{self.name}.pt"


MODELS = {
    "mlp": DemoModel("mlp", "hwgen.digits:digits_mlp", (64,), 40),
    "conv": DemoModel("conv", "hwgen.digits:digits_conv", (1, 8, 8), 30),
}
# The defaults of `hwgen demo` and of tests that use the MLP.
CHECKPOINT = MODELS["mlp"].checkpoint
MODEL_SPEC = MODELS["mlp"].factory


@dataclass
class DigitsSplit:
    train_x: np.ndarray  # [N, T, *input_shape] uint8 spikes
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray


def load_split(timesteps: int = TIMESTEPS, input_shape: tuple[int, ...] = (64,)) -> DigitsSplit:
    """A fixed 75/25 split of the 1,797 digits, pixel intensity rate-coded over T steps."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = rate_encode(digits.data.reshape(-1, *input_shape) / 16.0, timesteps)
    tr_x, te_x, tr_y, te_y = train_test_split(x, digits.target, test_size=0.25, random_state=0,
                                              stratify=digits.target)
    return DigitsSplit(tr_x, tr_y.astype(np.int64), te_x, te_y.astype(np.int64))


def _forward_counts(model: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """Spike counts of the output layer for a batch ``x`` of [B, T, *input_shape] spikes."""
    snntorch.utils.reset(model)
    counts = 0
    for t in range(x.shape[1]):
        counts = counts + model(x[:, t])
    return counts


def train(which: str = "mlp", epochs: int | None = None, seed: int = 0) -> tuple[nn.Sequential, float]:
    """Surrogate-gradient BPTT on spike counts; returns the model and its test accuracy."""
    spec = MODELS[which]
    torch.manual_seed(seed)
    split = load_split(input_shape=spec.input_shape)
    model = digits_mlp() if which == "mlp" else digits_conv()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    x = torch.as_tensor(split.train_x, dtype=torch.float32)
    y = torch.as_tensor(split.train_y)
    for _ in range(epochs or spec.epochs):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 64):
            idx = perm[i:i + 64]
            loss = nn.functional.cross_entropy(_forward_counts(model, x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        pred = _forward_counts(model, torch.as_tensor(split.test_x, dtype=torch.float32)).argmax(1)
    return model, float((pred.numpy() == split.test_y).mean())
