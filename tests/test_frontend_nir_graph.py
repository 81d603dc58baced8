"""NIR graphs that are not chains: recurrence, several inputs per node, sum junctions,
fan-out; CubaLIF neurons; LIF with v_leak and v_reset; the NIR paper's Braille networks.

Float fidelity is checked spike for spike against ``nir_reference``, a numpy transcription of
the NIR repository's forward-Euler reference implementation of ``CubaLIF``
(``paper/03_rnn/extras/debug_CubaLIF/nir_reference_impl.py`` in github.com/neuromorphs/NIR,
BSD-3-Clause, Copyright (c) 2023 NIR Team; licence text in tests/fixtures/LICENSE-NIR),
extended to a whole graph the way NIR defines one: a node's input is the sum of what its
edges bring (in edge order), ``Affine``/``Linear`` are matrix products, and an edge back into
a node that is still being computed in this timestep (a recurrent connection) carries that
node's output of the previous timestep (zeros at the first). ``LIF`` is the same Euler step
without the synaptic current, with NIR's literal reset to ``v_reset``. The transcription reads
the NIR graph itself, not hwgen's IR, so it checks the frontend's delays and input order too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import nir
from hwgen import golden
from hwgen.errors import HwgenError
from hwgen.frontend import import_nir
from hwgen.ir import INPUT, Edge
from hwgen.ir_sim import run_float
from hwgen.kinds import Dense, SpikeSum
from hwgen.quant_rules import QuantOptions
from hwgen.quantize import quantize

FIXTURES = Path(__file__).parent / "fixtures"
BRAILLE = {"zero": FIXTURES / "braille_noDelay_bias_zero.nir",
           "subtract": FIXTURES / "braille_noDelay_noBias_subtract.nir"}
DT = 1e-4  # the Braille graphs' (snnTorch's export) timestep


# ----------------------------------------------------------------------------- reference

def nir_reference(graph: nir.NIRGraph, x: np.ndarray, dt: float, reset: str) -> dict[str, np.ndarray]:
    """Spikes ``{neuron node key: [B, T, N]}`` of ``graph`` for inputs ``x`` ``[B, T, N_in]``.

    Per node, the NIR reference's own operations on the node's own arrays (their dtype as
    read), batched over the first axis:
    CubaLIF: ``I = I_last + (dt/tau_syn)*(-I_last + w_in*x)``,
    ``v = v_last + (dt/tau_mem)*(v_leak - v_last + r*I_last)``, ``z = v > v_threshold``, then
    ``v -= z*v_threshold`` (reset "subtract", the reference's) or ``v = v_reset`` where ``z``
    (reset "zero", NIR's definition); LIF: ``v = v_last + (dt/tau)*(v_leak - v_last + r*x)``,
    same spike and resets.
    """
    nodes = graph.nodes
    pred: dict[str, list[str]] = {k: [] for k in nodes}
    for a, b in graph.edges:
        pred[b].append(a)
    batch, steps = x.shape[:2]
    neurons = {k: n for k, n in nodes.items() if isinstance(n, (nir.CubaLIF, nir.LIF))}
    state = {k: {"v": np.zeros((batch,) + n.v_threshold.shape, n.v_threshold.dtype),
                 "I": np.zeros((batch,) + n.v_threshold.shape, n.v_threshold.dtype)}
             for k, n in neurons.items()}
    previous = {k: np.zeros((batch,) + n.v_threshold.shape, np.float32) for k, n in neurons.items()}
    spikes: dict[str, list[np.ndarray]] = {k: [] for k in neurons}
    output = next(k for k, n in nodes.items() if isinstance(n, nir.Output))

    for t in range(steps):
        done: dict[str, np.ndarray] = {}
        busy: set[str] = set()

        def value(key: str) -> np.ndarray:
            if key in done:
                return done[key]
            if key in busy:  # a recurrent edge: this node's output of the step before
                return previous[key]
            busy.add(key)
            node = nodes[key]
            if isinstance(node, nir.Input):
                y = x[:, t]
            else:
                ins = [value(p) for p in pred[key]]
                s = ins[0]
                for more in ins[1:]:
                    s = s + more
                if isinstance(node, nir.Affine):
                    y = s @ node.weight.T + node.bias
                elif isinstance(node, nir.Linear):
                    y = s @ node.weight.T
                elif isinstance(node, nir.Conv2d):  # torch's kernel, as nir's own torch backends
                    y = torch.nn.functional.conv2d(
                        torch.from_numpy(s), torch.from_numpy(node.weight),
                        torch.from_numpy(node.bias), tuple(node.stride), tuple(node.padding),
                        tuple(node.dilation), int(node.groups)).numpy()
                elif isinstance(node, nir.Output):
                    y = s
                else:
                    st = state[key]
                    i_last, v_last = st["I"].copy(), st["v"].copy()
                    if isinstance(node, nir.CubaLIF):
                        st["I"] = i_last + (dt / node.tau_syn) * (-i_last + node.w_in * s)
                        st["v"] = v_last + (dt / node.tau_mem) * (node.v_leak - v_last + node.r * i_last)
                    else:
                        st["v"] = v_last + (dt / node.tau) * (node.v_leak - v_last + node.r * s)
                    z = st["v"] > node.v_threshold
                    if reset == "subtract":
                        st["v"] -= z * node.v_threshold
                    else:
                        st["v"] = np.where(z, node.v_reset, st["v"])
                    y = z.astype(np.float32)
                    spikes[key].append(y)
            busy.discard(key)
            done[key] = y
            return y

        value(output)
        previous = {k: done[k] for k in neurons}
    return {k: np.stack(v, axis=1) for k, v in spikes.items()}


def braille_inputs(samples=20, steps=256, seed=0) -> np.ndarray:
    """Synthetic taxel spikes: each of the 12 channels fires at its own rate (2..30 %)."""
    rng = np.random.default_rng(seed)
    rates = rng.uniform(0.02, 0.30, size=(samples, 1, 12))
    return (rng.random((samples, steps, 12)) < rates).astype(np.float32)


def layer_of(net, key_or_name: str) -> int:
    return [layer.name for layer in net.spiking_layers].index(key_or_name)


def write_graph(path: Path, nodes: dict, edges: list) -> str:
    nir.write(str(path), nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))
    return str(path)


def f32(*shape, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def lif(n, tau=4e-4, v_leak=0.0, v_reset=0.0, thr=1.0):
    full = lambda v: np.full(n, v, np.float32)  # noqa: E731
    return nir.LIF(tau=full(tau), r=full(tau / DT), v_leak=full(v_leak), v_threshold=full(thr),
                   v_reset=full(v_reset))


# ----------------------------------------------------------------------------- Braille

def test_braille_graphs_import_as_recurrent_cuba_layers():
    net, notes = import_nir(str(BRAILLE["zero"]), reset="zero")
    # lif1.lif has two synapses (named after itself); lif2's only synapse names its layer.
    assert [(layer.name, layer.weight.shape, layer.segments) for layer in net.layers] == \
        [("lif1.lif", (38, 50), (38, 12)), ("fc2", (7, 38), ())]
    # In the file's edge order w_rec comes first; its edge is the delayed one (the cycle).
    assert net.inputs == {"lif1.lif": [Edge("lif1.lif", 1), Edge(INPUT, 0)]}
    assert net.output == ""
    graph = nir.read(str(BRAILLE["zero"]))
    layer = net.layers[0]
    np.testing.assert_array_equal(layer.weight, np.concatenate(
        [graph.nodes["lif1.w_rec"].weight, graph.nodes["fc1"].weight], axis=1))
    np.testing.assert_array_equal(layer.bias, graph.nodes["lif1.w_rec"].bias)
    np.testing.assert_array_equal(layer.extra_bias, graph.nodes["fc1"].bias[None])
    e = layer.neurons.euler
    np.testing.assert_array_equal(e["k_syn"], np.float32(DT / graph.nodes["lif1.lif"].tau_syn))
    np.testing.assert_array_equal(e["w_in"], graph.nodes["lif1.lif"].w_in.astype(np.float32))
    np.testing.assert_allclose(1 - e["k_syn"], 0.55, rtol=1e-6)  # snnTorch's alpha
    np.testing.assert_allclose(layer.neurons.beta, 0.9, rtol=1e-6)
    assert layer.neurons.reset == "zero" and layer.neurons.v_reset is None  # v_reset = 0
    assert notes[0].startswith("dt: 0.0001 s (assumed)") and "CubaLIF" in notes[0]
    assert "recurrent edges, delayed by one timestep" in notes[-1] and "lif1.lif -> lif1.lif" in notes[-1]


@pytest.mark.parametrize("fixture", ["zero", "subtract"])
@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_braille_float_ir_matches_the_nir_reference_spike_for_spike(fixture, reset):
    path = str(BRAILLE[fixture])
    net, _ = import_nir(path, reset=reset)
    x = braille_inputs()
    ref = nir_reference(nir.read(path), x, DT, reset)
    ours = run_float(net, torch.from_numpy(x)).spikes
    for key, name in (("lif1.lif", "lif1.lif"), ("lif2", "fc2")):
        got = ours[layer_of(net, name)].numpy()
        assert ref[key].sum() > 100, "the comparison needs activity to mean anything"
        np.testing.assert_array_equal(got, ref[key].astype(np.uint8), err_msg=f"layer {key}")

    # The comparison can fail: snnTorch's Synaptic form of the same parameters (the current
    # reaches the membrane in the same step, the threshold is subtracted after the leak)
    # differs from the reference on these inputs.
    for layer in net.spiking_layers:
        e = layer.neurons.euler
        layer.neurons.alpha = 1.0 - e["k_syn"].astype(np.float64)
        layer.neurons.euler = None
    other = run_float(net, torch.from_numpy(x)).spikes
    assert (other[0].numpy() != ref["lif1.lif"]).sum() > 0


def test_braille_quantizes_and_the_golden_model_runs():
    x = braille_inputs()
    for fixture, path in BRAILLE.items():
        net, _ = import_nir(str(path), reset=fixture)
        float_trace = run_float(net, torch.from_numpy(x))
        agreement = {}
        for bits in (8, 16):
            qnet, report = quantize(net, QuantOptions(weight_bits=bits, leak_frac_bits=bits,
                                                      timesteps=256))
            assert [layer.synapse.delay for layer in qnet.spiking_layers] == [1, 1]
            assert all(layer.reset_before_leak for layer in qnet.spiking_layers)
            assert qnet.inputs == net.inputs
            trace = golden.run(qnet, x)
            agreement[bits] = [float((a == b).float().mean())
                               for a, b in zip(float_trace.spikes, trace.spikes)]
            if bits == 16:
                # 16-bit weights put the threshold at 2^11..2^13 integer units: the integer
                # network then follows the float one closely (docs/nir.md has the numbers)
                assert min(agreement[bits]) > 0.95, agreement
                assert bool((trace.prediction == float_trace.prediction).all())
        # and more bits never made it worse here: the loss at 8 bits is resolution
        assert all(a16 >= a8 for a8, a16 in zip(agreement[8], agreement[16])), agreement


# ----------------------------------------------------------------------------- LIF v_leak

@pytest.mark.parametrize("v_reset", [0.0, -0.25])
def test_lif_graph_with_v_leak_matches_the_nir_euler_step(tmp_path, v_reset):
    # input -> fc -> lif (recurrent through w_rec) -> fc2 -> lif2 -> output, v_leak = 1.2.
    nodes = {"input": nir.Input(input_type=np.array([10])),
             "fc": nir.Affine(weight=f32(16, 10, scale=0.6), bias=f32(16, seed=1, scale=0.1)),
             "lif": lif(16, tau=4e-4, v_leak=1.2, v_reset=v_reset, thr=1.5),
             "w_rec": nir.Linear(weight=f32(16, 16, seed=2, scale=0.3)),
             "fc2": nir.Affine(weight=f32(5, 16, seed=3, scale=0.5), bias=f32(5, seed=4, scale=0.1)),
             "lif2": lif(5, tau=8e-4, v_leak=1.2, v_reset=v_reset, thr=1.5),
             "output": nir.Output(output_type=np.array([5]))}
    edges = [("input", "fc"), ("fc", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "fc2"),
             ("fc2", "lif2"), ("lif2", "output")]
    path = write_graph(tmp_path / "lif.nir", nodes, edges)
    net, notes = import_nir(path, reset="zero")
    assert net.inputs == {"lif": [Edge(INPUT), Edge("lif", 1)]}  # two synapses: named "lif"
    # k*v_leak = (dt/tau)*1.2 went into the bias
    np.testing.assert_allclose(net.layers[0].bias, nodes["fc"].bias + 0.25 * 1.2, rtol=1e-6)
    x = (np.random.default_rng(5).random((24, 60, 10)) < 0.3).astype(np.float32)
    ref = nir_reference(nir.read(path), x, DT, "zero")
    ours = run_float(net, torch.from_numpy(x)).spikes
    for n, key in enumerate(("lif", "lif2")):
        assert 100 < ref[key].sum() < ref[key].size - 100  # fires, but not always
        np.testing.assert_array_equal(ours[n].numpy(), ref[key].astype(np.uint8), err_msg=key)
    qnet, report = quantize(net, QuantOptions(weight_bits=12, timesteps=60))
    if v_reset:
        assert all(layer.v_reset is not None for layer in qnet.spiking_layers)
    trace = golden.run(qnet, x)
    agree = [float((a == b).float().mean()) for a, b in zip(ours, trace.spikes)]
    assert min(agree) > 0.95, agree


def test_v_leak_check_can_fail(tmp_path):
    # The same graph read as if v_leak were 0 (the frontend before v_leak was folded in)
    # fires differently: the comparison above sees v_leak.
    nodes = {"input": nir.Input(input_type=np.array([4])),
             "fc": nir.Affine(weight=f32(3, 4, scale=0.5), bias=np.zeros(3, np.float32)),
             "lif": lif(3, v_leak=1.2, thr=1.5), "output": nir.Output(output_type=np.array([3]))}
    path = write_graph(tmp_path / "a.nir", nodes, [("input", "fc"), ("fc", "lif"), ("lif", "output")])
    net, _ = import_nir(path, reset="zero")
    x = (np.random.default_rng(0).random((4, 40, 4)) < 0.3).astype(np.float32)
    ref = nir_reference(nir.read(path), x, DT, "zero")["lif"]
    np.testing.assert_array_equal(run_float(net, torch.from_numpy(x)).spikes[0].numpy(), ref)
    net.layers[0].bias = np.zeros(3, np.float32)
    assert (run_float(net, torch.from_numpy(x)).spikes[0].numpy() != ref).sum() > 0


# ----------------------------------------------------------------------------- graphs

def residual_graph(tmp_path) -> tuple[str, dict]:
    """input -> fc1 -> n1 -> fc2 -> n2; (n1 + n2) -> fc3 and input -> skip, both into n3;
    n3 -> w_rec -> n3. Keys chosen so that sorting them would scramble the order."""
    nodes = {"input": nir.Input(input_type=np.array([6])),
             "9": nir.Affine(weight=f32(8, 6, scale=0.8), bias=f32(8, seed=1, scale=0.1)),
             "n1": lif(8),
             "10": nir.Affine(weight=f32(8, 8, seed=2, scale=0.8), bias=f32(8, seed=3, scale=0.1)),
             "n2": lif(8),
             "fc3": nir.Affine(weight=f32(4, 8, seed=4, scale=0.6), bias=f32(4, seed=5, scale=0.1)),
             "skip": nir.Linear(weight=f32(4, 6, seed=6, scale=0.6)),
             "w_rec": nir.Linear(weight=f32(4, 4, seed=7, scale=0.5)),
             "n3": lif(4),
             "output": nir.Output(output_type=np.array([4]))}
    edges = [("input", "9"), ("9", "n1"), ("n1", "10"), ("10", "n2"), ("n1", "fc3"), ("n2", "fc3"),
             ("fc3", "n3"), ("input", "skip"), ("skip", "n3"), ("n3", "w_rec"), ("w_rec", "n3"),
             ("n3", "output")]
    return write_graph(tmp_path / "res.nir", nodes, edges), nodes


def test_fan_in_fan_out_and_a_sum_junction(tmp_path):
    path, nodes = residual_graph(tmp_path)
    net, _ = import_nir(path, reset="zero")
    assert [(type(layer), layer.name) for layer in net.layers] == \
        [(Dense, "9"), (Dense, "10"), (SpikeSum, "fc3.sum"), (Dense, "n3")]
    assert net.inputs == {"fc3.sum": [Edge("9"), Edge("10")],
                          "n3": [Edge("fc3.sum"), Edge(INPUT), Edge("n3", 1)]}
    n3 = net.layers[3]
    assert n3.segments == (8, 6, 4)
    np.testing.assert_array_equal(n3.extra_bias, np.zeros((2, 4), np.float32))
    x = (np.random.default_rng(1).random((16, 50, 6)) < 0.4).astype(np.float32)
    ref = nir_reference(nir.read(path), x, DT, "zero")
    ours = run_float(net, torch.from_numpy(x)).spikes
    for n, key in enumerate(("n1", "n2", "n3")):
        assert ref[key].sum() > 50
        np.testing.assert_array_equal(ours[n].numpy(), ref[key].astype(np.uint8), err_msg=key)
    qnet, _ = quantize(net, QuantOptions(timesteps=50))
    golden.run(qnet, x)


def test_a_cycle_of_two_layers_is_delayed_where_it_returns(tmp_path):
    # input -> a -> b -> a: from the input, b -> a closes the cycle, so b's spikes reach a a
    # step later; a -> b stays within the step.
    nodes = {"input": nir.Input(input_type=np.array([3])),
             "fa": nir.Linear(weight=f32(4, 3)), "a": lif(4),
             "fb": nir.Linear(weight=f32(4, 4, seed=1)), "b": lif(4),
             "back": nir.Linear(weight=f32(4, 4, seed=2)),
             "output": nir.Output(output_type=np.array([4]))}
    edges = [("input", "fa"), ("fa", "a"), ("back", "a"), ("a", "fb"), ("fb", "b"), ("b", "back"),
             ("b", "output")]
    path = write_graph(tmp_path / "ab.nir", nodes, edges)
    net, _ = import_nir(path, reset="zero")
    assert [layer.name for layer in net.layers] == ["a", "fb"]
    assert net.inputs == {"a": [Edge(INPUT), Edge("fb", 1)]}
    x = (np.random.default_rng(2).random((8, 40, 3)) < 0.5).astype(np.float32)
    ref = nir_reference(nir.read(path), x, DT, "zero")
    ours = run_float(net, torch.from_numpy(x)).spikes
    np.testing.assert_array_equal(ours[0].numpy(), ref["a"].astype(np.uint8))
    np.testing.assert_array_equal(ours[1].numpy(), ref["b"].astype(np.uint8))


# ----------------------------------------------------------------------------- refusals

def _refused(tmp_path, nodes, edges, pattern):
    path = write_graph(tmp_path / "g.nir", nodes, edges)
    with pytest.raises(HwgenError, match=pattern) as info:
        import_nir(path)
    assert "\n" not in str(info.value)


def conv(c_out, c_in, k, pad, seed, hw=(5, 5)):
    return nir.Conv2d(input_shape=hw, weight=f32(c_out, c_in, k, k, seed=seed, scale=0.7),
                      stride=1, padding=pad, dilation=1, groups=1,
                      bias=f32(c_out, seed=seed + 10, scale=0.1))


def test_recurrent_conv_layer_stacks_channels(tmp_path):
    # input (1x5x5) -> c -> n, n -> c_rec -> n (3x3, same geometry): channels 1 + 2 stacked.
    nodes = {"input": nir.Input(input_type=np.array([1, 5, 5])), "c": conv(2, 1, 3, 1, 0),
             "c_rec": conv(2, 2, 3, 1, 1), "n": lif((2, 5, 5)),
             "output": nir.Output(output_type=np.array([2, 5, 5]))}
    edges = [("input", "c"), ("c", "n"), ("n", "c_rec"), ("c_rec", "n"), ("n", "output")]
    path = write_graph(tmp_path / "conv.nir", nodes, edges)
    net, _ = import_nir(path, reset="zero")
    (layer,) = net.layers
    assert layer.input_shape == (3, 5, 5) and layer.segments == (1, 2)
    assert net.inputs == {"n": [Edge(INPUT), Edge("n", 1)]}
    x = (np.random.default_rng(3).random((8, 30, 1, 5, 5)) < 0.4).astype(np.float32)
    ref = nir_reference(nir.read(path), x, DT, "zero")["n"].reshape(8, 30, -1)
    assert ref.sum() > 50
    np.testing.assert_array_equal(run_float(net, torch.from_numpy(x)).spikes[0].numpy(), ref)
    golden.run(quantize(net, QuantOptions(timesteps=30))[0], x)


def test_conv_inputs_of_different_geometry_are_refused(tmp_path):
    nodes = {"input": nir.Input(input_type=np.array([1, 5, 5])), "c1": conv(2, 1, 3, 1, 0),
             "c2": conv(2, 1, 1, 0, 1), "n": lif((2, 5, 5)),
             "output": nir.Output(output_type=np.array([2, 5, 5]))}
    edges = [("input", "c1"), ("c1", "n"), ("input", "c2"), ("c2", "n"), ("n", "output")]
    _refused(tmp_path, nodes, edges, r"LIF node 'n' sums Conv2d nodes 'c1' and 'c2' of different "
                                     r"geometry")


def test_output_must_read_one_spiking_layer(tmp_path):
    nodes = {"input": nir.Input(input_type=np.array([3])),
             "fa": nir.Linear(weight=f32(3, 3)), "a": lif(3),
             "fb": nir.Linear(weight=f32(3, 3, seed=1)), "b": lif(3),
             "output": nir.Output(output_type=np.array([3]))}
    edges = [("input", "fa"), ("fa", "a"), ("input", "fb"), ("fb", "b"), ("a", "output"),
             ("b", "output")]
    _refused(tmp_path, nodes, edges, r"Output node 'output' receives from 2 nodes \('a', 'b'\)")


def test_scale_before_a_sum_junction_is_refused(tmp_path):
    nodes = {"input": nir.Input(input_type=np.array([3])),
             "s": nir.Scale(scale=np.full(3, 2.0, np.float32)),
             "fa": nir.Linear(weight=f32(3, 3)), "a": lif(3),
             "output": nir.Output(output_type=np.array([3]))}
    edges = [("input", "s"), ("s", "fa"), ("input", "fa"), ("fa", "a"), ("a", "output")]
    _refused(tmp_path, nodes, edges, r"node 's' \(Scale\) feeds the sum of inputs at node 'fa'")


def test_nested_subgraph_and_duplicate_edges_are_refused(tmp_path):
    inner = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([3])), "n": lif(3),
                                "output": nir.Output(output_type=np.array([3]))},
                         edges=[("input", "n"), ("n", "output")], type_check=False)
    nodes = {"input": nir.Input(input_type=np.array([3])), "fa": nir.Linear(weight=f32(3, 3)),
             "sub": inner, "output": nir.Output(output_type=np.array([3]))}
    _refused(tmp_path, nodes, [("input", "fa"), ("fa", "sub"), ("sub", "output")],
             r"node 'sub' is NIRGraph, which hwgen does not support \(a nested subgraph; flatten")
    nodes = {"input": nir.Input(input_type=np.array([3])), "fa": nir.Linear(weight=f32(3, 3)),
             "a": lif(3), "output": nir.Output(output_type=np.array([3]))}
    _refused(tmp_path, nodes, [("input", "fa"), ("fa", "a"), ("fa", "a"), ("a", "output")],
             r"the edge 'fa' -> 'a' is listed twice")


def test_cubalif_without_snntorch_convention_needs_dt(tmp_path):
    n = 3
    cuba = nir.CubaLIF(tau_syn=np.full(n, 2e-3), tau_mem=np.full(n, 4e-3), r=np.ones(n),
                       v_leak=np.zeros(n), v_threshold=np.ones(n), w_in=np.ones(n))
    nodes = {"input": nir.Input(input_type=np.array([3])), "fa": nir.Linear(weight=f32(3, 3)),
             "c": cuba, "output": nir.Output(output_type=np.array([3]))}
    edges = [("input", "fa"), ("fa", "c"), ("c", "output")]
    _refused(tmp_path, nodes, edges, r"CubaLIF node 'c' needs a timestep.*pass --dt")
    net, notes = import_nir(str(tmp_path / "g.nir"), dt=1e-3)
    np.testing.assert_allclose(net.layers[0].neurons.euler["k_syn"], 0.5)
    np.testing.assert_allclose(net.layers[0].neurons.euler["k_mem"], 0.25)
    with pytest.raises(HwgenError, match=r"CubaLIF node 'c': tau_syn = 0.002 is shorter than dt"):
        import_nir(str(tmp_path / "g.nir"), dt=3e-3)


# ----------------------------------------------------------------------------- snnTorch export

def test_snntorch_rleaky_exported_to_nir_is_spike_exact(tmp_path):
    # snnTorch 1.0 writes RLeaky flattened: '1.lif' with the recurrent Affine '1.w_rec' (with
    # its bias). Read back, the float IR runs snnTorch's own forward spike for spike.
    import snntorch as snn
    import snntorch.utils
    from snntorch.export_nir import export_to_nir
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 10), snn.RLeaky(beta=0.75, linear_features=10,
                                                         init_hidden=True))
    with torch.no_grad():
        model[0].weight.mul_(3)
    path = tmp_path / "rleaky.nir"
    nir.write(str(path), export_to_nir(model, torch.zeros(12)))
    net, _ = import_nir(str(path))
    assert net.inputs == {"1.lif": [Edge("1.lif", 1), Edge(INPUT)]}
    x = (torch.rand(16, 50, 12, generator=torch.Generator().manual_seed(1)) < 0.3).float()
    snntorch.utils.reset(model)
    with torch.no_grad():
        expected = torch.stack([model(x[:, t]) for t in range(x.shape[1])], dim=1)
    ours = run_float(net, x).spikes[0]
    assert int(expected.sum()) > 200
    np.testing.assert_array_equal(ours.numpy(), expected.numpy().astype(np.uint8))
