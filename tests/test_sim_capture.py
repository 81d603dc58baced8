"""The capture harness (``run_rtl(..., harness="capture")``, hwgen/simulate/capture.py and
sim/tb_capture.py): the per-cycle work in the simulator, the check in Python once per run.
It must report exactly what the per-cycle cocotb testbench reports, and catch what it
catches."""

from __future__ import annotations

import copy

import pytest
from amaranth.back import verilog

from hwgen import golden
from hwgen.accelerator.top import build_top
from hwgen.errors import HwgenError
from hwgen.simulate import run_rtl
from hwgen.testing import random_quant_network

from test_graph_rtl import GRAPHS, graph_inputs


def _chain():
    return random_quant_network([20, 16, 6], seed=3, timesteps=8)


NETWORKS = {"chain": (_chain, 3), **{name: GRAPHS[name] for name in ("fanout_concat", "two_layer_cycle")}}


def _design(tmp_path, name):
    make, parallel = NETWORKS[name]
    net = make()
    path = tmp_path / "hwgen_top.v"
    path.write_text(verilog.convert(build_top(net, parallel), name="hwgen_top", emit_src=False))
    return net, path


@pytest.mark.parametrize("name, simulator", [("chain", "verilator"), ("chain", "icarus"),
                                             ("fanout_concat", "verilator"), ("two_layer_cycle", "verilator")])
def test_capture_reports_what_the_per_cycle_testbench_reports(tmp_path, name, simulator):
    """Same cycles (the port and the testbench's own count), readout and spike decisions, on a
    chain and on graphs (fanout_concat's unread branch closes after `done`)."""
    net, path = _design(tmp_path, name)
    x = graph_inputs(net, 4, seed=9)
    trace = golden.run(net, x)
    runs = {harness: run_rtl(path, net, x, trace, simulator=simulator, build_dir=tmp_path / "sim",
                             harness=harness) for harness in ("cocotb", "capture")}
    a, b = runs["cocotb"], runs["capture"]
    assert a.mismatches == b.mismatches == 0, (a.first_mismatch, b.first_mismatch)
    assert (b.cycles, b.testbench_cycles, b.counts, b.predictions, b.spikes_compared) == \
        (a.cycles, a.testbench_cycles, a.counts, a.predictions, a.spikes_compared)


def test_capture_names_a_corrupted_golden_spike(tmp_path):
    """One expected spike flipped in the golden trace: the capture run reports exactly that
    decision (sample, layer, timestep, neuron, expected, got) and nothing else."""
    net, path = _design(tmp_path, "two_layer_cycle")
    x = graph_inputs(net, 3, seed=4)
    trace = copy.deepcopy(golden.run(net, x))
    sample, layer, step, neuron = 2, 1, 3, 4
    was = int(trace.spikes[layer][sample, step, neuron])
    trace.spikes[layer][sample, step, neuron] = 1 - was
    result = run_rtl(path, net, x, trace, simulator="verilator", build_dir=tmp_path / "sim", harness="capture")
    assert result.mismatches == 1
    assert result.first_mismatch == {"sample": sample, "layer": layer, "timestep": step, "neuron": neuron,
                                     "expected": 1 - was, "got": was, "what": "spike"}


def test_capture_refuses_what_it_does_not_do(tmp_path):
    net, path = _design(tmp_path, "chain")
    x = graph_inputs(net, 1, seed=1)
    with pytest.raises(HwgenError, match="without stalls"):
        run_rtl(path, net, x, golden.run(net, x), build_dir=tmp_path / "sim", stall=True, harness="capture")
    with pytest.raises(HwgenError, match="unknown harness"):
        run_rtl(path, net, x, golden.run(net, x), build_dir=tmp_path / "sim", harness="fast")
