"""Float simulator of the IR (``hwgen.ir.Network``), spike-for-spike equal to snnTorch.

It repeats snnTorch 1.0.0's float32 operations in snnTorch's order (``Leaky.forward`` with
the default ``reset_delay=True``), so that for the same batch of inputs it produces the same
spikes as running the source model step by step. That makes it a trustworthy reference for
what quantization changes: any difference between this and ``hwgen.golden`` comes from the
integers, not from a re-derivation of the neuron equations.

Per layer and timestep, with ``mem`` starting at zero (snnTorch ``utils.reset``):

    reset = (mem - threshold > 0)                      # from the *previous* membrane
    zero:      mem = (1 - reset) * mem                 # before the leak
    mem = clamp(beta, 0, 1) * mem + linear(x)          # two float32 ops, no fused multiply-add
    subtract:  mem = mem - reset * threshold           # the subtracted threshold is not leaked
    spk = (mem - threshold > 0)

Bit-identity holds for the batch size used: a float32 GEMM may round differently for other
batch shapes, exactly as snnTorch itself would.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .golden import readout
from .ir import Dense, Network


@dataclass
class FloatTrace:
    """What the float model does with a batch of inferences."""

    spikes: list[torch.Tensor]  # per Dense layer: [B, T, N] uint8
    counts: torch.Tensor  # [B, N_out] int64, spike count of the last layer
    prediction: torch.Tensor  # [B] int64, argmax of counts, ties to the lowest index

    @property
    def batch(self) -> int:
        return int(self.counts.shape[0])


class _Layer:
    """One Dense layer's float32 tensors, shaped like snnTorch's buffers."""

    def __init__(self, layer: Dense) -> None:
        self.weight = torch.from_numpy(np.ascontiguousarray(layer.weight, dtype=np.float32))
        bias = np.asarray(layer.bias, dtype=np.float32)
        # nn.Linear(bias=False) calls F.linear without a bias (a plain GEMM). An all-zero bias
        # through addmm adds exact zeros, so dropping it cannot change a result either way.
        self.bias = torch.from_numpy(bias.copy()) if np.any(bias != 0) else None
        self.beta = torch.from_numpy(layer.neurons.beta.astype(np.float32))
        self.threshold = torch.from_numpy(layer.neurons.threshold.astype(np.float32))
        self.reset = layer.neurons.reset

    def step(self, x: torch.Tensor, mem: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        current = F.linear(x, self.weight, self.bias)
        reset = (mem - self.threshold > 0).to(torch.float32)
        if self.reset == "zero":
            mem = (1 - reset) * mem
        mem = self.beta.clamp(0, 1) * mem + current
        if self.reset == "subtract":
            mem = mem - reset * self.threshold
        spk = (mem - self.threshold > 0).to(torch.float32)
        return spk, mem


def run_float(net: Network, inputs: torch.Tensor | np.ndarray) -> FloatTrace:
    """Simulate ``inputs`` shaped ``[B, T, *input_shape]`` (spikes, any float) through ``net``."""
    x_all = torch.as_tensor(np.asarray(inputs) if not isinstance(inputs, torch.Tensor)
                            else inputs).to(torch.float32)
    if x_all.ndim < 2:
        raise ValueError(f"inputs must be [samples, timesteps, *input_shape], got "
                         f"{tuple(x_all.shape)}")
    batch, timesteps = x_all.shape[0], x_all.shape[1]
    if int(np.prod(x_all.shape[2:])) != net.input_size:
        raise ValueError(f"inputs {tuple(x_all.shape)} do not match the network's input shape "
                         f"{net.input_shape}")
    # nn.Flatten (and any Linear on 1-D samples) hands the GEMM a contiguous [B, N] matrix.
    x_all = x_all.reshape(batch, timesteps, -1)
    layers = [_Layer(layer) for layer in net.spiking_layers]
    mems = [torch.zeros(batch, layer.out_features, dtype=torch.float32)
            for layer in net.spiking_layers]
    spikes = [torch.zeros(batch, timesteps, layer.out_features, dtype=torch.uint8)
              for layer in net.spiking_layers]
    with torch.no_grad():
        for t in range(timesteps):
            x = x_all[:, t].contiguous()
            for n, layer in enumerate(layers):
                x, mems[n] = layer.step(x, mems[n])
                spikes[n][:, t] = x.to(torch.uint8)
    counts = spikes[-1].long().sum(dim=1)
    return FloatTrace(spikes=spikes, counts=counts, prediction=readout(counts))
