"""The general neuron of docs/semantics.md in the dense and conv engines, golden == RTL.

Every neuron option beyond plain LIF (reset "zero" to a per-channel ``v_reset`` of either
sign, "subtract" before the leak, "zero_step", CuBa synapses of delay 0 and 1 with a membrane
bias), alone and combined, with shift and multiplier leaks, on random dense chains and conv
chains: the generated Verilog runs in cocotb (Icarus) on several inferences, and every spike
of every layer must be the golden model's. The same designs also run in Amaranth's
simulator with the inferences overlapping (the next one's events enter while the last one
drains) and random input gaps.

A pass proves little if the inputs never exercise an option, so each case also checks, on
the golden model alone, that its inputs do: the membrane (and current) sums go past their
rails where the case says so, and switching each of the case's options off changes the
spikes (``flips``).
"""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest

from hwgen import golden
from hwgen.accelerator.cycles import expected_cycles
from hwgen.emit import verilog_text
from hwgen.ir import Leak, Synapse
from hwgen.simulate import run_rtl
from hwgen.testing import random_conv_network, random_quant_network, random_spikes

import hwsim
from test_cost_model import c_order_tokens

SHIFT2 = Leak("shift", shift=2)
MUL = Leak("mul", mul=45, frac_bits=6)  # beta = 0.703


def cuba(delay: int, bits: int = 8, leak: Leak = SHIFT2) -> Synapse:
    return Synapse(leak, bits, delay)


# --- what switching an option off means, for the check that the inputs exercise it

def no_synapse_delay_swap(layer):  # delay 0 <-> 1
    layer.synapse = replace(layer.synapse, delay=1 - layer.synapse.delay)


def no_membrane_bias(layer):
    layer.synapse = replace(layer.synapse, membrane_bias=())


def no_current_leak(layer):
    layer.synapse = replace(layer.synapse, leak=Leak("none"))


def no_v_reset(layer):
    layer.v_reset = None


def no_reset_before_leak(layer):
    layer.reset_before_leak = False


def no_hold(layer):  # zero_step -> no reset: the hold bit is all that differs
    layer.reset = "none"


# name -> (network options, P, rails that must be passed: "membrane" / "current", flips)
DENSE = {
    "cuba0_membrane_bias": (dict(synapse=cuba(0), membrane_bias=(-12, 12), state_bits=9), 3,
                            ("membrane", "current"), (no_synapse_delay_swap, no_membrane_bias)),
    "cuba1_mul_subtract_before_leak": (
        dict(synapse=cuba(1, leak=MUL), membrane_bias=(-12, 12), reset_before_leak=True, leak=MUL,
             state_bits=9), 4, ("membrane", "current"),
        (no_synapse_delay_swap, no_membrane_bias, no_reset_before_leak, no_current_leak)),
    "zero_to_v_reset_mul": (dict(reset="zero", v_reset=(-60, 60), leak=MUL, per_neuron_threshold=True), 4,
                            (), (no_v_reset,)),
    "subtract_before_leak": (dict(reset_before_leak=True, leak=Leak("shift", shift=1)), 2, (),
                             (no_reset_before_leak,)),
    "zero_step": (dict(reset="zero_step"), 3, (), (no_hold,)),
    "cuba0_zero_step": (dict(synapse=cuba(0, bits=7, leak=Leak("shift", shift=1)), reset="zero_step",
                             state_bits=8), 2, ("membrane", "current"), (no_hold, no_synapse_delay_swap)),
    "cuba1_zero_to_v_reset": (dict(synapse=cuba(1, leak=MUL), membrane_bias=(-8, 8), reset="zero",
                                   v_reset=(-40, 40), leak=SHIFT2), 5, ("current",),
                              (no_v_reset, no_synapse_delay_swap, no_membrane_bias)),
}

CONV = {
    # CuBa delay 0 with a membrane bias (P = 3 of 5 channels: ragged), max pool, reset to
    # v_reset, flatten, zero_step dense
    "conv_cuba0_vreset_zero_step": (dict(
        input_shape=(2, 7, 7), timesteps=5, state_bits=9, layers=[
            {"type": "conv", "out": 5, "kernel": 3, "padding": 1, "synapse": cuba(0, bits=7),
             "membrane_bias": (-10, 10)},
            {"type": "max_pool", "kernel": 2},
            {"type": "conv", "out": 4, "kernel": 3, "padding": 1, "reset": "zero", "v_reset": (-50, 50),
             "leak": MUL},
            {"type": "flatten"},
            {"type": "dense", "out": 6, "reset": "zero_step"}]), 3,
        {0: (no_synapse_delay_swap, no_membrane_bias), 1: (no_v_reset,), 2: (no_hold,)}),
    # CuBa delay 1, subtract before the leak, multiplier leaks; a grouped CuBa zero_step conv
    # with stride 2; a dense layer resetting to v_reset
    "conv_cuba1_grouped_zero_step": (dict(
        input_shape=(2, 8, 8), timesteps=5, state_bits=8, layers=[
            {"type": "conv", "out": 4, "kernel": 3, "synapse": cuba(1, leak=MUL), "membrane_bias": (-10, 10),
             "reset_before_leak": True, "leak": MUL},
            {"type": "conv", "out": 6, "kernel": 3, "stride": 2, "padding": 1, "groups": 2,
             "synapse": cuba(0, bits=8), "reset": "zero_step"},
            {"type": "flatten"},
            {"type": "dense", "out": 5, "reset": "zero", "v_reset": (-30, 30)}]), 2,
        {0: (no_synapse_delay_swap, no_membrane_bias, no_reset_before_leak), 1: (no_hold,),
         2: (no_v_reset,)}),
}

SAMPLES = 4


def dense_case(name: str):
    options, parallel, rails, flips = DENSE[name]
    options = dict(options)
    qnet = random_quant_network([14, 11, 6], seed=11, timesteps=6, **options)
    x = random_spikes((SAMPLES, 6, 14), 0.35, seed=12)
    return qnet, x, parallel, rails, {k: flips for k in range(len(qnet.spiking_layers))}


def conv_case(name: str):
    spec, parallel, flips = CONV[name]
    spec = copy.deepcopy(spec)
    qnet = random_conv_network(spec.pop("input_shape"), spec.pop("layers"), seed=21, rate=0.3, **spec)
    x = random_spikes((SAMPLES, qnet.timesteps, *qnet.input_shape), 0.3, seed=22)
    return qnet, x, parallel, ("membrane",), flips


def case(name: str):
    return dense_case(name) if name in DENSE else conv_case(name)


CASES = [*DENSE, *CONV]


def spikes_of(qnet, x) -> list[np.ndarray]:
    return [s.numpy() for s in golden.run(qnet, x).spikes]


def check_exercised(qnet, x, rails, flips) -> golden.GoldenTrace:
    """The inputs exercise the case: every layer fires and stays silent, the listed rails are
    passed, and switching each option off changes the spikes (so the RTL could fail)."""
    membrane, current = [], []
    trace = golden.run(qnet, x, membrane_range=membrane, current_range=current)
    for k, s in enumerate(trace.spikes):
        assert 0 < int(s.sum()) < s.numel(), f"layer {k} should both fire and stay silent"
    layers = qnet.spiking_layers
    if "membrane" in rails:
        assert any(lo < layer.state_min or hi > layer.state_max
                   for layer, (lo, hi) in zip(layers, membrane)), "no membrane sum reaches a rail"
    if "current" in rails:
        assert any(r is not None and (r[0] < layer.synapse.current_min or r[1] > layer.synapse.current_max)
                   for layer, r in zip(layers, current)), "no current reaches a rail"
    for k, layer in enumerate(layers):
        if layer.v_reset is not None:
            assert layer.v_reset.min() < 0 < layer.v_reset.max(), "reset values of both signs"
    reference = [s.numpy() for s in trace.spikes]
    for k, options in flips.items():
        for flip in options:
            other = copy.deepcopy(qnet)
            flip(other.spiking_layers[k])
            assert any((a != b).any() for a, b in zip(spikes_of(other, x), reference)), \
                f"layer {k}: {flip.__name__} changes no spike; the inputs do not exercise it"
    return trace


@pytest.mark.parametrize("name", CASES)
def test_cocotb_golden_equals_rtl(tmp_path, name):
    qnet, x, parallel, rails, flips = case(name)
    trace = check_exercised(qnet, x, rails, flips)
    verilog = tmp_path / "hwgen_top.v"
    verilog.write_text(verilog_text(qnet, parallel))
    result = run_rtl(verilog, qnet, x, trace, simulator="icarus", build_dir=tmp_path / "sim")
    assert result.mismatches == 0, result.first_mismatch
    assert result.samples == SAMPLES
    assert result.counts == trace.counts.tolist()


@pytest.mark.parametrize("name", ["cuba1_mul_subtract_before_leak",
                                  pytest.param("conv_cuba0_vreset_zero_step", marks=pytest.mark.slow)])
def test_cocotb_verilator(tmp_path, name):
    qnet, x, parallel, rails, flips = case(name)
    trace = golden.run(qnet, x)
    verilog = tmp_path / "hwgen_top.v"
    verilog.write_text(verilog_text(qnet, parallel))
    result = run_rtl(verilog, qnet, x, trace, simulator="verilator", build_dir=tmp_path / "sim")
    assert result.mismatches == 0, result.first_mismatch


@pytest.mark.parametrize("name", CASES)
def test_overlapping_inferences_with_gaps(name):
    """Amaranth's simulator: the inferences back to back without waiting for ``done`` (the
    state memories must return to their initial state on the ``last`` tick while the next
    inference's events already arrive), with random idle input cycles."""
    qnet, x, parallel, _, _ = case(name)
    hwsim.check_against_golden(qnet, parallel, x, gap=0.2, seed=5, max_cycles=200_000)


@pytest.mark.parametrize("name", ["cuba1_zero_to_v_reset", "conv_cuba1_grouped_zero_step"])
def test_no_extra_cycles(monkeypatch, name):
    """The current, membrane and hold memories are read in the fire pass's cycle: the cost
    model of plain LIF engines stays exact."""
    qnet, x, parallel, _, _ = case(name)
    monkeypatch.setattr(hwsim, "input_tokens", c_order_tokens)
    got = hwsim.check_against_golden(qnet, parallel, x, settle=2000, max_cycles=400_000)
    assert got["cycles"] == expected_cycles(qnet, parallel, golden.run(qnet, x), x)


def test_a_wrong_datapath_is_caught(tmp_path):
    """The check can fail: the Verilog of the delay-0 network, run against the golden model
    of the same network with delay 1, mismatches."""
    qnet, x, parallel, _, _ = case("cuba0_membrane_bias")
    verilog = tmp_path / "hwgen_top.v"
    verilog.write_text(verilog_text(qnet, parallel))
    other = copy.deepcopy(qnet)
    for layer in other.spiking_layers:
        no_synapse_delay_swap(layer)
    result = run_rtl(verilog, qnet, x, golden.run(other, x), simulator="icarus", build_dir=tmp_path / "sim")
    assert result.mismatches > 0
