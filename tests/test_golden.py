"""The golden model against hand-computed cases of docs/semantics.md."""

import numpy as np
import pytest
import torch

from hwgen import golden
from hwgen.encode import rate_encode
from hwgen.ir import Leak, QuantNetwork
from hwgen.kinds import QuantDense
from hwgen.widths import accumulator_bits


def one_neuron(weight, threshold, *, reset="subtract", leak=Leak("none"), state_bits=8, bias=0):
    w = np.array([[weight]], dtype=np.int64)
    b = np.array([bias], dtype=np.int64)
    layer = QuantDense("n", w, b, np.array([threshold], dtype=np.int64), leak, reset, 8, state_bits,
                       accumulator_bits(w, b, state_bits), np.zeros(1, dtype=np.int64))
    return QuantNetwork((1,), [layer], timesteps=6)


def spikes_of(net, pattern):
    x = np.array(pattern, dtype=np.uint8).reshape(1, -1, 1)
    return golden.run(net, x).spikes[0][0, :, 0].tolist()


def test_integrate_fire_subtract_keeps_the_remainder():
    # a: 3, 6 (fire, u=1), 4, 7 (fire, u=2), 5 (not > 5), 8 (fire)
    assert spikes_of(one_neuron(3, 5), [1] * 6) == [0, 1, 0, 1, 0, 1]


def test_fire_is_strictly_greater_than_threshold():
    assert spikes_of(one_neuron(5, 5), [1, 0, 0, 0, 0, 0]) == [0] * 6
    assert spikes_of(one_neuron(6, 5), [1, 0, 0, 0, 0, 0]) == [1, 0, 0, 0, 0, 0]


def test_reset_to_zero_discards_the_remainder():
    # a: 3, 6 (fire -> 0), 3, 6 (fire), ...
    assert spikes_of(one_neuron(3, 5, reset="zero"), [1] * 6) == [0, 1, 0, 1, 0, 1]
    # weight 4: zero gives 4, 8 f(-> 0), 4, 8 f, ...; subtract gives 4, 8 f(u=3), 7 f(2), 6 f(1), 5, 9 f
    assert spikes_of(one_neuron(4, 5, reset="zero"), [1] * 6) == [0, 1, 0, 1, 0, 1]
    assert spikes_of(one_neuron(4, 5, reset="subtract"), [1] * 6) == [0, 1, 1, 1, 0, 1]


def test_no_reset_keeps_firing_while_above_threshold():
    assert spikes_of(one_neuron(6, 5, reset="none"), [1, 0, 0, 0, 0, 0]) == [1] * 6


def test_state_saturates_instead_of_wrapping():
    net = one_neuron(100, 126, reset="none", state_bits=8)
    # a: 100, 200 -> clamps at 127 (> 126 fires); wrapping would give -56 and stay silent.
    assert spikes_of(net, [1, 1, 0, 0, 0, 0]) == [0, 1, 1, 1, 1, 1]
    net = one_neuron(-100, 5, reset="none", state_bits=8)
    trace_lo = []
    golden.run(net, np.ones((1, 6, 1), dtype=np.uint8), membrane_range=trace_lo)
    assert trace_lo[0][0] == -128 - 100  # the unsaturated sum, with u held at the rail


def test_shift_leak_floors_towards_minus_infinity():
    v = torch.tensor([-1, -2, -3, 1, 2, 3, 17, -17])
    assert golden.leak(v, Leak("shift", shift=1)).tolist() == [0, -1, -1, 1, 1, 2, 9, -8]
    assert golden.leak(v, Leak("mul", mul=3, frac_bits=2)).tolist() == [-1, -2, -3, 0, 1, 2, 12, -13]


def test_leak_between_timesteps():
    # weight 8, threshold 100, leak v - (v >> 1): 8 -> u 4 -> 12 -> u 6 -> 14 -> 7 -> 15 ...
    net = one_neuron(8, 100, leak=Leak("shift", shift=1))
    ranges = []
    golden.run(net, np.ones((1, 4, 1), dtype=np.uint8), membrane_range=ranges)
    assert ranges[0] == [8, 15]


def test_bias_is_integrated_every_timestep():
    assert spikes_of(one_neuron(0, 5, bias=2), [0] * 6) == [0, 0, 1, 0, 0, 1]


def test_readout_ties_go_to_the_lowest_index():
    counts = torch.tensor([[0, 3, 3, 1], [0, 0, 0, 0], [1, 0, 2, 2]])
    assert golden.readout(counts).tolist() == [1, 0, 2]


def test_inferences_in_a_batch_are_independent():
    from hwgen.testing import random_quant_network, random_spikes

    net = random_quant_network([12, 9, 4], seed=3)
    x = random_spikes((5, 8, 12), 0.3, seed=4)
    together = golden.run(net, x)
    for i in range(5):
        alone = golden.run(net, x[i:i + 1])
        for a, b in zip(together.spikes, alone.spikes):
            assert torch.equal(a[i], b[0])


def test_rate_encoding_spreads_floor_t_p_spikes():
    x = rate_encode(np.array([0.0, 0.25, 0.5, 1.0]), 8)
    assert x.shape == (4, 8)
    assert x.sum(axis=1).tolist() == [0, 2, 4, 8]
    assert x[2].tolist() == [0, 1, 0, 1, 0, 1, 0, 1]


def scatter_conv(weight, x, stride, padding, groups, out_hw):
    """The event-driven view, written independently: each input event scatters its kernel."""
    c_out, c_in_g, kh, kw = weight.shape
    out = np.zeros((c_out, *out_hw), dtype=np.int64)
    per_group_out = c_out // groups
    for ci, y, xx in zip(*np.nonzero(x)):
        g = ci // c_in_g
        for ky in range(kh):
            for kx in range(kw):
                oy, ox = y + padding[0] - ky, xx + padding[1] - kx
                if oy % stride[0] or ox % stride[1]:
                    continue
                oy, ox = oy // stride[0], ox // stride[1]
                if 0 <= oy < out_hw[0] and 0 <= ox < out_hw[1]:
                    for co in range(g * per_group_out, (g + 1) * per_group_out):
                        out[co, oy, ox] += weight[co, ci - g * c_in_g, ky, kx] * x[ci, y, xx]
    return out


@pytest.mark.parametrize("kernel,stride,padding,groups", [
    ((3, 3), (1, 1), (1, 1), 1), ((5, 5), (2, 2), (1, 1), 1), ((1, 1), (1, 1), (0, 0), 2),
    ((3, 2), (2, 1), (2, 0), 4), ((3, 3), (2, 2), (0, 0), 4),
])
def test_conv_matches_the_event_scatter_formulation(kernel, stride, padding, groups):
    from hwgen.kinds import QuantConv2d

    rng = np.random.default_rng(sum(kernel) + groups)
    c_in, c_out, h, w = 4, 8, 7, 6
    weight = rng.integers(-8, 8, size=(c_out, c_in // groups, *kernel))
    layer = QuantConv2d("c", weight, np.zeros(c_out, np.int64), np.full(c_out, 10**6), Leak("none"), "none",
                        5, 40, 44, np.zeros(c_out, np.int64), (c_in, h, w), stride, padding, groups, input_max=3)
    x = rng.integers(0, 4, size=(2, c_in, h, w)) * (rng.random((2, c_in, h, w)) < 0.3)
    got = golden.synaptic_input(layer, torch.as_tensor(x))
    for b in range(2):
        expected = scatter_conv(weight, x[b], stride, padding, groups, layer.output_shape[1:])
        assert torch.equal(got[b], torch.as_tensor(expected))
    # synaptic ops: one addition per (event, in-range tap, output channel)
    ones = np.ones_like(weight)
    for b in range(2):
        assert golden.event_fanout(layer, torch.as_tensor(x[b:b + 1]))[0] == \
            scatter_conv(ones, x[b], stride, padding, groups, layer.output_shape[1:]).sum()


def test_pools_on_spikes():
    from hwgen.kinds import MaxPool2d, SumPool2d

    x = torch.tensor([[[[1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]]]])
    assert golden.pool(SumPool2d("p", (1, 4, 4), (2, 2), (2, 2)), x).tolist() == [[[[3, 0], [0, 1]]]]
    assert golden.pool(MaxPool2d("p", (1, 4, 4), (2, 2), (2, 2)), x).tolist() == [[[[1, 0], [0, 1]]]]
