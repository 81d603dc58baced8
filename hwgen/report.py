"""What a generated accelerator costs: memories, widths, cycles and device fit, as JSON and Markdown."""

from __future__ import annotations

import numpy as np

from .devices import fit
from .golden import GoldenTrace
from .ir import QuantNetwork
from .kinds import EngineGeometry
from .widths import unsigned_bits

FIT_DEVICES = ("ice40up5k", "ecp5-25f")


def geometry(layer, parallel: int) -> EngineGeometry:
    """How a spiking layer is folded onto its engine: the kind's own answer."""
    return layer.geometry(parallel)


def layer_timestep_cycles(g: EngineGeometry, ops: float, events: float = 0.0) -> float:
    """Engine cycles for one timestep: the input port takes at least one cycle per event and
    ``G`` per in-range output position of it, then the fire pass walks its membrane words.

    ``ops`` is the golden model's synaptic operations (events × in-range fan-out), so
    ``ops / reach`` is the number of (event, in-range position) pairs.
    """
    return max(events, ops / g.reach * g.groups) + g.fire_words


def layer_cycles(g: EngineGeometry, ops: list[float], events: list[float], spikes_out: list[float]) -> float:
    """A layer's cycles over an inference. The serializer sends one token per spike and tick.

    Where the spike queue holds a whole fire pass (dense layers), the serializer drains it
    while the next timestep integrates: engine and serializer work in parallel and the
    busier sets the pace. Where it does not (a conv's output map), a fire pass that fires
    more spikes than it walks words waits for the serializer: each timestep's fire pass
    lasts the longer of the two.
    """
    serializer = sum(spikes_out) + len(ops)
    if g.queue_words >= g.fire_words:
        engine = sum(layer_timestep_cycles(g, o, e) for o, e in zip(ops, events))
    else:
        engine = sum(layer_timestep_cycles(g, o, e) - g.fire_words + max(g.fire_words, s)
                     for o, e, s in zip(ops, events, spikes_out))
    return max(engine, serializer)


def event_driven_cycles(qnet: QuantNetwork, parallel: int, ops: list[list[float]],
                        events: list[list[float]] | None = None,
                        spikes_out: list[list[float]] | None = None) -> float:
    """The event-driven cost model of one inference, from the work that flowed.

    Per spiking layer ``k`` and timestep ``t``: ``ops[k][t]`` synaptic operations,
    ``events[k][t]`` input events and ``spikes_out[k][t]`` output spikes (both default to
    none). Layers overlap on the token pipeline, so the busiest one sets the pace, plus
    every layer's tick-to-output latency and one cycle of readout.
    """
    busiest, latency = 0.0, 0
    for k, (layer, per_step) in enumerate(zip(qnet.spiking_layers, ops)):
        g = geometry(layer, parallel)
        none = [0.0] * len(per_step)
        busiest = max(busiest, layer_cycles(g, per_step, events[k] if events else none,
                                            spikes_out[k] if spikes_out else none))
        latency += g.pipeline_latency
    return busiest + latency + 1


def _worst_ops(qnet: QuantNetwork) -> list[float]:
    """Per layer, the synaptic operations of a timestep in which every input is active."""
    return [layer.full_fanout() for layer in qnet.spiking_layers]


def hardware_report(qnet: QuantNetwork, parallel: int, activity: GoldenTrace | None) -> dict:
    """Per-layer sizes and memories, cycle estimates, and whether the memories fit devices.

    ``activity`` is the golden trace of representative inputs (the calibration or held-out
    data): its mean synaptic operations give the expected cycles per inference.
    """
    T = qnet.timesteps
    layers = [layer.report_entry(parallel) for layer in qnet.layers]
    spiking = [entry for entry in layers if "groups" in entry]
    worst = _worst_ops(qnet)
    for entry, layer, ops in zip(spiking, qnet.spiking_layers, worst):
        entry["cycles_per_inference_worst"] = T * layer_timestep_cycles(geometry(layer, parallel), ops)
    report = {
        "input_shape": list(qnet.input_shape),
        "input_bits": qnet.input_bits,
        "timesteps": T,
        "parallel": parallel,
        "neurons": sum(int(np.prod(entry["out"])) for entry in spiking),
        "synapses": sum(int(layer.weight.size) for layer in qnet.spiking_layers),
        "readout_count_bits": unsigned_bits(T),
        "weight_memory_bits": sum(entry["weight_memory_bits"] for entry in spiking),
        "membrane_memory_bits": sum(entry["membrane_memory_bits"] for entry in spiking),
        "cycles_per_inference_worst": event_driven_cycles(qnet, parallel, [[ops] * T for ops in worst]),
        "layers": layers,
        "fit": {key: fit(qnet, parallel, key).to_dict() for key in FIT_DEVICES},
    }
    if activity is not None:
        mean_ops = [ops.double().mean(dim=0).tolist() for ops in activity.layer_ops]
        mean_events = [ev.double().mean(dim=0).tolist() for ev in activity.layer_events]
        mean_fired = [s.double().sum(dim=2).mean(dim=0).tolist() for s in activity.spikes]
        for entry, layer, ops, ev, fired in zip(spiking, qnet.spiking_layers, mean_ops, mean_events, mean_fired):
            entry["synaptic_ops_per_inference_expected"] = float(sum(ops))
            entry["cycles_per_inference_expected"] = layer_cycles(geometry(layer, parallel), ops, ev, fired)
        report["cycles_per_inference_expected"] = event_driven_cycles(qnet, parallel, mean_ops, mean_events,
                                                                      mean_fired)
        report["synaptic_ops_per_inference_expected"] = float(activity.synaptic_ops.double().mean())
    return report


def _shape(values: list[int]) -> str:
    return "x".join(str(v) for v in values)


def render_markdown(report: dict) -> str:
    hw = report["hardware"]
    lines = [
        f"# hwgen report: {report['model']}",
        "",
        f"- input {_shape(hw['input_shape'])} ({'spikes' if hw['input_bits'] == 1 else str(hw['input_bits']) + '-bit direct input'}), "
        f"{hw['timesteps']} timesteps, parallelism P = {hw['parallel']}",
        f"- {hw['neurons']} neurons, {hw['synapses']} weights",
        f"- weight memory {hw['weight_memory_bits']} bits, membrane memory {hw['membrane_memory_bits']} bits",
        f"- cycles per inference: worst case (every input active) {hw['cycles_per_inference_worst']:.0f}"
        + (f", expected from data {hw['cycles_per_inference_expected']:.0f}"
           if "cycles_per_inference_expected" in hw else ""),
    ]
    for note in report.get("frontend_notes") or []:
        lines.append(f"- note: {note}")
    lines += [
        "",
        "## Layers",
        "",
        "| layer | type | in | out | P | weight bits | state bits | acc bits | leak | reset | threshold | weight mem (bits) | membrane mem (bits) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for layer in hw["layers"]:
        if "groups" not in layer:
            lines.append(f"| {layer['name']} | {layer['type']} | {_shape(layer['in'])} | "
                         f"{_shape(layer.get('out', [int(np.prod(layer['in']))]))} | | | | | | | | | |")
            continue
        leak = layer["leak"]
        leak_text = {"none": "none (IF)", "shift": f"v - (v >> {leak['shift']})",
                     "mul": f"(v * {leak['mul']}) >> {leak['frac_bits']}"}[leak["kind"]]
        thr = (str(layer["threshold_min"]) if layer["threshold_min"] == layer["threshold_max"]
               else f"{layer['threshold_min']}..{layer['threshold_max']}")
        lines.append(f"| {layer['name']} | {layer['type']} | {_shape(layer['in'])} | {_shape(layer['out'])} | "
                     f"{layer['parallel']} | {layer['weight_bits']} | {layer['state_bits']} | {layer['acc_bits']} | "
                     f"{leak_text} | {layer['reset']} | {thr} | {layer['weight_memory_bits']} | "
                     f"{layer['membrane_memory_bits']} |")
    lines += ["", "## Device fit (memories, estimated before synthesis)", "",
              "| device | fits | block RAM | SPRAM | small memories in logic (bits) |", "|---|---|---|---|---|"]
    for verdict in hw["fit"].values():
        spram = f"{verdict['spram_needed']} / {verdict['spram_available']}" if verdict["spram_available"] else "-"
        lines.append(f"| {verdict['device']} | {'yes' if verdict['fits'] else 'NO'} | "
                     f"{verdict['blocks_needed']} / {verdict['blocks_available']} | {spram} | "
                     f"{verdict['logic_memory_bits']} |")
    q = report["quantization"]
    lines += ["", "## Quantization", "",
              f"{q['weight_bits']}-bit weights, {'per-neuron' if q['per_channel'] else 'per-layer'} "
              f"power-of-two scales; calibration: {q['calibration_samples']} samples ({q['calibration_source']}).",
              "", "| layer | scale 2^e | weight RMSE (LSB) | weights clipped | weights rounded to 0 | "
              "thresholds raised to 1 | threshold rel. error | beta float -> int | membrane range seen |",
              "|---|---|---|---|---|---|---|---|---|"]
    for layer in q["layers"]:
        c = layer["clipping"]
        lines.append(f"| {layer['name']} | {layer['scale_exp']} | {layer['weight_rmse_lsb']:.3f} | "
                     f"{c['weights_clipped']} (max {c['weight_clip_max_lsb']:g} LSB) | "
                     f"{c['weights_zeroed']} of {c['weights_nonzero']} | {c['thresholds_raised']} | "
                     f"{layer['threshold_rel_error']:.2e} | {layer['beta_float']:.6g} -> {layer['beta_int']:.6g} | "
                     f"{layer['membrane_range']} |")
    lines += [""] + [f"- warning: {w}" for w in q["warnings"]] if q["warnings"] else []
    f = report.get("fidelity")
    if f:
        lines += ["", "## Float vs integer", "",
                  f"On {f['samples']} samples ({report.get('fidelity_data', '')}): prediction agreement "
                  f"{f['prediction_agreement']:.2%}; spike agreement per layer "
                  + ", ".join(f"{a:.2%}" for a in f["spike_agreement"]) + "."]
        if f["accuracy_float"] is not None:
            lines.append(f"Accuracy: float {f['accuracy_float']:.2%}, integer {f['accuracy_int']:.2%}.")
    return "\n".join(lines) + "\n"
