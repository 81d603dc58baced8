"""Bit-width arithmetic shared by the quantizer, the hardware generator and the reports."""

from __future__ import annotations

import numpy as np


def signed_bits(lo: int, hi: int) -> int:
    """Smallest two's-complement width holding every integer in ``[lo, hi]``."""
    bits = 1
    while not (-(1 << (bits - 1)) <= lo and hi <= (1 << (bits - 1)) - 1):
        bits += 1
    return bits


def unsigned_bits(hi: int) -> int:
    """Smallest unsigned width holding ``0 .. hi`` (at least 1)."""
    return max(1, int(hi).bit_length())


def address_bits(count: int) -> int:
    """Width of an address into ``count`` items (at least 1)."""
    return max(1, (int(count) - 1).bit_length())


def accumulator_bits(weight: np.ndarray, bias: np.ndarray, state_bits: int,
                     input_max: int = 1) -> int:
    """Width of ``u + b + Σ W·x`` over every input pattern, so no partial sum ever wraps.

    ``u`` lies within the state rails (docs/semantics.md), each ``x`` is any integer in
    ``0 .. input_max`` (1 for spikes, ``k·k`` after a sum pool, ``2**input_bits - 1`` for
    direct input): the extremes are all negative weights or all positive weights at their
    largest input at once. ``weight`` is ``[out, in]``; pass a convolution's as
    ``[C_out, -1]`` (one output position sees at most every tap of its kernel).
    """
    w = np.asarray(weight, dtype=np.int64)
    b = np.asarray(bias, dtype=np.int64)
    lo = -(1 << (state_bits - 1)) + b + int(input_max) * np.minimum(w, 0).sum(axis=1)
    hi = (1 << (state_bits - 1)) - 1 + b + int(input_max) * np.maximum(w, 0).sum(axis=1)
    return signed_bits(int(lo.min()), int(hi.max()))
