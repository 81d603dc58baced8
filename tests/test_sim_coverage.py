"""Coverage in `hwgen sim`'s report (hwgen.simulate.coverage): what a batch exercised,
against hand-computed cases, the weight memories' layouts and the digits demo's data."""

import io

import numpy as np
import pytest
import torch
from rich.console import Console

from hwgen import golden
from hwgen.errors import HwgenError
from hwgen.ir import INPUT, Edge, Leak, QuantNetwork, Synapse
from hwgen.kinds import QuantConv2d, QuantDense
from hwgen.kinds.lif import SynapticLIF
from hwgen.simulate.coverage import LOW_COVERAGE, measure_coverage
from hwgen.summary import print_coverage, print_sim
from hwgen.testing import network_from_spec, random_quant_network, random_spikes
from hwgen.widths import accumulator_bits


def dense(name, weight, threshold, *, state_bits=8, reset="subtract", **extra):
    w = np.array(weight, dtype=np.int64)
    n = w.shape[0]
    b = np.zeros(n, dtype=np.int64)
    layer = QuantDense(name, w, b, np.broadcast_to(np.asarray(threshold, dtype=np.int64), (n,)).copy(),
                       Leak("none"), reset, 8, state_bits, accumulator_bits(w, b, state_bits),
                       np.zeros(n, dtype=np.int64))
    for key, value in extra.items():
        setattr(layer, key, value)
    return layer


def measured(net, x, parallel):
    return measure_coverage(net, golden.run(net, np.asarray(x, dtype=np.uint8)), parallel)


# ----------------------------------------------------------------------------- hand-computed

def test_a_silent_input_leaves_its_weight_words_unread_and_a_silent_neuron_is_counted():
    # 4 inputs -> 6 neurons at P = 4: G = 2 groups, word j*2 + g holds input j's weights.
    # Input 2 never spikes: its 2 words are never read. Neuron 5 has negative weights only.
    weight = np.full((6, 4), 3)
    weight[5] = -1
    net = QuantNetwork((4,), [dense("fc", weight, 5)], timesteps=4)
    x = np.ones((3, 4, 4), dtype=np.uint8)
    x[:, :, 2] = 0
    layer = measured(net, x, parallel=4)["layers"][0]
    assert (layer["weight_words"], layer["weight_words_read"]) == (8, 6)
    assert layer["weight_coverage"] == 0.75 and layer["low_coverage"]
    assert (layer["neurons"], layer["neurons_fired"]) == (6, 5)
    # one sample that drives input 2 at one timestep is enough to read its words
    x[1, 3, 2] = 1
    layer = measured(net, x, parallel=4)["layers"][0]
    assert layer["weight_words_read"] == 8 and not layer["low_coverage"]


def test_the_fraction_does_not_depend_on_the_lanes_but_the_word_count_does():
    net = QuantNetwork((4,), [dense("fc", np.full((6, 4), 3), 5)], timesteps=2)
    x = np.zeros((1, 2, 4), dtype=np.uint8)
    x[0, 0, 0] = 1
    counts = {p: measured(net, x, p)["layers"][0] for p in (1, 2, 6)}
    assert [(c["weight_words_read"], c["weight_words"]) for c in counts.values()] == [(6, 24), (3, 12), (1, 4)]
    assert {c["weight_coverage"] for c in counts.values()} == {0.25}


def conv(kernel=3, stride=1, padding=0, c_out=2, shape=(1, 4, 4)):
    w = np.ones((c_out, shape[0], kernel, kernel), dtype=np.int64)
    b = np.zeros(c_out, dtype=np.int64)
    layer = QuantConv2d("conv", w, b, np.full(c_out, 100, dtype=np.int64), Leak("none"), "subtract", 8, 10,
                        accumulator_bits(w.reshape(c_out, -1), b, 10), np.zeros(c_out, dtype=np.int64),
                        input_shape=shape, stride=(stride, stride), padding=(padding, padding))
    return QuantNetwork(shape, [layer], timesteps=2)


@pytest.mark.parametrize("pixels,taps", [
    ([(0, 0)], 1),  # the corner of a 4x4 map reaches output (0, 0) through tap (0, 0) only
    ([(3, 3)], 1),  # the other corner through tap (2, 2)
    ([(1, 1)], 4),  # taps (0..1, 0..1), outputs (1..0, 1..0)
    ([(0, 0), (1, 1)], 4),  # (0, 0) is among (1, 1)'s taps
    ([(1, 1), (2, 2)], 7),  # taps (0..1, 0..1) and (1..2, 1..2): (1, 1) is in both
    ([(1, 1), (1, 2), (2, 1), (2, 2)], 9),  # together every tap of the 3x3 kernel
])
def test_conv_reads_the_words_of_the_in_range_taps(pixels, taps):
    net = conv()  # 4x4 -> 2x2, two output channels on P = 2 lanes: one word per tap
    x = np.zeros((1, 2, 1, 4, 4), dtype=np.uint8)
    for y, xx in pixels:
        x[0, 0, 0, y, xx] = 1
    layer = measured(net, x, parallel=2)["layers"][0]
    assert (layer["weight_words_read"], layer["weight_words"]) == (taps, 9)


@pytest.mark.parametrize("net", [
    conv(kernel=3, stride=2, padding=1, c_out=5, shape=(2, 7, 6)),
    network_from_spec({"input_shape": [4, 6, 6], "seed": 2,
                       "layers": [{"type": "conv", "out": 6, "kernel": 3, "padding": 1, "groups": 2},
                                  {"type": "sum_pool", "kernel": 2},
                                  {"type": "conv", "out": 5, "kernel": 2, "stride": 2},
                                  {"type": "flatten"}, {"type": "dense", "out": 7}]}),
    random_quant_network([10, 9, 4], seed=1),
])
@pytest.mark.parametrize("parallel", [1, 2, 4])
def test_words_read_follow_the_weight_memory_layout(net, parallel):
    """Each kind's words read, against the engine's walk written out from its class docs: an
    event at input ``(ci, y, x)`` reads, for every tap ``(ky, kx)`` with an exact in-range
    output ``((y + p - ky) / s, (x + p - kx) / s)``, words ``((ci*kh + ky)*kw + kx)*G + g``;
    a dense event ``j`` words ``j*G + g``. Their count is the weight memory's depth."""
    rng = np.random.default_rng(parallel)
    for layer in net.spiking_layers:
        depth, _ = layer.weight_words(parallel).shape
        active = rng.random(layer.golden_input_shape) < 0.15
        read = layer.weight_words_read(active, parallel)
        assert read.shape == (depth,) and read.dtype == bool
        want = np.zeros(depth, dtype=bool)
        G = layer.geometry(parallel).groups
        if isinstance(layer, QuantConv2d):
            (kh, kw), (sy, sx), (py, px) = layer.kernel, layer.stride, layer.padding
            _, h_out, w_out = layer.output_shape
            for ci, y, x in zip(*np.nonzero(active)):
                for ky in range(kh):
                    for kx in range(kw):
                        oy, ry = divmod(y + py - ky, sy)
                        ox, rx = divmod(x + px - kx, sx)
                        if ry == 0 and rx == 0 and 0 <= oy < h_out and 0 <= ox < w_out:
                            base = ((ci * kh + ky) * kw + kx) * G
                            want[base:base + G] = True
        else:
            for j in np.flatnonzero(active):
                want[j * G:(j + 1) * G] = True
        assert np.array_equal(read, want), layer.name


def test_weights_never_read_cannot_change_any_result():
    """What coverage claims: flip every bit of every weight in words no event read, and the
    golden model (which the RTL matches spike for spike) gives the same spikes."""
    net = network_from_spec({"input_shape": [1, 6, 6], "seed": 4,
                             "layers": [{"type": "conv", "out": 3, "kernel": 3},
                                        {"type": "flatten"}, {"type": "dense", "out": 4}]})
    x = random_spikes((4, net.timesteps, 1, 6, 6), 0.5, seed=1)
    x[:, :, :, :, 1:] = 0  # only the left column spikes: it reaches the taps kx = 0 only
    trace = golden.run(net, x)
    first = net.spiking_layers[0]
    cov = measure_coverage(net, trace, 2)["layers"][0]
    assert 0 < cov["weight_words_read"] < cov["weight_words"]
    read = first.weight_words_read(trace.layer_inputs[0].any(dim=0).numpy(), 2)
    # the unread words of conv_weight_words' layout are taps (ci, ky, kx): all lanes of a tap
    G = first.geometry(2).groups
    taps = read.reshape(-1, G)[:, 0].reshape(first.weight.shape[1:])
    first.weight[:, ~taps] ^= (1 << first.weight_bits) - 1  # every bit: -w - 1, within range
    flipped = golden.run(net, x)
    assert all(torch.equal(a, b) for a, b in zip(trace.spikes, flipped.spikes))


def test_rails_are_hit_when_the_state_is_too_narrow():
    # 4-bit membranes (rails -8..7) and thresholds at the top rail: nothing fires, and a
    # constant input of +6 / -6 drives the sums to 12 / -12, past the rails.
    net = QuantNetwork((1,), [dense("fc", [[6], [-6]], 7, state_bits=4, reset="none")], timesteps=3)
    layer = measured(net, np.ones((1, 3, 1)), 1)["layers"][0]
    assert layer["rails"] == {"membrane": {"low": True, "high": True}, "current": None}
    assert layer["neurons_fired"] == 0
    # one spike: the sums reach 6 / -6 and stay inside
    layer = measured(net, [[[1], [0], [0]]], 1)["layers"][0]
    assert layer["rails"]["membrane"] == {"low": False, "high": False}


def test_a_cuba_current_has_rails_of_its_own():
    # 4-bit current (rails -8..7): weight 6 twice, current leak halves: j = 6, 3 + 6 = 9 > 7
    layer = dense("n", [[6]], 100, reset="none", synapse=Synapse(Leak("shift", shift=1), 4))
    net = QuantNetwork((1,), [layer], timesteps=2)
    rails = measured(net, np.ones((1, 2, 1)), 1)["layers"][0]["rails"]
    assert rails == {"membrane": {"low": False, "high": False}, "current": {"low": False, "high": True}}


def test_a_recurrent_input_that_never_fires_leaves_its_weights_unread():
    # input weight 1, recurrent weight 9 on a neuron that never fires (threshold 100): the
    # recurrent segment's word is never read, the input's is.
    layer = dense("r", [[1, 9]], 100, segments=(1, 1))
    net = QuantNetwork((1,), [layer], timesteps=3, inputs={"r": [Edge(INPUT), Edge("r", 1)]})
    cov = measured(net, np.ones((1, 3, 1)), 1)["layers"][0]
    assert (cov["weight_words_read"], cov["weight_words"]) == (1, 2)
    # a firing neuron's recurrent spikes are events like any other
    net.layers[0].threshold[:] = 1  # fires from t = 1 on: its spike is an event at t + 1
    assert measured(net, np.ones((1, 3, 1)), 1)["layers"][0]["weight_words_read"] == 2


def test_a_kind_that_cannot_say_is_reported_as_not_measured(monkeypatch):
    monkeypatch.setattr(QuantDense, "weight_words_read", SynapticLIF.weight_words_read)
    net = random_quant_network([6, 5, 3], seed=2)
    cov = measured(net, random_spikes((2, net.timesteps, 6), 0.3), 2)
    for layer in cov["layers"]:
        assert layer["weight_coverage"] is None and layer["weight_words_read"] is None
        assert "QuantDense kind does not say" in layer["weights_not_measured"]
        assert not layer["low_coverage"] and layer["neurons"] > 0  # the rest is still measured
    out = _printed(lambda console: print_coverage(cov, console))
    assert "not measured" in out and "low coverage" not in out


# ----------------------------------------------------------------------------- bad input

def test_a_trace_of_another_network_is_refused():
    net = random_quant_network([6, 5, 3], seed=2)
    other = random_quant_network([6, 4, 3], seed=2)
    trace = golden.run(other, random_spikes((2, other.timesteps, 6), 0.3))
    with pytest.raises(HwgenError, match="layer 'fc0' .* another network's trace"):
        measure_coverage(net, trace, 2)
    deeper = random_quant_network([6, 5, 4, 3], seed=2)
    with pytest.raises(HwgenError, match="3 spiking layers but the network has 2"):
        measure_coverage(net, golden.run(deeper, random_spikes((1, 8, 6), 0.3)), 2)


@pytest.mark.parametrize("parallel", [0, -1, 1.5, "4", True])
def test_parallel_must_be_a_whole_number_of_lanes(parallel):
    net = random_quant_network([6, 3], seed=2)
    with pytest.raises(HwgenError, match="parallel must be a whole number"):
        measure_coverage(net, golden.run(net, random_spikes((1, 8, 6), 0.3)), parallel)


def test_a_trace_of_no_sample_is_refused():
    net = random_quant_network([6, 3], seed=2)
    trace = golden.run(net, random_spikes((3, 8, 6), 0.3)).first(0)
    with pytest.raises(HwgenError, match="holds no sample"):
        measure_coverage(net, trace, 2)


# ----------------------------------------------------------------------------- the digits demo

@pytest.fixture(scope="module")
def digits_mlp():
    """The demo's MLP quantized as `hwgen demo` does it (no hardware generated), and its
    held-out digits."""
    from hwgen import digits
    from hwgen.demo import CALIBRATION_SAMPLES
    from hwgen.frontend import import_torch, load_torch_model
    from hwgen.quantize import QuantOptions, quantize

    spec = digits.MODELS["mlp"]
    split = spec.load_split()
    net = import_torch(load_torch_model(spec.factory, str(spec.checkpoint)), spec.input_shape)
    opts = QuantOptions(weight_bits=spec.weight_bits, timesteps=spec.timesteps, per_channel=spec.per_channel)
    qnet, _ = quantize(net, opts, split.train_x[:CALIBRATION_SAMPLES])
    return qnet, split.test_x


@pytest.mark.parametrize("samples,silent", [(50, 11), (None, 4)])  # the first 50 digits, all 450
def test_digits_corner_pixels_leave_first_layer_weights_unverified(digits_mlp, samples, silent):
    """The numbers of issue 12: 11 of the 64 pixels never spike in the first 50 held-out
    digits, 4 in all 450; their weight words are the first layer's unread ones."""
    qnet, x = digits_mlp
    x = x[:samples]
    assert int((~x.any(axis=(0, 1))).sum()) == silent
    cov = measure_coverage(qnet, golden.run(qnet, x), 4)
    first = cov["layers"][0]
    G = qnet.spiking_layers[0].geometry(4).groups
    assert first["weight_words"] == 64 * G
    assert first["weight_words_read"] == (64 - silent) * G
    assert first["low_coverage"] and cov["low"] == [first["name"]]
    assert LOW_COVERAGE == cov["threshold"]


def test_a_bit_flip_in_a_corner_pixel_weight_passes_the_first_50_digits(digits_mlp):
    """The issue's example, on the golden model the RTL matches: a flipped weight bit of the
    corner pixel 0 changes nothing in the first 50 digits, and coverage says it was not read."""
    qnet, x = digits_mlp
    x = x[:50]
    trace = golden.run(qnet, x)
    assert not trace.layer_inputs[0][:, 0].any()
    qnet.spiking_layers[0].weight[3, 0] ^= 1
    try:
        flipped = golden.run(qnet, x)
    finally:
        qnet.spiking_layers[0].weight[3, 0] ^= 1
    assert all(torch.equal(a, b) for a, b in zip(trace.spikes, flipped.spikes))


# ----------------------------------------------------------------------------- console

def _printed(draw) -> str:
    console = Console(file=io.StringIO(), width=160, color_system=None)
    draw(console)
    return console.file.getvalue()


def test_the_console_flags_low_coverage_layers():
    net = QuantNetwork((4,), [dense("fc", np.full((6, 4), 3), 5)], timesteps=2)
    x = np.zeros((1, 2, 4), dtype=np.uint8)
    x[0, :, :2] = 1
    cov = measured(net, x, 2)
    report = {"samples": 1, "timesteps": 2, "spikes_compared": 12, "mismatches": 0,
              "cycles_per_inference_mean": 10.0, "cycles_per_inference_max": 10, "accuracy_float": None,
              "accuracy_int": None, "accuracy_rtl": None, "simulator": "verilator", "inputs": "test",
              "coverage": cov}
    out = _printed(lambda console: print_sim(report, console))
    assert "coverage: what the 1 sample exercised" in out
    assert "6/12 (50.0%) low coverage" in out and "6/6" in out
    assert "low coverage in fc: under 95% of the weight words were read" in out
    assert "not verified by this run" in out
    x[0, :, :] = 1
    out = _printed(lambda console: print_coverage(measured(net, x, 2), console))
    assert "12/12 (100.0%)" in out and "low coverage" not in out
