"""Convolution, pooling, flatten and direct input in hardware, against the golden model.

Like tests/test_hardware.py: every test drives tokens into the design in Amaranth's simulator
(tests/hwsim.py), decodes every tap back into ``[samples, timesteps, neurons]`` (C-order)
spike arrays and compares them, and the readout, with ``hwgen.golden.run``. Maps are small
(2-4 channels, 5x5 to 8x8) because the Python simulator is slow; the sweeps are after the
corner cases: taps off the stride grid or outside the map, padding, groups, lanes past the
channel count, repeated events after a sum pool, windows shared by overlapping pools.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from amaranth.back import verilog

from hwgen import golden
from hwgen.hardware.conv import ConvLIFEngine, conv_tap_counts
from hwgen.hardware.pool import FlattenRemap, MaxPoolDedup, SumPoolRemap
from hwgen.hardware.tokens import pack_token, shape_size, token_layout, unpack_token
from hwgen.accelerator.cycles import expected_cycles
from hwgen.accelerator.top import build_top
from hwgen.ir import Leak, QuantNetwork
from hwgen.kinds import MaxPool2d, SumPool2d
from hwgen.testing import random_conv_network, random_spikes
from hwgen.widths import accumulator_bits

from hwsim import StreamDecoder, activity, check_against_golden, drive, input_tokens, \
    reset_midway, top_ports, unpack_counts, verilog_under_hash_seeds


# ----------------------------------------------------------------------------- harness

def described(component):
    """A component built only to read its attributes: no "created but never used" warning."""
    component._MustUse__silence = True
    return component


def assert_lively(qnet: QuantNetwork, inputs: np.ndarray, lo: float = 0.02, hi: float = 0.98):
    rates = activity(qnet, inputs)
    assert all(lo < r < hi for r in rates), rates


def spikes_in(qnet: QuantNetwork, samples: int, rate: float, seed: int) -> np.ndarray:
    shape = (samples, qnet.timesteps, *qnet.input_shape)
    if qnet.input_bits == 1:
        return random_spikes(shape, rate, seed=seed)
    rng = np.random.default_rng(seed)
    values = rng.integers(1, 1 << qnet.input_bits, size=shape)
    return np.where(rng.random(shape) < rate, values, 0).astype(np.int64)


# ----------------------------------------------------------------------------- tokens

def test_map_token_layout_matches_contract():
    # (C, H, W) = (3, 5, 6): x 3 bits, y 3 bits, c 2 bits; tick at 8, last at 9, value from 10.
    layout = token_layout((3, 5, 6), value_bits=4)
    assert [(name, f.offset, f.width) for name, f in layout] == \
        [("addr", 0, 8), ("tick", 8, 1), ("last", 9, 1), ("value", 10, 4)]
    assert [(name, f.offset, f.width) for name, f in layout["addr"].shape] == \
        [("x", 0, 3), ("y", 3, 3), ("c", 6, 2)]
    index = 2 * 30 + 4 * 6 + 5  # c = 2, y = 4, x = 5
    assert pack_token((3, 5, 6), addr=index) == (2 << 6) | (4 << 3) | 5
    assert pack_token((3, 5, 6), addr=index, value=9, value_bits=4) == \
        (9 << 10) | (2 << 6) | (4 << 3) | 5
    assert unpack_token((3, 5, 6), pack_token((3, 5, 6), addr=index)) == (index, False, False)
    assert unpack_token((3, 5, 6), pack_token((3, 5, 6), tick=True, last=True)) == (0, True, True)
    assert unpack_token((3, 5, 6), 7)[0] >= 90  # x = 7 is off the map: out of range
    # Powers of two: the packed address is the C-order index.
    assert all(pack_token((2, 4, 8), addr=a) == a for a in range(64))
    with pytest.raises(ValueError):
        pack_token((3, 5, 6), addr=90)


# ----------------------------------------------------------------------------- conv sweeps

SWEEP = [(k, s, p) for k in (1, 3, 5) for s in (1, 2) for p in (0, 1, 2)
         if p < k or (k, p) == (1, 1)]  # padding beyond the kernel only adds silent borders


@pytest.mark.parametrize("kernel,stride,padding", SWEEP,
                         ids=[f"k{k}s{s}p{p}" for k, s, p in SWEEP])
def test_conv_kernel_stride_padding(kernel, stride, padding):
    """One conv layer into a dense readout layer; 2 -> 3 channels with P = 2 (the second
    channel group has a dead lane), a 7 x 6 map so that rows and columns differ."""
    seed = 100 * kernel + 10 * stride + padding
    qnet = random_conv_network((2, 7, 6), [
        {"type": "conv", "out": 3, "kernel": kernel, "stride": stride, "padding": padding},
        {"type": "flatten"}, {"type": "dense", "out": 4}], seed=seed, timesteps=3)
    inputs = spikes_in(qnet, 2, 0.3, seed)
    assert activity(qnet, inputs)[0] > 0.02
    got = check_against_golden(qnet, 2, inputs)
    assert got["top"].lanes[0] == 2 and got["top"].groups[0] == 2


@pytest.mark.parametrize("c_in,c_out,groups,parallel", [
    (3, 3, 3, 2),  # depthwise: one channel per input channel, P capped at 1
    (4, 6, 2, 2),  # two groups of 2 -> 3 channels: a dead lane in each group's last word
    (4, 4, 2, 4),  # two groups, P capped at C_out / groups = 2
    (2, 5, 1, 3),  # channels not divisible by P
], ids=["depthwise", "groups2-dead-lanes", "groups2-capped", "c5-p3"])
def test_conv_groups(c_in, c_out, groups, parallel):
    qnet = random_conv_network((c_in, 6, 6), [
        {"type": "conv", "out": c_out, "kernel": 3, "stride": 1, "padding": 1, "groups": groups},
        {"type": "conv", "out": 2, "kernel": 3, "stride": 2, "padding": 1}],
        seed=c_in * 10 + c_out, timesteps=3)
    inputs = spikes_in(qnet, 2, 0.3, seed=groups)
    assert_lively(qnet, inputs)
    got = check_against_golden(qnet, parallel, inputs)
    assert got["top"].lanes[0] == min(parallel, c_out // groups)


@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
def test_conv_reset_modes(reset):
    qnet = random_conv_network((2, 6, 5), [
        {"type": "conv", "out": 4, "kernel": 3, "stride": 1, "padding": 1},
        {"type": "conv", "out": 3, "kernel": 3, "stride": 2, "padding": 0}],
        seed=7, timesteps=4, reset=reset, leak=Leak("shift", shift=2))
    inputs = spikes_in(qnet, 2, 0.3, seed=8)
    assert_lively(qnet, inputs)
    check_against_golden(qnet, 3, inputs)


def test_conv_leak_mul_and_negative_membranes():
    # Negative biases make negative membranes common, where a floor shift differs.
    qnet = random_conv_network((2, 5, 5), [
        {"type": "conv", "out": 3, "kernel": 3, "stride": 1, "padding": 1}],
        seed=9, timesteps=4, leak=Leak("mul", mul=45, frac_bits=6))
    layer = qnet.layers[0]
    layer.bias = layer.bias - 6
    layer.acc_bits = accumulator_bits(layer.weight.reshape(3, -1), layer.bias, layer.state_bits)
    inputs = spikes_in(qnet, 2, 0.35, seed=10)
    assert_lively(qnet, inputs)
    check_against_golden(qnet, 2, inputs)


def test_conv_saturation_rails():
    """A 6-bit state under 5-bit weights and a dense input: the membranes hit the rails."""
    qnet = random_conv_network((3, 5, 5), [
        {"type": "conv", "out": 2, "kernel": 3, "stride": 1, "padding": 1}],
        seed=11, timesteps=4, state_bits=6, leak=Leak("none"))
    inputs = spikes_in(qnet, 2, 0.7, seed=12)
    wide = random_conv_network((3, 5, 5), [
        {"type": "conv", "out": 2, "kernel": 3, "stride": 1, "padding": 1}],
        seed=11, timesteps=4, state_bits=14, leak=Leak("none"))
    wide.layers[0].threshold = qnet.layers[0].threshold
    assert not np.array_equal(golden.run(wide, inputs).spikes[0], golden.run(qnet, inputs).spikes[0])
    check_against_golden(qnet, 2, inputs)


# ----------------------------------------------------------------------------- pools, flatten

def test_sum_pool_between_convs():
    """2 x 2 stride 2 on a 7 x 7 map (the last row and column are in no window): counts up to
    4 arrive as repeated events at the next conv, each adding once."""
    qnet = random_conv_network((2, 7, 7), [
        {"type": "conv", "out": 3, "kernel": 3, "stride": 1, "padding": 1},
        {"type": "sum_pool", "kernel": 2},
        {"type": "conv", "out": 2, "kernel": 3, "stride": 1, "padding": 1}],
        seed=20, timesteps=4)
    assert qnet.layers[2].input_max == 4
    inputs = spikes_in(qnet, 2, 0.3, seed=21)
    assert_lively(qnet, inputs)
    trace = golden.run(qnet, inputs)
    pooled = golden.pool(qnet.layers[1], trace.spikes[0][:, 0].long().reshape(2, 3, 7, 7))
    assert pooled.max() > 1, "no window with a count above 1: repeated events not exercised"
    check_against_golden(qnet, 2, inputs)


def test_overlapping_sum_pool_into_dense():
    """3 x 3 stride 2 padding 1: a spike lies in up to 4 windows, which become 4 events."""
    qnet = random_conv_network((2, 6, 6), [
        {"type": "conv", "out": 2, "kernel": 3, "stride": 1, "padding": 1},
        {"type": "sum_pool", "kernel": 3, "stride": 2, "padding": 1},
        {"type": "flatten"}, {"type": "dense", "out": 5}],
        seed=22, timesteps=3)
    assert described(SumPoolRemap(qnet.layers[1])).max_windows == 4
    inputs = spikes_in(qnet, 2, 0.3, seed=23)
    assert_lively(qnet, inputs)
    check_against_golden(qnet, 3, inputs)


def test_max_pool_flatten_dense():
    """conv -> 2 x 2 stride 2 max pool -> flatten -> dense: the classic SCNN head."""
    qnet = random_conv_network((2, 8, 8), [
        {"type": "conv", "out": 4, "kernel": 3, "stride": 1, "padding": 1},
        {"type": "max_pool", "kernel": 2},
        {"type": "flatten"}, {"type": "dense", "out": 5}],
        seed=30, timesteps=4)
    inputs = spikes_in(qnet, 2, 0.3, seed=31)
    assert_lively(qnet, inputs)
    trace = golden.run(qnet, inputs)
    assert (trace.spikes[0].reshape(2, 4, 4, 4, 2, 4, 2).sum(dim=(4, 6)) > 1).any(), \
        "no window with two spikes: the dedup is not exercised"
    check_against_golden(qnet, 3, inputs, gap=0.3, seed=32)


def test_overlapping_max_pool_into_conv():
    """3 x 3 stride 2 padding 1 max pool on a 7 x 7 map, into a conv layer."""
    qnet = random_conv_network((2, 7, 7), [
        {"type": "conv", "out": 3, "kernel": 3, "stride": 1, "padding": 1},
        {"type": "max_pool", "kernel": 3, "stride": 2, "padding": 1},
        {"type": "conv", "out": 2, "kernel": 3, "stride": 1, "padding": 1}],
        seed=33, timesteps=3)
    inputs = spikes_in(qnet, 2, 0.3, seed=34)
    assert_lively(qnet, inputs)
    check_against_golden(qnet, 2, inputs)


def test_conv_as_last_layer_readout_counts_c_order():
    """The readout of a conv layer counts per flattened C-order index (5 x 5: not powers of
    two, so the flatten before the readout is a real remap)."""
    qnet = random_conv_network((2, 5, 5), [
        {"type": "conv", "out": 3, "kernel": 3, "stride": 1, "padding": 1},
        {"type": "conv", "out": 2, "kernel": 3, "stride": 2, "padding": 1}],
        seed=40, timesteps=4)
    inputs = spikes_in(qnet, 3, 0.35, seed=41)
    assert_lively(qnet, inputs)
    got = check_against_golden(qnet, 2, inputs)
    assert len(got["counts"][0]) == 2 * 3 * 3


def test_flatten_of_the_input_into_dense():
    """A 3-D input travels as a map: the Flatten in front of a dense layer is a remap."""
    qnet = random_conv_network((2, 3, 5), [{"type": "flatten"}, {"type": "dense", "out": 6},
                                           {"type": "dense", "out": 3}], seed=42, timesteps=3)
    top = described(build_top(qnet, 2))
    assert [u.stem for u in top.units] == ["flatten", "dense", "dense"]
    inputs = spikes_in(qnet, 2, 0.4, seed=43)
    check_against_golden(qnet, 2, inputs)


# ----------------------------------------------------------------------------- direct input

@pytest.mark.parametrize("input_bits", [2, 4])
def test_direct_input_first_conv(input_bits):
    qnet = random_conv_network((2, 6, 6), [
        {"type": "conv", "out": 3, "kernel": 3, "stride": 2, "padding": 1},
        {"type": "flatten"}, {"type": "dense", "out": 4}],
        seed=50 + input_bits, timesteps=3, input_bits=input_bits)
    inputs = spikes_in(qnet, 2, 0.4, seed=51)
    assert inputs.max() > 1
    assert_lively(qnet, inputs)
    got = check_against_golden(qnet, 2, inputs)
    top = got["top"]
    assert top.input_value_bits == input_bits
    assert described(ConvLIFEngine(qnet.layers[0], 2, input_bits=input_bits)).multiplier_bits == \
        (qnet.layers[0].weight_bits, input_bits)


def test_direct_input_first_dense():
    qnet = random_conv_network((1, 4, 4), [{"type": "flatten"}, {"type": "dense", "out": 5},
                                           {"type": "dense", "out": 3}],
                               seed=52, timesteps=3, input_bits=3)
    inputs = spikes_in(qnet, 2, 0.5, seed=53)
    assert_lively(qnet, inputs)
    check_against_golden(qnet, 2, inputs, gap=0.3)


def test_refusals_name_the_layer():
    qnet = random_conv_network((2, 6, 6), [
        {"type": "max_pool", "kernel": 2},
        {"type": "conv", "out": 2, "kernel": 3}], seed=1, input_bits=4)
    with pytest.raises(ValueError, match="pool0.*direct 4-bit input"):
        build_top(qnet, 2)
    qnet = random_conv_network((2, 6, 6), [{"type": "conv", "out": 2, "kernel": 3}], seed=1)
    qnet.layers[0].acc_bits -= 2
    with pytest.raises(ValueError, match="conv0.*acc_bits"):
        build_top(qnet, 2)
    qnet = random_conv_network((2, 6, 6), [{"type": "conv", "out": 2, "kernel": 3}], seed=1)
    qnet.input_shape = (2, 6, 7)
    with pytest.raises(ValueError, match="conv0"):
        build_top(qnet, 2)


# ----------------------------------------------------------------------------- one engine

def test_conv_engine_output_backpressure():
    """Downstream ready low for random stretches while most neurons fire: the spike queue
    fills, the fire pass waits, no spike is lost or sent twice."""
    qnet = random_conv_network((2, 6, 6), [
        {"type": "conv", "out": 5, "kernel": 3, "stride": 1, "padding": 1}], seed=60, timesteps=4)
    layer = qnet.layers[0]
    layer.threshold[:] = 3
    inputs = spikes_in(qnet, 2, 0.4, seed=61)
    want = golden.run(qnet, inputs).spikes[0].numpy()
    assert want.mean() > 0.5
    engine = ConvLIFEngine(layer, 2, queue_depth=4)
    rng = np.random.default_rng(62)
    tokens = [t for s in inputs for t in input_tokens(s, layer.input_shape, 0, rng)]
    decoder = drive(engine, tokens, StreamDecoder(layer.output_shape, 2, 4, "engine"),
                    np.random.default_rng(63), out_stall=0.1, longest_stall=29, in_gap=0.2,
                    max_cycles=100_000)
    assert np.array_equal(decoder.spikes, want)


@pytest.mark.parametrize("pool", ["sum", "max"])
def test_pool_units_under_backpressure(pool):
    """The remap and dedup units alone, with gaps at the input and stalls at the output:
    the events out are the golden pool's counts (sum) or OR (max), per timestep."""
    cls = SumPool2d if pool == "sum" else MaxPool2d
    layer = cls("p", (2, 7, 6), (3, 3), (2, 2), (1, 1))
    unit = SumPoolRemap(layer) if pool == "sum" else MaxPoolDedup(layer)
    rng = np.random.default_rng(70)
    timesteps, samples = 4, 2
    x = random_spikes((samples, timesteps, 2, 7, 6), 0.4, seed=71)
    tokens = [t for s in x for t in input_tokens(s, layer.input_shape, 0, rng)]
    want = golden.pool(layer, torch.as_tensor(x).reshape(-1, 2, 7, 6).long())
    want = want.reshape(samples, timesteps, -1).numpy()
    counts = np.zeros_like(want)
    out_shape = layer.output_shape

    class Counter(StreamDecoder):  # repeated addresses are the point here
        def transfer(self, payload, edge=0):
            addr, tick, last = unpack_token(out_shape, payload)
            if tick:
                self.t += 1
                if last:
                    self.sample, self.t = self.sample + 1, 0
            else:
                assert addr < self.n
                counts[self.sample, self.t, addr] += 1

    drive(unit, tokens, Counter(out_shape, samples, timesteps, pool), rng, out_stall=0.15,
          longest_stall=9, in_gap=0.2, max_cycles=20_000)
    assert np.array_equal(counts, want)
    assert want.max() > 1 or pool == "max"


def test_flatten_remap_widths():
    assert described(FlattenRemap((3, 4, 8))).identity
    assert described(FlattenRemap((3, 4, 8))).latency == 0
    assert not described(FlattenRemap((3, 5, 8))).identity
    assert not described(FlattenRemap((3, 1, 8))).identity  # a 1-wide field still takes a bit


# ----------------------------------------------------------------------------- cost

#: Cycles per timestep beyond ``Σ_events taps·G + H_out·W_out·GG`` at a conv engine fed back
#: to back: none. The decode register takes the next token while the walker works, the walker
#: takes it in the cycle it finishes the previous one, and the fire pass of a tick overlaps
#: nothing but is bubble-free. (The first event of an inference waits one extra cycle in the
#: decode register: that is in the one-off fill the cost model counts.)
STEP_CONSTANT = 0


@pytest.mark.parametrize("kernel,stride,padding,parallel", [(3, 1, 1, 2), (3, 2, 1, 1),
                                                             (5, 2, 2, 3), (1, 2, 0, 2)])
def test_conv_cycles_per_timestep(kernel, stride, padding, parallel):
    """A single conv layer's cycles per timestep, measured between the ticks it sends, against
    ``Σ_events (in-range taps × G) + H_out·W_out·GG + STEP_CONSTANT``: taps off the stride
    grid or outside the map cost nothing (kernel 1 stride 2: three events in four reach no
    tap at all). Also the whole inference against the cost model (exact)."""
    qnet = random_conv_network((3, 8, 7), [
        {"type": "conv", "out": 5, "kernel": kernel, "stride": stride, "padding": padding}],
        seed=80 + kernel, timesteps=4)
    layer = qnet.layers[0]
    inputs = spikes_in(qnet, 2, 0.3, seed=81)
    # Each inference on an idle engine (past its reset pass), as the cost model assumes.
    got = check_against_golden(qnet, parallel, inputs, settle=400)
    engine = described(ConvLIFEngine(layer, parallel))
    taps = conv_tap_counts(layer)
    T = qnet.timesteps
    trace = golden.run(qnet, inputs)
    ratios = []
    for b in range(2):
        events = inputs[b].sum(axis=1)  # [T, H, W] events per position
        fanout = (events * taps).sum(axis=(1, 2))
        # The golden model's synaptic operations are the same work, C_out_g adds per tap.
        assert (fanout * engine.channels_per_group == trace.layer_ops[0][b].numpy()).all()
        model = np.array([int(f) * engine.groups + engine.words + STEP_CONSTANT for f in fanout])
        ticks = got["tap_ticks"][0][b * T:(b + 1) * T]
        steps = np.diff(ticks)
        ratios += list(steps / model[1:])
        # Measured at the output, a tick that waited behind a backlog of spikes in the
        # serializer makes its timestep look a few cycles longer and the next one shorter.
        assert (steps >= 0.98 * model[1:]).all(), (steps, model)
        assert (steps <= 1.25 * model[1:]).all(), (steps, model)
    # With kernel 1 stride 2 three events in four reach no tap: they cost the walker nothing,
    # but the input port still takes them one per cycle; the cost model follows every token.
    # It takes the input in C-order, as the testbench sends it; this driver shuffles each
    # timestep's events, which moves the dropped ones relative to the walker's work (a few
    # cycles either way, 1 % here); in C-order the model is exact (tests/test_cost_model.py).
    model = expected_cycles(qnet, parallel, trace, inputs)
    exact = kernel >= stride
    assert all((c == m) if exact else abs(c - m) <= 0.03 * m for c, m in zip(got["cycles"], model)), \
        (got["cycles"], model)
    print(f"measured/model per timestep: {min(ratios):.3f} .. {max(ratios):.3f}")


def test_cycle_model_of_a_conv_chain():
    """Here the second conv (9 taps x G = 2 per event) is slower to accept than the first one
    fires, so the first one's fire pass waits on it (backpressure) and stops overlapping its
    next timestep: the cost model follows that (the per-timestep models before it ran 1.19 and
    1.22 times low)."""
    qnet = random_conv_network((2, 8, 8), [
        {"type": "conv", "out": 4, "kernel": 3, "stride": 1, "padding": 1},
        {"type": "max_pool", "kernel": 2},
        {"type": "conv", "out": 4, "kernel": 3, "stride": 1, "padding": 1},
        {"type": "flatten"}, {"type": "dense", "out": 5}], seed=90, timesteps=4)
    inputs = spikes_in(qnet, 2, 0.3, seed=91)
    got = check_against_golden(qnet, 2, inputs, settle=400)
    assert got["cycles"] == expected_cycles(qnet, 2, golden.run(qnet, inputs), inputs)


# ----------------------------------------------------------------------------- reset, Verilog

def test_reset_abandons_a_half_finished_inference():
    """``rst`` mid-inference: the conv engines rewrite their membranes with the biases and
    the max pool clears both bitmaps on the way out of reset."""
    qnet = random_conv_network((2, 6, 6), [
        {"type": "conv", "out": 3, "kernel": 3, "stride": 1, "padding": 1},
        {"type": "max_pool", "kernel": 2},
        {"type": "conv", "out": 2, "kernel": 3, "stride": 1, "padding": 1}],
        seed=95, timesteps=4, leak=Leak("none"), reset="none")
    inputs = spikes_in(qnet, 2, 0.35, seed=96)
    assert_lively(qnet, inputs)
    top = build_top(qnet, 2)
    rng = np.random.default_rng(97)
    half = input_tokens(inputs[0], top.input_shape, 0, rng)
    half = half[:len(half) // 2]
    full = input_tokens(inputs[1], top.input_shape, 0, rng)
    decoders = [StreamDecoder(u.out_shape, 1, 4, f"tap_{u.spiking}")
                for u in top.units if u.spiking is not None]
    counts = reset_midway(top, half, full, decoders, phase_cycles=20_000, chew=30)
    want = golden.run(qnet, inputs[1:])
    for decoder, spikes in zip(decoders, want.spikes):
        assert np.array_equal(decoder.spikes, spikes.numpy()), decoder.name
    assert unpack_counts(counts, top.count_bits, shape_size(top.output_shape)) == \
        want.counts[0].tolist()


def test_verilog_of_a_conv_network_is_deterministic_with_contract_ports():
    qnet = random_conv_network((2, 6, 5), [
        {"type": "conv", "out": 3, "kernel": 3, "stride": 2, "padding": 1},
        {"type": "max_pool", "kernel": 2},
        {"type": "flatten"}, {"type": "dense", "out": 4}], seed=99, timesteps=5, input_bits=3)
    top = build_top(qnet, 2)
    text = verilog.convert(top, name="hwgen_top", emit_src=False)
    assert text == verilog.convert(build_top(qnet, 2), name="hwgen_top", emit_src=False)
    assert top_ports(text) == {
        "clk", "rst", "spikes_in__valid", "spikes_in__ready", "spikes_in__payload",
        "tap_0__valid", "tap_0__ready", "tap_0__payload",
        "tap_1__valid", "tap_1__ready", "tap_1__payload",
        "done", "prediction", "counts", "cycles"}
    # Input (2, 6, 5) with 3-bit values: x 3 + y 3 + c 1 bits, tick, last, value = 12 bits.
    assert "input [11:0] spikes_in__payload" in text
    # tap_0 is the (3, 3, 3) conv output: x 2 + y 2 + c 2, tick, last = 8 bits.
    assert "output [7:0] tap_0__payload" in text
    assert "output [3:0] tap_1__payload" in text  # 4 neurons: addr 2 bits, tick, last
    assert "output [11:0] counts" in text  # 4 outputs x ceil(log2(5 + 1)) bits


def test_verilog_of_a_conv_network_does_not_depend_on_the_hash_seed():
    """Set and dict iteration orders change with PYTHONHASHSEED: the text must not."""
    texts = verilog_under_hash_seeds(
        "from hwgen.testing import random_conv_network\n"
        "qnet = random_conv_network((2, 6, 6), [\n"
        "    {'type': 'conv', 'out': 4, 'kernel': 3, 'stride': 1, 'padding': 1, 'groups': 2},\n"
        "    {'type': 'max_pool', 'kernel': 2}, {'type': 'sum_pool', 'kernel': 3, 'stride': 1},\n"
        "    {'type': 'flatten'}, {'type': 'dense', 'out': 3}], seed=3, input_bits=2)",
        parallel=2)
    assert len(texts) == 1 and "module hwgen_top" in texts.pop()
