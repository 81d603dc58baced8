"""What a generated accelerator costs: memories, widths and cycles, as JSON and Markdown."""

from __future__ import annotations

import math

import numpy as np

from .golden import GoldenTrace
from .hardware import DenseLIFEngine
from .ir import QuantNetwork
from .widths import unsigned_bits


def layer_parallelism(n_out: int, parallel: int) -> int:
    return max(1, min(parallel, n_out))


def layer_cycles(active_inputs: float, n_out: int, parallel: int, timesteps: int) -> float:
    """Cycles a layer holds its input over an inference: ``T·(a + 1)·G`` (docs/hardware.md)."""
    groups = math.ceil(n_out / layer_parallelism(n_out, parallel))
    return timesteps * (active_inputs + 1) * groups


def event_driven_cycles(qnet: QuantNetwork, parallel: int, active_inputs: list[list[float]]) -> float:
    """The event-driven bound of one inference (docs/hardware.md), from the spikes that flowed.

    ``active_inputs[k][t]`` is the number of spikes into spiking layer ``k`` at timestep
    ``t``. Layer ``k`` holds its input for ``(a + 1) * G_k`` cycles per timestep; layers
    overlap, so the busiest one sets the pace, plus every layer's tick-to-output latency
    and one cycle of readout.
    """
    busiest = 0
    for layer, per_step in zip(qnet.spiking_layers, active_inputs):
        groups = math.ceil(layer.out_features / layer_parallelism(layer.out_features, parallel))
        busiest = max(busiest, sum((a + 1) * groups for a in per_step))
    return busiest + len(qnet.spiking_layers) * DenseLIFEngine.pipeline_latency + 1


def hardware_report(qnet: QuantNetwork, parallel: int, activity: GoldenTrace | None,
                    activity_inputs: np.ndarray | None) -> dict:
    """Per-layer sizes and memories, and cycle estimates from measured spike activity.

    ``activity`` is the golden trace of ``activity_inputs`` (typically the calibration or
    held-out data): its mean spike counts give the expected cycles per inference.
    """
    layers = []
    total_weight_bits = total_state_bits = 0
    mean_activity: list[list[float]] = []
    T = qnet.timesteps
    in_rate = None
    if activity is not None and activity_inputs is not None:
        flat = np.asarray(activity_inputs).reshape(activity.batch, -1, qnet.input_size)
        in_rate = flat.sum(axis=2).mean()  # mean active inputs per timestep
    for n, layer in enumerate(qnet.spiking_layers):
        p = layer_parallelism(layer.out_features, parallel)
        groups = math.ceil(layer.out_features / p)
        weight_bits = layer.in_features * groups * p * layer.weight_bits
        state_bits = groups * p * layer.acc_bits
        total_weight_bits += weight_bits
        total_state_bits += state_bits
        worst = layer_cycles(layer.in_features, layer.out_features, parallel, T)
        entry = {
            "name": layer.name,
            "type": "dense_lif",
            "in": layer.in_features,
            "out": layer.out_features,
            "parallel": p,
            "groups": groups,
            "weight_bits": layer.weight_bits,
            "state_bits": layer.state_bits,
            "acc_bits": layer.acc_bits,
            "reset": layer.reset,
            "leak": {"kind": layer.leak.kind, "shift": layer.leak.shift, "mul": layer.leak.mul,
                     "frac_bits": layer.leak.frac_bits, "beta": layer.leak.beta},
            "threshold_min": int(layer.threshold.min()),
            "threshold_max": int(layer.threshold.max()),
            "weight_memory_bits": weight_bits,
            "membrane_memory_bits": state_bits,
            "cycles_per_inference_worst": worst,
        }
        if in_rate is not None:
            active = in_rate if n == 0 else float(activity.spikes[n - 1].float().sum(dim=2).mean())
            entry["mean_active_inputs_per_timestep"] = float(active)
            entry["cycles_per_inference_expected"] = layer_cycles(active, layer.out_features, parallel, T)
            mean_activity.append([active] * T)
        layers.append(entry)
    report = {
        "input_shape": list(qnet.input_shape),
        "timesteps": T,
        "parallel": parallel,
        "neurons": sum(layer.out_features for layer in qnet.spiking_layers),
        "synapses": sum(layer.weight.size for layer in qnet.spiking_layers),
        "readout_count_bits": unsigned_bits(T),
        "weight_memory_bits": total_weight_bits,
        "membrane_memory_bits": total_state_bits,
        # Layers run concurrently on a token pipeline: the busiest one sets the pace.
        "cycles_per_inference_worst": event_driven_cycles(
            qnet, parallel, [[layer.in_features] * T for layer in qnet.spiking_layers]),
        "layers": layers,
    }
    if in_rate is not None:
        report["cycles_per_inference_expected"] = event_driven_cycles(qnet, parallel, mean_activity)
        report["mean_input_spikes_per_timestep"] = float(in_rate)
    return report


def render_markdown(report: dict) -> str:
    hw = report["hardware"]
    lines = [
        f"# hwgen report: {report['model']}",
        "",
        f"- input shape {hw['input_shape']}, {hw['timesteps']} timesteps, parallelism P = {hw['parallel']}",
        f"- {hw['neurons']} neurons, {hw['synapses']} synapses",
        f"- weight memory {hw['weight_memory_bits']} bits, membrane memory {hw['membrane_memory_bits']} bits",
        f"- cycles per inference: worst case (every input spiking) {hw['cycles_per_inference_worst']:.0f}"
        + (f", expected from data {hw['cycles_per_inference_expected']:.0f}"
           if "cycles_per_inference_expected" in hw else ""),
        "",
        "## Layers",
        "",
        "| layer | in | out | P | weight bits | state bits | acc bits | leak | reset | threshold | weight mem (bits) | membrane mem (bits) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for layer in hw["layers"]:
        leak = layer["leak"]
        leak_text = {"none": "none (IF)", "shift": f"v - (v >> {leak['shift']})",
                     "mul": f"(v * {leak['mul']}) >> {leak['frac_bits']}"}[leak["kind"]]
        thr = (str(layer["threshold_min"]) if layer["threshold_min"] == layer["threshold_max"]
               else f"{layer['threshold_min']}..{layer['threshold_max']}")
        lines.append(f"| {layer['name']} | {layer['in']} | {layer['out']} | {layer['parallel']} | "
                     f"{layer['weight_bits']} | {layer['state_bits']} | {layer['acc_bits']} | {leak_text} | "
                     f"{layer['reset']} | {thr} | {layer['weight_memory_bits']} | {layer['membrane_memory_bits']} |")
    q = report["quantization"]
    lines += ["", "## Quantization", "",
              f"{q['weight_bits']}-bit weights, {'per-neuron' if q['per_channel'] else 'per-layer'} "
              f"power-of-two scales; calibration: {q['calibration_samples']} samples ({q['calibration_source']}).",
              "", "| layer | scale 2^e | weight RMSE (LSB) | threshold rel. error | beta float -> int | membrane range seen |",
              "|---|---|---|---|---|---|"]
    for layer in q["layers"]:
        lines.append(f"| {layer['name']} | {layer['scale_exp']} | {layer['weight_rmse_lsb']:.3f} | "
                     f"{layer['threshold_rel_error']:.2e} | {layer['beta_float']:.6g} -> {layer['beta_int']:.6g} | "
                     f"{layer['membrane_range']} |")
    f = report.get("fidelity")
    if f:
        lines += ["", "## Float vs integer", "",
                  f"On {f['samples']} samples ({report.get('fidelity_data', '')}): prediction agreement "
                  f"{f['prediction_agreement']:.2%}; spike agreement per layer "
                  + ", ".join(f"{a:.2%}" for a in f["spike_agreement"]) + "."]
        if f["accuracy_float"] is not None:
            lines.append(f"Accuracy: float {f['accuracy_float']:.2%}, integer {f['accuracy_int']:.2%}.")
    return "\n".join(lines) + "\n"
