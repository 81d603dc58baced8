"""What a generated accelerator costs: memories, widths, cycles and device fit, as JSON and Markdown."""

from __future__ import annotations

import numpy as np

from .accelerator.cycles import expected_timings, worst_case_timing
from .devices import fit
from .golden import GoldenTrace
from .ir import QuantNetwork
from .widths import unsigned_bits

FIT_DEVICES = ("ice40up5k", "ecp5-25f")


#: Inferences of the representative data the expected cycles are modelled on: the model
#: follows every token (tens of ms per inference), and the test suite generates many designs;
#: on the digits models 16 samples give the mean of 200 within 1.4 % and their maximum within 0.5 %.
COST_SAMPLES = 16


def representative(activity: GoldenTrace, inputs: np.ndarray | None) -> tuple[GoldenTrace, np.ndarray | None]:
    """The first :data:`COST_SAMPLES` inferences of ``activity`` (and of its ``inputs``)."""
    return activity.first(COST_SAMPLES), (None if inputs is None else np.asarray(inputs)[:COST_SAMPLES])


def hardware_report(qnet: QuantNetwork, parallel: int, activity: GoldenTrace | None,
                    inputs: np.ndarray | None = None) -> dict:
    """Per-layer sizes and memories, cycles, and whether the memories fit devices.

    Cycles are ``hwgen.accelerator.cycles``' model: the worst case (every input of every
    layer active and every neuron firing at every timestep) and, with ``activity`` (the
    golden trace of representative inputs ``inputs``, the held-out or random data), the mean
    over its first :data:`COST_SAMPLES` inferences. Per layer, ``cycles_per_inference_*`` are
    its engine's busy cycles (walker steps: integration and fire passes).
    """
    T = qnet.timesteps
    layers = [layer.report_entry(parallel) for layer in qnet.layers]
    spiking = [entry for entry in layers if "groups" in entry]
    worst = worst_case_timing(qnet, parallel)
    for entry, busy in zip(spiking, worst.engine_busy):
        entry["cycles_per_inference_worst"] = busy
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
        "cycles_per_inference_worst": worst.cycles,
        "layers": layers,
        "fit": {key: fit(qnet, parallel, key).to_dict() for key in FIT_DEVICES},
    }
    if activity is not None:
        trace, x = representative(activity, inputs)
        timings = expected_timings(qnet, parallel, trace, x)
        for k, (entry, layer) in enumerate(zip(spiking, qnet.spiking_layers)):
            entry["synaptic_ops_per_inference_expected"] = float(activity.layer_ops[k].double().sum(dim=1).mean())
            entry["cycles_per_inference_expected"] = float(np.mean([t.engine_busy[k] for t in timings]))
        report["cycles_per_inference_expected"] = float(np.mean([t.cycles for t in timings]))
        report["cycles_modelled_samples"] = trace.batch
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
    cuba = [layer for layer in report["quantization"]["layers"] if layer.get("current")]
    if cuba:
        lines += ["", "CuBa layers (a synaptic current feeds the membrane, docs/semantics.md):", "",
                  "| layer | alpha float -> int | current bits | current range seen | membrane takes |",
                  "|---|---|---|---|---|"]
        for layer in cuba:
            c = layer["current"]
            lines.append(f"| {layer['name']} | {c['alpha_float']:.6g} -> {c['alpha_int']:.6g} | {c['current_bits']} | "
                         f"{c['current_range']} | {'the previous step' if c['delay'] else 'this step'}'s current |")
    edges = report.get("graph")
    if edges:
        lines += ["", "Graph: " + "; ".join(f"{name} <- " + ", ".join(
            f"{src}{' (t-1)' if delay else ''}" for src, delay in inputs) for name, inputs in edges.items())]
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
