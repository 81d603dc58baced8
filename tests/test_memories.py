"""The fit check lists the memories the hardware builds: each component's ``memories()`` (which
``hwgen.devices`` and the reports ask, through ``NetworkTop.memories``) against the memories
Amaranth elaborates, for the demo models, the NIR CNN and fuzz-drawn networks."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from amaranth.hdl import Fragment, Shape
from amaranth.hdl._mem import MemoryInstance  # the elaborated form of amaranth.lib.memory.Memory
from hypothesis import HealthCheck, given, settings

from hwgen.accelerator.top import NetworkTop
from hwgen.devices import memories
from hwgen.testing import network_from_spec, random_conv_network, random_quant_network
from test_fuzz import network_specs

REPO = Path(__file__).resolve().parent.parent


def elaborated_memories(top: NetworkTop) -> Counter:
    """``(depth, width)`` of every memory in the elaborated design, counted."""
    found: Counter = Counter()

    def walk(fragment) -> None:
        for sub, _name, _src in fragment.subfragments:
            if isinstance(sub, MemoryInstance):
                found[(sub._data.depth, Shape.cast(sub._data.shape).width)] += 1
            walk(sub)

    walk(Fragment.get(top, None))
    return found


def listed_memories(qnet, parallel: int, weight_memories=None) -> Counter:
    return Counter((m.depth, m.width) for m in memories(qnet, parallel, weight_memories))


def check(qnet, parallel: int, weight_memories=None) -> None:
    top = NetworkTop(qnet, parallel, weight_memories=weight_memories)
    built = elaborated_memories(top)
    listed = listed_memories(qnet, parallel, weight_memories)
    assert listed == built, (f"listed but not built: {dict(listed - built)}; "
                             f"built but not listed: {dict(built - listed)}")


@pytest.mark.parametrize("parallel", [1, 3, 16])
def test_dense_chain(parallel):
    check(random_quant_network([20, 12, 5], seed=3, timesteps=4), parallel)


@pytest.mark.parametrize("parallel", [1, 4])
def test_conv_pool_chain(parallel):
    qnet = random_conv_network((2, 8, 8), [
        {"type": "conv", "out": 6, "kernel": 3, "padding": 1}, {"type": "max_pool", "kernel": 2},
        {"type": "conv", "out": 4, "kernel": 3, "groups": 2}, {"type": "sum_pool", "kernel": 2},
        {"type": "flatten"}, {"type": "dense", "out": 3}], seed=5, timesteps=3)
    check(qnet, parallel)


@pytest.mark.parametrize("parallel", [1, 3])
def test_cuba_and_zero_step_dense(parallel):
    """A CuBa layer has a current and a membrane memory (and membrane bias and reset value
    tables when they differ per neuron); a zero_step layer its hold bits."""
    from hwgen.ir import Leak, Synapse

    qnet = random_quant_network([20, 12, 5], seed=3, timesteps=4, synapse=Synapse(Leak("shift", shift=2), 8, 1),
                                membrane_bias=(-5, 5), reset="zero", v_reset=(-9, 9))
    check(qnet, parallel)
    check(random_quant_network([20, 12, 5], seed=3, timesteps=4, reset="zero_step"), parallel)
    check(random_quant_network([20, 12, 5], seed=3, timesteps=4, reset="zero_step",
                               synapse=Synapse(Leak("none"), 9, 0)), parallel)


@pytest.mark.parametrize("parallel", [1, 4])
def test_cuba_and_zero_step_conv(parallel):
    from hwgen.ir import Leak, Synapse

    qnet = random_conv_network((2, 8, 8), [
        {"type": "conv", "out": 6, "kernel": 3, "padding": 1, "synapse": Synapse(Leak("shift", shift=1), 8, 0),
         "membrane_bias": (-4, 4), "reset": "zero_step"},
        {"type": "conv", "out": 4, "kernel": 3, "groups": 2, "reset": "zero", "v_reset": (-3, 3)},
        {"type": "flatten"}, {"type": "dense", "out": 3, "reset": "zero_step"}], seed=5, timesteps=3)
    check(qnet, parallel)


def test_loaded_weights_are_listed_as_such():
    """Run-time-loaded weights (a LoadedWeights RAM instead of the ROM) are the same shape."""
    qnet = random_quant_network([20, 12, 5], seed=3, timesteps=4)
    check(qnet, 4, {0: "ram"})


def test_nir_cnn():
    from hwgen.frontend import import_nir
    from hwgen.quantize import QuantOptions, quantize

    net, _ = import_nir(str(REPO / "tests" / "fixtures" / "cnn_sinabs.nir"))
    qnet, _ = quantize(net, QuantOptions(timesteps=2))
    check(qnet, 8)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(network_specs())
def test_fuzz_drawn_networks(spec):
    check(network_from_spec(spec), spec["parallel"])


def test_a_missing_memory_is_caught(monkeypatch):
    """The comparison can fail: a component that forgets a memory is named."""
    from hwgen.hardware.dense import DenseLIFEngine

    original = DenseLIFEngine.memories_for
    monkeypatch.setattr(DenseLIFEngine, "memories_for", staticmethod(lambda *args: original(*args)[1:]))
    with pytest.raises(AssertionError, match="built but not listed"):
        check(random_quant_network([20, 12, 5], seed=3, timesteps=4), 4)


def test_a_missing_neuron_memory_is_caught(monkeypatch):
    """... and a forgotten current or hold memory is named too."""
    from hwgen.hardware.lanes import NeuronMemories
    from hwgen.ir import Leak, Synapse

    original = NeuronMemories.words
    monkeypatch.setattr(NeuronMemories, "words", staticmethod(lambda layer: original(layer)[:1]))
    with pytest.raises(AssertionError, match="built but not listed"):
        check(random_quant_network([20, 12, 5], seed=3, timesteps=4, reset="zero_step"), 4)
    with pytest.raises(AssertionError, match="built but not listed"):
        check(random_quant_network([20, 12, 5], seed=3, timesteps=4,
                                   synapse=Synapse(Leak("shift", shift=2), 8, 0)), 4)


@pytest.mark.parametrize("graph", ["recurrent_dense", "recurrent_direct", "two_layer_cycle", "fanout_concat",
                                   "sew_residual", "recurrent_conv"])
def test_graphs(graph):
    """Joins with their delay buffers, forks, and the flatten on a join's input."""
    from test_graph_rtl import GRAPHS

    make, parallel = GRAPHS[graph]
    check(make(), parallel)


def test_a_missing_delay_buffer_is_caught(monkeypatch):
    """The graph case can fail too: a join whose delay buffer is not listed is named."""
    from hwgen.hardware.merge import StreamMerge
    from test_graph_rtl import recurrent_dense

    monkeypatch.setattr(StreamMerge, "memories_for", staticmethod(lambda *args: []))
    with pytest.raises(AssertionError, match="built but not listed"):
        check(recurrent_dense(), 3)
