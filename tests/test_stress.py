"""Stress suites on Verilator: backpressure on every stream, saturation at both rails,
independence of consecutive inferences, reset in the middle of an inference, a soak.

All but the soak share one ``hwgen_batch`` build (``hwgen.stress``): the networks below,
each with a stall point in every stream of its chain. Each test writes its own inputs and
program; the Verilog is the same, so the build is compiled once for the module and reused.
The soak runs the digits MLP through ``hwgen generate`` / ``hwgen sim``'s own code path.

Every inference that completes is compared with the golden model on every spike of every
layer at every timestep and on the readout (``sim/tb_fuzz.py``); these tests add what each
suite promises on top (token sequences unchanged by stalls, rails reached, repeats
identical, a clean state after a reset).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from hwgen import golden
from hwgen.errors import HwgenError
from hwgen.stress import Inference, NetworkCase, run_batch
from hwgen.testing import edge_inputs, network_from_spec
from hwgen.widths import accumulator_bits

# name -> (spec for hwgen.testing.network_from_spec, parallel)
NETWORKS = {
    "dense_p3": ({"input_shape": [24], "seed": 1, "timesteps": 5,
                  "layers": [{"type": "dense", "out": 12}, {"type": "dense", "out": 6}]}, 3),
    "conv_maxpool_dense": ({"input_shape": [2, 6, 6], "seed": 2, "timesteps": 4, "reset": "zero",
                            "layers": [{"type": "conv", "out": 3, "kernel": 3, "padding": 1},
                                       {"type": "max_pool", "kernel": 2},
                                       {"type": "dense", "out": 5}]}, 2),
    "direct_conv_sumpool": ({"input_shape": [1, 5, 5], "seed": 3, "timesteps": 3,
                             "input_bits": 3, "reset": "none",
                             "leak": {"kind": "mul", "mul": 45, "frac_bits": 6},
                             "layers": [{"type": "conv", "out": 2, "kernel": 3, "stride": 2,
                                         "padding": 1},
                                        {"type": "sum_pool", "kernel": 2, "stride": 1},
                                        {"type": "flatten"}, {"type": "dense", "out": 4}]}, 1),
    "conv_last_groups": ({"input_shape": [2, 3, 5], "seed": 4, "timesteps": 4,
                          "layers": [{"type": "conv", "out": 2, "kernel": 3, "padding": 1,
                                      "groups": 2}]}, 1),
}
# Networks whose weights are then pushed to the largest magnitudes, so that membranes run
# into both rails of small state widths (make_saturating).
SATURATING = {
    "sat_dense_subtract": ({"input_shape": [12], "seed": 5, "timesteps": 6, "state_bits": 5,
                            "weight_bits": 8, "leak": {"kind": "none"},
                            "layers": [{"type": "dense", "out": 8}, {"type": "dense", "out": 4}]}, 2),
    "sat_conv_sumpool_zero": ({"input_shape": [2, 5, 5], "seed": 6, "timesteps": 5,
                               "state_bits": 6, "weight_bits": 6, "reset": "zero",
                               "layers": [{"type": "conv", "out": 4, "kernel": 3, "padding": 1},
                                          {"type": "sum_pool", "kernel": 2},
                                          {"type": "dense", "out": 4, "state_bits": 4}]}, 2),
    "sat_direct_none": ({"input_shape": [6], "seed": 7, "timesteps": 4, "input_bits": 4,
                         "state_bits": 7, "weight_bits": 7, "reset": "none",
                         "leak": {"kind": "shift", "shift": 2},
                         "layers": [{"type": "dense", "out": 6}, {"type": "dense", "out": 3}]}, 3),
}


def make_saturating(qnet, seed: int):
    """Half the channels of every spiking layer get large positive weights, half large
    negative ones, and a low threshold: their membranes are driven into ``state_max`` and
    ``state_min``. ``acc_bits`` is recomputed, as the quantizer would."""
    rng = np.random.default_rng(seed)
    for layer in qnet.spiking_layers:
        wmax = (1 << (layer.weight_bits - 1)) - 1
        c_out = layer.weight.shape[0]
        sign = np.where(np.arange(c_out) % 2 == 0, 1, -1).reshape(-1, *([1] * (layer.weight.ndim - 1)))
        magnitude = rng.integers(wmax // 2 + 1, wmax + 1, size=layer.weight.shape)
        layer.weight = np.clip(sign * magnitude, -wmax - 1, wmax).astype(np.int64)
        layer.threshold = np.full(c_out, 3, dtype=np.int64)
        layer.acc_bits = accumulator_bits(layer.weight.reshape(c_out, -1), layer.bias,
                                          layer.state_bits, input_max=layer.input_max)
    return qnet


def _qnets() -> dict:
    nets = {name: (network_from_spec(spec), p) for name, (spec, p) in NETWORKS.items()}
    for name, (spec, p) in SATURATING.items():
        nets[name] = (make_saturating(network_from_spec(spec), spec["seed"]), p)
    return nets


class Bench:
    """The module's batch: every network of NETWORKS and SATURATING in one build; ``run``
    gives each named network inputs and a program (the others idle) and counts the work."""

    def __init__(self, root: Path):
        self.root = root
        self.nets = _qnets()
        self.names = list(self.nets)
        self.stats: Counter = Counter()

    def run(self, programs: dict[str, tuple[np.ndarray, list[Inference]]]):
        cases = []
        for name in self.names:
            qnet, p = self.nets[name]
            x, program = programs.get(name, (edge_inputs(qnet, [], 0)[:1], []))
            cases.append(NetworkCase(qnet, p, x, program, label=name))
        result = run_batch(cases, self.root / "batch")
        self.stats["inferences"] += result.inferences_compared
        self.stats["spike_decisions"] += result.spikes_compared
        self.stats["sim_cycles"] += result.sim_cycles
        return dict(zip(self.names, result.networks))


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    b = Bench(tmp_path_factory.mktemp("stress"))
    yield b
    print(f"\nstress suites: {json.dumps(dict(b.stats))}")


def assert_all_match(results: dict) -> None:
    for name, items in results.items():
        for i, r in enumerate(items):
            assert r.mismatches == 0, f"{name}, program entry {i}: {r.records[:3]}"
            if not r.aborted:
                assert r.cycles == r.tb_cycles, f"{name}, entry {i}: `cycles` port disagrees"


# ----------------------------------------------------------------------------- backpressure

def test_stalls_on_every_stream_change_nothing_but_time(bench):
    """Every stream stalled: each beat held when offered (first and last included, now and
    then for hundreds of cycles), random bursts, both with a stalling input. The token
    sequence of every tap and the readout must equal the unstalled run's."""
    programs = {}
    for name in NETWORKS:
        qnet, _ = bench.nets[name]
        x = edge_inputs(qnet, [0.3, 0.1], seed=11)
        program = [Inference(s) for s in range(len(x))]
        for seed, policy in enumerate(("beat", "burst", "mixed"), start=1):
            program += [Inference(s, policy, seed * 100 + s, input_stall=policy != "beat")
                        for s in range(len(x))]
        programs[name] = (x, program)
    results = bench.run(programs)
    assert_all_match(results)
    for name in NETWORKS:
        items = results[name]
        plain = {r.sample: r for r in items if r.stall == "none"}
        for r in items:
            if r.stall == "none":
                continue
            ref = plain[r.sample]
            assert r.digests == ref.digests, f"{name} sample {r.sample}: {r.stall} stalls " \
                                             f"changed a token sequence"
            assert (r.counts, r.prediction) == (ref.counts, ref.prediction)
            assert r.held_cycles > 0 and r.tb_cycles > ref.tb_cycles, \
                f"{name} sample {r.sample}: the {r.stall} stalls held nothing back"
        # Long stalls happened: a policy holding beats for 50..400 cycles shows as a stalled
        # inference taking far longer than its unstalled run.
        assert max(r.tb_cycles - plain[r.sample].tb_cycles for r in items) > 400


def test_watchdog_turns_a_hang_into_a_clear_failure(bench):
    """A stream that never moves again ends the run with the watchdog's message (network,
    program entry, sample, how far the input got, what is waiting), not a CI time-out."""
    qnet, _ = bench.nets["dense_p3"]
    x = edge_inputs(qnet, [0.3], seed=2)
    with pytest.raises(HwgenError) as failure:
        bench.run({"dense_p3": (x, [Inference(0), Inference(0, "hold", 1)])})
    message = str(failure.value)
    for part in ("watchdog", "dense_p3", "program entry 1 (sample 0, stall policy hold)",
                 "the input reached timestep 0 of 5", "ticks seen per tap: tap_0 0, tap_1 0",
                 "streams with a token waiting: ['spikes_in -> layer0']"):
        assert part in message, f"{part!r} missing from: {message}"


# ----------------------------------------------------------------------------- saturation

def test_membranes_saturate_at_both_rails_without_wrapping(bench):
    programs = {}
    for name in SATURATING:
        qnet, _ = bench.nets[name]
        x = edge_inputs(qnet, [0.5, 0.9, 0.2], seed=5)
        ranges: list[list[int]] = []
        golden.run(qnet, x, membrane_range=ranges)
        for layer, (lo, hi) in zip(qnet.spiking_layers, ranges):
            # The test is not vacuous: the sums really go past both rails, so a datapath that
            # wrapped (or saturated per addition, or not at all) would fire differently.
            assert lo < layer.state_min and hi > layer.state_max, \
                f"{name} {layer.name}: sums {lo}..{hi} stay within the rails " \
                f"{layer.state_min}..{layer.state_max}"
        trace = golden.run(qnet, x)
        assert all(s.any() and not s.all() for s in trace.spikes), f"{name}: no contrast"
        programs[name] = (x, [Inference(s) for s in range(len(x))]
                          + [Inference(s, "mixed", 7 + s, True) for s in range(len(x))])
    results = bench.run(programs)
    assert_all_match(results)
    for name in SATURATING:
        assert not any(r.aborted for r in results[name])


# ----------------------------------------------------------------------------- isolation, reset

def test_same_input_same_output_whatever_ran_before(bench):
    """Sample 0 again and again, between samples that drive membranes to the rails, the
    all-zero and all-ones inputs and stalled runs, one at a time and with several
    inferences in the chain at once: the same tokens and readout every time."""
    programs = {}
    for name in NETWORKS:
        qnet, _ = bench.nets[name]
        x = edge_inputs(qnet, [0.3, 0.6], seed=21)  # 0, 1 random; 2 zeros; 3 ones
        programs[name] = (x, [Inference(0), Inference(3), Inference(0), Inference(1, "beat", 1),
                              Inference(0), Inference(2), Inference(0, "burst", 2, True),
                              Inference(3, "mixed", 3), Inference(3), Inference(0),
                              # in flight together: each input right behind the previous one
                              Inference(0), Inference(3, overlap=True), Inference(0, overlap=True),
                              Inference(2, overlap=True), Inference(0, overlap=True),
                              Inference(0, "beat", 4), Inference(1, overlap=True),
                              Inference(0, overlap=True)])
    results = bench.run(programs)
    assert_all_match(results)
    for name in NETWORKS:
        items = results[name]
        repeats = [r for r in items if r.sample == 0]
        assert len({tuple(r.digests) for r in repeats}) == 1, f"{name}: sample 0 differed"
        assert len({(tuple(r.counts), r.prediction) for r in repeats}) == 1
        # The overlapping entries really were in the chain together.
        for before, after in zip(items[10:14], items[11:15]):
            assert after.accepted_at < before.done_at, f"{name}: no overlap"
        alone = [r.cycles for r in repeats[:5] if r.stall == "none"]
        assert len(set(alone)) == 1, f"{name}: sample 0 took {alone} cycles on an idle design"


def test_reset_in_the_middle_of_an_inference_leaves_a_clean_state(bench):
    """``rst`` asserted early, midway (also while streams are stalled), during the last fire
    pass, and twice in a row (during the reset pass that clears the membranes): the next
    inference must equal the golden model and the undisturbed run, token for token."""
    programs = {name: (edge_inputs(bench.nets[name][0], [0.5], seed=31), [Inference(0)])
                for name in NETWORKS}
    first = bench.run(programs)
    lengths = {name: first[name][0].tb_cycles for name in NETWORKS}
    for name in NETWORKS:
        x, _ = programs[name]
        n = lengths[name]
        program = [Inference(0)]
        for at, stall in ((1, "none"), (n // 3, "beat"), (n // 2, "mixed"), (n - 3, "none"),
                          (1, "none")):
            program += [Inference(0, stall, at, reset_at=at), Inference(0)]
        program += [Inference(0, reset_at=2), Inference(1, reset_at=1), Inference(0)]
        programs[name] = (x, program)
    results = bench.run(programs)
    assert_all_match(results)
    for name in NETWORKS:
        items = results[name]
        aborted = [r.aborted for r in items]
        assert aborted == [False] + [True, False] * 5 + [True, True, False], \
            f"{name}: resets landed {aborted}"
        clean = [r for r in items if not r.aborted]
        assert len({tuple(r.digests) for r in clean}) == 1, f"{name}: a reset left state behind"
        assert len({r.cycles for r in clean}) == 1


# ----------------------------------------------------------------------------- soak

SOAK_INFERENCES = 1000
# One group per layer: ~360 cycles per inference instead of ~5,200 at P = 4, so the
# per-cycle Python testbench gets through 1,000 inferences in well under a minute.
SOAK_PARALLEL = 64


@pytest.mark.slow
def test_soak_1000_consecutive_inferences_digits_mlp(tmp_path):
    """The digits MLP demo model (64-64-10 LIF, T = 16, P = 64) generated and simulated
    exactly as ``hwgen generate`` / ``hwgen sim`` do: 1,000 different digits back to back
    on one Verilator run, without a reset in between, 0 mismatches."""
    from hwgen import digits
    from hwgen.pipeline import GenerateOptions, generate, simulate
    from hwgen.quantize import QuantOptions

    spec = digits.MODELS["mlp"]
    split = digits.load_split(input_shape=spec.input_shape)
    x = np.concatenate([split.test_x, split.train_x])[:SOAK_INFERENCES]
    assert len(x) == SOAK_INFERENCES
    calibration, inputs = tmp_path / "calibration.npz", tmp_path / "soak.npy"
    np.savez(calibration, x=split.train_x[:256])
    np.save(inputs, x)
    out = tmp_path / "out"
    generate(spec.factory, out, GenerateOptions(
        weights=str(spec.checkpoint), input_shape=spec.input_shape, parallel=SOAK_PARALLEL,
        calibration=str(calibration),
        quant=QuantOptions(weight_bits=8, timesteps=digits.TIMESTEPS)))
    report = simulate(out, inputs=str(inputs), simulator="verilator")
    print(f"\nsoak: {report['samples']} inferences, {report['spikes_compared']} spike decisions "
          f"compared, {report['mismatches']} mismatches, "
          f"{report['cycles_per_inference_mean']:.0f} cycles per inference")
    assert report["samples"] == SOAK_INFERENCES
    assert report["mismatches"] == 0, f"first mismatch: {report['first_mismatch']}"
    assert report["spikes_compared"] == SOAK_INFERENCES * (16 * (64 + 10) + 10 + 1)
