"""Quantize stage: float IR -> integer IR (docs/semantics.md, "Quantization").

Power-of-two scales keep thresholds and weights on one integer grid without a rescaling
multiplier in hardware; the leak becomes a shift where beta allows it, a small constant
multiplier otherwise. State widths come from calibration data, and every rounding the
quantizer does is measured and reported rather than hidden.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from . import golden, ir_sim
from .errors import HwgenError
from .ir import Dense, Flatten, Leak, Network, QuantDense, QuantNetwork
from .widths import accumulator_bits, signed_bits

WEIGHT_BITS_RANGE = (2, 16)
MAX_STATE_BITS = 32
# Calibration before saturation is known: wide enough that nothing clamps.
_UNCLAMPED_STATE_BITS = 48


@dataclass
class QuantOptions:
    weight_bits: int = 8
    per_channel: bool = False
    state_bits: int | None = None  # None: derived from calibration
    leak_frac_bits: int = 8  # F of the "mul" leak, used when beta is not 1 - 2^-k
    timesteps: int = 16

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


@dataclass
class QuantReport:
    weight_bits: int
    per_channel: bool
    calibration_samples: int
    calibration_source: str
    layers: list[LayerQuantReport] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _check_finite(layer: Dense) -> None:
    for what, values in (("weight", layer.weight), ("bias", layer.bias),
                         ("beta", layer.neurons.beta), ("threshold", layer.neurons.threshold)):
        if not np.all(np.isfinite(values)):
            raise HwgenError(f"layer '{layer.name}': {what} contains NaN or inf; "
                             "fix the trained parameters before generating hardware")


def scale_exponents(weight: np.ndarray, weight_bits: int, per_channel: bool) -> np.ndarray:
    """Largest ``e`` per output neuron with ``|round(w·2^e)| <= 2^(bits-1) - 1``."""
    wmax_int = (1 << (weight_bits - 1)) - 1
    absmax = np.abs(weight.astype(np.float64)).max(axis=1)
    if not per_channel:
        absmax = np.full_like(absmax, absmax.max(initial=0.0))
    # An all-zero row has no scale to speak of; 0 keeps thresholds as they are.
    exps = [math.floor(math.log2(wmax_int / m)) if m > 0 else 0 for m in absmax]
    return np.asarray(exps, dtype=np.int64)


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


def _quantize_dense(layer: Dense, opts: QuantOptions) -> QuantDense:
    _check_finite(layer)
    exps = scale_exponents(layer.weight, opts.weight_bits, opts.per_channel)
    scale = np.exp2(exps.astype(np.float64))
    wmax_int = (1 << (opts.weight_bits - 1)) - 1
    weight = np.clip(np.rint(layer.weight * scale[:, None]), -wmax_int - 1, wmax_int).astype(np.int64)
    bias = np.rint(layer.bias * scale).astype(np.int64)
    threshold = np.maximum(np.rint(layer.neurons.threshold * scale), 1).astype(np.int64)
    leak = leak_for(layer.name, layer.neurons.beta, opts.leak_frac_bits)
    return QuantDense(name=layer.name, weight=weight, bias=bias, threshold=threshold, leak=leak,
                      reset=layer.neurons.reset, weight_bits=opts.weight_bits,
                      state_bits=_UNCLAMPED_STATE_BITS,
                      acc_bits=accumulator_bits(weight, bias, _UNCLAMPED_STATE_BITS), scale_exp=exps)


def _state_bits_from(lo: int, hi: int, threshold: np.ndarray) -> int:
    # One bit of headroom over what calibration saw, and room above the threshold to fire.
    bound = max(abs(lo), abs(hi), int(threshold.max()) + 1)
    return min(MAX_STATE_BITS, signed_bits(-bound, bound) + 1)


def calibration_inputs(net: Network, timesteps: int, samples: int = 64, seed: int = 0) -> np.ndarray:
    """Random spike trains at rates from 2% to 50%, used when the user gives no data."""
    rng = np.random.default_rng(seed)
    rates = np.linspace(0.02, 0.5, samples)[:, None, None]
    shape = (samples, timesteps, net.input_size)
    return (rng.random(shape) < rates).astype(np.uint8).reshape(samples, timesteps, *net.input_shape)


def quantize(net: Network, opts: QuantOptions, calibration: np.ndarray | None = None,
             calibration_source: str = "") -> tuple[QuantNetwork, QuantReport]:
    opts.validate()
    if calibration is None:
        calibration = calibration_inputs(net, opts.timesteps)
        calibration_source = "random spikes, rates 2%..50%"
    layers = [_quantize_dense(layer, opts) if isinstance(layer, Dense) else layer
              for layer in net.layers]
    qnet = QuantNetwork(net.input_shape, layers, opts.timesteps, source=net.source)

    ranges: list[list[int]] = []
    golden.run(qnet, calibration, membrane_range=ranges)
    report = QuantReport(opts.weight_bits, opts.per_channel, int(calibration.shape[0]), calibration_source)
    floats = {layer.name: layer for layer in net.spiking_layers}
    for qlayer, (lo, hi) in zip(qnet.spiking_layers, ranges):
        qlayer.state_bits = opts.state_bits or _state_bits_from(lo, hi, qlayer.threshold)
        if int(qlayer.threshold.max()) >= qlayer.state_max:
            raise HwgenError(f"layer '{qlayer.name}': threshold {int(qlayer.threshold.max())} does not fit "
                             f"{qlayer.state_bits} state bits; raise --state-bits or lower --weight-bits")
        qlayer.acc_bits = accumulator_bits(qlayer.weight, qlayer.bias, qlayer.state_bits)
        report.layers.append(_layer_report(floats[qlayer.name], qlayer, [lo, hi]))
    return qnet, report


def _layer_report(layer: Dense, q: QuantDense, membrane_range: list[int]) -> LayerQuantReport:
    scale = np.exp2(q.scale_exp.astype(np.float64))
    exact_w = layer.weight.astype(np.float64) * scale[:, None]
    exact_t = layer.neurons.threshold * scale
    return LayerQuantReport(
        name=q.name,
        scale_exp=sorted(set(int(e) for e in q.scale_exp)),
        weight_rmse_lsb=float(np.sqrt(np.mean((q.weight - exact_w) ** 2))),
        threshold=sorted(set(int(t) for t in q.threshold)),
        threshold_rel_error=float(np.max(np.abs(q.threshold - exact_t) / exact_t)),
        leak={"kind": q.leak.kind, "shift": q.leak.shift, "mul": q.leak.mul, "frac_bits": q.leak.frac_bits},
        beta_float=float(layer.neurons.beta[0]),
        beta_int=q.leak.beta,
        multiplier_bits=q.leak.frac_bits + 1 if q.leak.kind == "mul" else 0,
        membrane_range=membrane_range,
        state_bits=q.state_bits,
        acc_bits=q.acc_bits,
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
