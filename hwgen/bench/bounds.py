"""The lower bound and the dense baseline of docs/benchmarks.md, from the golden model's work.

Both are functions of the work that flowed in one inference (``GoldenTrace.layer_ops``:
per spiking layer and timestep, input events x in-range fan-out) and of the parallelism
``P``; neither looks at the RTL, so ``bound / measured cycles`` is a fair efficiency.

* **Layer bound** ``L_k = Σ_t ceil(ops[k][t] / P) + T · ceil(N_k / P)``: ``P`` adders can do
  at most ``P`` synaptic additions per cycle, and every neuron has to be looked at once per
  timestep (the fire pass), ``P`` per cycle. Nothing about the hardware's folding enters: a
  layer narrower than ``P`` or a depthwise layer (one output channel per input) cannot keep
  ``P`` lanes busy in hwgen's engines, and that shows as efficiency below 1.
* **Network bounds.** hwgen gives every spiking layer its own engine of ``P`` lanes and the
  engines run concurrently, so the binding one is the busiest layer:
  ``bound_busiest = max_k L_k``. ``bound_sum = Σ_k L_k`` (the issue's definition) is the
  bound for *one* engine of ``P`` lanes doing all layers in turn; measured cycles go below it
  when layers overlap, which is reported, not hidden.
* ``bound_lockstep = Σ_t max_k (ceil(ops[k][t] / P) + ceil(N_k / P))``: the bound if the
  layers overlapped only within a timestep, never across. Not a lower bound of hwgen's
  hardware (its engines do work on different timesteps at once), but where measured cycles
  sit between it and ``bound_busiest`` it says how much of the cross-timestep overlap the
  chain achieves.
* **Dense baseline**: the cycles the *same* engines would need clock-driven, i.e. if every
  input of every layer were an event at every timestep (and so every neuron fired): the cost
  model's ``worst_case_timing`` (so folding, fire passes, pipeline latencies and the layer
  overlap are the same as for the event-driven run; only the sparsity is gone).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..accelerator.cycles import worst_case_timing
from ..golden import GoldenTrace
from ..ir import QuantNetwork
from ..kinds import SynapticLIF


def layer_bound(layer: SynapticLIF, parallel: int, ops_per_step: list[float]) -> int:
    """``Σ_t ceil(ops_t / P) + T · ceil(N / P)`` for one layer and one inference."""
    fire = math.ceil(layer.output_size / parallel)
    return int(sum(math.ceil(ops / parallel) for ops in ops_per_step) + len(ops_per_step) * fire)


def layer_bounds(qnet: QuantNetwork, parallel: int, trace: GoldenTrace) -> np.ndarray:
    """``[samples, layers]`` layer bounds of every inference of ``trace``."""
    out = np.zeros((trace.batch, len(qnet.spiking_layers)), dtype=np.int64)
    for k, (layer, ops) in enumerate(zip(qnet.spiking_layers, trace.layer_ops)):
        for i in range(trace.batch):
            out[i, k] = layer_bound(layer, parallel, ops[i].tolist())
    return out


def lockstep_bound(qnet: QuantNetwork, parallel: int, trace: GoldenTrace) -> np.ndarray:
    """Per inference ``Σ_t max_k`` of the layers' per-timestep bounds (see the module doc)."""
    steps = []
    for layer, ops in zip(qnet.spiking_layers, trace.layer_ops):
        fire = math.ceil(layer.output_size / parallel)
        per = (ops.double() / parallel).ceil() + fire  # [B, T]
        steps.append(per)
    return torch.stack(steps).max(dim=0).values.sum(dim=1).numpy()


def dense_baseline(qnet: QuantNetwork, parallel: int) -> float:
    """Cycles of one inference with every input of every layer active at every timestep (and
    so every neuron firing): ``hwgen.accelerator.cycles.worst_case_timing``."""
    return float(worst_case_timing(qnet, parallel).cycles)


def dense_layer_bound(qnet: QuantNetwork, parallel: int) -> list[int]:
    """The lower bound per layer of a clock-driven schedule (every input every timestep)."""
    T = qnet.timesteps
    return [layer_bound(layer, parallel, [layer.full_fanout()] * T) for layer in qnet.spiking_layers]
