"""One measured RTL run: simulate, check bit-exactness, and put the cycles next to the bounds."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .. import golden
from ..errors import HwgenError
from ..ir import QuantNetwork
from ..accelerator.cycles import expected_cycles
from ..simulate import run_rtl
from .bounds import dense_baseline, layer_bounds, lockstep_bound


def layer_kind(layer) -> str:
    """The layer's label in benchmark tables (``dense``, ``depthwise conv3x3``, ...)."""
    return layer.bench_label()


def measure(qnet: QuantNetwork, parallel: int, verilog: Path, x: np.ndarray, simulator: str,
            build_dir: Path, harness: str = "capture") -> dict:
    """Simulate ``verilog`` on ``x`` and return measured cycles, bounds and their ratios.

    A single mismatch against the golden model is an error: benchmark numbers of a design
    that is not bit-exact mean nothing.
    """
    started = time.perf_counter()
    trace = golden.run(qnet, x)
    golden_seconds = time.perf_counter() - started
    result = run_rtl(verilog, qnet, x, trace, simulator=simulator, build_dir=build_dir, harness=harness)
    if result.mismatches:
        raise HwgenError(f"{verilog}: {result.mismatches} mismatches between RTL and golden model "
                         f"({simulator}); first: {result.first_mismatch}")
    cycles = np.asarray(result.cycles, dtype=np.float64)
    bounds = layer_bounds(qnet, parallel, trace)  # [S, K]
    busiest = bounds.max(axis=1).astype(np.float64)
    total = bounds.sum(axis=1).astype(np.float64)
    model = np.asarray(expected_cycles(qnet, parallel, trace, x), dtype=np.float64)
    ops = trace.synaptic_ops.double().numpy()
    layers = []
    for k, layer in enumerate(qnet.spiking_layers):
        layers.append({
            "name": layer.name, "kind": layer_kind(layer),
            "neurons": int(np.prod(layer.output_shape)),
            "events_per_inference": float(trace.layer_events[k].double().sum(dim=1).mean()),
            "synaptic_ops_per_inference": float(trace.layer_ops[k].double().sum(dim=1).mean()),
            "output_spike_rate": float(trace.spikes[k].double().mean()),
            "output_spikes_per_inference": float(trace.spikes[k].double().sum(dim=(1, 2)).mean()),
            "bound_mean": float(bounds[:, k].mean()),
        })
    return {
        "samples": int(len(x)),
        "timesteps": int(qnet.timesteps),
        "input_rate": float(np.count_nonzero(x) / x.size),
        "cycles": [int(c) for c in result.cycles],
        "cycles_mean": float(cycles.mean()),
        "cycles_max": float(cycles.max()),
        "synaptic_ops_mean": float(ops.mean()),
        "synaptic_ops_per_cycle": float((ops / cycles).mean()),
        "bound_busiest": [int(b) for b in busiest],
        "bound_busiest_mean": float(busiest.mean()),
        "bound_sum_mean": float(total.mean()),
        "bound_lockstep_mean": float(lockstep_bound(qnet, parallel, trace).mean()),
        "busiest_layer": qnet.spiking_layers[int(np.bincount(bounds.argmax(axis=1)).argmax())].name,
        # per inference, then averaged: an inference's efficiency is its bound over its cycles
        "efficiency": float((busiest / cycles).mean()),
        "efficiency_min": float((busiest / cycles).min()),
        "efficiency_sum_bound": float((total / cycles).mean()),
        "cost_model_mean": float(model.mean()),
        "measured_over_cost_model": float((cycles / model).mean()),
        "dense_baseline": dense_baseline(qnet, parallel),
        "layers": layers,
        "spikes_compared": int(result.spikes_compared),
        "mismatches": int(result.mismatches),
        "predictions": [int(p) for p in result.predictions],
        "sim": {"simulator": simulator, "harness": harness, "compile_seconds": round(result.compile_seconds, 2),
                "run_seconds": round(result.run_seconds, 2), "sim_cycles": int(result.sim_cycles),
                "cycles_per_second": round(result.cycles_per_second, 1)},
        "golden_samples_per_second": float(len(x) / golden_seconds) if golden_seconds > 0 else None,
    }
