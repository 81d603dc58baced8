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
from dataclasses import dataclass, field, fields
from typing import ClassVar, Literal

import numpy as np

ResetMode = Literal["subtract", "zero", "none"]
RESET_MODES: tuple[str, ...] = ("subtract", "zero", "none")

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
    """

    type_name: ClassVar[str] = ""
    has_neurons: ClassVar[bool] = False
    integers: ClassVar[bool] = False
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

    @property
    def is_if(self) -> bool:
        return bool(np.all(self.beta == 1.0))


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


class StateRails:
    """The saturation rails of a ``state_bits``-wide signed membrane (docs/semantics.md)."""

    state_bits: int

    @property
    def state_min(self) -> int:
        return -(1 << (self.state_bits - 1))

    @property
    def state_max(self) -> int:
        return (1 << (self.state_bits - 1)) - 1


# ----------------------------------------------------------------------------- networks

class _LayerChain:
    """What both forms of a network share: an input shape and a chain of layers."""

    input_shape: tuple[int, ...]
    layers: list[Node]

    @property
    def spiking_layers(self) -> list:
        return [layer for layer in self.layers if layer.has_neurons]

    @property
    def input_size(self) -> int:
        return int(np.prod(self.input_shape))

    @property
    def output_size(self) -> int:
        return int(np.prod(self.output_shape))

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.spiking_layers[-1].output_shape


@dataclass
class Network(_LayerChain):
    """A feed-forward chain of layers, in the order spikes flow through them."""

    input_shape: tuple[int, ...]
    layers: list[Node]
    source: str = ""


@dataclass
class QuantNetwork(_LayerChain):
    input_shape: tuple[int, ...]
    layers: list[Node]
    timesteps: int
    source: str = ""
    notes: list[str] = field(default_factory=list)
    # 1: the input is spikes. More: "direct" input of unsigned integers of this width
    # (frames), which the first layer multiplies with its weights.
    input_bits: int = 1


# ----------------------------------------------------------------------------- JSON

FORMAT_VERSION = 1


def _plain(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, (LIFNeurons, Leak)):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    return value


def _layer_to_dict(layer: Node) -> dict:
    doc = {"type": type(layer).type_name}
    # The weights go last: the small fields stay readable at the top of each layer.
    names = sorted((f.name for f in fields(layer)), key=lambda name: name == "weight")
    doc.update({name: _plain(getattr(layer, name)) for name in names})
    return doc


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
        if f.name in ("weight", "bias"):
            value = np.asarray(value, dtype=number)
        elif f.name in ("threshold", "scale_exp"):
            value = np.asarray(value, dtype=np.int64)
        elif f.name == "neurons":
            value = LIFNeurons(np.asarray(value["beta"], dtype=np.float64),
                               np.asarray(value["threshold"], dtype=np.float64), value["reset"])
        elif f.name == "leak":
            value = Leak(**value)
        elif f.name in ("input_shape", "stride", "padding", "kernel"):
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
    if doc["form"] == "quantized":
        return QuantNetwork(shape, layers, int(doc["timesteps"]), doc.get("source", ""),
                            list(doc.get("notes", [])), int(doc.get("input_bits", 1)))
    return Network(shape, layers, doc.get("source", ""))
