"""Turning intensities into spike trains, the same way for training, golden and RTL."""

from __future__ import annotations

import numpy as np


def rate_encode(intensity: np.ndarray, timesteps: int) -> np.ndarray:
    """Deterministic rate code: ``x[t] = floor((t+1)·p) - floor(t·p)`` for ``p`` in [0, 1].

    An intensity ``p`` spikes ``floor(T·p)`` times, evenly spread. Unlike Bernoulli coding
    the same sample always gives the same spikes, so float, integer and RTL accuracy are
    measured on identical inputs. Returns ``[samples, timesteps, *shape]`` uint8.
    """
    p = np.clip(np.asarray(intensity, dtype=np.float64), 0.0, 1.0)
    t = np.arange(timesteps + 1, dtype=np.float64).reshape(-1, *([1] * p.ndim))
    # A tiny epsilon keeps p = k/T exactly on its grid despite float rounding of t·p.
    edges = np.floor(t * p[None] + 1e-9)
    spikes = (edges[1:] - edges[:-1]).astype(np.uint8)
    return np.moveaxis(spikes, 0, 1)
