"""Quantize stage: float IR -> integer IR (docs/semantics.md, "Quantization").

Power-of-two scales keep thresholds and weights on one integer grid without a rescaling
multiplier in hardware; the leak becomes a shift where beta allows it, a small constant
multiplier otherwise. State widths come from calibration data, and every rounding the
quantizer does is measured and reported rather than hidden.

Dense and Conv2d layers are quantized the same way: a convolution's weight is treated as
``[C_out, C_in/groups·kh·kw]`` rows, one per output channel, so ``--per-channel`` means per
output channel there. The accumulator width accounts for the largest value an input address
carries in one timestep (``input_max``): 1 for spikes, ``kh·kw`` after a sum pool (multiplied
through stacked pools), and ``2**input_bits - 1`` for direct multi-bit input to the first
layer. With direct input the float network is assumed to take the very same unsigned integers
as the hardware (a model trained on ``x / 255`` has that ``1/255`` folded into its first
layer, which the power-of-two scale absorbs).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from . import golden, ir_sim
from .errors import HwgenError
from .ir import (Conv2d, Dense, Flatten, Leak, MaxPool2d, Network, QuantConv2d, QuantDense,
                 QuantNetwork, SumPool2d)
from .widths import accumulator_bits, signed_bits

WEIGHT_BITS_RANGE = (2, 16)
MAX_STATE_BITS = 32
# Calibration before saturation is known: wide enough that nothing clamps.
_UNCLAMPED_STATE_BITS = 48
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


@dataclass
class LayerQuantReport:
    name: str
    scale_exp: list[int]
    weight_rmse_lsb: float  # rounding error of the weights, in integer LSBs
    threshold: list[int]
    threshold_rel_error: float  # max |round(θ·2^e) - θ·2^e| / (θ·2^e)
    leak: dict
    beta_float: float
    beta_int: float
    multiplier_bits: int  # 0 unless the leak is a "mul"
    membrane_range: list[int]  # calibrated [min, max] of the unsaturated sum
    state_bits: int
    acc_bits: int
    input_max: int = 1  # largest input value per address and timestep (sizes acc_bits)
    clipping: dict = field(default_factory=dict)  # what rounding could not represent: clip_stats


@dataclass
class QuantReport:
    weight_bits: int
    per_channel: bool
    calibration_samples: int
    calibration_source: str
    layers: list[LayerQuantReport] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # clipping worth a look, one line each

    def to_dict(self) -> dict:
        return asdict(self)


Synaptic = Dense | Conv2d
QuantSynaptic = QuantDense | QuantConv2d


def _rows(weight: np.ndarray) -> np.ndarray:
    """One row per output neuron (Dense) or output channel (Conv2d): ``[out, -1]``."""
    return weight.reshape(weight.shape[0], -1)


def _check_finite(layer: Synaptic) -> None:
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
    absmax = np.abs(_rows(weight).astype(np.float64)).max(axis=1)
    if not per_channel:
        absmax = np.full_like(absmax, absmax.max(initial=0.0))
    # An all-zero row has no scale to speak of; 0 keeps thresholds as they are.
    exps = [math.floor(math.log2(wmax_int / m)) if m > 0 else 0 for m in absmax]
    return np.asarray(exps, dtype=np.int64)


# A layer whose weights lose more than this fraction to rounding (non-zero float weights that
# become 0) is worth a warning: at 8 bits a trained layer loses a few percent.
ZEROED_WARN_FRACTION = 0.25


def _integers(layer: Synaptic, what: str, values: np.ndarray, scale: np.ndarray, limit_bits: int,
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
    rows = _rows(weight_float).astype(np.float64) * scale[:, None]
    wmax_int = (1 << (weight_bits - 1)) - 1
    excess = np.maximum(np.abs(np.rint(rows)) - np.where(rows < 0, wmax_int + 1, wmax_int), 0)
    nonzero = rows != 0
    zeroed = nonzero & (_rows(weight_int) == 0)
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


def leak_for(name: str, beta: np.ndarray, frac_bits: int) -> Leak:
    values = np.unique(beta)
    if len(values) != 1:
        raise HwgenError(f"layer '{name}': beta differs across neurons ({values.min():g}..{values.max():g}); "
                         "the layer engine applies one leak per layer: train with a scalar beta")
    b = float(values[0])
    if b == 1.0:
        return Leak("none")
    for k in range(1, 17):
        if abs(b - (1.0 - 2.0 ** -k)) < 1e-9:
            return Leak("shift", shift=k)
    return Leak("mul", mul=int(round(b * (1 << frac_bits))), frac_bits=frac_bits)


def _quantize_layer(layer: Synaptic, opts: QuantOptions, input_max: int) -> QuantSynaptic:
    _check_finite(layer)
    exps = scale_exponents(layer.weight, opts.weight_bits, opts.per_channel)
    scale = np.exp2(exps.astype(np.float64))
    wmax_int = (1 << (opts.weight_bits - 1)) - 1
    wscale = scale.reshape(-1, *([1] * (layer.weight.ndim - 1)))
    weight = np.clip(np.rint(layer.weight * wscale), -wmax_int - 1, wmax_int).astype(np.int64)
    bias = _integers(layer, "bias", layer.bias, scale, MAX_ACC_BITS, opts.weight_bits)
    # Below 1 a threshold would fire on any positive membrane: 1 is the smallest (reported).
    threshold = np.maximum(_integers(layer, "threshold", layer.neurons.threshold, scale, MAX_STATE_BITS,
                                     opts.weight_bits), 1)
    leak = leak_for(layer.name, layer.neurons.beta, opts.leak_frac_bits)
    common = dict(name=layer.name, weight=weight, bias=bias, threshold=threshold, leak=leak,
                  reset=layer.neurons.reset, weight_bits=opts.weight_bits,
                  state_bits=_UNCLAMPED_STATE_BITS,
                  acc_bits=accumulator_bits(_rows(weight), bias, _UNCLAMPED_STATE_BITS,
                                            input_max=input_max),
                  scale_exp=exps, input_max=input_max)
    if isinstance(layer, Conv2d):
        return QuantConv2d(**common, input_shape=layer.input_shape, stride=layer.stride,
                           padding=layer.padding, groups=layer.groups)
    return QuantDense(**common)


def _quantize_layers(net: Network, opts: QuantOptions) -> list:
    """Quantize every synaptic layer, propagating the largest value an input can carry."""
    input_max = (1 << opts.input_bits) - 1
    carries = "spikes" if opts.input_bits == 1 else f"the {opts.input_bits}-bit direct input"
    layers = []
    for layer in net.layers:
        if isinstance(layer, MaxPool2d):
            # golden and the hardware max-pool as an OR of 0/1 values; on counts or multi-bit
            # values that is not a max.
            if input_max > 1:
                raise HwgenError(f"layer '{layer.name}': MaxPool2d on {carries} (values up to "
                                 f"{input_max}); hwgen max-pools 0/1 spikes only (an OR per "
                                 "window): put the max pool directly after a neuron")
            layers.append(layer)
        elif isinstance(layer, SumPool2d):
            input_max *= layer.kernel[0] * layer.kernel[1]
            carries = f"the counts of sum pool '{layer.name}'"
            layers.append(layer)
        elif isinstance(layer, (Dense, Conv2d)):
            layers.append(_quantize_layer(layer, opts, input_max))
            input_max, carries = 1, "spikes"
        else:
            layers.append(layer)
    return layers


def _state_bits_from(lo: int, hi: int, threshold: np.ndarray) -> int:
    # One bit of headroom over what calibration saw, and room above the threshold to fire.
    bound = max(abs(lo), abs(hi), int(threshold.max()) + 1)
    return min(MAX_STATE_BITS, signed_bits(-bound, bound) + 1)


def calibration_inputs(net: Network, timesteps: int, samples: int = 64, seed: int = 0,
                       input_bits: int = 1) -> np.ndarray:
    """Random inputs used when the user gives no data.

    Spike trains at rates from 2% to 50%; for direct input (``input_bits > 1``) the same
    fraction of addresses is non-zero, with values uniform over ``1 .. 2**input_bits - 1``.
    """
    rng = np.random.default_rng(seed)
    rates = np.linspace(0.02, 0.5, samples)[:, None, None]
    shape = (samples, timesteps, net.input_size)
    active = rng.random(shape) < rates
    if input_bits <= 1:
        x = active.astype(np.uint8)
    else:
        values = rng.integers(1, 1 << input_bits, size=shape)
        x = np.where(active, values, 0).astype(np.uint8 if input_bits <= 8 else np.uint16)
    return x.reshape(samples, timesteps, *net.input_shape)


def _check_calibration(net: Network, x: np.ndarray, input_bits: int) -> None:
    x = np.asarray(x)
    if x.ndim < 2 or int(np.prod(x.shape[2:])) != net.input_size:
        raise HwgenError(f"calibration inputs shaped {list(x.shape)} do not fit the model: "
                         f"expected [samples, timesteps, {', '.join(map(str, net.input_shape))}]")
    if x.size == 0:
        return
    top = (1 << input_bits) - 1
    v = x.astype(np.float64)
    if np.any(v != np.round(v)) or v.min() < 0 or v.max() > top:
        kind = "0/1 spikes" if input_bits == 1 else f"unsigned integers 0..{top} (--input-bits {input_bits})"
        raise HwgenError(f"calibration inputs hold values {v.min():g}..{v.max():g}; expected {kind}")


def quantize(net: Network, opts: QuantOptions, calibration: np.ndarray | None = None,
             calibration_source: str = "") -> tuple[QuantNetwork, QuantReport]:
    opts.validate()
    if calibration is None:
        calibration = calibration_inputs(net, opts.timesteps, input_bits=opts.input_bits)
        calibration_source = ("random spikes, rates 2%..50%" if opts.input_bits == 1 else
                              f"random {opts.input_bits}-bit values, 2%..50% non-zero")
    _check_calibration(net, calibration, opts.input_bits)
    layers = _quantize_layers(net, opts)
    notes = []
    if opts.input_bits > 1:
        notes.append(f"direct input: {opts.input_bits}-bit unsigned values, taken as the same "
                     "numbers by the float model")
    qnet = QuantNetwork(net.input_shape, layers, opts.timesteps, source=net.source, notes=notes,
                        input_bits=opts.input_bits)

    ranges: list[list[int]] = []
    golden.run(qnet, calibration, membrane_range=ranges)
    report = QuantReport(opts.weight_bits, opts.per_channel, int(calibration.shape[0]), calibration_source)
    floats = {layer.name: layer for layer in net.spiking_layers}
    for qlayer, (lo, hi) in zip(qnet.spiking_layers, ranges):
        qlayer.state_bits = opts.state_bits or _state_bits_from(lo, hi, qlayer.threshold)
        if int(qlayer.threshold.max()) >= qlayer.state_max:
            raise HwgenError(f"layer '{qlayer.name}': threshold {int(qlayer.threshold.max())} does not fit "
                             f"{qlayer.state_bits} state bits; raise --state-bits or lower --weight-bits")
        qlayer.acc_bits = accumulator_bits(_rows(qlayer.weight), qlayer.bias, qlayer.state_bits,
                                           input_max=qlayer.input_max)
        if qlayer.acc_bits > MAX_ACC_BITS:
            raise HwgenError(f"layer '{qlayer.name}': its worst-case sum needs a {qlayer.acc_bits}-bit "
                             f"accumulator (more than {MAX_ACC_BITS}); lower --weight-bits, "
                             "--input-bits or --state-bits")
        report.layers.append(_layer_report(floats[qlayer.name], qlayer, [lo, hi]))
        report.warnings += clip_warnings(qlayer.name, report.layers[-1].clipping, opts.weight_bits)
    return qnet, report


def _layer_report(layer: Synaptic, q: QuantSynaptic, membrane_range: list[int]) -> LayerQuantReport:
    scale = np.exp2(q.scale_exp.astype(np.float64))
    exact_w = _rows(layer.weight).astype(np.float64) * scale[:, None]
    exact_t = layer.neurons.threshold * scale
    return LayerQuantReport(
        name=q.name,
        scale_exp=sorted(set(int(e) for e in q.scale_exp)),
        weight_rmse_lsb=float(np.sqrt(np.mean((_rows(q.weight) - exact_w) ** 2))),
        threshold=sorted(set(int(t) for t in q.threshold)),
        threshold_rel_error=float(np.max(np.abs(q.threshold - exact_t) / exact_t)),
        leak={"kind": q.leak.kind, "shift": q.leak.shift, "mul": q.leak.mul, "frac_bits": q.leak.frac_bits},
        beta_float=float(layer.neurons.beta[0]),
        beta_int=q.leak.beta,
        multiplier_bits=q.leak.frac_bits + 1 if q.leak.kind == "mul" else 0,
        membrane_range=membrane_range,
        state_bits=q.state_bits,
        acc_bits=q.acc_bits,
        input_max=q.input_max,
        clipping=clip_stats(layer.weight, q.weight, scale, q.weight_bits, layer.neurons.threshold),
    )


@dataclass
class Fidelity:
    """How the integer model compares with the float IR on the same inputs."""

    samples: int
    spike_agreement: list[float]  # per spiking layer, fraction of equal spike decisions
    prediction_agreement: float
    accuracy_float: float | None
    accuracy_int: float | None

    def to_dict(self) -> dict:
        return asdict(self)


def fidelity(net: Network, qnet: QuantNetwork, inputs: np.ndarray,
             labels: np.ndarray | None = None) -> Fidelity:
    float_trace = ir_sim.run_float(net, torch.as_tensor(np.asarray(inputs), dtype=torch.float32))
    int_trace = golden.run(qnet, inputs)
    agree = [float((f == q).float().mean()) for f, q in zip(float_trace.spikes, int_trace.spikes)]
    pred_f, pred_q = float_trace.prediction.numpy(), int_trace.prediction.numpy()
    acc_f = acc_q = None
    if labels is not None:
        labels = np.asarray(labels)
        acc_f, acc_q = float((pred_f == labels).mean()), float((pred_q == labels).mean())
    return Fidelity(int(pred_f.shape[0]), agree, float((pred_f == pred_q).mean()), acc_f, acc_q)
