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
from dataclasses import dataclass, field, fields
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

    @property
    def output_shape(self) -> tuple[int]:
        return (self.out_features,)


Shape3 = tuple[int, int, int]
Pair = tuple[int, int]


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


@dataclass
class Conv2d:
    """A 2-D convolution (dilation 1) followed by its spiking neurons.

    Neuron parameters are per output channel (``neurons`` arrays of length ``C_out``):
    every position of a channel shares them, which is what lets a lane of the hardware
    serve one channel.
    """

    name: str
    weight: np.ndarray  # [C_out, C_in / groups, kh, kw] float32
    bias: np.ndarray  # [C_out] float32
    neurons: LIFNeurons
    input_shape: Shape3  # (C_in, H, W)
    stride: Pair = (1, 1)
    padding: Pair = (0, 0)
    groups: int = 1

    @property
    def kernel(self) -> Pair:
        return int(self.weight.shape[2]), int(self.weight.shape[3])

    @property
    def output_shape(self) -> Shape3:
        _, h, w = self.input_shape
        return (int(self.weight.shape[0]),
                conv_output_size(h, self.kernel[0], self.stride[0], self.padding[0]),
                conv_output_size(w, self.kernel[1], self.stride[1], self.padding[1]))


@dataclass
class SumPool2d:
    """Sum of the spikes in each window (integers, so the next layer sees counts)."""

    name: str
    input_shape: Shape3
    kernel: Pair
    stride: Pair
    padding: Pair = (0, 0)

    @property
    def output_shape(self) -> Shape3:
        c, h, w = self.input_shape
        return (c, conv_output_size(h, self.kernel[0], self.stride[0], self.padding[0]),
                conv_output_size(w, self.kernel[1], self.stride[1], self.padding[1]))


@dataclass
class MaxPool2d(SumPool2d):
    """Max of the spikes in each window: a logical OR per window and timestep."""


@dataclass
class Flatten:
    """Row-major (C-order) flattening: a no-op on spike addresses."""

    name: str
    input_shape: tuple[int, ...] = ()


Layer = Union[Dense, Conv2d, SumPool2d, MaxPool2d, Flatten]


class _LayerChain:
    """What both forms of a network share: an input shape and a chain of layers."""

    input_shape: tuple[int, ...]
    layers: list
    _spiking: ClassVar[tuple[type, ...]]  # the layer types that hold neurons in this form

    @property
    def spiking_layers(self) -> list:
        return [layer for layer in self.layers if isinstance(layer, self._spiking)]

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
    layers: list[Layer]
    source: str = ""

    _spiking = (Dense, Conv2d)


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


class _StateRails:
    """The saturation rails of a ``state_bits``-wide signed membrane (docs/semantics.md)."""

    state_bits: int

    @property
    def state_min(self) -> int:
        return -(1 << (self.state_bits - 1))

    @property
    def state_max(self) -> int:
        return (1 << (self.state_bits - 1)) - 1


@dataclass
class QuantDense(_StateRails):
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
    # Largest input value per address and timestep: 1 for spikes, k*k after a k x k sum
    # pool, 2**input_bits - 1 for direct multi-bit input. Sizes acc_bits.
    input_max: int = 1

    @property
    def in_features(self) -> int:
        return int(self.weight.shape[1])

    @property
    def out_features(self) -> int:
        return int(self.weight.shape[0])

    @property
    def output_shape(self) -> tuple[int]:
        return (self.out_features,)


@dataclass
class QuantConv2d(_StateRails):
    """Integer form of ``Conv2d``; per-channel arrays have length ``C_out``."""

    name: str
    weight: np.ndarray  # [C_out, C_in / groups, kh, kw] int64
    bias: np.ndarray  # [C_out] int64
    threshold: np.ndarray  # [C_out] int64, >= 1
    leak: Leak
    reset: ResetMode
    weight_bits: int
    state_bits: int
    acc_bits: int
    scale_exp: np.ndarray  # [C_out] int64
    input_shape: Shape3
    stride: Pair = (1, 1)
    padding: Pair = (0, 0)
    groups: int = 1
    input_max: int = 1  # largest input value per address and timestep (see QuantDense)

    kernel = Conv2d.kernel
    output_shape = Conv2d.output_shape


QuantLayer = Union[QuantDense, QuantConv2d, SumPool2d, MaxPool2d, Flatten]


@dataclass
class QuantNetwork(_LayerChain):
    input_shape: tuple[int, ...]
    layers: list[QuantLayer]
    timesteps: int
    source: str = ""
    notes: list[str] = field(default_factory=list)
    # 1: the input is spikes. More: "direct" input of unsigned integers of this width
    # (frames), which the first layer multiplies with its weights.
    input_bits: int = 1

    _spiking = (QuantDense, QuantConv2d)


# ----------------------------------------------------------------------------- JSON

FORMAT_VERSION = 1


_LAYER_TYPES: dict[str, type] = {
    "dense": Dense, "conv2d": Conv2d, "sum_pool2d": SumPool2d, "max_pool2d": MaxPool2d,
    "flatten": Flatten, "quant_dense": QuantDense, "quant_conv2d": QuantConv2d,
}
_TYPE_NAMES = {cls: name for name, cls in _LAYER_TYPES.items()}
_QUANT_TYPES = (QuantDense, QuantConv2d)


def _plain(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, (LIFNeurons, Leak)):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    return value


def _layer_to_dict(layer: Layer | QuantLayer) -> dict:
    doc = {"type": _TYPE_NAMES[type(layer)]}
    # The weights go last: the small fields stay readable at the top of each layer.
    names = sorted((f.name for f in fields(layer)), key=lambda name: name == "weight")
    doc.update({name: _plain(getattr(layer, name)) for name in names})
    return doc


def _layer_from_dict(d: dict) -> Layer | QuantLayer:
    cls = _LAYER_TYPES.get(d.get("type"))
    if cls is None:
        raise ValueError(f"unknown layer type {d.get('type')!r} in model JSON")
    number = np.int64 if cls in _QUANT_TYPES else np.float32
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
    doc = json.loads(text)
    if doc.get("format") != "hwgen-ir":
        raise ValueError("not an hwgen model JSON (missing \"format\": \"hwgen-ir\")")
    layers = [_layer_from_dict(d) for d in doc["layers"]]
    shape = tuple(int(s) for s in doc["input_shape"])
    if doc["form"] == "quantized":
        return QuantNetwork(shape, layers, int(doc["timesteps"]), doc.get("source", ""),
                            list(doc.get("notes", [])), int(doc.get("input_bits", 1)))
    return Network(shape, layers, doc.get("source", ""))
