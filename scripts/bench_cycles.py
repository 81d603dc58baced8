"""Measured RTL cycles against the event-driven cost model, per layer size, P and spike rate.

For single-layer networks the model of docs/hardware.md is exact to check: a dense timestep
with ``a`` input spikes should cost ``(a + 1) * ceil(N_out / P)`` cycles, a conv timestep
``Σ over events of in-range taps × ceil(C_out / P)`` plus its fire pass over the output map,
plus a fixed pipeline constant per inference. This script simulates the generated Verilog (Verilator + cocotb),
reads the ``cycles`` port, and reports ``measured / model`` (1.0 = no cycle wasted). It also
runs the two-layer digits demo network, where layers overlap and the busiest one sets the
pace. Results: ``bench/cycles.json`` and a table on stdout.

    python scripts/bench_cycles.py [--simulator verilator|icarus] [--samples 8]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import track
from rich.table import Table

from hwgen import digits, golden
from hwgen.emit import verilog_text
from hwgen.frontend import import_torch, load_torch_model
from hwgen.pipeline import event_driven_bounds
from hwgen.quantize import QuantOptions, quantize
from hwgen.simulate import run_rtl
from hwgen.testing import random_conv_network, random_quant_network, random_spikes

SINGLE_LAYER = [  # (inputs, neurons, P)
    (64, 64, 1), (64, 64, 4), (64, 64, 16), (64, 10, 3), (128, 32, 8), (32, 100, 7),
]
SINGLE_CONV = [  # (input C, H, W), conv spec, P
    ((2, 16, 16), {"out": 8, "kernel": 3, "padding": 1}, 4),
    ((2, 16, 16), {"out": 8, "kernel": 5, "stride": 2, "padding": 1}, 4),
    ((4, 12, 12), {"out": 6, "kernel": 3, "stride": 2, "padding": 2}, 4),
    ((4, 12, 12), {"out": 4, "kernel": 3, "padding": 1, "groups": 4}, 1),
    ((2, 16, 16), {"out": 16, "kernel": 1}, 8),
    ((2, 16, 16), {"out": 16, "kernel": 1, "stride": 2}, 8),
]
RATES = [0.05, 0.2, 0.5]
TIMESTEPS = 10


def measure(qnet, parallel: int, x: np.ndarray, simulator: str, work: Path) -> dict:
    verilog = work / "hwgen_top.v"
    verilog.write_text(verilog_text(qnet, parallel))
    trace = golden.run(qnet, x)
    result = run_rtl(verilog, qnet, x, trace, simulator=simulator, build_dir=work / "sim")
    if result.mismatches:
        raise SystemExit(f"RTL disagrees with golden: {result.first_mismatch}")
    bounds = event_driven_bounds(qnet, parallel, trace)
    ratios = np.asarray(result.cycles) / np.asarray(bounds)
    return {"cycles_mean": float(np.mean(result.cycles)), "model_mean": float(np.mean(bounds)),
            "ratio_mean": float(ratios.mean()), "ratio_max": float(ratios.max()),
            "spikes_compared": result.spikes_compared}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulator", default="verilator", choices=["verilator", "icarus"])
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("bench/cycles.json"))
    args = parser.parse_args()

    rows = []
    jobs = [(cfg, rate) for cfg in SINGLE_LAYER for rate in RATES]
    with tempfile.TemporaryDirectory() as tmp:
        for (n_in, n_out, p), rate in track(jobs, description="single-layer RTL runs"):
            qnet = random_quant_network([n_in, n_out], seed=n_in + n_out + p, timesteps=TIMESTEPS)
            x = random_spikes((args.samples, TIMESTEPS, n_in), rate, seed=int(rate * 1000))
            work = Path(tmp) / f"{n_in}_{n_out}_{p}"
            work.mkdir(exist_ok=True)
            rows.append({"network": f"{n_in}-{n_out}", "parallel": p, "input_rate": rate,
                         **measure(qnet, p, x, args.simulator, work)})
        conv_jobs = [(cfg, rate) for cfg in SINGLE_CONV for rate in RATES]
        for (shape, conv, p), rate in track(conv_jobs, description="single-conv RTL runs"):
            # A 2-neuron dense readout behind the conv: a conv read out directly would count
            # every one of its output neurons. The conv stays the busiest layer by far.
            qnet = random_conv_network(shape, [{"type": "conv", **conv}, {"type": "flatten"},
                                               {"type": "dense", "out": 2}], seed=p, timesteps=TIMESTEPS)
            x = random_spikes((args.samples, TIMESTEPS, *shape), rate, seed=int(rate * 1000))
            label = (f"conv {'x'.join(map(str, shape))} -> {conv['out']}, k{conv['kernel']} "
                     f"s{conv.get('stride', 1)} p{conv.get('padding', 0)}"
                     + (f" g{conv['groups']}" if conv.get("groups") else ""))
            work = Path(tmp) / f"conv_{len(rows)}"
            work.mkdir()
            rows.append({"network": label, "parallel": p, "input_rate": rate,
                         **measure(qnet, p, x, args.simulator, work)})
        net = import_torch(load_torch_model(digits.MODEL_SPEC, str(digits.CHECKPOINT)))
        split = digits.load_split()
        qnet, _ = quantize(net, QuantOptions(timesteps=digits.TIMESTEPS), split.train_x[:256])
        for p in (1, 4, 16):
            work = Path(tmp) / f"digits_{p}"
            work.mkdir()
            x = split.test_x[:args.samples]
            rows.append({"network": "digits 64-64-10", "parallel": p,
                         "input_rate": float(x.mean()), **measure(qnet, p, x, args.simulator, work)})

    table = Table(title=f"RTL cycles per inference vs the event-driven model ({args.simulator}, T={TIMESTEPS} "
                        f"single-layer / {digits.TIMESTEPS} digits)")
    for column in ("network", "P", "input rate", "cycles (mean)", "model (mean)", "ratio mean", "ratio max"):
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(r["network"], str(r["parallel"]), f"{r['input_rate']:.2f}", f"{r['cycles_mean']:.0f}",
                      f"{r['model_mean']:.0f}", f"{r['ratio_mean']:.3f}", f"{r['ratio_max']:.3f}")
    Console(width=132).print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"simulator": args.simulator, "samples": args.samples,
                                    "worst_ratio": max(r["ratio_max"] for r in rows), "rows": rows},
                                   indent=1) + "\n")


if __name__ == "__main__":
    main()
