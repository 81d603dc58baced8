"""Random integer networks and spike inputs, for tests and benchmarks of golden vs RTL."""

from __future__ import annotations

import numpy as np

from .ir import Leak, QuantDense, QuantNetwork, ResetMode
from .widths import accumulator_bits


def random_quant_network(
    sizes: list[int],
    *,
    seed: int = 0,
    weight_bits: int = 6,
    state_bits: int = 12,
    timesteps: int = 8,
    reset: ResetMode = "subtract",
    leak: Leak = Leak("shift", shift=3),
    per_neuron_threshold: bool = False,
    with_bias: bool = True,
) -> QuantNetwork:
    """A chain of dense LIF layers ``sizes[0] -> sizes[1] -> ...`` with random integers.

    Weights are biased slightly positive and thresholds set near the typical input so that
    every layer both fires and stays silent a fair share of the time.
    """
    rng = np.random.default_rng(seed)
    wmax = (1 << (weight_bits - 1)) - 1
    layers: list = []
    for n, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        weight = rng.integers(-wmax - 1, wmax + 1, size=(n_out, n_in)).astype(np.int64)
        weight += rng.integers(0, max(1, wmax // 2) + 1, size=weight.shape)
        weight = np.clip(weight, -wmax - 1, wmax)
        bias = (rng.integers(-wmax // 2, wmax // 2 + 1, size=n_out) if with_bias
                else np.zeros(n_out)).astype(np.int64)
        base = max(1, int(wmax * max(1, n_in // 4) // 4))
        threshold = (rng.integers(max(1, base // 2), base + 1, size=n_out) if per_neuron_threshold
                     else np.full(n_out, base)).astype(np.int64)
        threshold = np.minimum(threshold, (1 << (state_bits - 1)) - 2)
        layers.append(QuantDense(
            name=f"fc{n}", weight=weight, bias=bias, threshold=threshold, leak=leak, reset=reset,
            weight_bits=weight_bits, state_bits=state_bits,
            acc_bits=accumulator_bits(weight, bias, state_bits),
            scale_exp=np.zeros(n_out, dtype=np.int64)))
    return QuantNetwork((sizes[0],), layers, timesteps, source=f"random(seed={seed})")


def random_spikes(shape: tuple[int, ...], rate: float, seed: int = 0) -> np.ndarray:
    """Bernoulli spikes of the given rate, as uint8 (``shape = [samples, T, *input]``)."""
    rng = np.random.default_rng(seed)
    return (rng.random(shape) < rate).astype(np.uint8)
