"""The cycle cost of a network's accelerator: ``hwgen.cost``'s token-level model, fed by the
units of ``NetworkTop`` (each asked for its stages by its layer kind) and the golden model's
record of what flowed. The one cost model: reports, the DSE, ``hwgen sim``, the bench and the
tests all ask this module."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..cost import RemapStage, Stage, Timing, inference_timing
from ..golden import GoldenTrace
from ..hardware.pool import flatten_is_identity
from ..hardware.tokens import is_map
from ..ir import QuantNetwork
from .top import plan_units

__all__ = ["chain_stages", "expected_cycles", "expected_timings", "worst_case_timing"]


def chain_stages(qnet: QuantNetwork, parallel: int, trace: GoldenTrace, sample: int,
                 inputs: np.ndarray | None = None) -> list[Stage]:
    """The stages of ``NetworkTop(qnet, parallel)`` for inference ``sample`` of ``trace``.

    ``inputs`` (``[B, T, *input_shape]``, the batch the trace ran) gives the input tokens'
    addresses, which a convolution or pool at the input needs to be exact; without them a
    first convolution's events share its taps evenly (a pool at the input is refused). A map
    at the end reaches the readout through a flatten remap, a stage of its own.
    """
    units, _, _ = plan_units(qnet)
    tokens: list[np.ndarray] | None = None  # per timestep, the input tokens' C-order addresses
    if inputs is not None:
        x = np.asarray(inputs[sample]).reshape(int(qnet.timesteps), -1)
        tokens = [np.flatnonzero(row) for row in x]
    stages: list[Stage] = []
    for unit in units:
        more, tokens = unit.node.cost_stages(unit, parallel, tokens, trace, sample)
        stages += more
    shape = units[-1].out_shape
    if is_map(shape):
        stages.append(RemapStage(0 if flatten_is_identity(shape) else 1))
    return stages


def expected_timings(qnet: QuantNetwork, parallel: int, trace: GoldenTrace,
                     inputs: np.ndarray | None = None) -> list[Timing]:
    """Per inference of ``trace``, the model's timing of ``NetworkTop(qnet, parallel)``."""
    return [inference_timing(chain_stages(qnet, parallel, trace, b, inputs)) for b in range(trace.batch)]


def expected_cycles(qnet: QuantNetwork, parallel: int, trace: GoldenTrace,
                    inputs: np.ndarray | None = None) -> list[int]:
    """Per inference of ``trace``, the modelled ``cycles`` port (exact on every row of the
    committed benchmark results and on the simulated chains of tests/test_cost_model.py)."""
    return [t.cycles for t in expected_timings(qnet, parallel, trace, inputs)]


@dataclass
class _EveryNeuronFires:
    """A golden trace in which every neuron of every spiking layer fires at every timestep."""

    spikes: list[torch.Tensor]


def worst_case_timing(qnet: QuantNetwork, parallel: int) -> Timing:
    """The model's timing of an inference in which every input is active at every timestep
    (at its largest value, for direct input) and every neuron fires at every timestep: every
    input of every layer is an event, and every engine sends every spike. The clock-driven
    baseline of docs/benchmarks.md and the reports' worst case."""
    T = int(qnet.timesteps)
    inputs = np.ones((1, T, *qnet.input_shape), dtype=np.int64)
    trace = _EveryNeuronFires([torch.ones(1, T, layer.output_size, dtype=torch.uint8)
                               for layer in qnet.spiking_layers])
    return inference_timing(chain_stages(qnet, parallel, trace, 0, inputs))
