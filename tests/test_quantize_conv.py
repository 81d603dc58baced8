"""Quantizer corner cases for convolutional networks: per-channel scales, the largest input
value per address (``input_max``) after sum pools and for direct input, the accumulator width
that follows from it, and how closely the integer model follows the float one."""

from __future__ import annotations

import numpy as np
import pytest
import snntorch as snn
import torch
from torch import nn

from hwgen import golden
from hwgen.errors import HwgenError
from hwgen.frontend import import_torch
from hwgen.ir import LIFNeurons, Network
from hwgen.kinds import Conv2d, Dense, Flatten, MaxPool2d, QuantConv2d, QuantDense, SumPool2d, from_json, to_json
from hwgen.quantize import QuantOptions, calibration_inputs, fidelity, quantize
from hwgen.widths import accumulator_bits, signed_bits


def _neurons(n: int, beta=0.875, threshold=1.0, reset="subtract") -> LIFNeurons:
    return LIFNeurons(np.broadcast_to(np.asarray(beta, np.float64), (n,)).copy(),
                      np.broadcast_to(np.asarray(threshold, np.float64), (n,)).copy(), reset)


def conv(name, weight, input_shape, *, bias=None, stride=(1, 1), padding=(0, 0), groups=1,
         **neuron) -> Conv2d:
    weight = np.asarray(weight, np.float32)
    c_out = weight.shape[0]
    b = np.zeros(c_out, np.float32) if bias is None else np.asarray(bias, np.float32)
    return Conv2d(name, weight, b, _neurons(c_out, **neuron), tuple(input_shape), stride,
                  padding, groups)


def dense(name, weight, **neuron) -> Dense:
    weight = np.asarray(weight, np.float32)
    return Dense(name, weight, np.zeros(weight.shape[0], np.float32),
                 _neurons(weight.shape[0], **neuron))


def _rows(weight: np.ndarray) -> np.ndarray:
    return weight.reshape(weight.shape[0], -1)


# ----------------------------------------------------------------------------- scales

def test_conv_scales_per_output_channel():
    w = np.zeros((2, 1, 2, 2), np.float32)
    w[0] = [[[1.0, -0.5], [0.25, 0.0]]]
    w[1] = [[[0.01, 0.02], [-0.02, 0.0]]]
    net = Network((1, 4, 4), [conv("c", w, (1, 4, 4), stride=(2, 2), padding=(1, 1))])
    qnet, report = quantize(net, QuantOptions(weight_bits=8, per_channel=True, timesteps=4))
    layer = qnet.spiking_layers[0]
    assert isinstance(layer, QuantConv2d)
    assert layer.weight.shape == (2, 1, 2, 2) and layer.weight.dtype == np.int64
    assert layer.scale_exp.tolist() == [6, 12]
    assert layer.weight[0].flatten().tolist() == [64, -32, 16, 0]
    assert layer.weight[1].flatten().tolist() == [41, 82, -82, 0]
    assert layer.threshold.tolist() == [64, 4096]  # each channel's threshold on its own grid
    assert (layer.stride, layer.padding, layer.groups) == ((2, 2), (1, 1), 1)
    assert layer.input_shape == (1, 4, 4) and layer.output_shape == (2, 3, 3)
    assert report.layers[0].scale_exp == [6, 12]

    shared, _ = quantize(net, QuantOptions(weight_bits=8, per_channel=False, timesteps=4))
    assert shared.spiking_layers[0].scale_exp.tolist() == [6, 6]
    assert shared.spiking_layers[0].threshold.tolist() == [64, 64]


def test_grouped_conv_keeps_its_shape_and_json_round_trips():
    rng = np.random.default_rng(0)
    net = Network((4, 6, 6), [conv("dw", rng.normal(0, 0.5, (4, 1, 3, 3)), (4, 6, 6),
                                   padding=(1, 1), groups=4, threshold=[0.5, 0.7, 0.9, 1.1])])
    qnet, _ = quantize(net, QuantOptions(weight_bits=6, timesteps=6))
    layer = qnet.spiking_layers[0]
    assert layer.groups == 4 and layer.weight.shape == (4, 1, 3, 3)
    assert np.abs(layer.weight).max() <= 31
    assert len(set(layer.threshold.tolist())) == 4
    again = from_json(to_json(qnet))
    x = calibration_inputs(net, 6, samples=8, seed=3)
    assert all(np.array_equal(a, b) for a, b in
               zip(golden.run(qnet, x).spikes, golden.run(again, x).spikes))


def test_per_channel_beta_in_a_conv_layer_is_refused():
    net = Network((1, 4, 4), [conv("c", np.ones((2, 1, 3, 3)) * 0.1, (1, 4, 4),
                                   beta=[0.5, 0.9])])
    with pytest.raises(HwgenError, match="layer 'c': beta differs across neurons"):
        quantize(net, QuantOptions(timesteps=4))


# ----------------------------------------------------------------------------- input_max

def test_accumulator_bits_keyword_scales_the_input_extremes():
    w = np.array([[3, -2, 5], [-7, 1, 0]])
    b = np.array([1, -1])
    assert accumulator_bits(w, b, 8) == accumulator_bits(w, b, 8, input_max=1) == \
        signed_bits(-128 - 1 - 7, 127 + 1 + 8)
    assert accumulator_bits(w, b, 8, input_max=255) == signed_bits(-128 - 1 - 7 * 255,
                                                                  127 + 1 + 8 * 255)


def _chain(*layers) -> Network:
    first = layers[0]
    return Network(tuple(first.input_shape), list(layers))


def test_input_max_propagates_through_pools():
    rng = np.random.default_rng(1)
    w = lambda *s: rng.normal(0, 0.5, s)  # noqa: E731
    # spikes -> sum 2x2 -> sum 2x2 -> conv: every input can carry 16 spikes at once.
    stacked = _chain(SumPool2d("p1", (1, 8, 8), (2, 2), (2, 2)),
                     SumPool2d("p2", (1, 4, 4), (2, 2), (2, 2)),
                     conv("c", w(2, 1, 2, 2), (1, 2, 2)))
    # conv -> sum 3x3 (stride 1) -> flatten -> dense, and conv -> max pool -> conv.
    mixed = _chain(conv("c1", w(2, 1, 3, 3), (1, 8, 8)),
                   SumPool2d("p", (2, 6, 6), (3, 3), (1, 1)),
                   conv("c2", w(2, 2, 3, 3), (2, 4, 4)),
                   MaxPool2d("m", (2, 2, 2), (2, 2), (2, 2)),
                   Flatten("f", (2, 1, 1)), dense("fc", w(3, 2)))
    got = {}
    for net in (stacked, mixed):
        qnet, report = quantize(net, QuantOptions(timesteps=4))
        got.update({layer.name: layer.input_max for layer in qnet.spiking_layers})
        assert [r.input_max for r in report.layers] == [l.input_max for l in qnet.spiking_layers]
        for layer in qnet.spiking_layers:
            assert layer.acc_bits == accumulator_bits(_rows(layer.weight), layer.bias,
                                                      layer.state_bits, input_max=layer.input_max)
    assert got == {"c": 16, "c1": 1, "c2": 9, "fc": 1}

    after_sum = _chain(conv("c1", w(2, 1, 3, 3), (1, 6, 6)),
                       SumPool2d("p", (2, 4, 4), (2, 2), (2, 2)),
                       Flatten("f", (2, 2, 2)), dense("fc", w(3, 8)))
    qnet, _ = quantize(after_sum, QuantOptions(timesteps=4))
    assert [layer.input_max for layer in qnet.spiking_layers] == [1, 4]


def test_max_pool_on_counts_or_direct_values_is_refused():
    net = _chain(SumPool2d("p", (1, 8, 8), (2, 2), (2, 2)),
                 MaxPool2d("m", (1, 4, 4), (2, 2), (2, 2)),
                 conv("c", np.full((1, 1, 2, 2), 0.3), (1, 2, 2)))
    with pytest.raises(HwgenError, match=r"layer 'm': MaxPool2d on the counts of sum pool 'p'"):
        quantize(net, QuantOptions(timesteps=4))
    direct = _chain(MaxPool2d("m", (1, 4, 4), (2, 2), (2, 2)),
                    conv("c", np.full((1, 1, 2, 2), 0.3), (1, 2, 2)))
    quantize(direct, QuantOptions(timesteps=4))  # on spikes: fine
    with pytest.raises(HwgenError, match=r"layer 'm': MaxPool2d on the 4-bit direct input"):
        quantize(direct, QuantOptions(timesteps=4, input_bits=4))


@pytest.mark.parametrize("input_bits,pools", [(1, 0), (1, 1), (1, 2), (4, 0), (3, 1)])
def test_worst_case_sum_is_reached_and_fits_the_accumulator(input_bits, pools):
    """Every input at its largest value, on an integrate-and-fire layer with no reset: the
    state saturates at a rail and the next sum is exactly the worst case that acc_bits is
    sized for (all positive weights on one channel, all negative on the other). It fits,
    tightly; sized for 0/1 inputs instead, it would wrap whenever input_max > 1."""
    layers: list = []
    shape = (1, 16, 16)
    for n in range(pools):
        layers.append(SumPool2d(f"p{n}", shape, (2, 2), (2, 2)))
        shape = (1, shape[1] // 2, shape[2] // 2)
    w = np.stack([np.full((1, 3, 3), 0.9), np.full((1, 3, 3), -0.7)])
    layers.append(conv("c", w, shape, bias=[0.2, -0.1], beta=1.0, threshold=1.0, reset="none"))
    net = Network((1, 16, 16), layers)
    opts = QuantOptions(weight_bits=8, state_bits=10, timesteps=3, input_bits=input_bits)
    top = (1 << input_bits) - 1
    x = np.full((1, 3, 1, 16, 16), top, dtype=np.int64)
    qnet, _ = quantize(net, opts, calibration=x)
    layer = qnet.spiking_layers[0]
    assert layer.input_max == top * 4 ** pools
    assert qnet.input_bits == input_bits

    ranges: list = []
    golden.run(qnet, x, membrane_range=ranges)
    lo, hi = ranges[0]
    pos, neg = layer.weight[0].sum(), layer.weight[1].sum()
    assert hi == layer.state_max + layer.bias[0] + layer.input_max * pos
    assert lo == layer.state_min + layer.bias[1] + layer.input_max * neg
    assert layer.acc_bits == signed_bits(lo, hi)  # fits, and no wider than needed
    spikes_only = accumulator_bits(_rows(layer.weight), layer.bias, layer.state_bits)
    if layer.input_max > 1:
        assert hi > (1 << (spikes_only - 1)) - 1 or lo < -(1 << (spikes_only - 1))


# ----------------------------------------------------------------------------- direct input

@pytest.mark.parametrize("bits", [0, 17, -1, 2.5, True])
def test_input_bits_is_validated(bits):
    net = Network((1, 4, 4), [conv("c", np.full((1, 1, 3, 3), 0.2), (1, 4, 4))])
    with pytest.raises(HwgenError, match=r"--input-bits must be an integer between 1 .* and 16"):
        quantize(net, QuantOptions(timesteps=4, input_bits=bits))


def test_direct_input_first_layer_and_calibration():
    rng = np.random.default_rng(2)
    net = _chain(conv("c1", rng.normal(0, 0.05, (4, 2, 3, 3)), (2, 6, 6)),
                 Flatten("f", (4, 4, 4)), dense("fc", rng.normal(0, 0.3, (5, 64))))
    qnet, report = quantize(net, QuantOptions(timesteps=5, input_bits=8))
    assert qnet.input_bits == 8 and any("direct input" in note for note in qnet.notes)
    assert [layer.input_max for layer in qnet.spiking_layers] == [255, 1]
    assert "8-bit" in report.calibration_source
    assert from_json(to_json(qnet)).input_bits == 8

    x = calibration_inputs(net, 5, samples=16, input_bits=8)
    assert x.shape == (16, 5, 2, 6, 6) and x.dtype == np.uint8
    assert 200 < x.max() <= 255 and x.min() == 0
    assert 0.0 < (x == 0).mean() < 1.0
    assert calibration_inputs(net, 5, samples=4, input_bits=12).dtype == np.uint16

    with pytest.raises(HwgenError, match=r"calibration inputs hold values 300..300; expected "
                                         r"unsigned integers 0..255"):
        quantize(net, QuantOptions(timesteps=5, input_bits=8),
                 calibration=np.full((2, 5, 2, 6, 6), 300))
    with pytest.raises(HwgenError, match="expected 0/1 spikes"):
        quantize(net, QuantOptions(timesteps=5), calibration=np.full((2, 5, 2, 6, 6), 2))
    with pytest.raises(HwgenError, match=r"calibration inputs shaped \[2, 5, 10\]"):
        quantize(net, QuantOptions(timesteps=5), calibration=np.zeros((2, 5, 10)))


# ----------------------------------------------------------------------------- fidelity

L = snn.Leaky


def _csnn(seed: int) -> nn.Sequential:
    model = nn.Sequential(
        nn.Conv2d(2, 8, 3), L(beta=0.875, init_hidden=True), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, stride=2, padding=1), L(beta=0.75, init_hidden=True),
        nn.AvgPool2d(2), nn.Flatten(), nn.Linear(16 * 2 * 2, 10), L(beta=0.875, init_hidden=True))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * 2.5
                               / m.weight[0].numel() ** 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.2)
    return model.eval()


@pytest.mark.parametrize("per_channel", [False, True])
def test_golden_follows_run_float_on_most_spikes(per_channel):
    """A well-scaled conv net at 8-bit weights: report how often the integer model's spikes
    equal the float model's, layer by layer. Differences come from rounding alone (weights,
    thresholds, beta 0.875 and 0.75 are exact shifts), and they compound in later layers."""
    net = import_torch(_csnn(0), (2, 18, 18))
    rng = np.random.default_rng(0)
    calib = (rng.random((16, 12, 2, 18, 18)) < 0.3).astype(np.uint8)
    x = (rng.random((16, 12, 2, 18, 18)) < 0.3).astype(np.uint8)
    qnet, report = quantize(net, QuantOptions(weight_bits=8, per_channel=per_channel,
                                              timesteps=12), calib)
    assert [layer.leak.kind for layer in qnet.spiking_layers] == ["shift"] * 3
    assert [layer.input_max for layer in qnet.spiking_layers] == [1, 1, 4]
    fid = fidelity(net, qnet, x)
    print(f"per_channel={per_channel}: spike agreement {fid.spike_agreement}, prediction "
          f"agreement {fid.prediction_agreement}, state bits "
          f"{[r.state_bits for r in report.layers]}, acc bits {[r.acc_bits for r in report.layers]}")
    assert len(fid.spike_agreement) == 3
    # "Most": rounding flips a few decisions per layer and a flipped spike changes the input
    # of every later layer, so agreement falls with depth (observed ~0.99, ~0.96, ~0.89).
    assert all(a > 0.8 for a in fid.spike_agreement)
    assert fid.spike_agreement[0] > 0.95


@pytest.mark.parametrize("per_channel", [False, True])
def test_golden_equals_run_float_when_nothing_rounds(per_channel):
    """Weights, biases and thresholds on a 1/8 grid, integrate-and-fire neurons and a state
    wide enough never to saturate: the power-of-two scales make every integer exact, so the
    integer model must reproduce the float one spike for spike, through the conv, max pool,
    grouped conv, sum pool (its 1/4 folded into the Linear) and flatten. This pins down that
    the quantizer, golden and run_float agree on layouts, strides, padding and groups."""
    model = nn.Sequential(
        nn.Conv2d(2, 8, 3, padding=1), L(beta=1.0, threshold=1.0, init_hidden=True),
        nn.MaxPool2d(2), nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=2),
        L(beta=1.0, threshold=1.5, init_hidden=True, reset_mechanism="zero"),
        nn.AvgPool2d(2), nn.Flatten(), nn.Linear(8 * 2 * 2, 10),
        L(beta=1.0, threshold=0.5, init_hidden=True))
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.copy_(torch.randint(-6, 9, m.weight.shape, generator=gen) / 8)
                m.bias.copy_(torch.randint(-2, 3, m.bias.shape, generator=gen) / 8)
    net = import_torch(model.eval(), (2, 16, 16))
    rng = np.random.default_rng(5)
    x = (rng.random((8, 10, 2, 16, 16)) < 0.3).astype(np.uint8)
    qnet, report = quantize(net, QuantOptions(weight_bits=8, per_channel=per_channel,
                                              state_bits=24, timesteps=10), x)
    assert all(r.weight_rmse_lsb == 0 and r.threshold_rel_error == 0 for r in report.layers)
    fid = fidelity(net, qnet, x)
    assert fid.spike_agreement == [1.0, 1.0, 1.0]
    rates = [float(s.float().mean()) for s in golden.run(qnet, x).spikes]
    assert all(0.02 < r < 0.98 for r in rates), rates


def test_golden_follows_run_float_with_direct_input():
    """4-bit frames: the float model takes the same integers 0..15 as the hardware."""
    model = nn.Sequential(nn.Conv2d(1, 6, 3), L(beta=0.875, init_hidden=True), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(6 * 4 * 4, 10), L(beta=0.875, init_hidden=True))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        model[0].weight.copy_(torch.randn(model[0].weight.shape, generator=gen) * 0.08)
        model[0].bias.zero_()
        model[4].weight.copy_(torch.randn(model[4].weight.shape, generator=gen) * 0.3)
    net = import_torch(model.eval(), (1, 10, 10))
    rng = np.random.default_rng(1)
    x = rng.integers(0, 16, size=(16, 10, 1, 10, 10))
    qnet, _ = quantize(net, QuantOptions(weight_bits=8, timesteps=10, input_bits=4), x)
    assert qnet.spiking_layers[0].input_max == 15
    fid = fidelity(net, qnet, x)
    print(f"direct 4-bit input: spike agreement {fid.spike_agreement}, prediction agreement "
          f"{fid.prediction_agreement}")
    assert all(a > 0.9 for a in fid.spike_agreement)
    rates = [float(s.float().mean()) for s in golden.run(qnet, x).spikes]
    assert all(0.02 < r < 0.98 for r in rates), rates
