"""The cycle cost of a network's accelerator: ``hwgen.cost``'s token-level model, fed by the
units of ``NetworkTop`` (each asked for its stages by its layer kind) and the golden model's
record of what flowed. The one cost model: reports, the DSE, ``hwgen sim``, the bench and the
tests all ask this module."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..cost import (EngineStage, GraphNode, RemapStage, Stage, Timing, graph_timing,
                    inference_timing)
from ..golden import GoldenTrace
from ..hardware.pool import flatten_is_identity
from ..hardware.tokens import is_map
from ..ir import QuantNetwork
from .top import READOUT, plan_graph, plan_units

__all__ = ["chain_stages", "expected_cycles", "expected_timings", "graph_model", "worst_case_timing"]


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
        x = np.asarray(inputs[sample]).reshape(len(inputs[sample]), -1)  # the sample's own T
        tokens = [np.flatnonzero(row) for row in x]
    stages: list[Stage] = []
    for unit in units:
        more, tokens = unit.node.cost_stages(unit, parallel, tokens, trace, sample)
        stages += more
    shape = units[-1].out_shape
    if is_map(shape):
        stages.append(RemapStage(0 if flatten_is_identity(shape) else 1))
    return stages


def _counts_out(stage: Stage, counts: list[int]) -> list[int]:
    if isinstance(stage, EngineStage):
        return [stage.tokens_out(t) for t in range(stage.timesteps)]
    if stage.fanout is not None:
        return [int(np.sum(f)) for f in stage.fanout]
    return list(counts)


def graph_model(qnet: QuantNetwork, parallel: int, trace: GoldenTrace, sample: int,
                inputs: np.ndarray) -> tuple[list[GraphNode], int, int, int, list[list[int]]]:
    """The arguments of ``hwgen.cost.graph_timing`` for inference ``sample`` of ``trace``:
    ``NetworkTop(qnet, parallel)``'s units as stages (each asked of its kind; a join is given
    its inputs' tokens, a fork gives each consumer its input's) on the links of
    ``top.plan_graph``, the input's and the readout's link, and every link's tokens per step.

    A delayed input's tokens are its source layer's spikes (from the trace); a join passes
    its inputs' tokens in input order, so a convolution after a join sees its events in that
    order rather than the arbiter's."""
    plan = plan_graph(qnet)
    x = np.asarray(inputs[sample]).reshape(len(inputs[sample]), -1)  # the sample's own T
    number: dict[tuple, int] = {}  # (unit or None, port, "out"/"in") -> link
    for n, link in enumerate(plan.links):
        number[(link.source, link.source_port, "out")] = n
        number[(link.target, link.target_port, "in")] = n
    links = len(plan.links)
    feeds = {link.target: link.source for link in plan.links if link.target != READOUT}

    def new_link() -> int:
        nonlocal links
        links += 1
        return links - 1

    def spikes_of(unit: int) -> list[np.ndarray]:
        """A delayed input's tokens: the spikes of the layer whose stream reaches it."""
        while plan.units[unit].spiking is None:  # forks and flattens keep the addresses
            unit = feeds[unit]
        spikes = trace.spikes[plan.units[unit].spiking][sample].numpy()
        return [np.flatnonzero(row) for row in spikes]

    flows: dict[int, list[np.ndarray]] = {number[(None, "spikes_in", "out")]: [np.flatnonzero(r) for r in x]}
    nodes: list[GraphNode] = []
    for n, unit in enumerate(plan.units):
        ins = [number[(n, unit.in_port(k), "in")] for k in range(unit.ports_in)]
        outs = [number.get((n, unit.out_port(k), "out")) for k in range(unit.ports_out)]
        outs = [new_link() if o is None else o for o in outs]  # a layer that feeds nothing
        if unit.ports_in > 1:
            tokens = [flows[i] if i in flows else spikes_of(next(lk.source for lk in plan.links if
                                                                 (lk.target, lk.target_port) == (n, unit.in_port(k))))
                      for k, i in enumerate(ins)]
        else:
            tokens = flows[ins[0]]
        stages, out = unit.node.cost_stages(unit, parallel, tokens, trace, sample)
        for o in outs:
            flows[o] = out
        if unit.ports_in > 1 or unit.ports_out > 1:
            nodes.append(GraphNode(stages[0], ins, outs))
            continue
        current = ins[0]
        for m, stage in enumerate(stages):
            nxt = outs[0] if m == len(stages) - 1 else new_link()
            nodes.append(GraphNode(stage, [current], [nxt]))
            current = nxt
    readout = number[(READOUT, "spikes", "in")]
    shape = plan.units[plan.output].out_shape
    if is_map(shape) and not flatten_is_identity(shape):
        nodes.append(GraphNode(RemapStage(1), [readout], [new_link()]))
        flows[links - 1] = flows[readout]
        readout = links - 1
    counts: list[list[int]] = [[] for _ in range(links)]
    for link, tokens in flows.items():
        counts[link] = [len(t) for t in tokens]
    for node in nodes:  # the links inside a unit of several stages
        for o in node.outputs:
            if not counts[o]:
                counts[o] = _counts_out(node.stage, counts[node.inputs[0]])
    return nodes, links, number[(None, "spikes_in", "out")], readout, counts


def _timing(qnet: QuantNetwork, parallel: int, trace, sample: int, inputs: np.ndarray | None) -> Timing:
    if qnet.is_chain:
        return inference_timing(chain_stages(qnet, parallel, trace, sample, inputs))
    if inputs is None:
        raise ValueError("the cost model of a graph needs the input tokens (inputs)")
    return graph_timing(*graph_model(qnet, parallel, trace, sample, inputs))


def expected_timings(qnet: QuantNetwork, parallel: int, trace: GoldenTrace,
                     inputs: np.ndarray | None = None) -> list[Timing]:
    """Per inference of ``trace``, the model's timing of ``NetworkTop(qnet, parallel)``: a
    chain's (``chain_stages``, cycle-exact), or a graph's (``graph_model``)."""
    return [_timing(qnet, parallel, trace, b, inputs) for b in range(trace.batch)]


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
    return _timing(qnet, parallel, trace, 0, inputs)
