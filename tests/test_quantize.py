"""Quantizer corner cases: scales, leaks, widths, and the errors for bad parameters."""

import numpy as np
import pytest

from hwgen import golden
from hwgen.errors import HwgenError
from hwgen.ir import LIFNeurons, Network
from hwgen.kinds import Dense
from hwgen.quantize import QuantOptions, leak_for, quantize, scale_exponents


def dense_net(weight, *, beta=0.875, threshold=1.0, bias=None, reset="subtract"):
    weight = np.asarray(weight, dtype=np.float32)
    n_out = weight.shape[0]
    neurons = LIFNeurons(np.full(n_out, beta, dtype=np.float64),
                         np.broadcast_to(np.asarray(threshold, dtype=np.float64), (n_out,)).copy(), reset)
    b = np.zeros(n_out, np.float32) if bias is None else np.asarray(bias, np.float32)
    return Network((weight.shape[1],), [Dense("fc", weight, b, neurons)], source="test")


@pytest.mark.parametrize("bits", [0, 1, 17, -3])
def test_weight_bits_out_of_range_is_a_clear_error(bits):
    with pytest.raises(HwgenError, match=r"--weight-bits must be between 2 and 16, got"):
        quantize(dense_net([[0.5]]), QuantOptions(weight_bits=bits, timesteps=4))


@pytest.mark.parametrize("bits", [2, 4, 8, 16])
def test_scale_uses_the_full_weight_range_without_clipping(bits):
    rng = np.random.default_rng(bits)
    w = rng.normal(0, 0.3, size=(6, 10)).astype(np.float32)
    e = scale_exponents(w, bits, per_channel=False)
    assert len(set(e.tolist())) == 1
    top = np.abs(w).max() * 2.0 ** e[0]
    wmax = 2 ** (bits - 1) - 1
    assert wmax / 2 < top <= wmax  # the largest power of two that fits


def test_per_channel_scales_each_neuron():
    w = np.array([[1.0, -0.5], [0.01, 0.02]], dtype=np.float32)
    qnet, _ = quantize(dense_net(w), QuantOptions(weight_bits=8, per_channel=True, timesteps=4))
    layer = qnet.spiking_layers[0]
    assert layer.scale_exp.tolist() == [6, 12]
    assert layer.weight.tolist() == [[64, -32], [41, 82]]
    assert layer.threshold.tolist() == [64, 4096]  # thresholds follow each neuron's scale


def test_thresholds_are_integers_on_the_weight_grid():
    qnet, report = quantize(dense_net([[0.7, -0.2]], threshold=1.0), QuantOptions(weight_bits=6, timesteps=4))
    layer = qnet.spiking_layers[0]
    assert layer.scale_exp.tolist() == [5]
    assert layer.threshold.tolist() == [32]
    assert report.layers[0].threshold_rel_error == 0.0


@pytest.mark.parametrize("beta,kind,expected_beta", [
    (1.0, "none", 1.0), (0.5, "shift", 0.5), (0.875, "shift", 0.875), (1 - 2 ** -10, "shift", 1 - 2 ** -10),
    (0.9, "mul", 230 / 256), (0.0, "mul", 0.0),
])
def test_leak_becomes_a_shift_when_beta_allows(beta, kind, expected_beta):
    leak = leak_for("fc", np.array([beta, beta]), frac_bits=8)
    assert leak.kind == kind
    assert leak.beta == pytest.approx(expected_beta)


def test_per_neuron_beta_is_refused_with_the_layer_named():
    with pytest.raises(HwgenError, match="layer 'fc': beta differs across neurons"):
        leak_for("fc", np.array([0.5, 0.9]), frac_bits=8)


@pytest.mark.parametrize("what", ["weight", "bias", "threshold"])
def test_non_finite_parameters_are_refused(what):
    net = dense_net([[0.5, 0.1]], bias=[0.0])
    layer = net.layers[0]
    target = {"weight": layer.weight, "bias": layer.bias, "threshold": layer.neurons.threshold}[what]
    target.flat[0] = np.nan if what != "threshold" else np.inf
    with pytest.raises(HwgenError, match=f"layer 'fc': {what} contains NaN or inf"):
        quantize(net, QuantOptions(timesteps=4))


def test_state_width_covers_calibration_and_accumulator_never_wraps():
    rng = np.random.default_rng(0)
    net = dense_net(rng.normal(0.1, 0.3, size=(8, 30)), beta=1.0)
    x = (rng.random((20, 12, 30)) < 0.4).astype(np.uint8)
    qnet, report = quantize(net, QuantOptions(weight_bits=8, timesteps=12), x)
    layer = qnet.spiking_layers[0]
    lo, hi = report.layers[0].membrane_range
    assert layer.state_min < lo and hi < layer.state_max  # headroom beyond what was seen
    worst_hi = layer.state_max + layer.bias + np.maximum(layer.weight, 0).sum(axis=1)
    worst_lo = layer.state_min + layer.bias + np.minimum(layer.weight, 0).sum(axis=1)
    assert worst_hi.max() <= 2 ** (layer.acc_bits - 1) - 1
    assert worst_lo.min() >= -(2 ** (layer.acc_bits - 1))
    assert layer.acc_bits > layer.state_bits


def test_explicit_state_bits_saturate_and_are_reported():
    net = dense_net([[1.0]], beta=1.0, threshold=5.0, reset="none")  # θ = 20 on the 2^2 grid
    qnet, _ = quantize(net, QuantOptions(weight_bits=4, state_bits=6, timesteps=4))
    assert qnet.spiking_layers[0].state_bits == 6
    with pytest.raises(HwgenError, match="threshold 40 does not fit 6 state bits"):
        quantize(dense_net([[1.0]], threshold=10.0), QuantOptions(weight_bits=4, state_bits=6, timesteps=4))


def test_two_bit_weights_are_ternary():
    qnet, _ = quantize(dense_net([[0.9, -0.4, 0.05, -1.0]]), QuantOptions(weight_bits=2, timesteps=4))
    assert set(qnet.spiking_layers[0].weight.flatten().tolist()) <= {-2, -1, 0, 1}


def test_all_zero_weights_do_not_crash_the_scale():
    qnet, _ = quantize(dense_net([[0.0, 0.0]], bias=[0.3]), QuantOptions(timesteps=4))
    x = np.ones((1, 4, 2), dtype=np.uint8)
    assert golden.run(qnet, x).spikes[0].sum() == 0


def test_per_neuron_alpha_is_refused_naming_alpha():
    neurons = LIFNeurons(np.full(3, 0.875), np.ones(3), alpha=np.array([0.5, 0.75, 0.75]))
    net = Network((2,), [Dense("cuba", np.ones((3, 2), np.float32), np.zeros(3, np.float32), neurons)])
    with pytest.raises(HwgenError, match="'cuba': alpha differs across neurons"):
        quantize(net, QuantOptions(timesteps=4))


def test_direct_input_merged_with_other_inputs_is_refused():
    from hwgen.ir import INPUT, Edge

    neurons = LIFNeurons(np.full(3, 0.875), np.ones(3))
    layer = Dense("mix", np.ones((3, 5), np.float32), np.zeros(3, np.float32), neurons, segments=(2, 3))
    net = Network((2,), [layer], inputs={"mix": [Edge(INPUT), Edge("mix", 1)]})
    with pytest.raises(HwgenError, match="'mix' merges the 4-bit direct input with other inputs"):
        quantize(net, QuantOptions(timesteps=4, input_bits=4))


def test_a_reset_value_beyond_the_state_rails_is_refused():
    neurons = LIFNeurons(np.full(3, 0.875), np.ones(3), "zero", v_reset=np.full(3, 1e4))
    net = Network((2,), [Dense("far", np.ones((3, 2), np.float32), np.zeros(3, np.float32), neurons)])
    with pytest.raises(HwgenError, match="'far': v_reset .* does not fit"):
        quantize(net, QuantOptions(timesteps=4, weight_bits=4, state_bits=8))  # calibration would widen it
