"""Imported graph models in RTL: snnTorch's RLeaky (all-to-all and one-to-one, dense and conv),
Synaptic, RSynaptic, a SEW residual block and a two-branch model, and a NIR LIF graph with
v_leak = 1.2 (reset to a value), each as the frontends import and the quantizer makes it,
simulated on Verilator against the golden model, every spike of every layer, plainly, under
stalls on every stream and with inferences overlapping (hwgen/stress.py; one build for all).

The float side of the same models (float IR == snnTorch / the NIR Euler step, spike for
spike) is tests/test_frontend_torch_graph.py's and tests/test_frontend_nir_graph.py's.
"""

from __future__ import annotations

import nir
import numpy as np
import pytest

from hwgen import golden
from hwgen.frontend.nir_frontend import import_nir
from hwgen.quantize import QuantOptions, quantize
from hwgen.stress import Inference, NetworkCase, run_batch

from test_frontend_nir_graph import f32, lif, write_graph
from test_frontend_torch_graph import MODELS, _imported

TIMESTEPS = 12
TORCH_KEYS = ["rleaky_all_subtract", "rleaky_one_zero", "synaptic_subtract", "synaptic_zero", "rsynaptic_zero",
              "rsynaptic_none", "conv_rleaky_subtract", "conv_rleaky_one", "conv_rsynaptic", "sew_block",
              "two_branch"]


def _case(label: str, net, parallel: int, seed: int) -> NetworkCase:
    rng = np.random.default_rng(seed)
    calibration = (rng.random((16, TIMESTEPS, *net.input_shape)) < 0.3).astype(np.uint8)
    qnet, _ = quantize(net, QuantOptions(weight_bits=8, timesteps=TIMESTEPS), calibration)
    x = np.stack([(rng.random((TIMESTEPS, *net.input_shape)) < rate).astype(np.uint8) for rate in (0.1, 0.3, 0.6)])
    program = [Inference(i) for i in range(len(x))]
    program += [Inference(i, "mixed", seed, overlap=i > 0) for i in range(len(x))]
    return NetworkCase(qnet, parallel, x, program, label=label)


def _nir_v_leak(tmp_path) -> object:
    nodes = {"input": nir.Input(input_type=np.array([10])),
             "fc": nir.Affine(weight=f32(16, 10, scale=0.6), bias=f32(16, seed=1, scale=0.1)),
             "lif": lif(16, tau=4e-4, v_leak=1.2, v_reset=-0.25, thr=1.5),
             "w_rec": nir.Linear(weight=f32(16, 16, seed=2, scale=0.3)),
             "fc2": nir.Affine(weight=f32(5, 16, seed=3, scale=0.5), bias=f32(5, seed=4, scale=0.1)),
             "lif2": lif(5, tau=8e-4, v_leak=1.2, thr=1.5),
             "output": nir.Output(output_type=np.array([5]))}
    edges = [("input", "fc"), ("fc", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "fc2"),
             ("fc2", "lif2"), ("lif2", "output")]
    net, _ = import_nir(write_graph(tmp_path / "v_leak.nir", nodes, edges), reset="zero")
    return net


@pytest.mark.slow
def test_imported_graphs_are_bit_exact_in_rtl(tmp_path):
    cases = [_case(key, _imported(key)[2], parallel=1 + n % 3, seed=n) for n, key in enumerate(TORCH_KEYS)]
    cases.append(_case("nir_lif_v_leak_1.2", _nir_v_leak(tmp_path), parallel=4, seed=99))
    # the models exercise what they claim: a recurrent edge, a CuBa current, a reset value
    assert any(layer.v_reset is not None for layer in cases[-1].qnet.spiking_layers)
    assert any(layer.synapse is not None for layer in cases[TORCH_KEYS.index("rsynaptic_zero")].qnet.spiking_layers)
    result = run_batch(cases, tmp_path / "batch")
    for case, items in zip(cases, result.networks):
        fired = [int(s.sum()) for s in golden.run(case.qnet, case.inputs).spikes]
        assert all(fired), f"{case.label}: a layer never fires on these inputs ({fired}): the check is empty"
        bad = [r for r in items if r.mismatches]
        assert not bad, f"{case.label}: {sum(r.mismatches for r in bad)} mismatches, first {bad[0].records[:3]}"
        assert all(r.cycles == r.tb_cycles for r in items if not r.aborted), case.label
    assert result.spikes_compared > 0
