"""The quantizer's rules for one layer's numbers: options, power-of-two scales, integer
rounding with its limits, the integer leak, and what rounding could not represent.

Below the layer kinds: a kind's ``quantize`` applies these rules to its own parameters;
``hwgen.quantize`` (the stage) calibrates state widths and reports over the whole network.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import HwgenError
from .ir import Leak

WEIGHT_BITS_RANGE = (2, 16)
MAX_STATE_BITS = 32
# Calibration before saturation is known: wide enough that nothing clamps.
UNCLAMPED_STATE_BITS = 48
# hwgen.golden computes convolutions in float64, exact while every sum stays below 2**53.
MAX_ACC_BITS = 48
INPUT_BITS_RANGE = (1, 16)


@dataclass
class QuantOptions:
    weight_bits: int = 8
    per_channel: bool = False
    state_bits: int | None = None  # None: derived from calibration
    leak_frac_bits: int = 8  # F of the "mul" leak, used when beta is not 1 - 2^-k
    timesteps: int = 16
    input_bits: int = 1  # 1: spike input; 2..16: direct unsigned input of that width

    def validate(self) -> None:
        lo, hi = WEIGHT_BITS_RANGE
        if not lo <= self.weight_bits <= hi:
            raise HwgenError(f"--weight-bits must be between {lo} and {hi}, got {self.weight_bits}")
        if self.state_bits is not None and not 2 <= self.state_bits <= MAX_STATE_BITS:
            raise HwgenError(f"--state-bits must be between 2 and {MAX_STATE_BITS}, got {self.state_bits}")
        if not 1 <= self.leak_frac_bits <= 16:
            raise HwgenError(f"--leak-bits must be between 1 and 16, got {self.leak_frac_bits}")
        if not 1 <= self.timesteps <= 65535:
            raise HwgenError(f"--timesteps must be between 1 and 65535, got {self.timesteps}")
        lo, hi = INPUT_BITS_RANGE
        if isinstance(self.input_bits, bool) or not isinstance(self.input_bits, (int, np.integer)) \
                or not lo <= self.input_bits <= hi:
            raise HwgenError(f"--input-bits must be an integer between {lo} (spike input) and "
                             f"{hi} (direct unsigned input), got {self.input_bits!r}")




def rows(weight: np.ndarray) -> np.ndarray:
    """One row per output neuron (Dense) or output channel (Conv2d): ``[out, -1]``."""
    return weight.reshape(weight.shape[0], -1)


def check_finite(layer) -> None:
    for what, values in (("weight", layer.weight), ("bias", layer.bias),
                         ("beta", layer.neurons.beta), ("threshold", layer.neurons.threshold)):
        if not np.all(np.isfinite(values)):
            raise HwgenError(f"layer '{layer.name}': {what} contains NaN or inf; "
                             "fix the trained parameters before generating hardware")


def scale_exponents(weight: np.ndarray, weight_bits: int, per_channel: bool) -> np.ndarray:
    """Largest ``e`` per output neuron with ``|round(w·2^e)| <= 2^(bits-1) - 1``.

    ``weight`` is ``[out, in]`` or a convolution's ``[C_out, C_in/groups, kh, kw]``.
    """
    wmax_int = (1 << (weight_bits - 1)) - 1
    absmax = np.abs(rows(weight).astype(np.float64)).max(axis=1)
    if not per_channel:
        absmax = np.full_like(absmax, absmax.max(initial=0.0))
    # An all-zero row has no scale to speak of; 0 keeps thresholds as they are.
    exps = [math.floor(math.log2(wmax_int / m)) if m > 0 else 0 for m in absmax]
    return np.asarray(exps, dtype=np.int64)


# A layer whose weights lose more than this fraction to rounding (non-zero float weights that
# become 0) is worth a warning: at 8 bits a trained layer loses a few percent.
ZEROED_WARN_FRACTION = 0.25


def integers(layer, what: str, values: np.ndarray, scale: np.ndarray, limit_bits: int,
              weight_bits: int) -> np.ndarray:
    """``round(values · 2^e)`` as int64, refusing results beyond ``limit_bits`` signed, which
    no width hwgen makes can hold (and which would wrap silently in the int64 cast). Such a
    parameter is out of all proportion to the layer's largest weight, which sets ``2^e``."""
    rounded = np.rint(np.asarray(values, dtype=np.float64) * scale)
    if np.any(np.abs(rounded) >= 2.0 ** (limit_bits - 1)):
        i = int(np.argmax(np.abs(rounded)))
        wmax = float(np.abs(layer.weight).max(initial=0.0))
        raise HwgenError(f"layer '{layer.name}': {what} {float(values[i]):g} is {abs(float(rounded[i])):.3g} "
                         f"integer steps at the scale of the layer's largest weight (|w| = {wmax:.3g} at "
                         f"--weight-bits {weight_bits}), beyond the {limit_bits}-bit limit of the hardware: "
                         f"the {what} is out of all proportion to the weights; check the trained parameters")
    return rounded.astype(np.int64)


def clip_stats(weight_float: np.ndarray, weight_int: np.ndarray, scale: np.ndarray, weight_bits: int,
               threshold_float: np.ndarray) -> dict:
    """What the integers of one layer could not represent, counted against the float values.

    * ``weights_clipped``: weights whose scaled value lies beyond the signed ``weight_bits``
      range and were saturated; ``weight_clip_max_lsb``: the largest excess, in LSBs. The
      scale rule (largest exponent that fits the largest weight) keeps this 0; it is measured,
      not assumed, so that another scale rule could not clip unnoticed.
    * ``weights_zeroed`` of ``weights_nonzero``: non-zero float weights that rounded to 0
      (smaller than half an LSB): resolution the requested bits do not have.
    * ``thresholds_raised``: neurons whose threshold rounded below 1 and was raised to 1, the
      smallest integer threshold; ``threshold_raised_max``: the largest ``1 / (θ·2^e)``, how
      many times higher the integer threshold is than the float one.
    """
    scaled = rows(weight_float).astype(np.float64) * scale[:, None]
    wmax_int = (1 << (weight_bits - 1)) - 1
    excess = np.maximum(np.abs(np.rint(scaled)) - np.where(scaled < 0, wmax_int + 1, wmax_int), 0)
    nonzero = scaled != 0
    zeroed = nonzero & (rows(weight_int) == 0)
    exact_t = threshold_float * scale
    raised = np.rint(exact_t) < 1
    return {
        "weights_clipped": int(np.count_nonzero(excess)),
        "weight_clip_max_lsb": float(excess.max(initial=0.0)),
        "weights_zeroed": int(np.count_nonzero(zeroed)),
        "weights_nonzero": int(np.count_nonzero(nonzero)),
        "thresholds_raised": int(np.count_nonzero(raised)),
        "threshold_raised_max": float((1.0 / exact_t[raised]).max()) if np.any(raised) else 1.0,
    }


def clip_warnings(name: str, clipping: dict, weight_bits: int) -> list[str]:
    """The clipping of one layer worth a console warning, one line per finding."""
    out = []
    if clipping["weights_clipped"]:
        out.append(f"layer '{name}': {clipping['weights_clipped']} weights clipped to the {weight_bits}-bit "
                   f"range (by up to {clipping['weight_clip_max_lsb']:g} LSB)")
    nonzero, zeroed = clipping["weights_nonzero"], clipping["weights_zeroed"]
    if nonzero and zeroed / nonzero > ZEROED_WARN_FRACTION:
        out.append(f"layer '{name}': {zeroed} of {nonzero} non-zero weights ({zeroed / nonzero:.0%}) round to 0 "
                   f"at --weight-bits {weight_bits} (smaller than half an LSB of the largest weight); "
                   "raise --weight-bits or try --per-channel")
    if clipping["thresholds_raised"]:
        out.append(f"layer '{name}': the threshold of {clipping['thresholds_raised']} neurons rounds below 1 "
                   f"at the weight scale and was raised to 1 (up to {clipping['threshold_raised_max']:.3g}x the "
                   "float threshold), so they fire less than the float model; the threshold is tiny next to "
                   "the weights: check the trained parameters, or raise --weight-bits")
    return out


def leak_for(name: str, beta: np.ndarray, frac_bits: int, what: str = "beta") -> Leak:
    """The integer leak of one decay factor per layer (``what``: "beta", or "alpha" for a
    CuBa current), refusing per-neuron values, which one engine cannot apply."""
    values = np.unique(beta)
    if len(values) != 1:
        raise HwgenError(f"layer '{name}': {what} differs across neurons ({values.min():g}..{values.max():g}); "
                         f"the layer engine applies one leak per layer: train with a scalar {what}")
    b = float(values[0])
    if b == 1.0:
        return Leak("none")
    for k in range(1, 17):
        if abs(b - (1.0 - 2.0 ** -k)) < 1e-9:
            return Leak("shift", shift=k)
    return Leak("mul", mul=int(round(b * (1 << frac_bits))), frac_bits=frac_bits)


