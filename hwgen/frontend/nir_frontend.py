"""NIR frontend: read a ``.nir`` graph (HDF5, written by ``nir.write``) into the float IR.

NIR describes neurons as continuous-time ODEs and carries neither a timestep nor a
subtractive reset; both come from the caller (``dt``, ``reset``) or from the exporting
framework's convention, and every assumption is returned as a note for the report. The
conversion formulas, and what is refused, are written down in docs/nir.md.

The node semantics were read from nir 1.0.8's source (``nir/ir/neuron.py``):

* ``IF``:  ``dv/dt = R*I``; spike when ``v > v_threshold``, then ``v = v_reset``.
* ``LIF``: ``tau*dv/dt = (v_leak - v) + R*I``; same spike and reset.
* ``CubaLIF``: ``tau_syn*dI/dt = -I + w_in*S``, ``tau_mem*dv/dt = (v_leak - v) + R*I``;
  discretised as the NIR repository's forward-Euler reference implementation does
  (docs/semantics.md, "CuBa neurons").

A NIR graph is a set of nodes and an unordered edge list; a node's input is the sum of
everything that has an edge into it. hwgen turns it into its graph IR (docs/nir.md,
"Graphs"): every neuron node with the synaptic node(s) before it becomes one layer (several
synapses are concatenated along the input dimension), a sum of spike streams becomes a
``SpikeSum``, and in every cycle the edge that closes it out of a neuron node is delayed by
one timestep. Order comes from following the edges from the Input node (node keys are
strings: sorting them would put "10" before "2").
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass, field

import numpy as np

from ..errors import HwgenError
from ..ir import INPUT, Edge, LIFNeurons, Network, Node, conv_output_size, graph_from
from ..kinds import Conv2d, Dense, Flatten, SpikeSum, SumPool2d

try:  # nir is a dependency, but keep the error readable if an install is broken.
    import h5py
    import nir
except ImportError as exc:  # pragma: no cover - exercised only on broken installs
    raise HwgenError(f"the nir package is not importable ({exc}); reinstall hwgen's "
                     "dependencies (pip install -e .)") from exc

SUPPORTED = ("Input, Output, Affine, Linear, Conv2d (dilation 1), IF, LIF, CubaLIF, "
             "SumPool2d, AvgPool2d, Flatten (to 1-D), Scale (between a synaptic layer and its "
             "neurons, or right before a synaptic layer), Threshold (right after a synaptic "
             "layer); cycles through neurons, several inputs per node, fan-out")

REASONS = {
    "CubaLI": "a leaky integrator without spikes (non-spiking readout)",
    "LI": "a leaky integrator without spikes (non-spiking readout)",
    "I": "an integrator without spikes",
    "Delay": "synaptic delays are not implemented",
    "Conv1d": "only 2-D convolutions are implemented",
    "NIRGraph": "a nested subgraph; flatten it into one graph (keys like 'lif1.lif') first",
}

_SYNAPSES = (nir.Affine, nir.Linear, nir.Conv2d)
_NEURONS = (nir.IF, nir.LIF, nir.CubaLIF, nir.Threshold)
_SUPPORTED_NODES = (nir.Input, nir.Output, nir.SumPool2d, nir.AvgPool2d, nir.Flatten,
                    nir.Scale) + _SYNAPSES + _NEURONS

# snnTorch 1.0 (export_nir.py) hard-codes dt = 1e-4 and writes tau = dt/(1-beta), r = tau/dt
# for Leaky; for Synaptic tau_syn = dt/(1-alpha), tau_mem = dt/(1-beta), r = tau_mem/dt,
# w_in = tau_syn/dt (the Braille graphs of the NIR paper follow it).
SNNTORCH_DT = 1e-4
# Parameters arrive as float32: a product that should be 1 (r*dt/tau for snnTorch's export)
# is off by a float32 rounding or two. Folding 1 +- 1e-7 into float32 weights would move
# some of them by one ulp, so such a scale is taken as exactly 1.
_UNIT_TOLERANCE = 1e-6

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _oneline(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _shape_str(shape) -> str:
    return "x".join(str(int(s)) for s in shape) if len(shape) else "scalar"


# ============================================================================ reading

def _read_graph(path: str) -> "nir.NIRGraph":
    if not os.path.exists(path):
        raise HwgenError(f"NIR file '{path}' does not exist; check the path")
    if os.path.isdir(path):
        raise HwgenError(f"NIR file '{path}' is a directory, not a file written by nir.write")
    with open(path, "rb") as fh:
        head = fh.read(len(_HDF5_SIGNATURE))
    if not head:
        raise HwgenError(f"NIR file '{path}' is empty")
    try:
        with h5py.File(path, "r") as f:
            keys = sorted(f.keys())
            if "node" not in keys or not isinstance(f["node"], h5py.Group):
                found = ", ".join(keys[:8]) or "nothing"
                raise HwgenError(f"NIR file '{path}' is an HDF5 file but holds no NIR graph (no "
                                 f"'node' group; it contains: {found}); write the graph with "
                                 "nir.write(path, graph)")
    except HwgenError:
        raise
    except OSError as exc:
        if head != _HDF5_SIGNATURE:
            raise HwgenError(f"NIR file '{path}' is not an HDF5 file (NIR graphs are HDF5, "
                             "written by nir.write); check that this is the exported "
                             "graph") from exc
        raise HwgenError(f"NIR file '{path}' is a damaged or truncated HDF5 file "
                         f"({_oneline(exc)}); export the graph again") from exc
    try:
        # type_check=False: nir's own inference would add Input/Output nodes to dangling
        # ends and raise multi-line errors; the checks below name the node at fault.
        graph = nir.read(path, type_check=False)
    except OSError as exc:
        raise HwgenError(f"NIR file '{path}' is a damaged or truncated HDF5 file "
                         f"({_oneline(exc)}); export the graph again") from exc
    except Exception as exc:  # KeyError, ValueError, AssertionError, TypeError from nir
        raise HwgenError(f"NIR file '{path}' could not be read as a NIR graph "
                         f"({type(exc).__name__}: {_oneline(exc)}); it may come from an "
                         f"incompatible NIR version (hwgen reads nir {_nir_version()})") from exc
    if not isinstance(graph, nir.NIRGraph):
        raise HwgenError(f"NIR file '{path}' holds a single {type(graph).__name__} node, not a "
                         "NIRGraph; export the whole network")
    return graph


def _nir_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nir")
    except PackageNotFoundError:  # pragma: no cover
        return "?"




# ============================================================================ graph structure

def _kind(node) -> str:
    return type(node).__name__


@dataclass
class _Topology:
    """The NIR graph's edges as lists, in the file's edge order, and the order in which the
    nodes are first reached from the Input node (depth first, successors in edge order)."""

    nodes: dict
    pred: dict[str, list[str]]
    succ: dict[str, list[str]]
    input_key: str
    output_key: str
    order: list[str]


def _topology(graph: "nir.NIRGraph", where: str) -> _Topology:
    nodes = graph.nodes
    edges = [(str(a), str(b)) for a, b in graph.edges]
    for a, b in edges:
        for key in (a, b):
            if key not in nodes:
                raise HwgenError(f"{where}: edge ({a!r} -> {b!r}) names node {key!r}, which "
                                 "is not in the graph")
    seen_edges: set[tuple[str, str]] = set()
    for edge in edges:
        if edge in seen_edges:
            raise HwgenError(f"{where}: the edge {edge[0]!r} -> {edge[1]!r} is listed twice; "
                             "remove the duplicate (NIR would add that input twice)")
        seen_edges.add(edge)
    for key, node in nodes.items():
        if not isinstance(node, _SUPPORTED_NODES):
            kind = _kind(node)
            why = f" ({REASONS[kind]})" if kind in REASONS else ""
            raise HwgenError(f"{where}: node {key!r} is {kind}, which hwgen does not "
                             f"support{why}; supported: {SUPPORTED}")
    succ: dict[str, list[str]] = {k: [] for k in nodes}
    pred: dict[str, list[str]] = {k: [] for k in nodes}
    for a, b in edges:
        succ[a].append(b)
        pred[b].append(a)

    inputs = [k for k, n in nodes.items() if isinstance(n, nir.Input)]
    outputs = [k for k, n in nodes.items() if isinstance(n, nir.Output)]
    if len(inputs) != 1:
        raise HwgenError(f"{where}: {len(inputs)} Input nodes ({', '.join(map(repr, inputs))}); "
                         "hwgen needs exactly one Input node")
    if len(outputs) != 1:
        raise HwgenError(f"{where}: {len(outputs)} Output nodes "
                         f"({', '.join(map(repr, outputs))}); hwgen needs exactly one Output node")
    for key in (inputs[0], outputs[0]):
        for other in (pred if key == inputs[0] else succ)[key]:
            raise HwgenError(f"{where}: node {key!r} ({_kind(nodes[key])}) has an edge "
                             f"{'from' if key == inputs[0] else 'to'} node {other!r}; the Input "
                             "node takes nothing and the Output node feeds nothing")

    order: list[str] = []  # depth-first preorder from the Input node, successors in edge order
    stack = [inputs[0]]
    reached = set()
    while stack:
        key = stack.pop()
        if key in reached:
            continue
        reached.add(key)
        order.append(key)
        stack.extend(reversed(succ[key]))
    stray = [k for k in nodes if k not in reached]
    if stray:
        raise HwgenError(f"{where}: node(s) {', '.join(map(repr, stray))} cannot be reached from "
                         f"the Input node {inputs[0]!r} (dangling); remove them")
    useful = {outputs[0]}
    stack = [outputs[0]]
    while stack:
        for p in pred[stack.pop()]:
            if p not in useful:
                useful.add(p)
                stack.append(p)
    useless = [k for k in order if k not in useful]
    if useless:
        # name the node where the path stops (it has no successor), the one to look at
        key = next((k for k in useless if not succ[k]), useless[0])
        raise HwgenError(f"{where}: node {key!r} ({_kind(nodes[key])}) leads nowhere: no "
                         f"path from it reaches the Output node {outputs[0]!r}; remove it "
                         "or connect it")
    return _Topology(nodes, pred, succ, inputs[0], outputs[0], order)


def _schedule(names: list[str], sources: dict[str, list[str]], neurons: set[str],
              where: str) -> tuple[list[str], dict[str, list[Edge]]]:
    """Delays and evaluation order for hwgen's nodes (``names`` in creation order, which
    follows the NIR graph from its Input node; ``sources[name]`` the inputs of each).

    Depth first from the network input, consumers in creation order: an edge back into a
    node still on the path closes a cycle. Its delay goes on the last edge of that cycle
    that leaves spiking neurons (a neuron's spikes of step t feed step t + 1), normally the
    back edge itself (``lif -> w_rec -> lif``). Repeated until no delay-0 cycle is left; then
    the nodes are ordered so that every delay-0 source comes first, the earliest-created
    ready node first (a chain keeps its order)."""
    rank = {name: i for i, name in enumerate(names)}
    delayed: set[tuple[str, int]] = set()  # (consumer, input index)
    consumers: dict[str, list[tuple[str, int]]] = {name: [] for name in [INPUT] + names}
    for name in names:
        for i, src in enumerate(sources[name]):
            consumers[src].append((name, i))
    for src in consumers:
        consumers[src].sort(key=lambda ci: (rank[ci[0]], ci[1]))

    while True:
        back = _back_edge(consumers, delayed)
        if back is None:
            break
        path, (consumer, index) = back  # path: the nodes from the cycle's start to the edge's source
        cycle = path + [consumer]
        start = cycle.index(consumer)
        loop = cycle[start:]  # consumer ... source, consumer
        for pos in range(len(loop) - 2, -1, -1):
            if loop[pos] in neurons:
                nxt = loop[pos + 1]
                if pos == len(loop) - 2:
                    delayed.add((consumer, index))
                else:
                    idx = next(i for i, s in enumerate(sources[nxt])
                               if s == loop[pos] and (nxt, i) not in delayed)
                    delayed.add((nxt, idx))
                break
        else:  # the frontend makes every cycle pass through neurons; keep the guard honest
            raise HwgenError(f"{where}: nodes {' -> '.join(map(repr, loop))} form a cycle "
                             "without spiking neurons; a cycle needs neurons, whose spikes "
                             "of one timestep feed the next")

    indegree = {name: sum(1 for i in range(len(sources[name])) if (name, i) not in delayed)
                for name in names}
    for name in names:
        indegree[name] -= sum(1 for i, s in enumerate(sources[name])
                              if s == INPUT and (name, i) not in delayed)
    ready = sorted((n for n in names if indegree[n] == 0), key=rank.__getitem__)
    order: list[str] = []
    while ready:
        name = ready.pop(0)
        order.append(name)
        for consumer, i in consumers[name]:
            if (consumer, i) in delayed:
                continue
            indegree[consumer] -= 1
            if indegree[consumer] == 0:
                ready.append(consumer)
                ready.sort(key=rank.__getitem__)
    assert len(order) == len(names), "every delay-0 cycle was broken above"
    inputs = {name: [Edge(s, 1 if (name, i) in delayed else 0) for i, s in enumerate(sources[name])]
              for name in names}
    return order, inputs


def _back_edge(consumers: dict[str, list[tuple[str, int]]], delayed: set
               ) -> tuple[list[str], tuple[str, int]] | None:
    """The first delay-0 edge (consumer, index) that closes a cycle in a depth-first walk
    from the network input, with the walk's path to its source; ``None`` if acyclic."""
    state: dict[str, int] = {INPUT: 1}  # 1 on the current path, 2 done
    path = [INPUT]
    iters = [iter(consumers[INPUT])]
    while path:
        nxt = next(iters[-1], None)
        if nxt is None:
            state[path.pop()] = 2
            iters.pop()
            continue
        if nxt in delayed:
            continue
        name = nxt[0]
        if state.get(name) == 1:
            return list(path), nxt
        if name not in state:
            state[name] = 1
            path.append(name)
            iters.append(iter(consumers[name]))
    return None
@dataclass
class _Synapse:
    """A synaptic layer waiting for its neurons."""

    key: str
    kind: str  # "dense" | "conv"
    weight: np.ndarray  # float64
    bias: np.ndarray  # float64
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    groups: int = 1
    scaled_by: list[str] = field(default_factory=list)
    source: str = INPUT  # the hwgen node (or the network input) whose spikes it takes

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of the current it delivers."""
        return self.output_shape

    @property
    def kind_name(self) -> str:
        return "Conv2d" if self.kind == "conv" else "Affine/Linear"


@dataclass
class _Pending:
    """Factors waiting for the next synaptic layer's input weights."""

    factor: np.ndarray | None = None  # broadcastable to the current shape
    keys: list[str] = field(default_factory=list)

    def add(self, key: str, factor: np.ndarray) -> None:
        self.factor = factor if self.factor is None else self.factor * factor
        self.keys.append(key)


def _pair(node_key: str, kind: str, param: str, value, where: str) -> tuple[int, int]:
    arr = np.asarray(value).reshape(-1)
    if arr.size == 1:
        arr = np.repeat(arr, 2)
    if arr.size != 2 or not np.all(np.equal(np.mod(arr, 1), 0)):
        raise HwgenError(f"{where}: {kind} node {node_key!r}: {param} {np.asarray(value).tolist()} "
                         "is not one or two integers")
    return int(arr[0]), int(arr[1])


def _array(node_key: str, kind: str, param: str, value, where: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise HwgenError(f"{where}: {kind} node {node_key!r}: parameter '{param}' is not "
                         f"numeric ({_oneline(exc)})") from exc
    return arr


def _finite(node_key: str, kind: str, param: str, arr: np.ndarray, where: str) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        raise HwgenError(f"{where}: {kind} node {node_key!r}: parameter '{param}' has "
                         f"{int(bad.sum())} NaN/inf value(s); the exported network is broken")


def _check_type(node_key: str, node, prev_key: str, prev_kind: str, shape: tuple[int, ...],
                where: str) -> None:
    """The node's declared input type (if any) must be what the previous node produces."""
    declared = (node.input_type or {}).get("input") if isinstance(node.input_type, dict) else None
    if declared is None:
        return
    declared = tuple(int(s) for s in np.asarray(declared).reshape(-1))
    if declared != tuple(shape):
        hint = ""
        if len(shape) == len(declared) + 1 and shape[0] == 1 and shape[1:] == declared:
            hint = (" (the shape has an extra leading 1: a batch dimension; export with an "
                    "unbatched sample input)")
        elif len(declared) == 1 and len(shape) > 1 and declared[0] == int(np.prod(shape)):
            hint = " (add a Flatten node before it)"
        raise HwgenError(f"{where}: node {node_key!r} ({type(node).__name__}) takes input "
                         f"{_shape_str(declared)} but node {prev_key!r} ({prev_kind}) produces "
                         f"{_shape_str(shape)}{hint}; the graph's shapes do not match")


def _per_output(node_key: str, kind: str, param: str, value, syn: _Synapse,
                prev_key: str, where: str) -> np.ndarray:
    """A neuron parameter as one value per output neuron (Dense) or output channel (Conv)."""
    arr = _array(node_key, kind, param, value, where)
    _finite(node_key, kind, param, arr, where)
    shape = syn.output_shape
    if arr.size == 1:
        arr = np.full(shape, float(arr.reshape(-1)[0]))
    if tuple(arr.shape) != tuple(shape):
        raise HwgenError(f"{where}: {kind} node {node_key!r}: parameter '{param}' has shape "
                         f"{_shape_str(arr.shape)} but node {prev_key!r} produces "
                         f"{_shape_str(shape)}; the graph's shapes do not match")
    if syn.kind == "dense":
        return arr.astype(np.float64)
    flat = arr.reshape(shape[0], -1)
    uneven = np.flatnonzero(np.any(flat != flat[:, :1], axis=1))
    if uneven.size:
        raise HwgenError(f"{where}: {kind} node {node_key!r}: parameter '{param}' differs "
                         f"between positions of output channel {int(uneven[0])} (of Conv2d "
                         f"{prev_key!r}); hwgen needs neuron parameters uniform per channel")
    return flat[:, 0].astype(np.float64)


def _fold_output_scale(syn: _Synapse, scale: np.ndarray, by: str) -> None:
    """Multiply what the synapse delivers to neuron/channel i by ``scale[i]``."""
    if np.all(np.abs(scale - 1.0) <= _UNIT_TOLERANCE):
        return
    syn.weight = syn.weight * scale.reshape((-1,) + (1,) * (syn.weight.ndim - 1))
    syn.bias = syn.bias * scale
    syn.scaled_by.append(by)


@dataclass
class _Stream:
    """Spikes (or counts) on their way to the next synaptic layer: the hwgen node that
    produces them (or ``INPUT``), their shape, the NIR node that delivered them last (for
    messages), and factors waiting to be folded into the next synaptic layer's input weights
    (AvgPool2d's divisor, a Scale)."""

    source: str
    shape: tuple[int, ...]
    key: str
    kind: str
    pending: _Pending = field(default_factory=_Pending)


def import_nir(path: str, dt: float | None = None,
               reset: str | None = None) -> tuple[Network, list[str]]:
    """Read the NIR graph in ``path`` into hwgen's float IR.

    ``dt`` is the timestep used to discretise LIF and CubaLIF nodes (``beta = 1 - dt/tau``);
    by default snnTorch's 1e-4 when those nodes follow snnTorch's export convention.
    ``reset`` is ``"subtract"`` (default: what Sinabs and snnTorch compute, though NIR
    cannot say so) or ``"zero"`` (NIR's literal ``v = v_reset``). Returns the network and
    the notes for the report (which dt and reset were assumed, and why).
    """
    path = str(path)
    where = f"NIR file '{path}'"
    if reset is not None and reset not in ("subtract", "zero"):
        raise HwgenError(f"--reset must be 'subtract' or 'zero', got {reset!r}")
    if dt is not None and not (math.isfinite(dt) and dt > 0):
        raise HwgenError(f"--dt must be a positive number of seconds, got {dt!r}")

    graph = _read_graph(path)
    topo = _topology(graph, where)
    notes: list[str] = []
    dt, dt_note = _choose_dt(topo.order, topo.nodes, dt, where)
    if dt_note:
        notes.append(dt_note)
    if reset is None:
        reset = "subtract"
        notes.append("reset: subtract (assumed): NIR only knows v = v_reset after a spike, but "
                     "Sinabs and snnTorch, which export NIR, subtract the threshold; pass "
                     "--reset zero for NIR's literal reset to v_reset")
    else:
        notes.append(f"reset: {reset} (given)")
    return _Converter(topo, path, where, dt, reset, notes).network(), notes


class _Converter:
    """Builds hwgen's nodes from the NIR graph: ``value(key)`` is what a NIR node delivers
    to its consumers (a ``_Stream`` of spikes or a ``_Synapse``'s current), computed from its
    inputs on demand; neuron nodes deliver their spikes without looking at their inputs,
    which is what lets a cycle through neurons resolve."""

    def __init__(self, topo: _Topology, path: str, where: str, dt: float | None, reset: str,
                 notes: list[str]) -> None:
        self.topo, self.nodes, self.path, self.where = topo, topo.nodes, path, where
        self.dt, self.reset, self.notes = dt, reset, notes
        self.values: dict[str, _Stream | _Synapse] = {}
        self.resolving: list[str] = []  # keys being resolved, consumer first
        self.created: list[Node] = []
        self.sources: dict[str, list[str]] = {}
        in_node = self.nodes[topo.input_key]
        self.in_shape = tuple(int(s) for s in np.asarray(in_node.input_type["input"]).reshape(-1))
        if not self.in_shape or min(self.in_shape) < 1:
            raise HwgenError(f"{where}: Input node {topo.input_key!r} has shape "
                             f"{list(self.in_shape)}; expected positive sizes")

    # ---- the network

    def network(self) -> Network:
        where, topo = self.where, self.topo
        neuron_keys = [k for k in topo.order if isinstance(self.nodes[k], _NEURONS)]
        for key in neuron_keys:
            self._neuron_layer(key)
        output_layer = self._output()
        if not any(layer.has_neurons for layer in self.created):
            raise HwgenError(f"{where}: the graph has no synaptic layer followed by neurons; "
                             "nothing to build")
        names = [layer.name for layer in self.created]
        if len(set(names)) != len(names) or INPUT in names:
            dup = next(n for n in names if names.count(n) > 1 or n == INPUT)
            raise HwgenError(f"{where}: two of hwgen's layers would be named {dup!r} (or a layer "
                             f"is named {INPUT!r}, the network input's name); rename the NIR node")
        neurons = {layer.name for layer in self.created if layer.has_neurons}
        order, inputs = _schedule(names, self.sources, neurons, where)
        by_name = {layer.name: layer for layer in self.created}
        layers = [by_name[name] for name in order]
        last = [layer.name for layer in layers if layer.has_neurons][-1]
        net = Network(input_shape=self.in_shape, layers=layers, source=self.path,
                      inputs=graph_from(layers, inputs),
                      output="" if output_layer == last else output_layer)
        try:
            net.check_graph()
        except ValueError as exc:  # a frontend bug if it happens; still one line
            raise HwgenError(f"{where}: {exc}") from exc
        if any(isinstance(self.nodes[k], nir.IF) for k in neuron_keys):
            self.notes.append("IF neurons fire at most one spike per timestep and have no lower "
                              "membrane bound (Sinabs' IAF can fire several spikes per step and "
                              "its NIR import clamps the membrane at -threshold); see docs/nir.md")
        delayed = [f"{e.source} -> {name}" for name, edges in inputs.items() for e in edges if e.delay]
        if delayed:
            self.notes.append("recurrent edges, delayed by one timestep (spikes of step t feed "
                              f"step t+1): {', '.join(delayed)}")
        return net

    def _add(self, layer: Node, sources: list[str]) -> None:
        self.created.append(layer)
        self.sources[layer.name] = list(sources)

    def _output(self) -> str:
        """The spiking layer whose spikes the Output node reads."""
        key = self.topo.output_key
        node, where = self.nodes[key], self.where
        preds = self.topo.pred[key]
        if len(preds) != 1:
            raise HwgenError(f"{where}: Output node {key!r} receives from {len(preds)} nodes "
                             f"({', '.join(map(repr, preds))}); hwgen reads out one spiking layer")
        prev = preds[0]
        value = self.value(prev)
        _check_type(key, node, prev, _kind(self.nodes[prev]), value.shape, where)
        if isinstance(value, _Synapse):
            raise HwgenError(f"{where}: {value.kind_name} node {value.key!r} is the last layer "
                             "but has no IF/LIF neurons after it; hwgen's layers are synapses "
                             "followed by spiking neurons")
        declared = (node.output_type or {}).get("output")
        if declared is not None:
            declared = tuple(int(s) for s in np.asarray(declared).reshape(-1))
            if declared != tuple(value.shape):
                raise HwgenError(f"{where}: Output node {key!r} has shape "
                                 f"{_shape_str(declared)} but node {prev!r} ({_kind(self.nodes[prev])}) "
                                 f"produces {_shape_str(value.shape)}; the graph's shapes do not match")
        if value.pending.factor is not None:
            last = value.pending.keys[-1]
            raise HwgenError(f"{where}: node {last!r} ({_kind(self.nodes[last])}) is not "
                             "followed by a synaptic layer its factor could be folded into")
        # Through pools and flattens (spikes only) back to the neurons that make them.
        name = value.source
        by_name = {layer.name: layer for layer in self.created}
        while name != INPUT and not by_name[name].has_neurons and len(self.sources[name]) == 1:
            name = self.sources[name][0]
        if name == INPUT or not by_name[name].has_neurons:
            raise HwgenError(f"{where}: Output node {key!r} reads node {prev!r}, which carries no "
                             "single spiking layer's spikes (the readout counts one layer's spikes)")
        return name

    # ---- what a node delivers

    def value(self, key: str) -> _Stream | _Synapse:
        if key in self.values:
            return self.values[key]
        node, kind, where = self.nodes[key], _kind(self.nodes[key]), self.where
        if isinstance(node, _NEURONS):
            value = _Stream(self._layer_name(key), self._neuron_shape(key), key, kind)
            self.values[key] = value
            return value
        if isinstance(node, nir.Input):
            value = _Stream(INPUT, self.in_shape, key, "Input")
            self.values[key] = value
            return value
        if key in self.resolving:
            loop = self.resolving[self.resolving.index(key):][::-1] + [key]
            raise HwgenError(f"{where}: nodes {' -> '.join(map(repr, [loop[-1]] + loop[:-1]))} "
                             "form a cycle without spiking neurons (IF, LIF, CubaLIF, "
                             "Threshold); a cycle needs neurons, whose spikes of one timestep "
                             "feed the next")
        self.resolving.append(key)
        preds = self.topo.pred[key]
        ins = [self.value(p) for p in preds]
        for p, v in zip(preds, ins):
            _check_type(key, node, p, _kind(self.nodes[p]), v.shape, where)
        if isinstance(node, nir.Scale):
            value = self._scale(key, node, preds, ins)
        else:
            stream = self._joined(key, kind, preds, ins)
            if isinstance(node, (nir.Affine, nir.Linear)):
                value = self._dense_synapse(key, node, stream)
            elif isinstance(node, nir.Conv2d):
                value = _conv(key, node, stream.shape, stream.key, stream.kind, stream.pending, where)
                value.source = stream.source
            elif isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
                value = self._pool(key, node, stream)
            else:  # Flatten
                value = self._flatten(key, node, stream)
        self.resolving.pop()
        self.values[key] = value
        return value

    def _joined(self, key: str, kind: str, preds: list[str], ins: list) -> _Stream:
        """The one spike stream a non-neuron node takes: its input, or the sum of its inputs
        (a ``SpikeSum``: NIR adds everything that enters a node)."""
        where = self.where
        for p, v in zip(preds, ins):
            if isinstance(v, _Synapse):
                raise HwgenError(f"{where}: {kind} node {key!r} follows {v.kind_name} node "
                                 f"{v.key!r} directly; a synaptic layer must be followed by its "
                                 "neurons (pooling applies to spikes, not to membrane currents)")
        if len(ins) == 1:
            return ins[0]
        shapes = {tuple(v.shape) for v in ins}
        if len(shapes) != 1:
            detail = ", ".join(f"{p!r} {_shape_str(v.shape)}" for p, v in zip(preds, ins))
            raise HwgenError(f"{where}: node {key!r} ({kind}) sums inputs of different shapes "
                             f"({detail}); the graph's shapes do not match")
        for v in ins:
            if v.pending.factor is not None:
                first = v.pending.keys[0]
                raise HwgenError(f"{where}: node {first!r} ({_kind(self.nodes[first])}) feeds the "
                                 f"sum of inputs at node {key!r}; hwgen folds its factor only into "
                                 "a synaptic layer that takes it alone")
        merge = SpikeSum(f"{key}.sum", tuple(ins[0].shape))
        self._add(merge, [v.source for v in ins])
        return _Stream(merge.name, tuple(ins[0].shape), preds[0], _kind(self.nodes[preds[0]]))

    def _scale(self, key: str, node, preds: list[str], ins: list) -> _Stream | _Synapse:
        where, kind = self.where, "Scale"
        if len(ins) != 1:
            raise HwgenError(f"{where}: Scale node {key!r} takes {len(ins)} inputs; hwgen folds a "
                             "Scale with one input only")
        scale = _array(key, kind, "scale", node.scale, where)
        _finite(key, kind, "scale", scale, where)
        value = ins[0]
        if isinstance(value, _Synapse):  # scales the current into the neurons
            syn = copy.deepcopy(value)
            _fold_output_scale(syn, _per_output(key, kind, "scale", scale, syn, preds[0], where), key)
            return syn
        if scale.size != 1 and tuple(scale.shape) != tuple(value.shape):
            raise HwgenError(f"{where}: Scale node {key!r} has shape {_shape_str(scale.shape)} but "
                             f"node {preds[0]!r} ({value.kind}) produces {_shape_str(value.shape)}")
        pending = copy.deepcopy(value.pending)
        pending.add(key, scale if scale.size != 1 else scale.reshape(()))
        return _Stream(value.source, value.shape, key, kind, pending)

    def _no_scale_pending(self, key: str, kind: str, stream: _Stream) -> None:
        scales = [k for k in stream.pending.keys if isinstance(self.nodes[k], nir.Scale)]
        if scales:
            raise HwgenError(f"{self.where}: Scale node {scales[0]!r} is followed by {kind} node "
                             f"{key!r}; hwgen folds a Scale into the weights only between a "
                             "synaptic layer and its neurons or right before a synaptic layer")

    def _dense_synapse(self, key: str, node, stream: _Stream) -> _Synapse:
        where, kind, shape = self.where, _kind(node), stream.shape
        weight = _array(key, kind, "weight", node.weight, where)
        if weight.ndim != 2:
            raise HwgenError(f"{where}: {kind} node {key!r} has a {weight.ndim}-D weight "
                             f"{_shape_str(weight.shape)}; expected [out, in]")
        n_out, n_in = weight.shape
        if tuple(shape) != (n_in,):
            hint = (" (add a Flatten node before it)" if len(shape) > 1
                    and int(np.prod(shape)) == n_in else "")
            raise HwgenError(f"{where}: {kind} node {key!r} takes {n_in} inputs but node "
                             f"{stream.key!r} ({stream.kind}) produces {_shape_str(shape)}{hint}; "
                             "the graph's shapes do not match")
        _finite(key, kind, "weight", weight, where)
        if isinstance(node, nir.Affine):
            bias = _array(key, kind, "bias", node.bias, where).reshape(-1)
            _finite(key, kind, "bias", bias, where)
            if bias.size != n_out:
                raise HwgenError(f"{where}: {kind} node {key!r}: bias has {bias.size} values "
                                 f"for {n_out} outputs")
        else:
            bias = np.zeros(n_out)
        if stream.pending.factor is not None:
            weight = weight * np.broadcast_to(stream.pending.factor, shape).reshape(1, n_in)
        return _Synapse(key, "dense", weight, bias, tuple(shape), (n_out,), source=stream.source)

    def _pool(self, key: str, node, stream: _Stream) -> _Stream:
        where, kind, shape = self.where, _kind(node), stream.shape
        self._no_scale_pending(key, kind, stream)
        if len(shape) != 3:
            raise HwgenError(f"{where}: {kind} node {key!r} needs a (C, H, W) input but node "
                             f"{stream.key!r} ({stream.kind}) produces {_shape_str(shape)}")
        kernel = _pair(key, kind, "kernel_size", node.kernel_size, where)
        stride = _pair(key, kind, "stride", node.stride, where)
        padding = _pair(key, kind, "padding", node.padding, where)
        if min(kernel) < 1 or min(stride) < 1 or min(padding) < 0:
            raise HwgenError(f"{where}: {kind} node {key!r}: kernel {kernel}, stride {stride}, "
                             f"padding {padding} are not valid")
        pending = copy.deepcopy(stream.pending)
        if isinstance(node, nir.AvgPool2d):
            if padding != (0, 0):
                raise HwgenError(f"{where}: AvgPool2d node {key!r} has padding {padding}; "
                                 "the divisor at the borders is ambiguous, hwgen supports "
                                 "AvgPool2d without padding only")
            pending.add(key, np.array(1.0 / (kernel[0] * kernel[1])))
        pool = SumPool2d(key, tuple(shape), kernel, stride, padding)
        out = pool.output_shape
        if min(out) < 1:
            raise HwgenError(f"{where}: {kind} node {key!r}: a {kernel} window does not fit "
                             f"the input {_shape_str(shape)}")
        self._add(pool, [stream.source])
        return _Stream(key, tuple(out), key, kind, pending)

    def _flatten(self, key: str, node, stream: _Stream) -> _Stream:
        self._no_scale_pending(key, "Flatten", stream)
        shape = stream.shape
        out = _flatten_shape(key, node, shape, stream.key, stream.kind, self.where)
        source = stream.source
        if len(shape) > 1:
            self._add(Flatten(key, tuple(shape)), [stream.source])
            source = key
        return _Stream(source, tuple(out), key, "Flatten", copy.deepcopy(stream.pending))

    # ---- neurons

    def _synapse_before(self, key: str) -> str | None:
        """The synaptic node that is a neuron node's only input (through Scale nodes), if it
        feeds nothing else."""
        preds = self.topo.pred[key]
        if len(preds) != 1:
            return None
        k = preds[0]
        while isinstance(self.nodes[k], nir.Scale) and len(self.topo.pred[k]) == 1:
            if len(self.topo.succ[k]) != 1:
                return None
            k = self.topo.pred[k][0]
        if isinstance(self.nodes[k], _SYNAPSES) and len(self.topo.succ[k]) == 1:
            return k
        return None

    def _layer_name(self, key: str) -> str:
        """A layer is named after its synaptic node when that is its only input (as for a
        chain, whose JSON then stays what it was), else after the neuron node."""
        return self._synapse_before(key) or key

    def _neuron_shape(self, key: str) -> tuple[int, ...]:
        node = self.nodes[key]
        param = node.threshold if isinstance(node, nir.Threshold) else node.v_threshold
        return tuple(int(s) for s in np.shape(param))

    def _neuron_layer(self, key: str) -> None:
        node, kind, where = self.nodes[key], _kind(self.nodes[key]), self.where
        preds = self.topo.pred[key]
        currents: list[_Synapse] = []
        for p in preds:
            value = self.value(p)
            _check_type(key, node, p, _kind(self.nodes[p]), value.shape, where)
            if not isinstance(value, _Synapse):
                raise HwgenError(f"{where}: {kind} node {key!r} follows node {p!r} "
                                 f"({_kind(self.nodes[p])}), not a synaptic layer; hwgen needs "
                                 "neurons right after an Affine, Linear or Conv2d node")
            currents.append(copy.deepcopy(value))
        first = currents[0]
        for p, syn in zip(preds[1:], currents[1:]):
            if syn.kind != first.kind or syn.output_shape != first.output_shape:
                raise HwgenError(f"{where}: {kind} node {key!r} sums the currents of "
                                 f"{first.kind_name} node {first.key!r} ({_shape_str(first.output_shape)}) "
                                 f"and {syn.kind_name} node {syn.key!r} ({_shape_str(syn.output_shape)}); "
                                 "hwgen adds several inputs of one kind and output shape only")
            if syn.kind == "conv" and (syn.weight.shape[2:] != first.weight.shape[2:]
                                       or syn.stride != first.stride or syn.padding != first.padding
                                       or syn.input_shape[1:] != first.input_shape[1:]
                                       or syn.groups != 1 or first.groups != 1):
                raise HwgenError(f"{where}: {kind} node {key!r} sums Conv2d nodes {first.key!r} "
                                 f"and {syn.key!r} of different geometry (kernel, stride, padding, "
                                 "input size, or groups > 1); hwgen stacks the channels of several "
                                 "conv inputs under one kernel geometry with groups = 1")
        layer = _neurons(key, node, currents, self._layer_name(key), self.reset, self.dt,
                         where, self.notes)
        self._add(layer, [syn.source for syn in currents])
def _conv(key: str, node, shape: tuple[int, ...], prev_key: str, prev_kind: str,
          pending: _Pending, where: str) -> _Synapse:
    kind = "Conv2d"
    weight = _array(key, kind, "weight", node.weight, where)
    if weight.ndim != 4:
        raise HwgenError(f"{where}: Conv2d node {key!r} has a {weight.ndim}-D weight; expected "
                         "[C_out, C_in/groups, kh, kw]")
    _finite(key, kind, "weight", weight, where)
    if len(shape) != 3:
        raise HwgenError(f"{where}: Conv2d node {key!r} needs a (C, H, W) input but node "
                         f"{prev_key!r} ({prev_kind}) produces {_shape_str(shape)}")
    groups = int(np.asarray(node.groups).reshape(-1)[0])
    c_out, c_in_g, kh, kw = weight.shape
    if groups < 1 or c_out % groups or shape[0] != c_in_g * groups:
        raise HwgenError(f"{where}: Conv2d node {key!r} takes {c_in_g * groups} input channels "
                         f"(groups={groups}) but node {prev_key!r} ({prev_kind}) produces "
                         f"{_shape_str(shape)}; the graph's shapes do not match")
    dilation = _pair(key, kind, "dilation", node.dilation, where)
    if dilation != (1, 1):
        raise HwgenError(f"{where}: Conv2d node {key!r} has dilation {dilation}; hwgen supports "
                         "dilation 1 only")
    stride = _pair(key, kind, "stride", node.stride, where)
    padding_value = node.padding
    if isinstance(padding_value, bytes):
        padding_value = padding_value.decode()
    if isinstance(padding_value, str):
        if padding_value == "valid":
            padding = (0, 0)
        elif padding_value == "same" and stride == (1, 1) and kh % 2 and kw % 2:
            padding = ((kh - 1) // 2, (kw - 1) // 2)
        else:
            raise HwgenError(f"{where}: Conv2d node {key!r} has padding {padding_value!r} with "
                             f"stride {stride} and kernel {kh}x{kw}; give explicit padding")
    else:
        padding = _pair(key, kind, "padding", padding_value, where)
    if min(stride) < 1 or min(padding) < 0:
        raise HwgenError(f"{where}: Conv2d node {key!r}: stride {stride} / padding {padding} "
                         "are not valid")
    bias = _array(key, kind, "bias", node.bias, where).reshape(-1)
    if bias.size == 1 and c_out != 1:
        bias = np.full(c_out, float(bias[0]))
    if bias.size != c_out:
        raise HwgenError(f"{where}: Conv2d node {key!r}: bias has {bias.size} values for "
                         f"{c_out} output channels")
    _finite(key, kind, "bias", bias, where)
    out = (c_out, conv_output_size(shape[1], kh, stride[0], padding[0]),
           conv_output_size(shape[2], kw, stride[1], padding[1]))
    if min(out) < 1:
        raise HwgenError(f"{where}: Conv2d node {key!r}: a {kh}x{kw} kernel does not fit the "
                         f"input {_shape_str(shape)}")
    declared = (node.output_type or {}).get("output")
    if declared is not None and tuple(int(s) for s in np.asarray(declared).reshape(-1)) != out:
        raise HwgenError(f"{where}: Conv2d node {key!r} declares output "
                         f"{_shape_str(np.asarray(declared).reshape(-1))} but its input "
                         f"{_shape_str(shape)}, kernel, stride {stride} and padding {padding} "
                         f"give {_shape_str(out)}")
    if pending.factor is not None:
        factor = np.broadcast_to(pending.factor, shape).reshape(shape[0], -1)
        uneven = np.flatnonzero(np.any(factor != factor[:, :1], axis=1))
        if uneven.size:
            raise HwgenError(f"{where}: Scale node {pending.keys[-1]!r} before Conv2d node "
                             f"{key!r} differs between positions of input channel "
                             f"{int(uneven[0])}; only per-channel scales fold into a conv")
        per_in = factor[:, 0]  # one factor per input channel
        full = np.empty((c_out, c_in_g))
        for c in range(c_out):
            g = c // (c_out // groups)
            full[c] = per_in[g * c_in_g:(g + 1) * c_in_g]
        weight = weight * full[:, :, None, None]
    return _Synapse(key, "conv", weight, bias, shape, out, stride, padding, groups)


def _flatten_shape(key: str, node, shape: tuple[int, ...], prev_key: str, prev_kind: str,
                   where: str) -> tuple[int, ...]:
    start, end = int(np.asarray(node.start_dim)), int(np.asarray(node.end_dim))
    nd = len(shape)
    s, e = (start + nd if start < 0 else start), (end + nd if end < 0 else end)
    if not (0 <= s < nd and 0 <= e < nd and s <= e):
        raise HwgenError(f"{where}: Flatten node {key!r} (start_dim={start}, end_dim={end}) does "
                         f"not fit its input {_shape_str(shape)} from node {prev_key!r}")
    out = shape[:s] + (int(np.prod(shape[s:e + 1])),) + shape[e + 1:]
    if len(out) != 1:
        raise HwgenError(f"{where}: Flatten node {key!r} (start_dim={start}, end_dim={end}) turns "
                         f"{_shape_str(shape)} into {_shape_str(out)}; hwgen supports only full "
                         "flattening to 1-D (NIR shapes have no batch dimension, so that is "
                         "start_dim=0, end_dim=-1)")
    return out




def _snntorch_convention(node) -> bool:
    """Whether a LIF / CubaLIF node's parameters are what snnTorch's export writes with
    dt = 1e-4: ``r = tau/dt`` (LIF), ``r = tau_mem/dt`` and ``w_in = tau_syn/dt`` (CubaLIF)."""
    pairs = ([(node.r, node.tau)] if isinstance(node, nir.LIF)
             else [(node.r, node.tau_mem), (node.w_in, node.tau_syn)])
    for gain, tau in pairs:
        gain = np.asarray(gain, dtype=np.float64)
        tau = np.asarray(tau, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(np.isinf(tau) & np.isinf(gain), 1.0, gain * SNNTORCH_DT / tau)
        if not np.all(np.abs(ratio - 1.0) <= _UNIT_TOLERANCE):
            return False
    return True


def _choose_dt(order: list[str], nodes: dict, dt: float | None,
               where: str) -> tuple[float | None, str]:
    timed = [k for k in order if isinstance(nodes[k], (nir.LIF, nir.CubaLIF))]
    if dt is not None:
        if not timed:
            return dt, (f"dt: {dt:g} s given, but the graph has no LIF nodes (nor CubaLIF): it does "
                        "not change anything (IF neurons integrate r*I per timestep)")
        return dt, f"dt: {dt:g} s (given)"
    if not timed:
        return None, ""
    for key in timed:
        node = nodes[key]
        if not _snntorch_convention(node):
            rule = ("r = tau/dt" if isinstance(node, nir.LIF)
                    else "r = tau_mem/dt, w_in = tau_syn/dt")
            raise HwgenError(f"{where}: {_kind(node)} node {key!r} needs a timestep to be "
                             "discretised and NIR stores none; its parameters do not follow "
                             f"snnTorch's export convention ({rule} with dt = {SNNTORCH_DT:g}), "
                             "so pass --dt (seconds per timestep) explicitly")
    kinds = sorted({_kind(nodes[k]) for k in timed})
    return SNNTORCH_DT, (f"dt: {SNNTORCH_DT:g} s (assumed): NIR stores no timestep; the "
                         f"{'/'.join(kinds)} nodes follow snnTorch's export convention "
                         f"(tau = dt/(1-beta), r = tau/dt, for CubaLIF also w_in = tau_syn/dt, "
                         f"with dt = {SNNTORCH_DT:g} hard-coded), so beta = 1 - dt/tau "
                         "recovers snnTorch's beta; pass --dt to override")


def _neurons(key: str, node, currents: list[_Synapse], name: str, reset: str,
             dt: float | None, where: str, notes: list[str]) -> Dense | Conv2d:
    """The layer of a neuron node and the synapses before it (``currents``, in the order of
    the NIR edges into the node; each becomes one input segment)."""
    kind = _kind(node)
    syn = currents[0]
    prev = syn.key

    def param(pname: str, value) -> np.ndarray:
        return _per_output(key, kind, pname, value, syn, prev, where)

    v_reset_values = None
    euler = None
    leak_bias = None  # LIF: k*v_leak, added to the first input's bias
    scale = None
    if isinstance(node, nir.Threshold):
        # z = H(I - thr) with no memory: a neuron whose membrane is forgotten every step.
        threshold = param("threshold", node.threshold)
        beta = np.zeros_like(threshold)
        neuron_reset = "none"
    else:
        threshold = param("v_threshold", node.v_threshold)
        v_reset = param("v_reset", node.v_reset)
        neuron_reset = reset
        if np.any(v_reset != 0):
            if reset == "zero":
                v_reset_values = v_reset
            else:
                notes.append(f"{kind} node {key!r}: v_reset = {v_reset[v_reset != 0][0]:g} is not "
                             "used by the subtract reset; pass --reset zero to reset to it")
        if isinstance(node, nir.IF):
            # dv/dt = R*I, integrated per timestep as v += r*I (Sinabs' IAF; snnTorch's
            # import): dt does not enter.
            beta = np.ones_like(threshold)
            scale = param("r", node.r)
        elif isinstance(node, nir.LIF):
            tau = _time_constant(key, kind, "tau", node.tau, syn, prev, where)
            r = _array(key, kind, "r", node.r, where)
            if np.any(np.isnan(r)):
                raise HwgenError(f"{where}: LIF node {key!r}: r must not be NaN")
            r = _inf_ok(key, kind, "r", r, syn, prev, where)
            v_leak = param("v_leak", node.v_leak)
            assert dt is not None
            with np.errstate(divide="ignore", invalid="ignore"):
                k = np.where(np.isinf(tau), 0.0, dt / tau)
                # tau = r = inf is what snnTorch writes for beta = 1 (r = tau/dt): r/tau = 1/dt.
                scale = np.where(np.isinf(tau) & np.isinf(r), 1.0, dt * r / tau)
            _decay_ok(key, kind, "tau", tau, k, dt, where)
            if not np.all(np.isfinite(scale)):
                raise HwgenError(f"{where}: LIF node {key!r}: r = inf with a finite tau gives an "
                                 "infinite input scale")
            beta = 1.0 - k
            if np.any(v_leak != 0):
                # Euler: v += k*(v_leak - v + r*I) = (1-k)*v + k*r*I + k*v_leak; the constant
                # k*v_leak enters every step, as a bias does.
                leak_bias = k * v_leak
        else:  # CubaLIF, in the forward-Euler form of the NIR repository's reference
            tau_syn = _time_constant(key, kind, "tau_syn", node.tau_syn, syn, prev, where)
            tau_mem = _time_constant(key, kind, "tau_mem", node.tau_mem, syn, prev, where)
            assert dt is not None
            k_syn = np.where(np.isinf(tau_syn), 0.0, dt / np.where(np.isinf(tau_syn), 1.0, tau_syn))
            k_mem = np.where(np.isinf(tau_mem), 0.0, dt / np.where(np.isinf(tau_mem), 1.0, tau_mem))
            _decay_ok(key, kind, "tau_syn", tau_syn, k_syn, dt, where)
            _decay_ok(key, kind, "tau_mem", tau_mem, k_mem, dt, where)
            euler = {"k_syn": k_syn, "k_mem": k_mem, "r": param("r", node.r),
                     "w_in": param("w_in", node.w_in), "v_leak": param("v_leak", node.v_leak)}
            euler = {k: v.astype(np.float32) for k, v in euler.items()}
            beta = 1.0 - euler["k_mem"].astype(np.float64)
        if scale is not None:
            for current in currents:
                _fold_output_scale(current, scale, key)
    if np.any(threshold <= 0):
        raise HwgenError(f"{where}: {kind} node {key!r}: threshold must be > 0 (found "
                         f"{threshold.min():g}); a neuron with threshold <= 0 fires at rest")
    neurons = LIFNeurons(beta=np.clip(beta, 0.0, 1.0).astype(np.float64),
                         threshold=threshold.astype(np.float64), reset=neuron_reset,
                         v_reset=None if v_reset_values is None else v_reset_values.astype(np.float64),
                         euler=euler)
    weight = np.concatenate([c.weight for c in currents], axis=1).astype(np.float32)
    bias = syn.bias if leak_bias is None else syn.bias + leak_bias
    bias = bias.astype(np.float32)
    segments: tuple[int, ...] = ()
    extra_bias = None
    if len(currents) > 1:
        segments = tuple(int(c.weight.shape[1]) for c in currents)
        extra_bias = np.stack([c.bias for c in currents[1:]]).astype(np.float32)
    if syn.kind == "dense":
        return Dense(name, weight, bias, neurons, segments=segments, extra_bias=extra_bias)
    input_shape = (sum(segments) or syn.input_shape[0],) + tuple(syn.input_shape[1:])
    return Conv2d(name, weight, bias, neurons, input_shape, syn.stride, syn.padding, syn.groups,
                  segments=segments, extra_bias=extra_bias)


def _time_constant(key: str, kind: str, pname: str, value, syn: _Synapse, prev: str,
                   where: str) -> np.ndarray:
    tau = _array(key, kind, pname, value, where)
    if np.any(np.isnan(tau)) or np.any(tau <= 0):
        raise HwgenError(f"{where}: {kind} node {key!r}: {pname} must be > 0 and not NaN")
    return _inf_ok(key, kind, pname, tau, syn, prev, where)


def _decay_ok(key: str, kind: str, pname: str, tau: np.ndarray, k: np.ndarray, dt: float,
              where: str) -> None:
    if np.any(k > 1):
        i = int(np.argmax(k > 1))
        raise HwgenError(f"{where}: {kind} node {key!r}: {pname} = {tau[i]:g} is shorter than "
                         f"dt = {dt:g}, which gives a decay 1 - dt/{pname} < 0; pass a "
                         "smaller --dt")

def _inf_ok(key: str, kind: str, name: str, arr: np.ndarray, syn: _Synapse, prev: str,
            where: str) -> np.ndarray:
    """``_per_output`` for LIF parameters that may legitimately be +inf (tau, r)."""
    finite = np.where(np.isposinf(arr), 0.0, arr)
    _per_output(key, kind, name, finite, syn, prev, where)  # shape and uniformity checks
    shape = syn.output_shape
    full = np.broadcast_to(arr, shape) if arr.size != 1 else np.full(shape, float(arr.reshape(-1)[0]))
    if syn.kind == "dense":
        return np.asarray(full, dtype=np.float64)
    return np.asarray(full, dtype=np.float64).reshape(shape[0], -1)[:, 0]
