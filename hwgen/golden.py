"""The integer golden model: docs/semantics.md, written in PyTorch integer tensors.

The RTL is checked against this, spike for spike. Keep it a direct transcription of the
semantics page: no shortcuts that the page does not state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .ir import Leak, QuantDense, QuantNetwork


@dataclass
class GoldenTrace:
    """Everything the golden model says about a batch of inferences."""

    spikes: list[torch.Tensor]  # per spiking layer: [B, T, N] uint8
    counts: torch.Tensor  # [B, N_out] int64, spike count of the last layer
    prediction: torch.Tensor  # [B] int64, argmax of counts, ties to the lowest index
    synaptic_ops: torch.Tensor  # [B] int64, weight additions an event-driven engine performs

    @property
    def batch(self) -> int:
        return int(self.counts.shape[0])


def leak(v: torch.Tensor, spec: Leak) -> torch.Tensor:
    if spec.kind == "none":
        return v
    if spec.kind == "shift":
        return v - (v >> spec.shift)
    return (v * spec.mul) >> spec.frac_bits


def step(layer: QuantDense, u: torch.Tensor, x: torch.Tensor,
         weight_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One timestep of one layer: returns (spikes, next state ``u``, unsaturated sum ``a``).

    ``x`` is [B, N_in] int64, ``weight_t`` the layer's weights transposed to [N_in, N_out].
    """
    bias = torch.from_numpy(layer.bias)
    theta = torch.from_numpy(layer.threshold)
    a = u + bias + x @ weight_t
    v = a.clamp(layer.state_min, layer.state_max)
    s = v > theta
    lv = leak(v, layer.leak)
    if layer.reset == "subtract":
        u_next = lv - s.long() * theta
    elif layer.reset == "zero":
        u_next = torch.where(s, torch.zeros_like(lv), lv)
    else:
        u_next = lv
    return s, u_next, a


def readout(counts: torch.Tensor) -> torch.Tensor:
    # torch.argmax does not promise which index wins a tie; the semantics say the lowest.
    best = counts.max(dim=1, keepdim=True).values
    index = torch.arange(counts.shape[1]).expand_as(counts)
    return torch.where(counts == best, index, counts.shape[1]).min(dim=1).values


def run(net: QuantNetwork, inputs: torch.Tensor | np.ndarray,
        membrane_range: list[list[int]] | None = None) -> GoldenTrace:
    """Simulate ``inputs`` shaped ``[B, T, *input_shape]`` (0/1 spikes) through ``net``.

    If ``membrane_range`` is a list, it receives per spiking layer ``[min, max]`` of the
    unsaturated sum ``a`` (the quantizer's calibration of state widths).
    """
    x_all = torch.as_tensor(np.asarray(inputs)).to(torch.int64)
    if x_all.ndim < 2:
        raise ValueError(f"inputs must be [samples, timesteps, *input_shape], got {tuple(x_all.shape)}")
    batch, timesteps = x_all.shape[0], x_all.shape[1]
    x_all = x_all.reshape(batch, timesteps, -1)
    layers = net.spiking_layers
    weights_t = [torch.from_numpy(layer.weight).T.contiguous() for layer in layers]
    states = [torch.zeros(batch, layer.out_features, dtype=torch.int64) for layer in layers]
    spikes = [torch.zeros(batch, timesteps, layer.out_features, dtype=torch.uint8) for layer in layers]
    sops = torch.zeros(batch, dtype=torch.int64)
    for t in range(timesteps):
        x = x_all[:, t]
        for n, layer in enumerate(layers):
            sops += x.sum(dim=1) * layer.out_features
            s, states[n], a = step(layer, states[n], x, weights_t[n])
            if membrane_range is not None:
                lo, hi = int(a.min()), int(a.max())
                if len(membrane_range) <= n:
                    membrane_range.append([lo, hi])
                membrane_range[n] = [min(lo, membrane_range[n][0]), max(hi, membrane_range[n][1])]
            spikes[n][:, t] = s.to(torch.uint8)
            x = s.long()
    counts = spikes[-1].long().sum(dim=1)
    return GoldenTrace(spikes=spikes, counts=counts, prediction=readout(counts), synaptic_ops=sops)
