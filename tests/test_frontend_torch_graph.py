"""snnTorch graphs: recurrent (RLeaky, RSynaptic), CuBa (Synaptic) and branching models.

As in tests/test_frontend_torch.py, the float IR must reproduce snnTorch's own forward pass
spike for spike, on every spiking layer, sample and timestep. Then the models go through
the quantizer and the integer golden model, whose spike agreement with the float model is
measured (and must stay high), not demanded to be perfect.
"""

from __future__ import annotations

import numpy as np
import pytest
import snntorch as snn
import torch
from torch import nn

from hwgen.frontend import import_torch
from hwgen.ir import INPUT, Edge
from hwgen.ir_sim import run_float
from hwgen.kinds import Conv2d, Dense, SpikeSum
from hwgen.quant_rules import QuantOptions
from hwgen.quantize import fidelity, quantize

from snntorch_ref import input_spikes, refuses, run_snntorch

B, T = 16, 30
RESETS = ("subtract", "zero", "none")


# ----------------------------------------------------------------------------- models

def _init(model: nn.Module, seed: int, gain: float = 2.0) -> nn.Module:
    """Random weights large enough that the neurons spike, but not always."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * gain / fan_in ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.2)
    return model


class SEWBlock(nn.Module):
    """SEW-ResNet style: x = spikes of a stem, x + block(x) of spikes, then a classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(2, 4, 3, padding=1)
        self.lif0 = snn.Leaky(beta=0.9, init_hidden=True)
        self.conv1 = nn.Conv2d(4, 4, 3, padding=1)
        self.lif1 = snn.Leaky(beta=0.8, init_hidden=True)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.lif2 = snn.Leaky(beta=0.85, init_hidden=True, reset_mechanism="zero")
        self.pool = nn.AvgPool2d(2)  # of the sum's counts: a sum pool, 1/4 folded into fc
        self.flat = nn.Flatten()
        self.fc = nn.Linear(4 * 4 * 4, 10)
        self.out = snn.Leaky(beta=0.9, init_hidden=True)

    def forward(self, x):
        x = self.lif0(self.stem(x))
        x = x + self.lif2(self.conv2(self.lif1(self.conv1(x))))
        return self.out(self.fc(self.flat(self.pool(x))))


class TwoBranch(nn.Module):
    """Two branches from one layer, a recurrent and a CuBa one, merged by a spike sum."""

    def __init__(self) -> None:
        super().__init__()
        self.fc0 = nn.Linear(20, 24)
        self.lif0 = snn.Leaky(beta=0.9, init_hidden=True)
        self.fc_a = nn.Linear(24, 16)
        self.lif_a = snn.RLeaky(beta=0.8, linear_features=16, init_hidden=True)
        self.fc_b = nn.Linear(24, 16)
        self.lif_b = snn.Synaptic(alpha=0.7, beta=0.85, init_hidden=True)
        self.fc_out = nn.Linear(16, 10)
        self.lif_out = snn.Leaky(beta=0.9, init_hidden=True)

    def forward(self, x):
        h = self.lif0(self.fc0(x))
        return self.lif_out(self.fc_out(self.lif_a(self.fc_a(h)) + self.lif_b(self.fc_b(h))))


def _mlp(neuron: nn.Module, last: nn.Module | None = None) -> nn.Sequential:
    return nn.Sequential(nn.Linear(20, 32), neuron, nn.Linear(32, 10),
                         last or snn.Leaky(beta=0.8, init_hidden=True))


def _conv(neuron: nn.Module) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), neuron, nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(4 * 4 * 4, 10), snn.Leaky(beta=0.8, init_hidden=True))


def _models() -> dict[str, tuple[nn.Module, tuple[int, ...]]]:
    V = torch.linspace(-0.6, 0.8, 32)  # per-neuron one-to-one weights, both signs
    V_conv = torch.tensor([0.5, -0.4, 0.3, 0.9]).view(4, 1, 1)
    models = {}
    for r in RESETS:
        models[f"rleaky_all_{r}"] = (_mlp(snn.RLeaky(beta=0.9, linear_features=32, init_hidden=True,
                                                     reset_mechanism=r)), (20,))
        models[f"rleaky_one_{r}"] = (_mlp(snn.RLeaky(beta=0.9, all_to_all=False, V=V, init_hidden=True,
                                                     reset_mechanism=r)), (20,))
        models[f"synaptic_{r}"] = (_mlp(
            snn.Synaptic(alpha=0.8, beta=0.9, init_hidden=True, reset_mechanism=r),
            snn.Synaptic(alpha=0.5, beta=0.8, threshold=0.7, init_hidden=True, reset_mechanism=r)), (20,))
        models[f"rsynaptic_{r}"] = (_mlp(
            snn.RSynaptic(alpha=0.8, beta=0.9, linear_features=32, init_hidden=True, reset_mechanism=r),
            snn.RSynaptic(alpha=0.5, beta=0.8, all_to_all=False, V=0.4, init_hidden=True,
                          reset_mechanism=r)), (20,))
        models[f"conv_rleaky_{r}"] = (_conv(snn.RLeaky(beta=0.9, conv2d_channels=4, kernel_size=3,
                                                       init_hidden=True, reset_mechanism=r)), (2, 8, 8))
    models["synaptic_per_neuron"] = (_mlp(  # the float IR only: one leak per layer in integers
        snn.Synaptic(alpha=torch.linspace(0.3, 0.9, 32), beta=torch.linspace(0.95, 0.6, 32),
                     threshold=torch.linspace(0.6, 1.4, 32), init_hidden=True)), (20,))
    models["conv_rleaky_one"] = (_conv(snn.RLeaky(beta=0.9, all_to_all=False, V=V_conv, init_hidden=True)),
                                 (2, 8, 8))
    models["conv_rsynaptic"] = (_conv(snn.RSynaptic(alpha=0.6, beta=0.9, conv2d_channels=4, kernel_size=3,
                                                    init_hidden=True, reset_mechanism="zero")), (2, 8, 8))
    models["sew_block"] = (SEWBlock(), (2, 8, 8))
    models["two_branch"] = (TwoBranch(), (20,))
    return models


MODELS = _models()


def _imported(key: str, seed: int = 0):
    model, shape = MODELS[key]
    _init(model, seed)
    return model, shape, import_torch(model, shape, name=key)


# ----------------------------------------------------------------------------- fidelity

@pytest.mark.parametrize("key", list(MODELS))
def test_float_ir_equals_snntorch_on_every_layer(key: str) -> None:
    model, shape, net = _imported(key)
    x = input_spikes((B, T, *shape), seed=1)
    ref = run_snntorch(model, x)
    ours = run_float(net, x).spikes
    assert len(ours) == len(ref)
    for n, (a, b) in enumerate(zip(ours, ref)):
        rate = float(b.float().mean())
        assert 0.005 < rate < 0.95, f"layer {n} of {key} spikes at rate {rate}: not a test"
        mismatches = int((a != b).sum())
        assert mismatches == 0, f"{key}: layer {n} differs on {mismatches} of {b.numel()} spikes"


def test_graph_structure() -> None:
    _, _, net = _imported("rleaky_all_subtract")
    dense = net.layers[0]
    assert isinstance(dense, Dense) and dense.segments == (20, 32) and dense.weight.shape == (32, 52)
    assert dense.extra_bias.shape == (1, 32) and np.any(dense.extra_bias != 0)
    assert net.inputs == {"0": [Edge(INPUT), Edge("0", 1)]}  # the rest is a chain
    assert dense.neurons.reset == "subtract" and dense.neurons.alpha is None

    _, _, net = _imported("rleaky_one_zero")
    dense = net.layers[0]
    assert dense.neurons.reset == "zero_step"
    rec = dense.weight[:, 20:]
    assert np.array_equal(rec, np.diag(np.diag(rec))) and not np.any(dense.extra_bias)

    _, _, net = _imported("synaptic_zero")
    assert net.is_chain and net.layers[0].neurons.reset == "zero_step"
    assert np.allclose(net.layers[0].neurons.alpha, 0.8) and net.layers[1].neurons.alpha.shape == (10,)

    _, _, net = _imported("conv_rleaky_subtract")
    conv = net.layers[0]
    assert isinstance(conv, Conv2d) and conv.segments == (2, 4) and conv.input_shape == (6, 8, 8)
    assert conv.weight.shape == (4, 6, 3, 3) and conv.output_shape == (4, 8, 8)

    _, _, net = _imported("sew_block")
    total = next(layer for layer in net.layers if isinstance(layer, SpikeSum))
    assert total.shape == (4, 8, 8) and net.inputs[total.name] == [Edge("stem"), Edge("conv2")]

    _, _, net = _imported("two_branch")
    assert [e.source for e in net.inputs["add"]] == ["fc_a", "fc_b"]
    assert net.inputs["fc_b"] == [Edge("fc0")] and net.inputs["fc_a"] == [Edge("fc0"), Edge("fc_a", 1)]
    net.check_graph()


def test_the_comparison_catches_a_wrong_reset_or_weight() -> None:
    """The fidelity test can fail: Leaky's zero reset instead of RLeaky's, or the one-to-one
    weight off by a little, changes snnTorch-comparable spikes."""
    for key, spoil in (("rleaky_all_zero", lambda d: setattr(d.neurons, "reset", "zero")),
                       ("rsynaptic_zero", lambda d: setattr(d.neurons, "reset", "zero")),
                       ("rleaky_one_subtract", lambda d: d.weight.__setitem__(
                           (slice(None), slice(20, None)), d.weight[:, 20:] * np.float32(1.1))),
                       ("synaptic_subtract", lambda d: setattr(d.neurons, "alpha", None))):
        model, shape, net = _imported(key)
        x = input_spikes((B, T, *shape), seed=1)
        spoil(net.layers[0])
        first = run_float(net, x).spikes[0]
        assert not torch.equal(first, run_snntorch(model, x)[0]), key


# ----------------------------------------------------------------------------- integers

QUANT_KEYS = ["rleaky_all_zero", "rleaky_one_zero", "synaptic_subtract", "rsynaptic_zero",
              "conv_rleaky_subtract", "conv_rleaky_one", "sew_block", "two_branch"]


def _exact_leaks(net) -> None:
    """Decays an integer shift realises exactly (1 - 2**-3, 1 - 2**-2), so that with wide
    weights the integer model can only differ from the float one by rounding."""
    for layer in net.spiking_layers:
        layer.neurons.beta = np.full_like(layer.neurons.beta, 0.875)
        if layer.neurons.alpha is not None:
            layer.neurons.alpha = np.full_like(layer.neurons.alpha, 0.75)


def _agreement(key: str, weight_bits: int, exact_leaks: bool, spoil=None) -> list[float]:
    _, shape, net = _imported(key)
    if exact_leaks:
        _exact_leaks(net)
    qnet, _ = quantize(net, QuantOptions(weight_bits=weight_bits, timesteps=T))
    # the integer model's graph is the float one's
    assert qnet.inputs == net.inputs and [q.name for q in qnet.layers] == [f.name for f in net.layers]
    if spoil is not None:
        spoil(qnet)
    x = input_spikes((32, T, *shape), seed=2).to(torch.uint8).numpy()
    return fidelity(net, qnet, x).spike_agreement


@pytest.mark.parametrize("key", QUANT_KEYS)
def test_golden_implements_the_imported_graph(key: str) -> None:
    """16-bit weights and exact leaks: the golden model of the quantized graph follows the
    float one on >= 98 % of the spike decisions of every layer (rounding only; a dropped
    recurrent weight, a wrong reset or a wrong sum input gives 76-93 %, see below)."""
    agreement = _agreement(key, 16, exact_leaks=True)
    assert min(agreement) >= 0.98, (key, agreement)


def test_the_golden_comparison_catches_a_wrong_graph() -> None:
    def no_recurrent_weight(qnet):
        first = qnet.layers[0]
        first.weight[:, first.segments[0]:] = 0

    def zero_not_zero_step(qnet):
        qnet.layers[0].reset = "zero"

    def sum_of_one_branch_twice(qnet):
        qnet.inputs["add"] = [qnet.inputs["add"][1]] * 2

    for key, spoil in (("rleaky_all_zero", no_recurrent_weight), ("conv_rleaky_subtract", no_recurrent_weight),
                       ("rsynaptic_zero", zero_not_zero_step), ("sew_block", sum_of_one_branch_twice)):
        agreement = _agreement(key, 16, exact_leaks=True, spoil=spoil)
        assert min(agreement) < 0.95, (key, spoil.__name__, agreement)


@pytest.mark.parametrize("key", QUANT_KEYS)
def test_quantization_loss_at_8_bits(key: str) -> None:
    """The models as built (beta 0.8-0.9: multiplier leaks), 8-bit weights: what the
    quantizer costs, measured. Random near-threshold weights and recurrence make this a
    harsh case; the bound only catches a collapse."""
    agreement = _agreement(key, 8, exact_leaks=False)
    assert min(agreement) >= 0.85, (key, agreement)


# ----------------------------------------------------------------------------- refusals

@pytest.mark.filterwarnings("ignore:Inhibition is an unstable feature")
def test_neuron_options_that_change_the_dynamics() -> None:
    def rl(**kw):
        return snn.RLeaky(beta=0.9, linear_features=3, init_hidden=True, **kw)

    def syn(**kw):
        return snn.Synaptic(alpha=0.8, beta=0.9, init_hidden=True, **kw)

    graded = snn.RSynaptic(alpha=0.8, beta=0.9, linear_features=3, init_hidden=True)
    graded.graded_spikes_factor = torch.tensor(0.5)  # RSynaptic takes no such argument
    cases = [
        (rl(reset_delay=False), "reset_delay=False"),
        (syn(reset_delay=False), "reset_delay=False"),
        (rl(inhibition=True), "inhibition=True"),
        (syn(state_quant=lambda m: m), "state_quant"),
        (graded, "graded_spikes_factor"),
        (snn.RLeaky(beta=0.9, linear_features=3, init_hidden=False), "(spk, mem) tuple"),
    ]
    for lif, fragment in cases:
        refuses(nn.Sequential(nn.Linear(4, 3), lif, nn.Linear(3, 2), snn.Leaky(beta=0.9, init_hidden=True)),
                "neuron layer '1'", fragment)


def test_recurrent_connections_hwgen_cannot_merge() -> None:
    refuses(nn.Sequential(nn.Linear(4, 3), snn.RLeaky(beta=0.9, linear_features=5, init_hidden=True)),
            "neuron layer '1'", "nn.Linear(5, 5)", "linear_features=3")
    lif = snn.RLeaky(beta=0.9, linear_features=3, init_hidden=True)
    lif.recurrent = nn.Sequential(nn.Linear(3, 3))
    refuses(nn.Sequential(nn.Linear(4, 3), lif), "neuron layer '1'", "nn.Sequential")
    shape = (1, 6, 6)
    refuses(nn.Sequential(nn.Conv2d(1, 2, 5, padding=2),
                          snn.RLeaky(beta=0.9, conv2d_channels=2, kernel_size=3, init_hidden=True)),
            "neuron layer '1'", "kernel (3, 3)", "kernel (5, 5)", "one convolution", input_shape=shape)
    refuses(nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, stride=2),
                          snn.RLeaky(beta=0.9, all_to_all=False, init_hidden=True)),
            "neuron layer '1'", "stride (2, 2)", "same map size", input_shape=shape)
    refuses(nn.Sequential(nn.Conv2d(1, 2, 3),
                          snn.RLeaky(beta=0.9, conv2d_channels=2, kernel_size=3, init_hidden=True)),
            "neuron layer '1'", "maps 6x6 to 4x4", input_shape=shape)
    refuses(nn.Sequential(nn.Conv2d(2, 2, 3, padding=1, groups=2),
                          snn.RLeaky(beta=0.9, conv2d_channels=2, kernel_size=3, init_hidden=True)),
            "neuron layer '1'", "groups 2", input_shape=(2, 6, 6))


def test_graphs_hwgen_does_not_build() -> None:
    def lif():
        return snn.Leaky(beta=0.9, init_hidden=True)

    class CurrentFanIn(nn.Module):  # two synaptic layers into one neuron
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2, self.lif = nn.Linear(4, 3), nn.Linear(4, 3), lif()

        def forward(self, x):
            return self.lif(self.fc1(x) + self.fc2(x))

    refuses(CurrentFanIn(), "CurrentFanIn.forward", "adds the output of nn.Linear 'fc1'",
            "synaptic current")

    class Shapes(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.lif1, self.fc2, self.lif2 = nn.Linear(4, 3), lif(), nn.Linear(3, 2), lif()
            self.fc3, self.lif3 = nn.Linear(2, 2), lif()

        def forward(self, x):
            a = self.lif1(self.fc1(x))
            return self.lif3(self.fc3(a + self.lif2(self.fc2(a))))

    refuses(Shapes(), "the sum 'add'", "(3,) and (2,)", "one shape")

    class ReturnsSum(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.lif1, self.fc2, self.lif2 = nn.Linear(4, 3), lif(), nn.Linear(3, 3), lif()

        def forward(self, x):
            a = self.lif1(self.fc1(x))
            return a + self.lif2(self.fc2(a))

    refuses(ReturnsSum(), "returns the sum 'add'", "readout")

    class Unused(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.lif1, self.fc2, self.lif2 = nn.Linear(4, 3), lif(), nn.Linear(3, 3), lif()
            self.fc3, self.lif3 = nn.Linear(3, 2), lif()

        def forward(self, x):
            a = self.lif1(self.fc1(x))
            self.lif2(self.fc2(a))
            return self.lif3(self.fc3(a))

    refuses(Unused(), "layer 'lif2'", "does not reach", "unused branch")

    class CurrentTwice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc, self.lif1, self.lif2 = nn.Linear(4, 3), lif(), lif()

        def forward(self, x):
            c = self.fc(x)
            return self.lif1(c) + self.lif2(c)

    refuses(CurrentTwice(), "layer 'fc'", "goes to 2 layers", "its own neuron")

    class PoolThenAdd(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c1, self.l1 = nn.Conv2d(1, 2, 3, padding=1), lif()
            self.p1, self.p2 = nn.AvgPool2d(2), nn.AvgPool2d(2)
            self.c2, self.l2 = nn.Conv2d(2, 2, 3, padding=1), lif()
            self.flat, self.fc, self.out = nn.Flatten(), nn.Linear(2 * 3 * 3, 2), lif()

        def forward(self, x):
            a = self.l1(self.c1(x))
            y = self.p1(a) + self.p2(self.l2(self.c2(a)))
            return self.out(self.fc(self.flat(y)))

    refuses(PoolThenAdd(), "the sum 'add'", "nn.AvgPool2d", "after the sum", input_shape=(1, 6, 6))

    class MaxOfSum(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c1, self.l1 = nn.Conv2d(1, 2, 3, padding=1), lif()
            self.c2, self.l2 = nn.Conv2d(2, 2, 3, padding=1), lif()
            self.pool, self.flat, self.fc, self.out = nn.MaxPool2d(2), nn.Flatten(), nn.Linear(18, 2), lif()

        def forward(self, x):
            a = self.l1(self.c1(x))
            return self.out(self.fc(self.flat(self.pool(a + self.l2(self.c2(a))))))

    refuses(MaxOfSum(), "layer 'pool'", "max-pools the output of the sum 'add'", input_shape=(1, 6, 6))
