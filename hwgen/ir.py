"""hwgen's own network graph: the one data structure every pipeline stage reads.

Two forms of the same network live here:

* the **float** form (``Network``) that a frontend produces from a framework model and
  that ``hwgen.ir_sim`` simulates spike-for-spike like the source framework;
* the **quantized** form (``QuantNetwork``) that ``hwgen.quantize`` produces, holding the
  integers that ``hwgen.golden`` and the hardware both implement (docs/semantics.md).

Both serialise to plain JSON (``to_json`` / ``from_json``) so that ``OUT/model.json`` is
readable by scripts and diffable in review.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import ClassVar, Literal, Union

import numpy as np

ResetMode = Literal["subtract", "zero", "none"]
RESET_MODES: tuple[str, ...] = ("subtract", "zero", "none")


# ----------------------------------------------------------------------------- float form

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


@dataclass
class Dense:
    """A fully-connected synapse layer followed by its spiking neurons."""

    name: str
    weight: np.ndarray  # [out, in] float32
    bias: np.ndarray  # [out] float32 (zeros when the source had none)
    neurons: LIFNeurons

    @property
    def in_features(self) -> int:
        return int(self.weight.shape[1])

    @property
    def out_features(self) -> int:
        return int(self.weight.shape[0])


@dataclass
class Flatten:
    """Row-major (C-order) flattening: a no-op on spike addresses."""

    name: str


Layer = Union[Dense, Flatten]


class _LayerChain:
    """What both forms of a network share: an input shape and a chain of layers."""

    input_shape: tuple[int, ...]
    layers: list
    _spiking: ClassVar[type]  # the layer type that holds neurons in this form

    @property
    def spiking_layers(self) -> list:
        return [layer for layer in self.layers if isinstance(layer, self._spiking)]

    @property
    def input_size(self) -> int:
        return int(np.prod(self.input_shape))

    @property
    def output_size(self) -> int:
        return self.spiking_layers[-1].out_features


@dataclass
class Network(_LayerChain):
    """A feed-forward chain of layers, in the order spikes flow through them."""

    input_shape: tuple[int, ...]
    layers: list[Layer]
    source: str = ""

    _spiking = Dense


# ----------------------------------------------------------------------------- quantized form

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


@dataclass
class QuantDense:
    """Integer form of ``Dense``: every number the hardware stores or computes with."""

    name: str
    weight: np.ndarray  # [out, in] int64, each within ``weight_bits`` signed
    bias: np.ndarray  # [out] int64
    threshold: np.ndarray  # [out] int64, >= 1
    leak: Leak
    reset: ResetMode
    weight_bits: int
    state_bits: int  # membrane saturates to this signed width between timesteps
    acc_bits: int  # width that holds every partial sum within a timestep, never wraps
    scale_exp: np.ndarray  # [out] int64: weight_int = round(weight_float * 2**scale_exp)

    @property
    def in_features(self) -> int:
        return int(self.weight.shape[1])

    @property
    def out_features(self) -> int:
        return int(self.weight.shape[0])

    @property
    def state_min(self) -> int:
        return -(1 << (self.state_bits - 1))

    @property
    def state_max(self) -> int:
        return (1 << (self.state_bits - 1)) - 1


QuantLayer = Union[QuantDense, Flatten]


@dataclass
class QuantNetwork(_LayerChain):
    input_shape: tuple[int, ...]
    layers: list[QuantLayer]
    timesteps: int
    source: str = ""
    notes: list[str] = field(default_factory=list)

    _spiking = QuantDense


# ----------------------------------------------------------------------------- JSON

FORMAT_VERSION = 1


def _layer_to_dict(layer: Layer | QuantLayer) -> dict:
    if isinstance(layer, Flatten):
        return {"type": "flatten", "name": layer.name}
    if isinstance(layer, Dense):
        return {
            "type": "dense",
            "name": layer.name,
            "weight": layer.weight.tolist(),
            "bias": layer.bias.tolist(),
            "neurons": {
                "beta": layer.neurons.beta.tolist(),
                "threshold": layer.neurons.threshold.tolist(),
                "reset": layer.neurons.reset,
            },
        }
    if isinstance(layer, QuantDense):
        return {
            "type": "quant_dense",
            "name": layer.name,
            "weight_bits": layer.weight_bits,
            "state_bits": layer.state_bits,
            "acc_bits": layer.acc_bits,
            "reset": layer.reset,
            "leak": {"kind": layer.leak.kind, "shift": layer.leak.shift,
                     "mul": layer.leak.mul, "frac_bits": layer.leak.frac_bits},
            "threshold": layer.threshold.tolist(),
            "bias": layer.bias.tolist(),
            "scale_exp": layer.scale_exp.tolist(),
            "weight": layer.weight.tolist(),
        }
    raise TypeError(f"not an IR layer: {layer!r}")


def _layer_from_dict(d: dict) -> Layer | QuantLayer:
    kind = d["type"]
    if kind == "flatten":
        return Flatten(d["name"])
    if kind == "dense":
        n = d["neurons"]
        return Dense(
            name=d["name"],
            weight=np.asarray(d["weight"], dtype=np.float32),
            bias=np.asarray(d["bias"], dtype=np.float32),
            neurons=LIFNeurons(np.asarray(n["beta"], dtype=np.float64),
                               np.asarray(n["threshold"], dtype=np.float64), n["reset"]),
        )
    if kind == "quant_dense":
        return QuantDense(
            name=d["name"],
            weight=np.asarray(d["weight"], dtype=np.int64),
            bias=np.asarray(d["bias"], dtype=np.int64),
            threshold=np.asarray(d["threshold"], dtype=np.int64),
            leak=Leak(**d["leak"]),
            reset=d["reset"],
            weight_bits=d["weight_bits"],
            state_bits=d["state_bits"],
            acc_bits=d["acc_bits"],
            scale_exp=np.asarray(d["scale_exp"], dtype=np.int64),
        )
    raise ValueError(f"unknown layer type {kind!r} in model JSON")


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
        doc["notes"] = list(net.notes)
    doc["layers"] = [_layer_to_dict(layer) for layer in net.layers]
    return json.dumps(doc, indent=1, sort_keys=False) + "\n"


def from_json(text: str) -> Network | QuantNetwork:
    doc = json.loads(text)
    if doc.get("format") != "hwgen-ir":
        raise ValueError("not an hwgen model JSON (missing \"format\": \"hwgen-ir\")")
    layers = [_layer_from_dict(d) for d in doc["layers"]]
    shape = tuple(int(s) for s in doc["input_shape"])
    if doc["form"] == "quantized":
        return QuantNetwork(shape, layers, int(doc["timesteps"]), doc.get("source", ""),
                            list(doc.get("notes", [])))
    return Network(shape, layers, doc.get("source", ""))
