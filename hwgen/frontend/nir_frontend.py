"""NIR frontend: read a ``.nir`` graph (HDF5, written by ``nir.write``) into the float IR.

NIR describes neurons as continuous-time ODEs and carries neither a timestep nor a
subtractive reset; both come from the caller (``dt``, ``reset``) or from the exporting
framework's convention, and every assumption is returned as a note for the report. The
conversion formulas, and what is refused, are written down in docs/nir.md.

The node semantics were read from nir 1.0.8's source (``nir/ir/neuron.py``):

* ``IF``:  ``dv/dt = R*I``; spike when ``v > v_threshold``, then ``v = v_reset``.
* ``LIF``: ``tau*dv/dt = (v_leak - v) + R*I``; same spike and reset.

Only a single chain ``Input -> ... -> Output`` is accepted, ordered by following the
edges from the Input node (node keys are strings: sorting them would put "10" before "2").
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from ..errors import HwgenError
from ..ir import LIFNeurons, Network, conv_output_size
from ..kinds import Conv2d, Dense, Flatten, SumPool2d

try:  # nir is a dependency, but keep the error readable if an install is broken.
    import h5py
    import nir
except ImportError as exc:  # pragma: no cover - exercised only on broken installs
    raise HwgenError(f"the nir package is not importable ({exc}); reinstall hwgen's "
                     "dependencies (pip install -e .)") from exc

SUPPORTED = ("Input, Output, Affine, Linear, Conv2d (dilation 1), IF, LIF (v_leak = 0, "
             "v_reset = 0), SumPool2d, AvgPool2d, Flatten (to 1-D), Scale (between a synaptic "
             "layer and its neurons, or right before a synaptic layer), Threshold (right after "
             "a synaptic layer)")

REASONS = {
    "CubaLIF": "current-based LIF has a second (synaptic) state",
    "CubaLI": "a leaky integrator without spikes (non-spiking readout)",
    "LI": "a leaky integrator without spikes (non-spiking readout)",
    "I": "an integrator without spikes",
    "Delay": "synaptic delays are not implemented",
    "Conv1d": "only 2-D convolutions are implemented",
    "NIRGraph": "a nested subgraph (snnTorch writes recurrent layers this way)",
}

# snnTorch 1.0 (export_nir.py) hard-codes dt = 1e-4 and writes tau = dt/(1-beta), r = tau/dt.
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


# ============================================================================ graph order

def _chain(graph: "nir.NIRGraph", where: str) -> list[str]:
    """The node keys from the Input node to the Output node, by following the edges."""
    nodes = graph.nodes
    edges = [(str(a), str(b)) for a, b in graph.edges]
    for a, b in edges:
        for key in (a, b):
            if key not in nodes:
                raise HwgenError(f"{where}: edge ({a!r} -> {b!r}) names node {key!r}, which "
                                 "is not in the graph")
    succ: dict[str, list[str]] = {k: [] for k in nodes}
    pred: dict[str, list[str]] = {k: [] for k in nodes}
    for a, b in edges:
        succ[a].append(b)
        pred[b].append(a)

    cycle = _find_cycle(nodes, succ)
    if cycle:
        raise HwgenError(f"{where}: nodes {' -> '.join(repr(k) for k in cycle)} form a cycle "
                         "(a recurrent connection); hwgen builds feed-forward chains only")

    inputs = [k for k, n in nodes.items() if isinstance(n, nir.Input)]
    outputs = [k for k, n in nodes.items() if isinstance(n, nir.Output)]
    if len(inputs) != 1:
        raise HwgenError(f"{where}: {len(inputs)} Input nodes ({', '.join(map(repr, inputs))}); "
                         "hwgen needs exactly one Input node")
    if len(outputs) != 1:
        raise HwgenError(f"{where}: {len(outputs)} Output nodes "
                         f"({', '.join(map(repr, outputs))}); hwgen needs exactly one Output node")
    for key in nodes:
        if len(succ[key]) > 1:
            raise HwgenError(f"{where}: node {key!r} ({type(nodes[key]).__name__}) feeds "
                             f"{len(succ[key])} nodes ({', '.join(map(repr, sorted(succ[key])))}); "
                             "hwgen supports a single chain Input -> ... -> Output, no branches")
        if len(pred[key]) > 1:
            raise HwgenError(f"{where}: node {key!r} ({type(nodes[key]).__name__}) receives "
                             f"from {len(pred[key])} nodes ({', '.join(map(repr, sorted(pred[key])))}); "
                             "hwgen supports a single chain Input -> ... -> Output, no merges")

    order = [inputs[0]]
    while not isinstance(nodes[order[-1]], nir.Output):
        nxt = succ[order[-1]]
        if not nxt:
            last = order[-1]
            raise HwgenError(f"{where}: node {last!r} ({type(nodes[last]).__name__}) leads "
                             "nowhere: the chain from the Input node ends before reaching the "
                             "Output node")
        order.append(nxt[0])
    stray = sorted(set(nodes) - set(order))
    if stray:
        raise HwgenError(f"{where}: node(s) {', '.join(map(repr, stray))} are not on the chain "
                         "from the Input node to the Output node (dangling); remove them")
    return order


def _find_cycle(nodes: dict, succ: dict[str, list[str]]) -> list[str]:
    """One cycle as a list of keys (first key repeated at the end), or [] when acyclic."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    for root in sorted(nodes):
        if root in state:
            continue
        path: list[str] = [root]
        iters = [iter(sorted(succ[root]))]
        state[root] = 1
        while path:
            nxt = next(iters[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                iters.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                iters.append(iter(sorted(succ[nxt])))
    return []


# ============================================================================ conversion

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


def import_nir(path: str, dt: float | None = None,
               reset: str | None = None) -> tuple[Network, list[str]]:
    """Read the NIR graph in ``path`` into hwgen's float IR.

    ``dt`` is the timestep used to discretise LIF nodes (``beta = 1 - dt/tau``); by default
    snnTorch's 1e-4 when the LIF nodes follow snnTorch's export convention (``r = tau/dt``).
    ``reset`` is ``"subtract"`` (default: what Sinabs and snnTorch compute, though NIR
    cannot say so) or ``"zero"`` (NIR's literal ``v = v_reset = 0``). Returns the network and
    the notes for the report (which dt and reset were assumed, and why).
    """
    path = str(path)
    where = f"NIR file '{path}'"
    if reset is not None and reset not in ("subtract", "zero"):
        raise HwgenError(f"--reset must be 'subtract' or 'zero', got {reset!r}")
    if dt is not None and not (math.isfinite(dt) and dt > 0):
        raise HwgenError(f"--dt must be a positive number of seconds, got {dt!r}")

    graph = _read_graph(path)
    order = _chain(graph, where)
    nodes = graph.nodes

    for key in order:
        node = nodes[key]
        if not isinstance(node, (nir.Input, nir.Output, nir.Affine, nir.Linear, nir.Conv2d,
                                 nir.IF, nir.LIF, nir.SumPool2d, nir.AvgPool2d, nir.Flatten,
                                 nir.Scale, nir.Threshold)):
            kind = type(node).__name__
            why = f" ({REASONS[kind]})" if kind in REASONS else ""
            raise HwgenError(f"{where}: node {key!r} is {kind}, which hwgen does not "
                             f"support{why}; supported: {SUPPORTED}")

    notes: list[str] = []
    dt, dt_note = _choose_dt(order, nodes, dt, where)
    if dt_note:
        notes.append(dt_note)
    if reset is None:
        reset = "subtract"
        notes.append("reset: subtract (assumed): NIR only knows v = v_reset after a spike, but "
                     "Sinabs and snnTorch, which export NIR, subtract the threshold; pass "
                     "--reset zero for NIR's literal reset to 0")
    else:
        notes.append(f"reset: {reset} (given)")

    input_node = nodes[order[0]]
    in_shape = tuple(int(s) for s in np.asarray(input_node.input_type["input"]).reshape(-1))
    if not in_shape or min(in_shape) < 1:
        raise HwgenError(f"{where}: Input node {order[0]!r} has shape {list(in_shape)}; "
                         "expected positive sizes")

    layers: list = []
    shape = in_shape
    prev_key, prev_kind = order[0], "Input"
    syn: _Synapse | None = None  # a synaptic layer still waiting for its neurons
    pending = _Pending()  # factors for the next synaptic layer's inputs (AvgPool2d, Scale)
    has_if = False

    def close_scale_before_non_synapse(key: str, kind: str) -> None:
        if pending.factor is not None and any(
                isinstance(nodes[k], nir.Scale) for k in pending.keys):
            first = next(k for k in pending.keys if isinstance(nodes[k], nir.Scale))
            raise HwgenError(f"{where}: Scale node {first!r} is followed by {kind} node "
                             f"{key!r}; hwgen folds a Scale into the weights only between a "
                             "synaptic layer and its neurons or right before a synaptic layer")

    def need_no_synapse(key: str, kind: str) -> None:
        if syn is not None:
            raise HwgenError(f"{where}: {kind} node {key!r} follows {syn.kind_name} node "
                             f"{syn.key!r} directly; a synaptic layer must be followed by its "
                             "IF/LIF neurons (pooling applies to spikes, not to membrane "
                             "currents)")

    for key in order[1:]:
        node = nodes[key]
        kind = type(node).__name__
        _check_type(key, node, prev_key, prev_kind, shape, where)

        if isinstance(node, nir.Output):
            declared = (node.output_type or {}).get("output")
            if declared is not None:
                declared = tuple(int(s) for s in np.asarray(declared).reshape(-1))
                if declared != tuple(shape):
                    raise HwgenError(f"{where}: Output node {key!r} has shape "
                                     f"{_shape_str(declared)} but node {prev_key!r} ({prev_kind}) "
                                     f"produces {_shape_str(shape)}; the graph's shapes do not match")
            if syn is not None:
                raise HwgenError(f"{where}: {syn.kind_name} node {syn.key!r} is the last layer "
                                 "but has no IF/LIF neurons after it; hwgen's layers are "
                                 "synapses followed by spiking neurons")
            if pending.factor is not None:
                raise HwgenError(f"{where}: node {pending.keys[-1]!r} "
                                 f"({type(nodes[pending.keys[-1]]).__name__}) is not followed by "
                                 "a synaptic layer its factor could be folded into")
            continue

        if isinstance(node, (nir.Affine, nir.Linear)):
            need_no_synapse(key, kind)
            weight = _array(key, kind, "weight", node.weight, where)
            if weight.ndim != 2:
                raise HwgenError(f"{where}: {kind} node {key!r} has a {weight.ndim}-D weight "
                                 f"{_shape_str(weight.shape)}; expected [out, in]")
            n_out, n_in = weight.shape
            if shape != (n_in,):
                hint = (" (add a Flatten node before it)" if len(shape) > 1
                        and int(np.prod(shape)) == n_in else "")
                raise HwgenError(f"{where}: {kind} node {key!r} takes {n_in} inputs but node "
                                 f"{prev_key!r} ({prev_kind}) produces {_shape_str(shape)}{hint}; "
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
            if pending.factor is not None:
                weight = weight * np.broadcast_to(pending.factor, shape).reshape(1, n_in)
                pending = _Pending()
            syn = _Synapse(key, "dense", weight, bias, shape, (n_out,))
            shape = (n_out,)

        elif isinstance(node, nir.Conv2d):
            need_no_synapse(key, kind)
            syn = _conv(key, node, shape, prev_key, prev_kind, pending, where)
            pending = _Pending()
            shape = syn.output_shape

        elif isinstance(node, (nir.IF, nir.LIF, nir.Threshold)):
            if syn is None:
                raise HwgenError(f"{where}: {kind} node {key!r} follows node {prev_key!r} "
                                 f"({prev_kind}), not a synaptic layer; hwgen needs neurons "
                                 "right after an Affine, Linear or Conv2d node")
            layers.append(_neurons(key, node, syn, reset, dt, where))
            has_if = has_if or isinstance(node, nir.IF)
            syn = None

        elif isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
            need_no_synapse(key, kind)
            close_scale_before_non_synapse(key, kind)
            if len(shape) != 3:
                raise HwgenError(f"{where}: {kind} node {key!r} needs a (C, H, W) input but node "
                                 f"{prev_key!r} ({prev_kind}) produces {_shape_str(shape)}")
            kernel = _pair(key, kind, "kernel_size", node.kernel_size, where)
            stride = _pair(key, kind, "stride", node.stride, where)
            padding = _pair(key, kind, "padding", node.padding, where)
            if min(kernel) < 1 or min(stride) < 1 or min(padding) < 0:
                raise HwgenError(f"{where}: {kind} node {key!r}: kernel {kernel}, stride {stride}, "
                                 f"padding {padding} are not valid")
            if isinstance(node, nir.AvgPool2d):
                if padding != (0, 0):
                    raise HwgenError(f"{where}: AvgPool2d node {key!r} has padding {padding}; "
                                     "the divisor at the borders is ambiguous, hwgen supports "
                                     "AvgPool2d without padding only")
                pending.add(key, np.array(1.0 / (kernel[0] * kernel[1])))
            pool = SumPool2d(key, shape, kernel, stride, padding)
            out = pool.output_shape
            if min(out) < 1:
                raise HwgenError(f"{where}: {kind} node {key!r}: a {kernel} window does not fit "
                                 f"the input {_shape_str(shape)}")
            layers.append(pool)
            shape = out

        elif isinstance(node, nir.Flatten):
            need_no_synapse(key, kind)
            close_scale_before_non_synapse(key, kind)
            out = _flatten_shape(key, node, shape, prev_key, prev_kind, where)
            if len(shape) > 1:
                layers.append(Flatten(key, shape))
            shape = out

        elif isinstance(node, nir.Scale):
            scale = _array(key, kind, "scale", node.scale, where)
            _finite(key, kind, "scale", scale, where)
            if syn is not None:  # scales the current into the neurons
                _fold_output_scale(syn, _per_output(key, kind, "scale", scale, syn,
                                                    prev_key, where), key)
            else:  # scales the spikes into the next synaptic layer
                if scale.size != 1 and tuple(scale.shape) != tuple(shape):
                    raise HwgenError(f"{where}: Scale node {key!r} has shape "
                                     f"{_shape_str(scale.shape)} but node {prev_key!r} "
                                     f"({prev_kind}) produces {_shape_str(shape)}")
                pending.add(key, scale if scale.size != 1 else scale.reshape(()))

        prev_key, prev_kind = key, kind

    spiking = [layer for layer in layers if isinstance(layer, (Dense, Conv2d))]
    if not spiking:
        raise HwgenError(f"{where}: the graph has no synaptic layer followed by IF/LIF neurons; "
                         "nothing to build")
    if has_if:
        notes.append("IF neurons fire at most one spike per timestep and have no lower "
                     "membrane bound (Sinabs' IAF can fire several spikes per step and its NIR "
                     "import clamps the membrane at -threshold); see docs/nir.md")
    return Network(input_shape=in_shape, layers=layers, source=path), notes


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


def _choose_dt(order: list[str], nodes: dict, dt: float | None,
               where: str) -> tuple[float | None, str]:
    lifs = [k for k in order if isinstance(nodes[k], nir.LIF)]
    if dt is not None:
        if not lifs:
            return dt, (f"dt: {dt:g} s given, but the graph has no LIF nodes: it does not "
                        "change anything (IF neurons integrate r*I per timestep)")
        return dt, f"dt: {dt:g} s (given)"
    if not lifs:
        return None, ""
    for key in lifs:
        node = nodes[key]
        tau = np.asarray(node.tau, dtype=np.float64)
        r = np.asarray(node.r, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(np.isinf(tau) & np.isinf(r), 1.0, r * SNNTORCH_DT / tau)
        if not np.all(np.abs(ratio - 1.0) <= _UNIT_TOLERANCE):
            raise HwgenError(f"{where}: LIF node {key!r} needs a timestep to be discretised and "
                             "NIR stores none; its parameters do not follow snnTorch's export "
                             f"convention (r = tau/dt with dt = {SNNTORCH_DT:g}), so pass --dt "
                             "(seconds per timestep) explicitly")
    return SNNTORCH_DT, (f"dt: {SNNTORCH_DT:g} s (assumed): NIR stores no timestep; the LIF "
                         f"nodes follow snnTorch's export convention (tau = dt/(1-beta), "
                         f"r = tau/dt with dt = {SNNTORCH_DT:g} hard-coded), so beta = 1 - dt/tau "
                         "recovers snnTorch's beta; pass --dt to override")


def _neurons(key: str, node, syn: _Synapse, reset: str, dt: float | None,
             where: str) -> Dense | Conv2d:
    kind = type(node).__name__
    prev = syn.key

    def param(name: str, value) -> np.ndarray:
        return _per_output(key, kind, name, value, syn, prev, where)

    if isinstance(node, nir.Threshold):
        # z = H(I - thr) with no memory: a neuron whose membrane is forgotten every step.
        threshold = param("threshold", node.threshold)
        beta = np.zeros_like(threshold)
        neuron_reset = "none"
    else:
        threshold = param("v_threshold", node.v_threshold)
        v_reset = param("v_reset", node.v_reset)
        if np.any(v_reset != 0):
            raise HwgenError(f"{where}: {kind} node {key!r} has v_reset = {v_reset[v_reset != 0][0]:g}; "
                             "hwgen supports v_reset = 0 only (reset to zero or by subtraction)")
        neuron_reset = reset
        if isinstance(node, nir.IF):
            # dv/dt = R*I, integrated per timestep as v += r*I (Sinabs' IAF; snnTorch's
            # import): dt does not enter.
            beta = np.ones_like(threshold)
            scale = param("r", node.r)
        else:
            v_leak = param("v_leak", node.v_leak)
            if np.any(v_leak != 0):
                raise HwgenError(f"{where}: LIF node {key!r} has v_leak = "
                                 f"{v_leak[v_leak != 0][0]:g}; hwgen supports v_leak = 0 only "
                                 "(the membrane decays towards 0)")
            tau = _array(key, kind, "tau", node.tau, where)
            r = _array(key, kind, "r", node.r, where)
            if np.any(np.isnan(tau)) or np.any(np.isnan(r)) or np.any(tau <= 0):
                raise HwgenError(f"{where}: LIF node {key!r}: tau must be > 0 and tau, r must not "
                                 "be NaN")
            tau = _inf_ok(key, kind, "tau", tau, syn, prev, where)
            r = _inf_ok(key, kind, "r", r, syn, prev, where)
            assert dt is not None
            with np.errstate(divide="ignore", invalid="ignore"):
                beta = np.where(np.isinf(tau), 1.0, 1.0 - dt / tau)
                # tau = r = inf is what snnTorch writes for beta = 1 (r = tau/dt): r/tau = 1/dt.
                scale = np.where(np.isinf(tau) & np.isinf(r), 1.0, dt * r / tau)
            if np.any(beta < 0):
                i = int(np.argmax(beta < 0))
                raise HwgenError(f"{where}: LIF node {key!r}: tau = {tau[i]:g} is shorter than "
                                 f"dt = {dt:g}, which gives beta = 1 - dt/tau < 0; pass a "
                                 "smaller --dt")
            if not np.all(np.isfinite(scale)):
                raise HwgenError(f"{where}: LIF node {key!r}: r = inf with a finite tau gives an "
                                 "infinite input scale")
        _fold_output_scale(syn, scale, key)
    if np.any(threshold <= 0):
        raise HwgenError(f"{where}: {kind} node {key!r}: threshold must be > 0 (found "
                         f"{threshold.min():g}); a neuron with threshold <= 0 fires at rest")
    neurons = LIFNeurons(beta=np.clip(beta, 0.0, 1.0).astype(np.float64),
                         threshold=threshold.astype(np.float64), reset=neuron_reset)
    weight = syn.weight.astype(np.float32)
    bias = syn.bias.astype(np.float32)
    if syn.kind == "dense":
        return Dense(syn.key, weight, bias, neurons)
    return Conv2d(syn.key, weight, bias, neurons, syn.input_shape, syn.stride, syn.padding,
                  syn.groups)


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
