"""The integer golden model: docs/semantics.md, written in PyTorch integer tensors.

The RTL is checked against this, spike for spike. Keep it a direct transcription of the
semantics page: no shortcuts that the page does not state.

Convolutions and pools run in float64, which is exact here: every operand is an integer
and every sum stays far below 2**53 (acc_bits <= 48 by construction of the quantizer).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .ir import INPUT, QuantNetwork
from .kinds.lif import SynapticLIF, leak  # noqa: F401 - leak is part of this module's API

Synaptic = SynapticLIF


@dataclass
class GoldenTrace:
    """Everything the golden model says about a batch of inferences."""

    spikes: list[torch.Tensor]  # per spiking layer: [B, T, N] uint8, N in C-order
    counts: torch.Tensor  # [B, N_out] int64, spike count of the last layer
    prediction: torch.Tensor  # [B] int64, argmax of counts, ties to the lowest index
    synaptic_ops: torch.Tensor  # [B] int64, weight additions an event-driven engine performs
    layer_ops: list[torch.Tensor]  # per spiking layer: [B, T] int64, the same per timestep
    layer_events: list[torch.Tensor]  # per spiking layer: [B, T] int64, input events (tokens)
    # per spiking layer: [B, *golden_input_shape] bool, the input addresses that carried at
    # least one event in the inference (the weights an event-driven engine read: coverage)
    layer_inputs: list[torch.Tensor]
    # per spiking layer: [B, 2] int64, min and max over the inference of the unsaturated
    # membrane sum ``a`` (whether the saturation to ``state_bits`` took effect)
    membrane_extremes: list[torch.Tensor]
    # per spiking layer: [B, 2] int64 of the unsaturated synaptic current ``j`` (CuBa), else None
    current_extremes: list[torch.Tensor | None]

    @property
    def batch(self) -> int:
        return int(self.counts.shape[0])

    def first(self, n: int) -> GoldenTrace:
        """The trace of the first ``n`` inferences."""
        return self.samples(slice(0, n))

    def samples(self, which: slice) -> GoldenTrace:
        """The trace of the inferences ``which`` selects."""
        return GoldenTrace(spikes=[s[which] for s in self.spikes], counts=self.counts[which],
                           prediction=self.prediction[which], synaptic_ops=self.synaptic_ops[which],
                           layer_ops=[o[which] for o in self.layer_ops],
                           layer_events=[e[which] for e in self.layer_events],
                           layer_inputs=[i[which] for i in self.layer_inputs],
                           membrane_extremes=[m[which] for m in self.membrane_extremes],
                           current_extremes=[None if c is None else c[which] for c in self.current_extremes])


def synaptic_input(layer: Synaptic, x: torch.Tensor) -> torch.Tensor:
    """``Σ W·x`` for one timestep: x is [B, N_in] (dense) or [B, C, H, W] (conv), int64."""
    return layer.synaptic_input(x)


def fire(layer: Synaptic, u: torch.Tensor, current: torch.Tensor
         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Integrate, saturate, fire, leak and reset: returns (spikes, next ``u``, unsaturated ``a``)."""
    return layer.fire(u, current)


def pool(layer, x: torch.Tensor) -> torch.Tensor:
    """Sum pooling gives counts; max pooling of 0/1 spikes is an OR per window."""
    return layer.golden_step(x)


def event_fanout(layer: Synaptic, x: torch.Tensor) -> torch.Tensor:
    """Weight additions an event-driven engine spends on ``x``: events × in-range fan-out.

    An input of value ``k`` from a sum pool arrives as ``k`` events; a direct multi-bit
    input arrives as one event per non-zero value (the caller passes ``x != 0`` then).
    """
    return layer.event_fanout(x)


def readout(counts: torch.Tensor) -> torch.Tensor:
    # torch.argmax does not promise which index wins a tie; the semantics say the lowest.
    best = counts.max(dim=1, keepdim=True).values
    index = torch.arange(counts.shape[1]).expand_as(counts)
    return torch.where(counts == best, index, counts.shape[1]).min(dim=1).values


def run(net: QuantNetwork, inputs: torch.Tensor | np.ndarray,
        membrane_range: list[list[int]] | None = None,
        current_range: list[list[int] | None] | None = None) -> GoldenTrace:
    """Simulate ``inputs`` shaped ``[B, T, *input_shape]`` through ``net``.

    Inputs are 0/1 spikes, or unsigned integers below ``2**net.input_bits`` for direct
    input. If ``membrane_range`` is a list, it receives per spiking layer ``[min, max]`` of
    the unsaturated sum ``a`` (the quantizer's calibration of state widths); likewise
    ``current_range`` for the unsaturated synaptic current of CuBa layers (``None`` for
    the others).

    The layers run in ``net.layers``' order each timestep (docs/semantics.md, "Graphs"): a
    node's inputs are its sources' outputs of the same step, or of the step before for a
    delayed (recurrent) edge, zeros at ``t = 0``.
    """
    x_all = torch.as_tensor(np.asarray(inputs)).to(torch.int64)
    if x_all.ndim < 2:
        raise ValueError(f"inputs must be [samples, timesteps, *input_shape], got {tuple(x_all.shape)}")
    batch, timesteps = x_all.shape[0], x_all.shape[1]
    x_all = x_all.reshape(batch, timesteps, *net.input_shape)
    synaptic = net.spiking_layers
    index = {layer.name: n for n, layer in enumerate(synaptic)}
    states: list = [layer.golden_state() for layer in synaptic]
    spikes = [torch.zeros(batch, timesteps, int(np.prod(layer.output_shape)), dtype=torch.uint8)
              for layer in synaptic]
    layer_ops = [torch.zeros(batch, timesteps, dtype=torch.int64) for _ in synaptic]
    layer_events = [torch.zeros(batch, timesteps, dtype=torch.int64) for _ in synaptic]
    layer_inputs = [torch.zeros(batch, *layer.golden_input_shape, dtype=torch.bool) for layer in synaptic]
    membrane_extremes: list = [None] * len(synaptic)
    current_extremes: list = [None] * len(synaptic)
    sources = {layer.name: net.sources(layer) for layer in net.layers}  # once, not per timestep
    delayed = {e.source for edges in sources.values() for e in edges if e.delay}
    previous = {name: torch.zeros(batch, *net.node(name).output_shape, dtype=torch.int64) for name in delayed}
    for t in range(timesteps):
        outputs = {INPUT: x_all[:, t]}
        for layer in net.layers:
            edges = sources[layer.name]
            xs = [previous[e.source] if e.delay else outputs[e.source] for e in edges]
            if not layer.has_neurons:
                outputs[layer.name] = layer.golden_step(xs if layer.joins else xs[0])
                continue
            n = index[layer.name]
            x = layer.golden_concat([layer.golden_input(x) for x in xs]) if len(xs) > 1 else layer.golden_input(xs[0])
            direct = net.input_bits > 1 and any(e.source == INPUT for e in edges)
            events = (x != 0).long() if direct else x
            layer_ops[n][:, t] = layer.event_fanout(events)
            layer_events[n][:, t] = events.reshape(batch, -1).sum(dim=1)
            layer_inputs[n] |= events != 0
            s, states[n], a = layer.fire(states[n], layer.synaptic_input(x))
            membrane_extremes[n] = _extremes(membrane_extremes[n], a, batch)
            current_extremes[n] = _extremes(current_extremes[n], getattr(states[n], "j", None), batch)
            spikes[n][:, t] = s.reshape(batch, -1).to(torch.uint8)
            outputs[layer.name] = s.long()
        previous = {name: outputs[name] for name in delayed}
    for n in range(len(synaptic) if timesteps else 0):  # no timestep, nothing to widen
        if membrane_range is not None:
            _widen(membrane_range, n, membrane_extremes[n])
        if current_range is not None:
            _widen(current_range, n, current_extremes[n])
    counts = spikes[index[net.output_layer.name]].long().sum(dim=1)
    sops = sum(ops.sum(dim=1) for ops in layer_ops)
    return GoldenTrace(spikes=spikes, counts=counts, prediction=readout(counts), synaptic_ops=sops,
                       layer_ops=layer_ops, layer_events=layer_events, layer_inputs=layer_inputs,
                       membrane_extremes=membrane_extremes, current_extremes=current_extremes)


def _extremes(extremes: torch.Tensor | None, values: torch.Tensor | None, batch: int) -> torch.Tensor | None:
    """``extremes`` ([B, 2]: per sample min and max so far) widened to cover ``values``
    ([B, ...]); ``None`` for a layer without the quantity (``values`` is ``None``)."""
    if values is None:
        return extremes
    flat = values.reshape(batch, -1)
    now = torch.stack([flat.min(dim=1).values, flat.max(dim=1).values], dim=1)
    if extremes is None:
        return now
    return torch.stack([torch.minimum(extremes[:, 0], now[:, 0]), torch.maximum(extremes[:, 1], now[:, 1])], dim=1)


def _widen(ranges: list, n: int, values: torch.Tensor | None) -> None:
    """Widen ``ranges[n]`` (``[min, max]``) to cover ``values``; entries up to ``n`` that
    nothing covered yet (``values`` is ``None``: a layer without the quantity) stay ``None``."""
    while len(ranges) <= n:
        ranges.append(None)
    if values is None:
        return
    lo, hi = int(values.min()), int(values.max())
    ranges[n] = [lo, hi] if ranges[n] is None else [min(lo, ranges[n][0]), max(hi, ranges[n][1])]
