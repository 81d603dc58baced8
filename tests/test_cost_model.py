"""hwgen.cost, the token-level cycle model, against the RTL's ``cycles`` port.

Three kinds of checks:

* the model's own timing rules on hand-counted cases (no simulation);
* exact agreement with Amaranth simulations of ``NetworkTop`` (tests/hwsim.py): one dense
  layer, and chains where a slow layer holds its upstream back;
* agreement with the cycles ``hwgen bench`` measured (bench/results/2026-11-22.json, Verilator
  and Icarus): every single-layer row and every model row, within 10 % as the cost model's
  contract says (today it is exact on every sample of every row).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from hwgen import golden
from hwgen.accelerator.cycles import chain_stages, expected_cycles
from hwgen.cost import EngineGeometry, EngineStage, RemapStage, inference_cycles, inference_timing
from hwgen.hardware.tokens import pack_token
from hwgen.testing import random_conv_network, random_quant_network, random_spikes

import hwsim

RESULTS = Path(__file__).resolve().parent.parent / "bench" / "results" / "2026-11-22.json"
TOLERANCE = 0.10


def dense_geometry(n_out: int, parallel: int) -> EngineGeometry:
    groups = -(-n_out // parallel)
    return EngineGeometry(lanes=parallel, groups=groups, reach=n_out, fire_words=groups,
                          queue_words=groups + 2)


# ----------------------------------------------------------------------------- the rules


def test_one_dense_timestep_counted_by_hand():
    """``G = 1``: ``a`` events at one per cycle (edges 0 .. a-1), the tick at edge ``a``; the
    fire pass's word reaches the queue at ``a + 2``, its output register at ``a + 3``, the
    serializer at ``a + 4``; ``s`` spikes leave at ``a + 5 ..``, the tick after them, and
    ``done`` follows: ``a + s + 6``."""
    g = dense_geometry(8, 8)
    for a, s in [(0, 0), (3, 0), (3, 5), (10, 8)]:
        stage = EngineStage.from_words(g, [np.ones(a)], [np.zeros(s)])
        assert inference_cycles([stage]) == a + s + 6


def test_groups_cost_g_cycles_per_event_and_per_pass():
    """``G = 4``: each event holds the walker 4 cycles (edges ``0, 4, ..``), the tick is taken
    at ``4a``; the pass's last word (no spikes: it carries the tick alone) is written at
    ``4a + 5``, three cycles before its token: ``G - 1`` cycles later than with ``G = 1``."""
    g = dense_geometry(16, 4)
    for a in (0, 1, 6):
        stage = EngineStage.from_words(g, [np.ones(a)], [np.zeros(0)])
        assert inference_cycles([stage]) == 4 * a + 3 + 5 + 1


def test_a_full_queue_stalls_the_fire_pass():
    """A conv-like engine (event buffer, 18-word queue) whose 64-word pass holds 4 spikes in
    every word: the walker takes the tick at edge 2, the first word's spikes leave from edge
    7, and from then on the serializer sends a token every cycle while the pass waits for
    queue room: the tick leaves at ``7 + 256``. Without spikes the pass takes its 64 words."""
    words, lanes = 64, 4
    g = EngineGeometry(lanes=lanes, groups=1, reach=lanes, fire_words=words, queue_words=18,
                       decode_latency=1, event_buffer=4, words_per_position=1)
    spikes = words * lanes
    busy = EngineStage.from_words(g, [np.ones(1)], [np.repeat(np.arange(words), lanes)])
    quiet = EngineStage.from_words(g, [np.ones(1)], [np.zeros(0)])
    readout = EngineStage.from_words(dense_geometry(2, 2), [np.ones(spikes)], [np.zeros(0)])
    timing = inference_timing([busy, readout])
    assert timing.engine_ticks == [[2], [7 + spikes]]
    assert timing.link_ticks[1] == [7 + spikes]
    assert timing.cycles == 7 + spikes + 5 + 1
    assert timing.engine_busy == [1 + words, spikes + 1]
    assert inference_cycles([quiet]) == 2 + words + 5


def test_remap_stages_and_pass_through_counts():
    """Wires cost nothing; a register stage one cycle; a dropped token nothing beyond its
    transfer; a max-pool dedup's tick waits for the bitmap clear."""
    g = dense_geometry(4, 4)
    base = EngineStage.from_words(g, [np.ones(3)], [np.zeros(0)])
    plain = inference_cycles([base])
    assert inference_cycles([RemapStage(0), base]) == plain
    assert inference_cycles([RemapStage(1), base]) == plain + 1
    assert inference_cycles([RemapStage(2), base]) == plain + 2
    # 5 input tokens, two dropped: the engine sees 3, at one per cycle from edge 1 on
    dropping = RemapStage(1, [np.array([1, 0, 1, 0, 1])])
    assert inference_cycles([dropping, base]) == plain + 1 + 2
    two_steps = [EngineStage.from_words(g, [np.ones(0), np.ones(0)], [np.zeros(0)] * 2)]
    waiting = [RemapStage(1, [np.zeros(0, int)] * 2, tick_wait=50)] + two_steps
    assert inference_cycles(waiting) == inference_cycles([RemapStage(1)] + two_steps) + 50


def test_token_counts_must_match_along_the_chain():
    g = dense_geometry(4, 4)
    fires_two = EngineStage.from_words(g, [np.ones(3)], [np.array([0, 0])])
    takes_three = EngineStage.from_words(g, [np.ones(3)], [np.zeros(0)])
    with pytest.raises(ValueError, match="tokens per timestep"):
        inference_cycles([fires_two, takes_three])
    with pytest.raises(ValueError, match="no engine"):
        inference_cycles([RemapStage(1, [np.ones(2)])])


def test_totals_only_stage_is_close():
    """Per-timestep totals (means over a data set, say) instead of per-token arrays: exact
    for a dense layer, whose events all cost ``G``, close where spikes sit in the pass."""
    qnet = random_quant_network([40, 24], seed=5, timesteps=6)
    x = random_spikes((3, 6, 40), 0.3, seed=6)
    trace = golden.run(qnet, x)
    exact = expected_cycles(qnet, 4, trace, x)
    g = chain_stages(qnet, 4, trace, 0, x)[0].geometry
    for b in range(3):
        stage = EngineStage.from_totals(g, trace.layer_events[0][b].tolist(),
                                        trace.layer_events[0][b].tolist(),
                                        trace.spikes[0][b].sum(dim=1).tolist())
        assert abs(inference_cycles([stage]) / exact[b] - 1) < 0.03


# ----------------------------------------------------------------------------- against Amaranth


def c_order_tokens(sample, shape, value_bits, rng):
    """The input order of the cocotb testbench and ``hwgen bench`` (C-order per timestep),
    which the adapter assumes, instead of hwsim's shuffled order."""
    steps = sample.shape[0]
    flat = sample.reshape(steps, -1)
    tokens = []
    for t in range(steps):
        tokens += [pack_token(shape, addr=int(a), value=int(flat[t, a]) if value_bits else 0,
                              value_bits=value_bits) for a in np.flatnonzero(flat[t])]
        tokens.append(pack_token(shape, tick=True, last=t == steps - 1, value_bits=value_bits))
    return tokens


def simulated_vs_model(monkeypatch, qnet, parallel, x) -> tuple[list[int], list[int]]:
    monkeypatch.setattr(hwsim, "input_tokens", c_order_tokens)
    # each sample on an idle accelerator, past the reset passes, as the model assumes
    got = hwsim.check_against_golden(qnet, parallel, x, settle=2000)
    return got["cycles"], expected_cycles(qnet, parallel, golden.run(qnet, x), x)


@pytest.mark.parametrize("parallel", [1, 3, 20])
def test_single_dense_layer_is_exact(monkeypatch, parallel):
    qnet = random_quant_network([24, 20], seed=31, timesteps=4)
    rtl, model = simulated_vs_model(monkeypatch, qnet, parallel,
                                    random_spikes((2, 4, 24), 0.4, seed=32))
    assert rtl == model


def test_conv_chain_with_backpressure_is_exact(monkeypatch):
    """The chain on which ``top.estimate_cycles`` runs 1.19 and 1.22 low: the second conv
    (9 taps x G = 2 per event) is slower to accept than the first one fires."""
    qnet = random_conv_network((2, 8, 8), [
        {"type": "conv", "out": 4, "kernel": 3, "stride": 1, "padding": 1},
        {"type": "max_pool", "kernel": 2},
        {"type": "conv", "out": 4, "kernel": 3, "stride": 1, "padding": 1},
        {"type": "flatten"}, {"type": "dense", "out": 5}], seed=90, timesteps=4)
    rtl, model = simulated_vs_model(monkeypatch, qnet, 2,
                                    random_spikes((2, 4, 2, 8, 8), 0.3, seed=91))
    assert rtl == model


CHAINS = {
    # overlapping sum pool (a spike in up to 4 windows), a conv last: the readout's flatten
    "overlapping sum pool, conv last": ((2, 7, 7), [
        {"type": "conv", "out": 6, "kernel": 3, "stride": 1, "padding": 1},
        {"type": "sum_pool", "kernel": 3, "stride": 2, "padding": 1},
        {"type": "conv", "out": 3, "kernel": 2}], 4, {}),
    "overlapping max pool": ((3, 6, 6), [
        {"type": "conv", "out": 5, "kernel": 3, "stride": 1, "padding": 1},
        {"type": "max_pool", "kernel": 3, "stride": 2, "padding": 1},
        {"type": "flatten"}, {"type": "dense", "out": 7}], 2, {}),
    "pool at the input, grouped conv": ((2, 6, 6), [
        {"type": "sum_pool", "kernel": 2},
        {"type": "conv", "out": 4, "kernel": 3, "stride": 1, "padding": 1, "groups": 2},
        {"type": "flatten"}, {"type": "dense", "out": 5}], 2, {}),
    "flatten at the input (non-identity)": ((2, 5, 6), [
        {"type": "flatten"}, {"type": "dense", "out": 9}, {"type": "dense", "out": 4}], 3, {}),
    "depthwise, kernel 1 stride 2 (dropped events), max pool": ((3, 8, 8), [
        {"type": "conv", "out": 3, "kernel": 3, "stride": 1, "padding": 1, "groups": 3},
        {"type": "conv", "out": 6, "kernel": 1, "stride": 2},
        {"type": "max_pool", "kernel": 2},
        {"type": "flatten"}, {"type": "dense", "out": 4}], 4, {}),
    "direct 3-bit input": ((2, 6, 5), [
        {"type": "conv", "out": 4, "kernel": 3, "stride": 2, "padding": 1},
        {"type": "flatten"}, {"type": "dense", "out": 6}], 2, {"input_bits": 3}),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CHAINS))
def test_chains_are_exact(monkeypatch, name):
    shape, layers, parallel, extra = CHAINS[name]
    qnet = random_conv_network(shape, layers, seed=len(name), timesteps=4, **extra)
    rng = np.random.default_rng(len(name) + 1)
    size = (2, 4, *shape)
    x = (np.where(rng.random(size) < 0.4, rng.integers(1, 8, size=size), 0)
         if extra.get("input_bits") else random_spikes(size, 0.4, seed=len(name) + 1))
    rtl, model = simulated_vs_model(monkeypatch, qnet, parallel, x)
    assert rtl == model


@pytest.mark.slow
def test_dense_chain_with_a_slow_downstream_is_exact(monkeypatch):
    """16-64-64-8 at P = 1: the second layer (64 cycles per event) holds the first one's fire
    passes back through its full spike queue."""
    qnet = random_quant_network([16, 64, 64, 8], seed=27, timesteps=5)
    rtl, model = simulated_vs_model(monkeypatch, qnet, 1, random_spikes((2, 5, 16), 0.6, seed=28))
    assert rtl == model


# ----------------------------------------------------------------------------- against the bench


def bench_results() -> dict:
    if not RESULTS.is_file():
        pytest.skip(f"{RESULTS} is not there")
    return json.loads(RESULTS.read_text())


def single_layer_cases(kind: str):
    """The bench's single-layer rows of ``kind`` with their networks and inputs, rebuilt as
    hwgen/bench/runner.py builds them (seeded)."""
    from hwgen.bench.runner import FULL, SINGLE_TIMESTEPS

    rows = iter(bench_results()["layer_types"])
    jobs = [("dense", (n_in, n_out), p) for n_in, n_out, ps in FULL.single_dense for p in ps]
    jobs += [("conv", (shape, conv), p) for shape, conv, ps in FULL.single_conv for p in ps]
    for job, cfg, parallel in jobs:
        built = None
        for rate in FULL.single_rates:
            row = next(rows)
            assert (row["parallel"], row["rate"]) == (parallel, rate)
            if job != kind:
                continue
            if built is None:
                if job == "dense":
                    n_in, n_out = cfg
                    built = (random_quant_network([n_in, n_out], seed=n_in + n_out,
                                                  timesteps=SINGLE_TIMESTEPS), (n_in,))
                else:
                    shape, conv = cfg
                    built = (random_conv_network(shape, [{"type": "conv", **conv}, {"type": "flatten"},
                                                         {"type": "dense", "out": 2}],
                                                 seed=7, timesteps=SINGLE_TIMESTEPS), shape)
            qnet, shape = built
            x = random_spikes((FULL.single_samples, SINGLE_TIMESTEPS, *shape), rate,
                              seed=int(rate * 1000))
            yield row, qnet, parallel, x


def assert_within(label: str, measured: list[int], model: list[int]) -> None:
    ratios = np.asarray(measured, dtype=float) / np.asarray(model, dtype=float)
    assert np.all(np.abs(ratios - 1) <= TOLERANCE), f"{label}: measured / model = {ratios}"


def test_bench_dense_rows():
    for row, qnet, parallel, x in single_layer_cases("dense"):
        model = expected_cycles(qnet, parallel, golden.run(qnet, x), x)
        assert_within(f"{row['network']} P={parallel} rate {row['rate']}", row["cycles"], model)


@pytest.mark.slow
def test_bench_conv_rows():
    for row, qnet, parallel, x in single_layer_cases("conv"):
        model = expected_cycles(qnet, parallel, golden.run(qnet, x), x)
        assert_within(f"{row['network']} P={parallel} rate {row['rate']}", row["cycles"], model)


@pytest.mark.slow
def test_bench_model_rows(tmp_path):
    """Every model row, the NIR paper's N-MNIST CNN among them (where the busiest-layer model
    is 1.5x low). The quantized network does not depend on ``P``: one design per model."""
    from hwgen.bench.models import MODELS
    from hwgen.design import load_design

    results = bench_results()
    designs = {}
    for row in results["runs"]:
        key = row["model"]
        model = MODELS[key]
        if key not in designs:
            inputs = model.load_inputs()
            model.generate(tmp_path / key, row["parallel"], inputs)
            designs[key] = (load_design(tmp_path / key).qnet, inputs.heldout)
        qnet, heldout = designs[key]
        x = heldout[:row["samples"]]
        trace = golden.run(qnet, x)
        started = time.process_time()
        cycles = expected_cycles(qnet, row["parallel"], trace, x)
        per_sample = (time.process_time() - started) / len(x)
        assert per_sample < 1.0, f"{key}: {per_sample:.2f} s per sample"
        assert_within(f"{key} P={row['parallel']}", row["cycles"], cycles)
        if key == "cnn_sinabs":
            # without the input addresses the first conv's events are spread evenly
            assert_within(f"{key} P={row['parallel']}, no inputs", row["cycles"],
                          expected_cycles(qnet, row["parallel"], trace))
