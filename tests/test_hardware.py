"""The Amaranth hardware against the integer golden model, in Amaranth's own simulator.

Every test drives spike tokens into the design, decodes every observed token stream back into
``[samples, timesteps, neurons]`` spike arrays and compares them, and the readout, with
``hwgen.golden.run`` on the same inputs. Networks are small because the Python simulator is
slow; the widths and corner cases (saturation, padding lanes, P not dividing N) are what the
tests are after. The drivers and monitors are in tests/hwsim.py.
"""

from __future__ import annotations

import copy
from functools import partial

import numpy as np
import pytest
from amaranth.back import verilog

from hwgen import golden
from hwgen.hardware.dense import DenseLIFEngine
from hwgen.hardware.readout import Readout
from hwgen.hardware.tokens import pack_token, token_layout, unpack_token
from hwgen.accelerator.cycles import expected_cycles
from hwgen.accelerator.top import build_top
from hwgen.ir import Leak, QuantNetwork
from hwgen.kinds import Flatten
from hwgen.testing import random_quant_network, random_spikes
from hwgen.widths import accumulator_bits, address_bits

import hwsim
from hwsim import StreamDecoder, activity, drive, input_tokens, reset_midway, run, top_ports, \
    unpack_counts, verilog_under_hash_seeds

# Dense networks are small: one that has not finished after 200 000 cycles has hung.
simulate_top = partial(hwsim.simulate_top, max_cycles=200_000)
check_against_golden = partial(hwsim.check_against_golden, max_cycles=200_000)


# ----------------------------------------------------------------------------- tokens

def test_token_layout_matches_contract():
    layout = token_layout(10)
    assert layout.size == address_bits(10) + 2 == 6
    assert [(name, field.offset, field.width) for name, field in layout] == \
        [("addr", 0, 4), ("tick", 4, 1), ("last", 5, 1)]
    assert token_layout(1).size == 3  # A = max(1, ...)
    assert pack_token(10, addr=9) == 9
    assert pack_token(10, tick=True, last=True) == 0b110000
    assert unpack_token(10, 0b010011) == (3, True, False)


# ----------------------------------------------------------------------------- against golden

@pytest.mark.parametrize("parallel", [1, 2, 4])
def test_parallel_lanes(parallel):
    qnet = random_quant_network([12, 8, 6], seed=parallel, timesteps=5)
    inputs = random_spikes((2, 5, 12), 0.35, seed=10 + parallel)
    rates = activity(qnet, inputs)
    assert all(0.05 < a < 0.95 for a in rates), rates
    check_against_golden(qnet, parallel, inputs)


def test_parallel_not_dividing_layer_and_capped():
    # P = 3 over 10 neurons: 4 groups, the last one with two idle lanes; P = 7 > 5 is capped.
    qnet = random_quant_network([9, 10, 5], seed=3, timesteps=5)
    inputs = random_spikes((3, 5, 9), 0.4, seed=4)
    assert check_against_golden(qnet, 3, inputs)["top"].groups == [4, 2]
    capped = check_against_golden(qnet, 7, inputs)["top"]
    assert capped.lanes == [7, 5] and capped.groups == [2, 1]


@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
def test_reset_modes(reset):
    qnet = random_quant_network([10, 7, 4], seed=20, timesteps=6, reset=reset,
                                leak=Leak("shift", shift=2))
    inputs = random_spikes((2, 6, 10), 0.4, seed=21)
    check_against_golden(qnet, 2, inputs)


@pytest.mark.parametrize("leak", [Leak("none"), Leak("shift", shift=1),
                                  Leak("mul", mul=45, frac_bits=6)],
                         ids=["none", "shift", "mul"])
def test_leak_kinds(leak):
    # Negative biases make negative membranes common, where a floor shift differs from a
    # truncating one.
    qnet = random_quant_network([10, 8, 4], seed=30, timesteps=6, leak=leak)
    for layer in qnet.spiking_layers:
        layer.bias = layer.bias - 6
        layer.acc_bits = accumulator_bits(layer.weight, layer.bias, layer.state_bits)
    inputs = random_spikes((2, 6, 10), 0.4, seed=31)
    check_against_golden(qnet, 3, inputs)


def test_per_neuron_thresholds_and_biases():
    # P = 2 over 8 neurons: every lane's threshold and bias differ across groups -> ROMs.
    qnet = random_quant_network([10, 8, 5], seed=40, timesteps=6, per_neuron_threshold=True)
    rng = np.random.default_rng(42)
    for layer, top in zip(qnet.spiking_layers, (40, 120)):  # a wide spread, so that a wrong
        layer.threshold = rng.integers(2, top, size=layer.out_features)  # lane's value shows
    inputs = random_spikes((4, 6, 10), 0.3, seed=41)
    rates = activity(qnet, inputs)
    assert all(0.2 < a < 0.8 for a in rates), rates
    check_against_golden(qnet, 2, inputs)


def test_saturation_hits_both_rails():
    """A 5-bit state (rails -16 and 15) under 6-bit weights. Inputs 0..3 inhibit hard and come
    first, inputs 4..11 excite mildly and come later: the membranes are driven past the low
    rail, climb back from it and go past the high rail, so that the exact rail values decide
    when the neurons fire."""
    qnet = random_quant_network([12, 8], seed=50, timesteps=8, state_bits=5,
                                leak=Leak("none"), reset="subtract", with_bias=False)
    layer = qnet.spiking_layers[0]
    rng = np.random.default_rng(52)
    layer.weight[:, :4] = rng.integers(-32, -20, size=(8, 4))
    layer.weight[:, 4:] = rng.integers(0, 7, size=(8, 8))
    layer.threshold = rng.integers(1, 15, size=8)
    layer.acc_bits = accumulator_bits(layer.weight, layer.bias, layer.state_bits)
    inputs = random_spikes((3, 8, 12), 0.6, seed=51)
    inputs[:, :3, 4:] = 0
    inputs[:, 3:, :4] = 0
    # The rails must matter: the unclamped integration would give other spikes.
    wide = QuantNetwork(qnet.input_shape, [copy.deepcopy(layer)], qnet.timesteps)
    wide.spiking_layers[0].state_bits = 16
    assert not np.array_equal(golden.run(wide, inputs).spikes[0], golden.run(qnet, inputs).spikes[0])
    check_against_golden(qnet, 3, inputs)


def test_input_gaps_and_flatten():
    qnet = random_quant_network([12, 10, 4], seed=60, timesteps=5)
    qnet = QuantNetwork((3, 4), [Flatten("flat")] + qnet.layers, qnet.timesteps)
    inputs = random_spikes((2, 5, 3, 4), 0.35, seed=61)
    check_against_golden(qnet, 4, inputs, gap=0.5, seed=62)


def test_consecutive_inferences_are_isolated():
    qnet = random_quant_network([10, 8, 4], seed=70, timesteps=4, leak=Leak("none"),
                                reset="none")
    inputs = random_spikes((3, 4, 10), 0.45, seed=71)
    got = check_against_golden(qnet, 2, inputs)
    # The golden model starts each sample from u = 0; also check each sample run alone.
    for b in range(3):
        alone = golden.run(qnet, inputs[b:b + 1])
        assert got["counts"][b] == alone.counts[0].tolist()
    assert len(set(map(tuple, got["counts"]))) > 1, "samples too alike to show leftover state"


def test_reset_abandons_a_half_finished_inference():
    """``rst`` in the middle of an inference: the engines rewrite their membranes with the
    biases on the way out of reset, so the next inference matches a fresh golden run."""
    qnet = random_quant_network([10, 8, 4], seed=76, timesteps=4, leak=Leak("none"),
                                reset="none")
    inputs = random_spikes((2, 4, 10), 0.3, seed=76)
    assert all(0.2 < a < 0.8 for a in activity(qnet, inputs))
    top = build_top(qnet, 3)
    rng = np.random.default_rng(77)
    # Half an inference of sample 0 (its spikes stay in the membranes), then sample 1.
    tokens = input_tokens(inputs[0], top.input_shape, 0, rng)
    half = tokens[:len(tokens) // 2]
    full = input_tokens(inputs[1], top.input_shape, 0, rng)
    decoders = [StreamDecoder(8, 1, 4, "tap_0"), StreamDecoder(4, 1, 4, "tap_1")]
    counts = reset_midway(top, half, full, decoders, phase_cycles=5_000, chew=20)
    want = golden.run(qnet, inputs[1:])
    for decoder, spikes in zip(decoders, want.spikes):
        assert np.array_equal(decoder.spikes, spikes.numpy()), decoder.name
    assert unpack_counts(counts, top.count_bits, 4) == want.counts[0].tolist()


@pytest.mark.parametrize("sizes", [[1, 3, 1], [5, 1, 2]], ids=["n_in=1,n_out=1", "n_out=1 hidden"])
def test_tiny_layers(sizes):
    qnet = random_quant_network(sizes, seed=80, timesteps=5, weight_bits=5)
    for layer in qnet.spiking_layers:  # thresholds a single input can cross
        layer.threshold[:] = 3
    inputs = random_spikes((2, 5, sizes[0]), 0.6, seed=81)
    assert sum(activity(qnet, inputs)) > 0
    check_against_golden(qnet, 2, inputs)


@pytest.mark.parametrize("seed", range(8))
def test_random_configurations(seed):
    """Everything at once, drawn at random: layer widths (down to 1), P, reset, leak, widths,
    per-neuron thresholds, T (down to 1), input gaps."""
    rng = np.random.default_rng(1000 + seed)
    sizes = [int(rng.integers(1, 17)), int(rng.integers(1, 13)), int(rng.integers(1, 9))]
    kind = ["none", "shift", "mul"][seed % 3]
    frac = int(rng.integers(3, 9))
    leak = {"none": Leak("none"), "shift": Leak("shift", shift=int(rng.integers(1, 5))),
            "mul": Leak("mul", mul=int(rng.integers(0, 1 << frac)), frac_bits=frac)}[kind]
    timesteps = int(rng.integers(1, 7))
    qnet = random_quant_network(
        sizes, seed=seed, weight_bits=int(rng.integers(3, 7)),
        state_bits=int(rng.integers(6, 13)), timesteps=timesteps,
        reset=["subtract", "zero", "none"][int(rng.integers(3))], leak=leak,
        per_neuron_threshold=bool(rng.integers(2)))
    inputs = random_spikes((3, timesteps, sizes[0]), float(rng.uniform(0.2, 0.6)), seed=seed)
    check_against_golden(qnet, int(rng.integers(1, 6)), inputs, gap=float(rng.uniform(0, 0.5)),
                         seed=seed)


# ----------------------------------------------------------------------------- one engine

def test_engine_output_backpressure():
    """Downstream ready low for random stretches: no spike is lost or sent twice."""
    qnet = random_quant_network([8, 10], seed=90, timesteps=5)
    layer = qnet.spiking_layers[0]
    layer.threshold[:] = 4  # most neurons fire: the spike queue fills up
    inputs = random_spikes((2, 5, 8), 0.5, seed=91)
    want = golden.run(qnet, inputs).spikes[0].numpy()
    assert want.mean() > 0.5
    engine = DenseLIFEngine(layer, 4)
    rng = np.random.default_rng(92)
    tokens = [tok for sample in inputs for tok in input_tokens(sample, layer.in_features, 0, rng)]
    decoder = drive(engine, tokens, StreamDecoder(10, 2, 5, "engine"), rng, out_stall=0.1,
                    longest_stall=39, max_cycles=20_000)  # long stretches of ready low
    assert np.array_equal(decoder.spikes, want)


def test_readout_saturates_and_breaks_ties_low():
    """More timesteps than the counters were sized for (T = 3, 2-bit counters): the counts
    stick at 3; equal counts go to the lowest index; counters restart after ``done``."""
    readout = Readout(5, timesteps=3)
    assert readout.count_bits == 2
    rng = np.random.default_rng(130)
    cases = [rng.integers(0, 2, size=(6, 5)) for _ in range(6)]
    cases += [np.array([[0, 1, 0, 1, 1]] * 2), np.zeros((1, 5), dtype=np.int64)]
    results = []

    async def testbench(ctx):
        for spikes in cases:
            tokens = [pack_token(5, addr=int(a)) for step in spikes for a in np.flatnonzero(step)]
            tokens.append(pack_token(5, tick=True, last=True))
            for n, token in enumerate(tokens, 1):
                ctx.set(readout.spikes.valid, 1)
                ctx.set(readout.spikes.payload.as_value(), token)
                assert ctx.get(readout.spikes.ready)
                await ctx.tick()  # `done` is up right after the edge taking the last tick
                assert ctx.get(readout.done) == (n == len(tokens))
            ctx.set(readout.spikes.valid, 0)
            results.append((ctx.get(readout.prediction), list(ctx.get(readout.counts))))
            await ctx.tick()
            assert not ctx.get(readout.done)

    run(readout, testbench)
    for spikes, (prediction, counts) in zip(cases, results):
        want = np.minimum(spikes.sum(axis=0), 3)
        assert counts == want.tolist()
        assert prediction == int(np.flatnonzero(want == want.max())[0])
    assert any(max(c) == 3 for _, c in results) and results[-2][0] == 1


# ----------------------------------------------------------------------------- cost, Verilog

def test_cycle_cost_per_timestep():
    """A timestep with ``a`` active inputs costs ``a*G + G + STEP_CONSTANT`` cycles at the
    input of a layer, with STEP_CONSTANT = 0: the engine takes a token in the last cycle of
    the previous one's groups, and the fire pass of a tick overlaps the next timestep's
    integration. A whole inference adds a one-off fill and drain (``pipeline_latency``, the
    last timestep's output spikes, the readout's cycle), which the cost model has exactly.
    """
    STEP_CONSTANT = 0
    qnet = random_quant_network([12, 8], seed=100, timesteps=6)
    inputs = random_spikes((2, 6, 12), 0.3, seed=101)
    got = check_against_golden(qnet, 2, inputs)
    top = got["top"]
    (G,) = top.groups
    assert G == 4
    trace = golden.run(qnet, inputs)
    T = qnet.timesteps
    for b in range(2):
        active = inputs[b].sum(axis=1)
        ticks = got["tick_edges"][b * T:(b + 1) * T]
        # A timestep lasts from the edge taking the previous tick to the edge taking its own;
        # the first token of an inference was taken G cycles before its groups were done.
        steps = np.diff([got["start_edges"][b] - G] + ticks)
        model = active * G + G + STEP_CONSTANT
        assert (steps >= model).all(), (steps, model)  # no faster than one group per cycle
        assert (steps <= 1.25 * model).all(), (steps, model)
    assert got["cycles"] == expected_cycles(qnet, 2, trace, inputs)


def test_cycle_model_of_a_chain():
    qnet = random_quant_network([16, 12, 6], seed=5, timesteps=6)
    inputs = random_spikes((2, 6, 16), 0.3, seed=6)
    got = check_against_golden(qnet, 2, inputs)
    assert got["cycles"] == expected_cycles(qnet, 2, golden.run(qnet, inputs), inputs)


def test_cycles_output_counts_from_accept_to_done():
    """``cycles`` counts the cycles from the accepting edge ``a`` through the ``done`` cycle,
    i.e. the cycles that start at edges ``a .. d-1`` when ``done`` is sampled high at ``d``;
    also when a second inference enters before the first is done."""
    qnet = random_quant_network([6, 5, 4], seed=110, timesteps=3)
    inputs = random_spikes((3, 3, 6), 0.5, seed=111)
    got = simulate_top(build_top(qnet, 1), inputs, gap=0.3, seed=112)
    assert got["start_edges"][1] < got["done_edges"][0], "inferences did not overlap"
    assert got["cycles"] == [d - a for a, d in zip(got["start_edges"], got["done_edges"])]


def test_verilog_is_deterministic_and_has_contract_ports():
    qnet = random_quant_network([10, 6, 3], seed=120, timesteps=5)
    qnet.spiking_layers[0].threshold[::2] += 1  # a threshold ROM too
    top = build_top(qnet, 4)
    text = verilog.convert(top, name="hwgen_top", emit_src=False)
    assert text == verilog.convert(top, name="hwgen_top", emit_src=False)
    assert text == verilog.convert(build_top(qnet, 4), name="hwgen_top", emit_src=False)
    assert top_ports(text) == {
        "clk", "rst", "spikes_in__valid", "spikes_in__ready", "spikes_in__payload",
        "tap_0__valid", "tap_0__ready", "tap_0__payload",
        "tap_1__valid", "tap_1__ready", "tap_1__payload",
        "done", "prediction", "counts", "cycles"}
    assert "input [5:0] spikes_in__payload" in text
    assert "output [8:0] counts" in text  # 3 outputs x ceil(log2(5 + 1)) bits
    assert "output [31:0] cycles" in text


def test_verilog_does_not_depend_on_the_hash_seed():
    """Set and dict iteration orders change with PYTHONHASHSEED: the text must not."""
    texts = verilog_under_hash_seeds(
        "from hwgen.testing import random_quant_network\n"
        "qnet = random_quant_network([10, 6, 3], seed=120, timesteps=5, per_neuron_threshold=True)",
        parallel=4)
    assert len(texts) == 1 and "module hwgen_top" in texts.pop()
