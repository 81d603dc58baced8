"""Golden == RTL for convolutional networks in cocotb, on Icarus and Verilator.

The parameter sweeps live in tests/test_hardware_conv.py (Amaranth's simulator); here the
generated Verilog itself runs in the cocotb testbench, with structured map addresses on the
ports, direct multi-bit input, pools and random input stalls.
"""

import numpy as np
import pytest

from hwgen import golden
from hwgen.emit import verilog_text
from hwgen.simulate import run_rtl
from hwgen.testing import random_conv_network

NETWORKS = {
    # conv -> max pool -> conv (stride 2, padding) -> flatten -> dense
    "conv_maxpool_dense": dict(
        input_shape=(2, 8, 8), timesteps=5, parallel=3,
        layers=[{"type": "conv", "out": 5, "kernel": 3, "padding": 1}, {"type": "max_pool", "kernel": 2},
                {"type": "conv", "out": 4, "kernel": 3, "stride": 2, "padding": 1}, {"type": "flatten"},
                {"type": "dense", "out": 6}]),
    # 4-bit direct input (frames), depthwise conv, sum pool, reset to zero
    "direct_depthwise_sumpool": dict(
        input_shape=(3, 7, 6), timesteps=4, parallel=2, input_bits=4, reset="zero",
        layers=[{"type": "conv", "out": 3, "kernel": 3, "groups": 3}, {"type": "sum_pool", "kernel": 2},
                {"type": "conv", "out": 4, "kernel": 1}, {"type": "flatten"}, {"type": "dense", "out": 3}]),
}


def build(tmp_path, name):
    spec = dict(NETWORKS[name])
    parallel = spec.pop("parallel")
    qnet = random_conv_network(spec.pop("input_shape"), spec.pop("layers"), seed=7, **spec)
    verilog = tmp_path / "hwgen_top.v"
    verilog.write_text(verilog_text(qnet, parallel))
    rng = np.random.default_rng(3)
    top = (1 << qnet.input_bits) - 1
    x = rng.integers(1, top + 1, size=(4, qnet.timesteps, *qnet.input_shape)) * \
        (rng.random((4, qnet.timesteps, *qnet.input_shape)) < 0.3)
    return qnet, verilog, x


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_conv_networks_are_bit_exact(tmp_path, name, simulator):
    qnet, verilog, x = build(tmp_path, name)
    trace = golden.run(qnet, x)
    assert all(s.sum() > 0 for s in trace.spikes), "every layer should fire somewhere"
    result = run_rtl(verilog, qnet, x, trace, simulator=simulator, build_dir=tmp_path / "sim")
    assert result.mismatches == 0, result.first_mismatch
    assert result.spikes_compared == 4 * qnet.timesteps * sum(s.shape[2] for s in trace.spikes) + 4 * (qnet.output_size + 1)


def test_input_stalls_change_nothing_but_time(tmp_path):
    qnet, verilog, x = build(tmp_path, "conv_maxpool_dense")
    trace = golden.run(qnet, x)
    steady = run_rtl(verilog, qnet, x, trace, simulator="icarus", build_dir=tmp_path / "sim")
    stalled = run_rtl(verilog, qnet, x, trace, simulator="icarus", build_dir=tmp_path / "sim", stall=True)
    assert steady.mismatches == stalled.mismatches == 0
    assert steady.predictions == stalled.predictions and steady.counts == stalled.counts
    # No cycle count check: a conv event costs taps x G cycles, so short input stalls hide
    # behind the engine's event buffer (the dense test in test_sim_rtl.py sees them).
