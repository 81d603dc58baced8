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

from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch

from . import golden, ir_sim
from .errors import HwgenError
from .ir import INPUT, Network, QuantNetwork
from .kinds.base import Flow
from .quant_rules import (INPUT_BITS_RANGE, MAX_ACC_BITS, MAX_STATE_BITS, WEIGHT_BITS_RANGE,  # noqa: F401
                          QuantOptions, clip_stats, clip_warnings, leak_for, rows, scale_exponents)
from .widths import accumulator_bits, signed_bits


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
    # CuBa layers: the synaptic current's decay (float and as realised), width, calibrated
    # range of its unsaturated sum, and which step's current the membrane takes (delay).
    current: dict | None = None


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


def _quantize_layers(net: Network, opts: QuantOptions) -> list:
    """Quantize every node in graph order, each told what its input carries (``Flow``): a
    recurrent (delayed) input carries spikes, a merge of several the sum of theirs (a
    ``joins`` node) or the largest (a neuron layer's concatenated inputs)."""
    carries = "spikes" if opts.input_bits == 1 else f"the {opts.input_bits}-bit direct input"
    flows = {INPUT: Flow((1 << opts.input_bits) - 1, carries)}
    layers = []
    for layer in net.layers:
        edges = net.sources(layer)
        incoming = [Flow(1, "spikes") if e.delay else flows[e.source] for e in edges]
        if opts.input_bits > 1 and len(edges) > 1 and any(e.source == INPUT for e in edges):
            raise HwgenError(f"layer '{layer.name}' merges the {opts.input_bits}-bit direct input with "
                             "other inputs; direct input must feed one layer alone")
        if layer.joins:
            quantized, flows[layer.name] = layer.quantize(opts, incoming)
        else:
            widest = max(incoming, key=lambda f: f.input_max)
            quantized, flows[layer.name] = layer.quantize(opts, widest)
        layers.append(quantized)
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
    try:
        net.check_graph()
    except ValueError as exc:
        raise HwgenError(str(exc)) from exc
    layers = _quantize_layers(net, opts)
    notes = []
    if opts.input_bits > 1:
        notes.append(f"direct input: {opts.input_bits}-bit unsigned values, taken as the same "
                     "numbers by the float model")
    qnet = QuantNetwork(net.input_shape, layers, opts.timesteps, source=net.source, notes=notes,
                        input_bits=opts.input_bits, inputs=dict(net.inputs), output=net.output)

    ranges: list[list[int]] = []
    currents: list[list[int] | None] = []
    golden.run(qnet, calibration, membrane_range=ranges, current_range=currents)
    report = QuantReport(opts.weight_bits, opts.per_channel, int(calibration.shape[0]), calibration_source)
    floats = {layer.name: layer for layer in net.spiking_layers}
    for n, (qlayer, (lo, hi)) in enumerate(zip(qnet.spiking_layers, ranges)):
        qlayer.state_bits = opts.state_bits or _state_bits_from(lo, hi, qlayer.threshold)
        if int(qlayer.threshold.max()) >= qlayer.state_max:
            raise HwgenError(f"layer '{qlayer.name}': threshold {int(qlayer.threshold.max())} does not fit "
                             f"{qlayer.state_bits} state bits; raise --state-bits or lower --weight-bits")
        if qlayer.v_reset is not None and (qlayer.v_reset.min() < qlayer.state_min
                                           or qlayer.v_reset.max() > qlayer.state_max):
            raise HwgenError(f"layer '{qlayer.name}': v_reset {int(np.abs(qlayer.v_reset).max())} does not fit "
                             f"{qlayer.state_bits} state bits; raise --state-bits")
        if qlayer.synapse is not None:
            c_lo, c_hi = currents[n] if n < len(currents) and currents[n] else (0, 0)
            bits = opts.state_bits or _state_bits_from(c_lo, c_hi, np.zeros(1, dtype=np.int64))
            qlayer.synapse = replace(qlayer.synapse, bits=bits)
        qlayer.acc_bits = accumulator_bits(rows(qlayer.weight), qlayer.bias, qlayer.integrated_bits,
                                           input_max=qlayer.input_max)
        if qlayer.acc_bits > MAX_ACC_BITS:
            raise HwgenError(f"layer '{qlayer.name}': its worst-case sum needs a {qlayer.acc_bits}-bit "
                             f"accumulator (more than {MAX_ACC_BITS}); lower --weight-bits, "
                             "--input-bits or --state-bits")
        report.layers.append(_layer_report(floats[qlayer.name], qlayer, [lo, hi],
                                           currents[n] if n < len(currents) else None))
        report.warnings += clip_warnings(qlayer.name, report.layers[-1].clipping, opts.weight_bits)
    return qnet, report


def _layer_report(layer, q, membrane_range: list[int], current_range: list[int] | None) -> LayerQuantReport:
    scale = np.exp2(q.scale_exp.astype(np.float64))
    weight_f, _ = layer.integer_form()
    exact_w = rows(weight_f).astype(np.float64) * scale[:, None]
    exact_t = layer.neurons.threshold * scale
    return LayerQuantReport(
        name=q.name,
        scale_exp=sorted(set(int(e) for e in q.scale_exp)),
        weight_rmse_lsb=float(np.sqrt(np.mean((rows(q.weight) - exact_w) ** 2))),
        threshold=sorted(set(int(t) for t in q.threshold)),
        threshold_rel_error=float(np.max(np.abs(q.threshold - exact_t) / exact_t)),
        leak={"kind": q.leak.kind, "shift": q.leak.shift, "mul": q.leak.mul, "frac_bits": q.leak.frac_bits},
        beta_float=float(layer.decays()[0][0]),
        beta_int=q.leak.beta,
        multiplier_bits=q.leak.frac_bits + 1 if q.leak.kind == "mul" else 0,
        membrane_range=membrane_range,
        state_bits=q.state_bits,
        acc_bits=q.acc_bits,
        input_max=q.input_max,
        clipping=clip_stats(weight_f, q.weight, scale, q.weight_bits, layer.neurons.threshold),
        current=None if q.synapse is None else {
            "alpha_float": float(layer.decays()[1][0]), "alpha_int": q.synapse.leak.beta,
            "leak": {"kind": q.synapse.leak.kind, "shift": q.synapse.leak.shift, "mul": q.synapse.leak.mul,
                     "frac_bits": q.synapse.leak.frac_bits},
            "current_bits": q.synapse.bits, "current_range": current_range, "delay": q.synapse.delay},
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
