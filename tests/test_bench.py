"""`hwgen bench`: the bound and dense-baseline definitions, and (slow) the quick mode end to end.

The quick mode takes about 3 minutes on 2 cores (three Verilator compiles, a handful of
Icarus runs, no builds). Its test checks properties of what it measured, never numbers:
efficiencies are recomputed from the measured cycles, the bound really is below every
measured inference, event-driven cycles grow with the input rate and stay under the dense
baseline, and the files are written from the JSON.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from hwgen import golden
from hwgen.bench import bounds
from hwgen.cli import main
from hwgen.report import event_driven_cycles
from hwgen.testing import random_conv_network, random_quant_network, random_spikes


def test_dense_layer_bound_is_the_formula():
    qnet = random_quant_network([20, 12], seed=3, timesteps=5)
    x = random_spikes((4, 5, 20), 0.3, seed=1)
    trace = golden.run(qnet, x)
    got = bounds.layer_bounds(qnet, 5, trace)
    for i in range(4):
        events = x[i].sum(axis=1)  # per timestep
        want = sum(math.ceil(int(e) * 12 / 5) for e in events) + 5 * math.ceil(12 / 5)
        assert got[i, 0] == want


def test_conv_bound_counts_in_range_taps_times_channels():
    qnet = random_conv_network((1, 6, 6), [{"type": "conv", "out": 4, "kernel": 3, "padding": 1},
                                           {"type": "flatten"}, {"type": "dense", "out": 2}], timesteps=1)
    x = np.zeros((1, 1, 1, 6, 6), dtype=np.uint8)
    x[0, 0, 0, 0, 0] = 1  # a corner: 4 of the 9 taps land inside the output map
    trace = golden.run(qnet, x)
    b = bounds.layer_bounds(qnet, 2, trace)
    assert b[0, 0] == math.ceil(4 * 4 / 2) + math.ceil(4 * 6 * 6 / 2)


def test_dense_baseline_is_the_cost_model_with_every_input_active():
    qnet = random_quant_network([32, 16, 4], seed=5, timesteps=6)
    ones = np.ones((1, 6, 32), dtype=np.uint8)
    trace = golden.run(qnet, ones)
    # the first layer sees every input; the cost model of that work is the baseline's first layer
    assert bounds.full_fanout(qnet.spiking_layers[0]) == float(trace.layer_ops[0][0, 0])
    for p in (1, 4, 16):
        sparse = random_spikes((3, 6, 32), 0.05, seed=p)
        st = golden.run(qnet, sparse)
        for i in range(3):
            model = event_driven_cycles(qnet, p, [ops[i].tolist() for ops in st.layer_ops],
                                        [ev[i].tolist() for ev in st.layer_events])
            assert model < bounds.dense_baseline(qnet, p)


def test_bench_rejects_an_unknown_mode(capsys):
    assert main(["bench", "--mode", "huge"]) == 2
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.slow
def test_quick_mode_end_to_end(tmp_path):
    from hwgen.bench import run_bench
    from hwgen.bench.render import PLOTS

    res = run_bench("quick", tmp_path / "bench", tmp_path / "work")
    bench = tmp_path / "bench" / "quick"
    path = bench / "results" / f"{res['date']}-quick.json"
    stored = json.loads(path.read_text())
    assert stored["schema"] == "hwgen-bench/1" and stored["mode"] == "quick"
    for key in ("models", "runs", "layer_types", "rate_sweep", "auto", "sweep", "tool_speed", "papers",
                "acceptance", "definitions"):
        assert key in stored, key

    assert not (tmp_path / "bench" / "RESULTS.md").exists()  # the full results are not touched
    md = (bench / "RESULTS.md").read_text()
    for name in PLOTS:
        png = bench / "plots" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert f"plots/{name}" in md or name in ("efficiency.png", "cycles_vs_p.png")

    measured = stored["runs"] + stored["layer_types"] + stored["rate_sweep"]["rows"]
    assert measured
    for r in measured:
        assert r["mismatches"] == 0 and r["spikes_compared"] > 0
        cycles = np.asarray(r["cycles"], dtype=float)
        bound = np.asarray(r["bound_busiest"], dtype=float)
        # efficiency is bound / measured cycles, and a lower bound is never above a measurement
        assert r["efficiency"] == pytest.approx(float(np.mean(bound / cycles)))
        assert (bound <= cycles).all(), r.get("network", r.get("model"))
        assert r["synaptic_ops_per_cycle"] > 0

    sweep = sorted(stored["rate_sweep"]["rows"], key=lambda r: r["rate"])
    cycles = [r["cycles_mean"] for r in sweep]
    assert cycles == sorted(cycles)  # more input events, more cycles
    for r in sweep:
        assert r["cycles_mean"] < r["dense_baseline"]
    assert stored["acceptance"]["event_driven_at_5pct_within_one_fifth"] is True

    auto = stored["auto"]
    assert auto["call"].startswith("generate(") and (auto["ok"] or auto["error"])

    for model in {p["model"] for p in stored["sweep"]}:
        for board in {p["board"] for p in stored["sweep"]}:
            points = [p for p in stored["sweep"] if p["model"] == model and p["board"] == board]
            front = [p for p in points if p.get("pareto")]
            assert all(p["fits"] for p in front)
            if any(p["fits"] for p in points):
                assert front
                # the fastest fitting point is on the front
                fastest = min((p for p in points if p["fits"]), key=lambda p: (p["latency_us"], p["lut"]))
                assert fastest.get("pareto")
