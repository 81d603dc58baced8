"""hwgen's own network graph: the containers every pipeline stage reads.

Two forms of the same network live here:

* the **float** form (``Network``) that a frontend produces from a framework model and
  that ``hwgen.ir_sim`` simulates spike-for-spike like the source framework;
* the **quantized** form (``QuantNetwork``) that ``hwgen.quantize`` produces, holding the
  integers that ``hwgen.golden`` and the hardware both implement (docs/semantics.md).

The layers themselves are *nodes* of a layer kind. Each kind lives in one module of
``hwgen.kinds`` (its float and integer node, quantization rule, golden step, hardware
unit, memories and cycle cost); this module holds only what every kind shares: the
``Node`` base class whose subclasses register their JSON type names, the neuron
parameters (``LIFNeurons``, ``Leak``), and the JSON form of a network. Reading JSON needs
the kinds registered, so callers use ``hwgen.kinds.from_json``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import MISSING, dataclass, field, fields
from typing import ClassVar, Literal

import numpy as np

# docs/semantics.md, "Leak and reset": "zero" sets the state to ``v_reset`` (0 unless given);
# "zero_step" (snnTorch's RLeaky / Synaptic / RSynaptic) holds the whole next step's membrane
# at zero, its input included.
ResetMode = Literal["subtract", "zero", "none", "zero_step"]
RESET_MODES: tuple[str, ...] = ("subtract", "zero", "none", "zero_step")
#: The network's input, as an edge's source.
INPUT = "input"

Shape3 = tuple[int, int, int]
Pair = tuple[int, int]


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


# ----------------------------------------------------------------------------- nodes

class Node:
    """A layer of either form of a network. Subclasses are dataclasses with a ``name``.

    ``type_name`` is the node's ``"type"`` in JSON; defining a subclass with one registers
    it (``NODE_TYPES``). ``has_neurons`` marks the nodes that hold spiking neurons: each is
    a spiking layer of the network (a ``tap_K`` of the hardware, a row of the golden trace).
    ``integers`` says whether the node's arrays are the integer form (int64) or float.
    A node with neurons may take several inputs (its synapses concatenate them); other
    nodes take one, unless they are a ``joins`` kind (a spike-stream merge).
    """

    type_name: ClassVar[str] = ""
    has_neurons: ClassVar[bool] = False
    integers: ClassVar[bool] = False
    #: takes several inputs of one shape and merges them (its steps get the list)
    joins: ClassVar[bool] = False
    name: str

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("type_name")
        if name:
            if name in NODE_TYPES and NODE_TYPES[name] is not cls:
                raise TypeError(f"node type {name!r} is defined twice "
                                f"({NODE_TYPES[name].__qualname__}, {cls.__qualname__})")
            NODE_TYPES[name] = cls


NODE_TYPES: dict[str, type[Node]] = {}


# ----------------------------------------------------------------------------- neurons

@dataclass
class LIFNeurons:
    """Discrete-time leaky integrate-and-fire neurons in snnTorch's convention.

    ``beta`` and ``threshold`` hold one value per neuron (a per-layer parameter is simply
    repeated). ``beta == 1`` everywhere is a plain integrate-and-fire neuron.
    """

    beta: np.ndarray  # [N] float64, in [0, 1]
    threshold: np.ndarray  # [N] float64, > 0
    reset: ResetMode = "subtract"
    #: CuBa neurons: the synaptic current's decay per neuron (snnTorch ``Synaptic``'s
    #: ``alpha``); ``None`` for neurons whose input goes straight into the membrane.
    alpha: np.ndarray | None = field(default=None, metadata={"omit_default": True})
    #: What "zero" resets to, per neuron (``None``: 0).
    v_reset: np.ndarray | None = field(default=None, metadata={"omit_default": True})
    #: NIR ``CubaLIF`` in the forward-Euler form of the NIR repository's reference
    #: implementation (``hwgen.kinds.lif.FloatLIF``): per neuron ``k_syn = dt/tau_syn``,
    #: ``k_mem = dt/tau_mem``, ``r``, ``w_in``, ``v_leak``. ``None``: snnTorch's equations.
    euler: dict[str, np.ndarray] | None = field(default=None, metadata={"omit_default": True})

    @property
    def is_if(self) -> bool:
        return bool(np.all(self.beta == 1.0))

    @property
    def cuba(self) -> bool:
        return self.alpha is not None or self.euler is not None


@dataclass(frozen=True)
class Leak:
    """How the membrane decays by one timestep, in integers (docs/semantics.md, "Leak").

    * ``none``:  ``leak(v) = v``                      (beta = 1, IF)
    * ``shift``: ``leak(v) = v - (v >> shift)``       (beta = 1 - 2**-shift, no multiplier)
    * ``mul``:   ``leak(v) = (v * mul) >> frac_bits`` (any other beta, a constant multiplier)

    ``>>`` is an arithmetic shift (floor division by a power of two).
    """

    kind: Literal["none", "shift", "mul"] = "none"
    shift: int = 0
    mul: int = 0
    frac_bits: int = 0

    @property
    def beta(self) -> float:
        """The decay factor this integer leak realises."""
        if self.kind == "none":
            return 1.0
        if self.kind == "shift":
            return 1.0 - 2.0 ** -self.shift
        return self.mul / 2.0 ** self.frac_bits


def rails(bits: int) -> tuple[int, int]:
    """The saturation rails ``(lo, hi)`` of a ``bits``-wide signed integer."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


class StateRails:
    """The saturation rails of a ``state_bits``-wide signed membrane (docs/semantics.md)."""

    state_bits: int

    @property
    def state_min(self) -> int:
        return rails(self.state_bits)[0]

    @property
    def state_max(self) -> int:
        return rails(self.state_bits)[1]


@dataclass(frozen=True)
class Synapse:
    """The synaptic current of CuBa neurons, in integers (docs/semantics.md, "CuBa").

    Input events add into the current, not the membrane; the current saturates to
    ``bits`` signed once per timestep, feeds the membrane, and decays by ``leak``.
    ``delay`` 0: the membrane integrates this step's current (snnTorch ``Synaptic``);
    1: the previous step's (NIR ``CubaLIF``'s forward-Euler reference). ``membrane_bias``
    (per output channel) is added into the membrane every step (NIR ``v_leak``).
    """

    leak: Leak
    bits: int
    delay: int = 0
    membrane_bias: tuple[int, ...] = ()

    @property
    def current_min(self) -> int:
        return rails(self.bits)[0]

    @property
    def current_max(self) -> int:
        return rails(self.bits)[1]


# ----------------------------------------------------------------------------- networks

@dataclass(frozen=True)
class Edge:
    """A node's input: ``source`` (a node name, or ``INPUT``) and ``delay`` in timesteps.

    ``delay`` 1 is a recurrent connection: the source's output of step ``t - 1`` (zeros at
    ``t = 0``) is the input at step ``t`` (docs/semantics.md, "Graphs").
    """

    source: str
    delay: int = 0

class _LayerGraph:
    """What both forms of a network share: an input shape and a graph of layers.

    ``layers`` lists the nodes in an order in which every input without delay comes
    first (a topological order of the delay-0 edges). ``inputs`` maps a node's name to its
    input edges, in order; a node it does not name takes the node before it (the network's
    input for the first), so a chain needs no ``inputs`` at all. ``output`` names the node
    whose spikes the readout counts (default: the last spiking layer).
    """

    input_shape: tuple[int, ...]
    layers: list[Node]
    inputs: dict[str, list[Edge]]
    output: str

    @property
    def spiking_layers(self) -> list:
        return [layer for layer in self.layers if layer.has_neurons]

    @property
    def is_chain(self) -> bool:
        return not self.inputs

    def sources(self, node: Node) -> list[Edge]:
        """The input edges of ``node``."""
        if node.name in self.inputs:
            return self.inputs[node.name]
        index = next(i for i, layer in enumerate(self.layers) if layer is node)
        return [Edge(self.layers[index - 1].name if index else INPUT)]

    def consumers(self, name: str) -> list[tuple[Node, Edge]]:
        """The nodes that take ``name``'s output, with the edge, in layer order."""
        return [(node, edge) for node in self.layers for edge in self.sources(node) if edge.source == name]

    def node(self, name: str) -> Node:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    @property
    def output_layer(self) -> Node:
        if self.output:
            return self.node(self.output)
        return self.spiking_layers[-1]

    @property
    def input_size(self) -> int:
        return int(np.prod(self.input_shape))

    @property
    def output_size(self) -> int:
        return int(np.prod(self.output_shape))

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.output_layer.output_shape

    def check_graph(self) -> None:
        """Refuse, naming the node, a graph that is not one: an input that names no node,
        a delay-0 input that does not come earlier in ``layers`` (a cycle without delay),
        a delay other than 0 or 1, a delayed input from a node without neurons, an unknown
        ``output``, or two nodes of one name."""
        names = [layer.name for layer in self.layers]
        if len(set(names)) != len(names) or INPUT in names:
            dup = next(n for n in names if names.count(n) > 1 or n == INPUT)
            raise ValueError(f"two nodes are named {dup!r} (or a node is named {INPUT!r}, the "
                             "network input's name)")
        for name in self.inputs:
            if name not in names:
                raise ValueError(f"inputs are given for {name!r}, which is not a node")
        seen = {INPUT}
        kinds = {layer.name: layer for layer in self.layers}
        for layer in self.layers:
            for edge in self.sources(layer):
                if edge.source != INPUT and edge.source not in kinds:
                    raise ValueError(f"node {layer.name!r} takes input from {edge.source!r}, which is "
                                     "not a node")
                if edge.delay not in (0, 1):
                    raise ValueError(f"node {layer.name!r}: input from {edge.source!r} has delay "
                                     f"{edge.delay}; hwgen supports 0 and 1 (one timestep)")
                if edge.delay == 0 and edge.source not in seen:
                    raise ValueError(f"node {layer.name!r} takes {edge.source!r}'s output of the same "
                                     "timestep, but that node depends on it: a cycle needs a delay "
                                     "of one timestep on one of its edges")
                if edge.delay == 1 and (edge.source == INPUT or not kinds[edge.source].has_neurons):
                    raise ValueError(f"node {layer.name!r}: a delayed input must come from spiking "
                                     f"neurons, not {edge.source!r}")
            if len(self.sources(layer)) > 1 and not (layer.has_neurons or layer.joins):
                raise ValueError(f"node {layer.name!r} ({layer.type_name}) takes one input, but "
                                 f"{len(self.sources(layer))} edges lead into it")
            seen.add(layer.name)
        if self.output and self.output not in kinds:
            raise ValueError(f"the network output {self.output!r} is not a node")
        if self.output and not kinds[self.output].has_neurons:
            raise ValueError(f"the network output {self.output!r} holds no neurons; the readout "
                             "counts spikes")


@dataclass
class Network(_LayerGraph):
    """The float network: a graph of layers (``_LayerGraph``), usually a chain."""

    input_shape: tuple[int, ...]
    layers: list[Node]
    source: str = ""
    inputs: dict[str, list[Edge]] = field(default_factory=dict)
    output: str = ""


@dataclass
class QuantNetwork(_LayerGraph):
    input_shape: tuple[int, ...]
    layers: list[Node]
    timesteps: int
    source: str = ""
    notes: list[str] = field(default_factory=list)
    # 1: the input is spikes. More: "direct" input of unsigned integers of this width
    # (frames), which the first layer multiplies with its weights.
    input_bits: int = 1
    inputs: dict[str, list[Edge]] = field(default_factory=dict)
    output: str = ""


def graph_from(layers: Iterable[Node], inputs: dict[str, list[Edge]]) -> dict[str, list[Edge]]:
    """``inputs`` without the entries that say what a chain says anyway (the node before),
    so that a chain built as a graph is the same network, JSON included."""
    layers = list(layers)
    plain = {}
    for index, layer in enumerate(layers):
        edges = list(inputs.get(layer.name, []))
        default = [Edge(layers[index - 1].name if index else INPUT)]
        if layer.name in inputs and edges != default:
            plain[layer.name] = edges
    return plain


# ----------------------------------------------------------------------------- JSON

FORMAT_VERSION = 1


def _is_default(f, value) -> bool:
    """Fields marked ``omit_default`` are left out of JSON at their default, so that a
    network that does not use a feature serialises (and hashes) as before it existed."""
    if not f.metadata.get("omit_default"):
        return False
    default = f.default if f.default is not MISSING else f.default_factory()
    if value is None or default is None:
        return value is default
    return bool(np.array_equal(np.asarray(value, dtype=object), np.asarray(default, dtype=object)))


def _plain(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (LIFNeurons, Leak, Synapse)):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)
                if not _is_default(f, getattr(value, f.name))}
    return value


def _layer_to_dict(layer: Node) -> dict:
    doc = {"type": type(layer).type_name}
    # The weights go last: the small fields stay readable at the top of each layer.
    names = sorted((f.name for f in fields(layer) if not _is_default(f, getattr(layer, f.name))),
                   key=lambda name: name == "weight")
    doc.update({name: _plain(getattr(layer, name)) for name in names})
    return doc


def _neurons_from(d: dict) -> LIFNeurons:
    def arr(key):
        return None if d.get(key) is None else np.asarray(d[key], dtype=np.float64)
    euler = d.get("euler")
    return LIFNeurons(np.asarray(d["beta"], dtype=np.float64), np.asarray(d["threshold"], dtype=np.float64),
                      d["reset"], alpha=arr("alpha"), v_reset=arr("v_reset"),
                      euler=None if euler is None else {k: np.asarray(v, dtype=np.float32)
                                                        for k, v in euler.items()})


def _layer_from_dict(d: dict) -> Node:
    cls = NODE_TYPES.get(d.get("type"))
    if cls is None:
        raise ValueError(f"unknown layer type {d.get('type')!r} in model JSON")
    number = np.int64 if cls.integers else np.float32
    kwargs = {}
    for f in fields(cls):
        if f.name not in d:
            continue
        value = d[f.name]
        if f.name in ("weight", "bias", "extra_bias"):
            value = None if value is None else np.asarray(value, dtype=number)
        elif f.name in ("threshold", "scale_exp"):
            value = np.asarray(value, dtype=np.int64)
        elif f.name == "neurons":
            value = _neurons_from(value)
        elif f.name == "leak":
            value = Leak(**value)
        elif f.name == "synapse":
            value = None if value is None else Synapse(
                Leak(**value["leak"]), value["bits"], value.get("delay", 0),
                tuple(int(v) for v in value.get("membrane_bias", ())))
        elif f.name in ("v_reset",):
            value = np.asarray(value, dtype=np.int64)
        elif f.name in ("input_shape", "stride", "padding", "kernel", "segments"):
            value = tuple(int(v) for v in value)
        kwargs[f.name] = value
    return cls(**kwargs)


def to_json(net: Network | QuantNetwork) -> str:
    """Serialise either form; the output is deterministic (same network, same text)."""
    doc: dict = {
        "format": "hwgen-ir",
        "version": FORMAT_VERSION,
        "form": "quantized" if isinstance(net, QuantNetwork) else "float",
        "source": net.source,
        "input_shape": list(net.input_shape),
    }
    if isinstance(net, QuantNetwork):
        doc["timesteps"] = net.timesteps
        doc["input_bits"] = net.input_bits
        doc["notes"] = list(net.notes)
    if net.inputs:
        doc["inputs"] = {name: [[e.source, e.delay] for e in edges] for name, edges in net.inputs.items()}
    if net.output:
        doc["output"] = net.output
    doc["layers"] = [_layer_to_dict(layer) for layer in net.layers]
    return json.dumps(doc, indent=1, sort_keys=False) + "\n"


def from_json(text: str) -> Network | QuantNetwork:
    """The network of ``to_json``'s text; its node types must be registered (import
    ``hwgen.kinds``, whose ``from_json`` is this with every kind loaded)."""
    doc = json.loads(text)
    if doc.get("format") != "hwgen-ir":
        raise ValueError("not an hwgen model JSON (missing \"format\": \"hwgen-ir\")")
    layers = [_layer_from_dict(d) for d in doc["layers"]]
    shape = tuple(int(s) for s in doc["input_shape"])
    inputs = {name: [Edge(str(src), int(delay)) for src, delay in edges]
              for name, edges in doc.get("inputs", {}).items()}
    output = doc.get("output", "")
    if doc["form"] == "quantized":
        return QuantNetwork(shape, layers, int(doc["timesteps"]), doc.get("source", ""),
                            list(doc.get("notes", [])), int(doc.get("input_bits", 1)), inputs, output)
    return Network(shape, layers, doc.get("source", ""), inputs, output)
