"""Float simulator of the IR (``hwgen.ir.Network``), spike-for-spike equal to snnTorch.

It repeats snnTorch 1.0.0's float32 operations in snnTorch's order (``Leaky.forward`` with
the default ``reset_delay=True``), so that for the same batch of inputs it produces the same
spikes as running the source model step by step. That makes it a trustworthy reference for
what quantization changes: any difference between this and ``hwgen.golden`` comes from the
integers, not from a re-derivation of the neuron equations.

Per layer and timestep, with ``mem`` starting at zero (snnTorch ``utils.reset``):

    reset = (mem - threshold > 0)                      # from the *previous* membrane
    zero:      mem = (1 - reset) * mem                 # before the leak
    mem = clamp(beta, 0, 1) * mem + current(x)         # two float32 ops, no fused multiply-add
    subtract:  mem = mem - reset * threshold           # the subtracted threshold is not leaked
    spk = (mem - threshold > 0)

``current`` is the very call the torch module makes: ``F.linear(x, W, b)`` for ``nn.Linear``,
``F.conv2d(x, W, b, stride, padding, 1, groups)`` for ``nn.Conv2d`` (zero padding). A conv
layer's ``beta`` and ``threshold`` are per output channel and broadcast over ``H, W``; the
element-wise float32 operations above give the same result whatever the broadcast shape.

Between spiking layers:

* ``Flatten``: ``x.reshape(B, -1)``, C-order like ``nn.Flatten``.
* ``MaxPool2d``: ``F.max_pool2d``, the module's own call (on 0/1 spikes this is an OR).
* ``SumPool2d``: ``F.avg_pool2d(..., count_include_pad=True, divisor_override=1)``, i.e.
  the window sum in the same order as ``nn.AvgPool2d`` forms it before dividing. The frontend
  imports ``nn.AvgPool2d`` as this sum and folds ``1/(kh*kw)`` into the next synaptic
  layer's weights; for a power-of-two window ``(s/4)·w`` and ``s·(w/4)`` are the same float32
  number, so that fold is exact. For other windows (3x3: 1/9) it is not bit-exact, only
  within float32 rounding of the average.

Bit-identity holds for the batch size used: a float32 GEMM or convolution may round
differently for other batch shapes, exactly as snnTorch itself would.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .golden import readout
from .ir import INPUT, Network


@dataclass
class FloatTrace:
    """What the float model does with a batch of inferences."""

    spikes: list[torch.Tensor]  # per spiking layer: [B, T, N] uint8, N in C-order
    counts: torch.Tensor  # [B, N_out] int64, spike count of the last layer
    prediction: torch.Tensor  # [B] int64, argmax of counts, ties to the lowest index

    @property
    def batch(self) -> int:
        return int(self.counts.shape[0])


def run_float(net: Network, inputs: torch.Tensor | np.ndarray) -> FloatTrace:
    """Simulate ``inputs`` shaped ``[B, T, *input_shape]`` through ``net``.

    Inputs are spikes or direct (multi-bit) values, any dtype; they are computed with as
    float32, as the torch model would receive them. ``[B, T, N]`` with ``N`` the number of
    input elements is accepted too (C-order).
    """
    x_all = torch.as_tensor(np.asarray(inputs) if not isinstance(inputs, torch.Tensor)
                            else inputs).to(torch.float32)
    if x_all.ndim < 2:
        raise ValueError(f"inputs must be [samples, timesteps, *input_shape], got "
                         f"{tuple(x_all.shape)}")
    batch, timesteps = x_all.shape[0], x_all.shape[1]
    if int(np.prod(x_all.shape[2:])) != net.input_size:
        raise ValueError(f"inputs {tuple(x_all.shape)} do not match the network's input shape "
                         f"{net.input_shape}")
    x_all = x_all.reshape(batch, timesteps, *net.input_shape)
    layers = [layer.float_model() for layer in net.spiking_layers]
    index = {layer.layer.name: n for n, layer in enumerate(layers)}
    states: list = [None] * len(layers)
    spikes = [torch.zeros(batch, timesteps, layer.out_size, dtype=torch.uint8) for layer in layers]
    sources = {layer.name: net.sources(layer) for layer in net.layers}  # once, not per timestep
    delayed = {e.source for edges in sources.values() for e in edges if e.delay}
    previous = {name: torch.zeros(batch, *net.node(name).output_shape) for name in delayed}
    with torch.no_grad():
        for t in range(timesteps):
            # The torch modules hand their kernels contiguous tensors; so do we, so that the
            # same kernel (and summation order) is chosen.
            outputs = {INPUT: x_all[:, t].contiguous()}
            for layer in net.layers:
                xs = [previous[e.source] if e.delay else outputs[e.source] for e in sources[layer.name]]
                if not layer.has_neurons:
                    outputs[layer.name] = layer.float_step(xs if layer.joins else xs[0])
                    continue
                n = index[layer.name]
                xs = [layer.float_input(x).contiguous() for x in xs]
                s, states[n] = layers[n].step(xs, states[n])
                spikes[n][:, t] = s.reshape(batch, -1).to(torch.uint8)
                outputs[layer.name] = s
            previous = {name: outputs[name] for name in delayed}
    counts = spikes[index[net.output_layer.name]].long().sum(dim=1)
    return FloatTrace(spikes=spikes, counts=counts, prediction=readout(counts))
