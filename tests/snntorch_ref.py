"""snnTorch as the reference of the torch frontend tests (tests/test_frontend_torch.py,
tests/test_frontend_torch_conv.py, tests/test_frontend_torch_graph.py): its own spikes, random inputs, refusals."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import snntorch as snn
import snntorch.utils
from snntorch._neurons.neurons import SpikingNeuron
import torch
from torch import nn

from hwgen.errors import HwgenError
from hwgen.frontend import import_torch


def run_snntorch(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Each neuron layer's output spikes from snnTorch's own forward pass, [B, T, N] uint8
    (C order), in the order the forward calls the neurons (hwgen's order of spiking layers).

    Every inference starts from zero state: ``snntorch.utils.reset`` and each neuron's
    ``reset_mem()``, because snnTorch 1.0's ``utils.reset`` leaves ``RSynaptic.spk`` (the
    recurrent input) at the previous inference's last spikes.
    """
    neurons = [m for m in model.modules() if isinstance(m, SpikingNeuron)]
    records: dict[int, list[torch.Tensor]] = {}
    order: list[int] = []
    hooks = []
    for n, lif in enumerate(neurons):
        def hook(_m, _inp, out, n=n):
            spk = out[0] if isinstance(out, tuple) else out
            if n not in records:
                records[n] = []
                order.append(n)
            records[n].append(spk.detach().reshape(spk.shape[0], -1).clone())
        hooks.append(lif.register_forward_hook(hook))
    try:
        snntorch.utils.reset(model)
        for lif in neurons:
            lif.reset_mem()
        with torch.no_grad():
            for t in range(x.shape[1]):
                model(x[:, t])
    finally:
        for h in hooks:
            h.remove()
    out = []
    for n in order:
        s = torch.stack(records[n], dim=1)
        assert torch.all((s == 0) | (s == 1))
        out.append(s.to(torch.uint8))
    return out


def input_spikes(shape: tuple[int, ...], seed: int, rate: float = 0.3) -> torch.Tensor:
    """Random 0/1 inputs ``[B, T, ...]``, each 1 with probability ``rate``, as float32."""
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=gen) < rate).to(torch.float32)


def one_line_error(call: Callable[[], object], *fragments: str) -> str:
    """``call()`` must raise ``HwgenError`` with a one-line message holding every fragment;
    returns the message."""
    with pytest.raises(HwgenError) as info:
        call()
    msg = str(info.value)
    assert "\n" not in msg
    for fragment in fragments:
        assert fragment in msg, f"{fragment!r} not in: {msg}"
    return msg


def refuses(model: nn.Module, *fragments: str, input_shape=None) -> str:
    """``import_torch(model, input_shape)`` refuses the model: :func:`one_line_error`."""
    return one_line_error(lambda: import_torch(model, input_shape), *fragments)
