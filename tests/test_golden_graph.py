"""The golden model against hand-computed cases of docs/semantics.md's newer sections:
the resets beyond the first three, CuBa neurons, and graphs (recurrence, fan-in, merges)."""

import numpy as np
import pytest

from hwgen import golden
from hwgen.ir import INPUT, Edge, Leak, QuantNetwork, Synapse
from hwgen.kinds import QuantDense, SpikeSum
from hwgen.widths import accumulator_bits


def neurons(name, weight, threshold, *, reset="subtract", leak=Leak("none"), state_bits=8, bias=0,
            **extra):
    w = np.array(weight, dtype=np.int64).reshape(len(np.atleast_1d(threshold)), -1)
    n = w.shape[0]
    b = np.full(n, bias, dtype=np.int64)
    layer = QuantDense(name, w, b, np.array(np.atleast_1d(threshold), dtype=np.int64), leak, reset, 8,
                       state_bits, accumulator_bits(w, b, state_bits), np.zeros(n, dtype=np.int64))
    for key, value in extra.items():
        setattr(layer, key, value)
    return layer


def run(layers, pattern, inputs=None, output=""):
    net = QuantNetwork((1,), layers, timesteps=len(pattern), inputs=inputs or {}, output=output)
    net.check_graph()
    x = np.array(pattern, dtype=np.uint8).reshape(1, -1, 1)
    return golden.run(net, x)


def spikes(trace, k=0, neuron=0):
    return trace.spikes[k][0, :, neuron].tolist()


# ----------------------------------------------------------------------------- resets

def test_zero_resets_to_the_reset_value_before_the_leak():
    # v_reset 2, threshold 5, weight 4, leak v - (v >> 1):
    # a 4 -> u 2; a 6 fires -> u = leak(2) = 1; a 5; -> u = 3; a 7 fires -> 1; ...
    layer = neurons("n", 4, 5, reset="zero", leak=Leak("shift", shift=1), v_reset=np.array([2]))
    assert spikes(run([layer], [1] * 6)) == [0, 1, 0, 1, 0, 1]
    layer = neurons("n", 4, 5, reset="zero", v_reset=np.array([3]))  # no leak: 4, 8 f, 7 f, 7 f ...
    assert spikes(run([layer], [1] * 5)) == [0, 1, 1, 1, 1]


def test_subtract_before_the_leak_leaks_the_remainder():
    # weight 6, threshold 5, leak v - (v >> 1). After: a 6 f -> u = 3 - 5 = -2, a 4, -> 2, 8 f -> 4-5=-1
    # before: a 6 f -> u = leak(1) = 1, a 7 f -> leak(2) = 1, a 7 f ...
    after = neurons("n", 6, 5, leak=Leak("shift", shift=1))
    before = neurons("n", 6, 5, leak=Leak("shift", shift=1), reset_before_leak=True)
    assert spikes(run([after], [1] * 4)) == [1, 0, 1, 0]
    assert spikes(run([before], [1] * 4)) == [1, 1, 1, 1]


def test_zero_step_holds_the_step_after_a_spike_at_zero():
    # weight 6, threshold 5: fires at 0, the next step is held (input lost), fires again at 2
    layer = neurons("n", 6, 5, reset="zero_step")
    assert spikes(run([layer], [1] * 6)) == [1, 0, 1, 0, 1, 0]
    # the held step also drops the bias and the membrane; weight 3: 3, 6 f, held 0, 3, 6 f, 0
    layer = neurons("n", 3, 5, reset="zero_step")
    assert spikes(run([layer], [1] * 6)) == [0, 1, 0, 0, 1, 0]


# ----------------------------------------------------------------------------- CuBa

def cuba(delay, *, alpha=Leak("shift", shift=1), bits=8, membrane_bias=(), **kw):
    return neurons("n", kw.pop("weight", 4), kw.pop("threshold", 9), reset=kw.pop("reset", "subtract"),
                   synapse=Synapse(alpha, bits, delay, tuple(membrane_bias)), **kw)


def test_cuba_current_feeds_the_membrane_this_step_or_the_next():
    # weight 4 on one spike at t=0, current leak halves: c = 4, 2, 1, 1 (leak(1) = 1 - 0 = 1) ...
    # delay 0: a = 4, 6, 7, 8, 9, 10 (fires at 5 when a > 9)
    trace = run([cuba(0)], [1, 0, 0, 0, 0, 0])
    assert spikes(trace) == [0, 0, 0, 0, 0, 1]
    # delay 1: the membrane lags one step: a = 0, 4, 6, 7, 8, 9 -> never above 9
    assert spikes(run([cuba(1)], [1, 0, 0, 0, 0, 0])) == [0] * 6


def test_cuba_membrane_bias_and_bias_go_where_the_semantics_say():
    # bias goes into the current (decays with it), the membrane bias straight into the membrane.
    # bias 2, no input, current leak halves: j = c = 2, 1 + 2 = 3, 2 + 2 = 4; a = 2, 5, 9 (delay 0)
    assert spikes(run([cuba(0, weight=0, threshold=7, bias=2)], [0] * 3)) == [0, 0, 1]
    # membrane bias 3, no current: a = 3, 6, 9 > 7 fires at 2
    assert spikes(run([cuba(0, weight=0, threshold=7, membrane_bias=(3,))], [0] * 3)) == [0, 0, 1]


def test_cuba_current_saturates_at_its_own_width():
    # 4-bit current (rails -8..7): weight 6 twice: j = 6, 3 + 6 = 9 -> c = 7 (not 9)
    net = QuantNetwork((1,), [cuba(0, weight=6, threshold=100, bits=4, reset="none")], 2)
    ranges, currents = [], []
    golden.run(net, np.ones((1, 2, 1), dtype=np.uint8), membrane_range=ranges, current_range=currents)
    assert currents[0] == [6, 9]  # the unsaturated current, for the quantizer's calibration
    assert ranges[0] == [6, 13]  # a = 6, then u = 6 plus c = 7, not 6 + 9


# ----------------------------------------------------------------------------- graphs

def test_a_recurrent_edge_carries_the_previous_step():
    # one neuron, input weight 6 and a self-connection of -6, threshold 5: a spike at t
    # cancels the input at t + 1 (subtract reset: u = 6 - 5 = 1, then 1 + 6 - 6 = 1, ...)
    layer = neurons("r", [[6, -6]], 5, segments=(1, 1))
    trace = run([layer], [1] * 6, inputs={"r": [Edge(INPUT), Edge("r", 1)]})
    # t0: a 6 f (u 1); t1: 1 + 6 - 6 = 1; t2: 1 + 6 = 7 f (u 2); t3: 2 + 0 = 2; t4: 8 f; t5: 3
    assert spikes(trace) == [1, 0, 1, 0, 1, 0]
    assert trace.layer_events[0][0].tolist() == [1, 2, 1, 2, 1, 2]  # recurrent spikes are events


def test_a_delayed_edge_is_zero_at_the_start_of_every_inference():
    layer = neurons("r", [[0, 9]], 5, segments=(1, 1))
    net = QuantNetwork((1,), [layer], timesteps=3, inputs={"r": [Edge(INPUT), Edge("r", 1)]})
    x = np.zeros((2, 3, 1), dtype=np.uint8)
    assert golden.run(net, x).spikes[0].sum() == 0


def test_fan_out_and_a_spike_sum_count_both_branches():
    a = neurons("a", 6, 5)  # fires on every input spike... (6 > 5, u = 1, 7 > 5, ...)
    b = neurons("b", 6, 5)
    merged = SpikeSum("sum", (1,))
    c = neurons("c", 3, 5)  # sees counts 2 per step: a = 6 > 5 fires
    inputs = {"b": [Edge(INPUT)], "sum": [Edge("a"), Edge("b")], "c": [Edge("sum")]}
    trace = run([a, b, merged, c], [1, 1, 0], inputs=inputs)
    assert spikes(trace, 2) == [1, 1, 0]
    assert trace.layer_events[2][0].tolist() == [2, 2, 0]  # a count of 2 is 2 events


def test_graph_errors_name_the_node():
    layer = neurons("r", [[6, -6]], 5, segments=(1, 1))
    with pytest.raises(ValueError, match="'r'.*cycle needs a delay"):
        run([layer], [1], inputs={"r": [Edge(INPUT), Edge("r", 0)]})
    with pytest.raises(ValueError, match="'r'.*'ghost'"):
        run([layer], [1], inputs={"r": [Edge(INPUT), Edge("ghost", 1)]})
    with pytest.raises(ValueError, match="delay 2"):
        run([layer], [1], inputs={"r": [Edge(INPUT), Edge("r", 2)]})
