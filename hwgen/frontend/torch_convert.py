"""PyTorch frontend, conversion: the traced graph of modules -> hwgen float IR layers.

One job: check every call of the graph ``torch_trace`` returns and map it to an IR node:
``nn.Linear`` / ``nn.Conv2d`` (with an ``nn.BatchNorm2d`` folded in) and the snnTorch neuron
after it (``Leaky``, ``RLeaky``, ``Synaptic``, ``RSynaptic``) become ``Dense`` / ``Conv2d``
with ``LIFNeurons`` (a recurrent neuron's own connection becomes a second, delayed input of
the same node); ``nn.Flatten``, ``nn.MaxPool2d`` and ``nn.AvgPool2d`` (as ``SumPool2d``, its
``1/divisor`` folded into the next synaptic layer) become ``Flatten`` / ``MaxPool2d`` /
``SumPool2d``; ``x + y`` of two spike tensors becomes a ``SpikeSum``. Shapes are tracked
along every edge. Anything else is refused with a message naming the layer.

The neuron semantics were read from snnTorch 1.0.0's source (``_neurons/leaky.py``,
``rleaky.py``, ``synaptic.py``, ``rsynaptic.py`` and ``neurons.py``); ``hwgen.ir_sim``
mirrors them and the tests compare against snnTorch itself.

Two imports change the float arithmetic and so are exact only up to float32 rounding (both
documented where they happen): ``nn.BatchNorm2d`` folded into its convolution, and
``nn.AvgPool2d`` with a window that is not a power of two (its ``1/(kh*kw)`` is folded into
the next synaptic layer's weights; for 2x2, 4x4, ... that fold is exact).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from snntorch._neurons import rleaky, rsynaptic
from torch import nn

from ..errors import HwgenError
from ..ir import INPUT, Edge, LIFNeurons, Network, conv_output_size, graph_from
from ..kinds import Conv2d, Dense, Flatten, MaxPool2d, SpikeSum, SumPool2d
# snnTorch comes through torch_trace, whose import of it turns a broken install into a
# readable HwgenError.
from .torch_trace import SEQUENTIAL_HINT, Call, SpikingNeuron, _layer_graph, _where, snn

NEURONS = "snntorch.Leaky, RLeaky, Synaptic or RSynaptic"
SUPPORTED = ("nn.Linear and nn.Conv2d (dilation 1, zero padding, any groups, with or without "
             f"bias), each directly followed by {NEURONS} (beta=1 for integrate-and-fire); "
             "nn.BatchNorm2d directly after an nn.Conv2d (folded into it); nn.MaxPool2d and "
             "nn.AvgPool2d on spikes (after a neuron or at the input); nn.Flatten "
             "(start_dim=1, end_dim=-1); 'x + y' of two spike tensors; and nn.Identity / "
             "nn.Dropout / nn.Dropout2d (no-ops at inference)")

# The exact methods whose behaviour hwgen.ir_sim reproduces, per neuron class. A subclass
# that overrides any of them (e.g. snntorch.DeltaLeaky) computes something else and is refused.
_NEURON_METHODS = ("forward", "fire", "mem_reset", "_base_state_function",
                   "_base_sub", "_base_zero", "_base_int")
_NEURON_CLASSES: dict[type, tuple[str, ...]] = {
    snn.Leaky: _NEURON_METHODS,
    snn.RLeaky: _NEURON_METHODS,
    snn.Synaptic: _NEURON_METHODS + ("_base_state_reset_zero",),
    snn.RSynaptic: _NEURON_METHODS + ("_base_state_reset_zero",),
}
# Each class's update rules. snnTorch's "zero" differs between them: Leaky zeroes the old
# membrane before the leak (``mem = (1 - reset)*mem``, then ``beta*mem + input``), the other
# three zero the whole new membrane, input included (``mem = f - reset*f``, ``f`` the new
# membrane: rleaky.py ``_base_zero``, synaptic.py / rsynaptic.py ``_base_zero`` with
# ``_base_state_reset_zero``), which is docs/semantics.md's "zero_step". Their current is not reset.
# state function -> (snnTorch's reset_mechanism, hwgen's reset)
_STATE_FUNCTIONS = {
    getattr(cls, method): (declared, reset)
    for cls in _NEURON_CLASSES
    for method, declared, reset in (("_base_sub", "subtract", "subtract"),
                                    ("_base_zero", "zero", "zero" if cls is snn.Leaky else "zero_step"),
                                    ("_base_int", "none", "none"))
}
_RESET_BY_VAL = {v: k for k, v in SpikingNeuron.reset_dict.items()}
# ``all_to_all=False``: each neuron's spike times its ``V`` (a class per module, the same code)
_ONE_TO_ONE = (rleaky.RecurrentOneToOne, rsynaptic.RecurrentOneToOne)


def _neuron_class(m: nn.Module) -> type | None:
    """The snnTorch neuron class ``m`` computes exactly as, or ``None``."""
    for cls, methods in _NEURON_CLASSES.items():
        if isinstance(m, cls) and all(getattr(type(m), a) is getattr(cls, a) for a in methods):
            return cls
    return None


def _is_recurrent(cls: type | None) -> bool:
    return cls in (snn.RLeaky, snn.RSynaptic)


def _type_name(m: nn.Module) -> str:
    cls = type(m)
    if cls.__module__.startswith("torch.nn."):
        return f"nn.{cls.__qualname__}"
    if cls.__module__.startswith("snntorch."):
        return f"snntorch.{cls.__qualname__}"
    return f"{cls.__module__}.{cls.__qualname__}"


def _unsupported(layer: str, m: nn.Module, name: str, why: str = "") -> HwgenError:
    kind = _type_name(m)
    detail = f" ({why})" if why else ""
    return HwgenError(f"layer '{layer}'{_where(name)} is {kind}, which hwgen does not "
                      f"support{detail}; supported layers: {SUPPORTED}")


def _finite(layer: str, param: str, values: np.ndarray, name: str) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        first = np.unravel_index(int(np.argmax(bad)), values.shape)
        raise HwgenError(f"layer '{layer}'{_where(name)}: parameter '{param}' contains "
                         f"{int(bad.sum())} NaN/inf value(s) (first at index "
                         f"{tuple(int(i) for i in first)}); the trained weights are broken "
                         "(diverged training?): retrain or fix the weights")


def _param_tensor(layer: str, param: str, value: object, name: str) -> torch.Tensor:
    t = value.detach().cpu() if isinstance(value, torch.Tensor) else torch.as_tensor(value)
    if t.is_complex():
        raise HwgenError(f"layer '{layer}'{_where(name)}: '{param}' is complex")
    if t.dtype == torch.float64 and t.dim() > 0:
        # A float64 per-neuron tensor promotes snnTorch's membrane to float64, which the
        # float32 simulator (and the quantizer's error estimates) would not reproduce.
        raise HwgenError(f"layer '{layer}'{_where(name)}: '{param}' is a float64 tensor, "
                         "which makes snnTorch compute the membrane in float64; convert the "
                         "model with model.float() before exporting")
    return t


def _per_neuron(layer: str, param: str, value: object, n: int, name: str) -> np.ndarray:
    """A Leaky parameter as the float32 values snnTorch computes with, one per neuron."""
    t = _param_tensor(layer, param, value, name)
    # A 0-dim tensor takes part in float32 arithmetic as a float32 value (torch's type
    # promotion), so casting here gives exactly the number snnTorch uses.
    if t.numel() == 1 and t.dim() <= 2:
        out = t.reshape(()).to(torch.float32).expand(n)
    elif t.numel() == n and t.dim() <= 2 and t.shape[-1] == n:
        out = t.reshape(n).to(torch.float32)
    else:
        raise HwgenError(f"layer '{layer}'{_where(name)}: '{param}' has shape "
                         f"{list(t.shape)}; expected a scalar or one value per neuron ({n})")
    values = out.numpy().astype(np.float64)
    _finite(layer, param, values, name)
    return values


def _per_channel(layer: str, param: str, value: object, shape: tuple[int, int, int],
                 name: str) -> np.ndarray:
    """A Leaky parameter after a Conv2d, as one float32 value per output channel.

    snnTorch broadcasts it against the membrane ``[B, C, H, W]``; whatever its shape, the
    value every neuron of a channel sees must be the same (the hardware's neuron parameters
    are per channel), so a per-position tensor is refused.
    """
    t = _param_tensor(layer, param, value, name)
    c, h, w = shape
    hint = (f"use a scalar or a tensor shaped [{c}, 1, 1] (one value per output channel)")
    try:
        if t.dim() > 4:
            raise RuntimeError
        full = t.to(torch.float32).expand(1, c, h, w)
    except RuntimeError:
        raise HwgenError(f"layer '{layer}'{_where(name)}: '{param}' has shape {list(t.shape)}, "
                         f"which does not broadcast over the [batch, {c}, {h}, {w}] membrane of "
                         f"the convolution before it; {hint}") from None
    full = full.reshape(c, h * w).numpy().astype(np.float64)
    _finite(layer, param, full, name)
    varies = np.any(full != full[:, :1], axis=1)
    if varies.any():
        ch = int(np.argmax(varies))
        raise HwgenError(f"layer '{layer}'{_where(name)}: '{param}' differs between positions "
                         f"of output channel {ch} ({full[ch].min():g}..{full[ch].max():g}); "
                         "hwgen's convolution neurons share beta and threshold across a "
                         f"channel: {hint}")
    return full[:, 0].copy()


def _neurons(layer: str, lif: nn.Module, n: int, is_last: bool, name: str,
             spatial: tuple[int, int, int] | None = None) -> LIFNeurons:
    """The neuron's parameters (Leaky, RLeaky, Synaptic or RSynaptic; a recurrent neuron's
    own connection is ``_recurrent``'s); ``spatial`` is the conv output shape (per-channel
    values). ``is_last``: nothing but the model's return takes its output."""
    where = f"neuron layer '{layer}'{_where(name)}"
    kind = type(lif).__name__
    if not getattr(lif, "reset_delay", True):
        raise HwgenError(f"{where} has reset_delay=False, which resets in the same step it "
                         "fires; hwgen implements snnTorch's default reset_delay=True: rebuild "
                         "and retrain with the default")
    if lif.inhibition:
        raise HwgenError(f"{where} has inhibition=True (winner-take-all across the batch "
                         "dimension), which hwgen does not support; use inhibition=False")
    if lif.state_quant:
        raise HwgenError(f"{where} uses state_quant; hwgen does its own quantization: remove "
                         "state_quant (hwgen build --weight-bits/--state-bits set the widths)")
    gsf = torch.as_tensor(lif.graded_spikes_factor).detach()
    if not bool(torch.all(gsf == 1)):
        learnt = " (learn_graded_spikes_factor=True learnt it)" if \
            isinstance(lif.graded_spikes_factor, nn.Parameter) else ""
        raise HwgenError(f"{where} has graded_spikes_factor != 1{learnt}; hwgen neurons emit "
                         "binary spikes: use graded_spikes_factor=1.0 and "
                         "learn_graded_spikes_factor=False")
    if (lif.output or not lif.init_hidden) and not is_last:
        raise HwgenError(f"{where} returns a (spk, mem) tuple (init_hidden=False or "
                         "output=True), so the next layer cannot take its spikes; use "
                         f"snn.{kind}(..., init_hidden=True) (output=True is fine on the "
                         "layer whose spikes the model returns, when nothing else takes them)")

    # Every snnTorch surrogate's forward is the Heaviside x > 0; a user-supplied spike_grad
    # could be anything, and hwgen hardware can only fire on that comparison.
    probe = torch.tensor([-1e3, -1.0, -1e-7, -1e-40, -0.0, 0.0, 1e-40, 1e-7, 1.0, 1e3])
    try:
        with torch.no_grad():
            fired = lif.spike_grad(probe.clone())
        heaviside = isinstance(fired, torch.Tensor) and fired.shape == probe.shape and \
            torch.equal(fired.float(), (probe > 0).float())
    except Exception:
        heaviside = False
    if not heaviside:
        raise HwgenError(f"{where} has a spike_grad whose forward is not the Heaviside step "
                         "(mem - threshold > 0); use one of snntorch.surrogate's functions")

    func = getattr(lif.state_function, "__func__", None)
    mechanism, reset = _STATE_FUNCTIONS.get(func, (None, None))
    if reset is None:
        raise HwgenError(f"{where} has a replaced state_function; only snnTorch's own {kind} "
                         "subtract / zero / none resets are supported")
    declared = _RESET_BY_VAL.get(int(lif.reset_mechanism_val))
    if declared != mechanism:
        # snnTorch picks the update rule once, in __init__; setting reset_mechanism later or
        # loading another model's reset_mechanism_val buffer changes the buffer but not what
        # forward computes. Neither choice would be safe to guess.
        raise HwgenError(f"{where}: its forward resets by '{mechanism}' (chosen when it was "
                         f"built) but its reset_mechanism_val buffer says '{declared}' (set "
                         "afterwards or loaded from another model's state_dict); build the "
                         f"model with reset_mechanism='{declared}' directly")

    def param(key: str) -> np.ndarray:
        if spatial is None:
            return _per_neuron(layer, key, getattr(lif, key), n, name)
        return _per_channel(layer, key, getattr(lif, key), spatial, name)

    # snnTorch clamps beta and alpha to [0, 1] in every step (``beta.clamp(0, 1)``).
    beta = np.clip(param("beta"), 0.0, 1.0)
    threshold = param("threshold")
    alpha = np.clip(param("alpha"), 0.0, 1.0) if isinstance(lif, (snn.Synaptic, snn.RSynaptic)) else None
    if np.any(threshold <= 0):
        raise HwgenError(f"{where}: threshold must be > 0 (found {threshold.min():g}); a "
                         "neuron with threshold <= 0 fires at rest: use a positive threshold")
    return LIFNeurons(beta=beta, threshold=threshold, reset=reset, alpha=alpha)  # type: ignore[arg-type]


def _weights(layer: str, m: nn.Linear | nn.Conv2d, name: str) -> tuple[np.ndarray, np.ndarray]:
    for param, tensor in (("weight", m.weight), ("bias", m.bias)):
        if tensor is not None and tensor.dtype != torch.float32:
            raise HwgenError(f"layer '{layer}'{_where(name)}: '{param}' is {tensor.dtype}; "
                             "hwgen imports float32 models: convert with model.float()")
    weight = m.weight.detach().cpu().numpy().astype(np.float32, copy=True)
    _finite(layer, "weight", weight, name)
    if m.bias is None:
        bias = np.zeros(weight.shape[0], dtype=np.float32)
    else:
        bias = m.bias.detach().cpu().numpy().astype(np.float32, copy=True)
        _finite(layer, "bias", bias, name)
    return weight, bias


# ---------------------------------------------------------------------------- layer kinds

def _exact(m: nn.Module, cls: type, methods: tuple[str, ...] = ("forward",)) -> bool:
    """``m`` is ``cls`` or a subclass that computes the same (overrides none of ``methods``)."""
    return isinstance(m, cls) and all(getattr(type(m), a) is getattr(cls, a) for a in methods)


def _is_linear(m: nn.Module) -> bool:
    return _exact(m, nn.Linear)


def _is_conv(m: nn.Module) -> bool:
    return _exact(m, nn.Conv2d, ("forward", "_conv_forward"))


def _is_flatten(m: nn.Module) -> bool:
    return _exact(m, nn.Flatten)


def _is_pool(m: nn.Module) -> bool:
    return _exact(m, nn.MaxPool2d) or _exact(m, nn.AvgPool2d)


def _is_bn(m: nn.Module) -> bool:
    return _exact(m, nn.BatchNorm2d) and type(m)._check_input_dim is nn.BatchNorm2d._check_input_dim


_NO_OPS = (nn.Identity, nn.Dropout, nn.Dropout2d)


class _Synapse:
    """A synaptic layer taking the output of ``source``, the BatchNorm2d folded into it (if
    any) and its neuron; known to its consumers by the neuron's name (``out``)."""

    def __init__(self, layer: str, module: nn.Linear | nn.Conv2d, source: str) -> None:
        self.layer, self.module, self.source = layer, module, source
        self.bn: tuple[str, nn.BatchNorm2d] | None = None
        self.lif: tuple[str, nn.Module] | None = None

    @property
    def kind(self) -> str:
        return "Conv2d" if isinstance(self.module, nn.Conv2d) else "Linear"

    @property
    def out(self) -> str:
        return self.lif[0]  # type: ignore[index]


@dataclass
class _Op:
    """An ``nn.Flatten`` (``kind`` "flatten") or pool ("pool") taking ``source``'s output."""

    kind: str
    layer: str
    module: nn.Module
    source: str

    @property
    def out(self) -> str:
        return self.layer


@dataclass
class _Sum:
    """``x + y`` of the outputs of ``sources``."""

    layer: str
    sources: tuple[str, ...]

    @property
    def out(self) -> str:
        return self.layer


@dataclass
class _Flow:
    """What travels along one edge of the model: the ``node`` (IR name, or ``INPUT``) that
    produces it, its ``shape``, whether it carries the input, spikes or counts (``source``),
    a phrase for messages (``after``), the AvgPool2d ``1/divisor`` still to fold into the next
    synaptic layer (``scale``), and whether it is the input passed through nothing but
    flattens (``flat``) or through no neuron (``raw``), for the --input-shape hints."""

    node: str
    shape: tuple[int, ...]
    source: str = "spikes"
    after: str = "the input"
    scale: float = 1.0
    raw: bool = False
    flat: bool = False


def _pair(value: object) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    a, b = value  # type: ignore[misc]
    return (int(a), int(b))


def _conv_padding(layer: str, conv: nn.Conv2d, name: str) -> tuple[int, int]:
    if isinstance(conv.padding, str):
        if conv.padding == "valid":
            return (0, 0)
        # padding='same' (stride 1): torch pads k-1 in total, the odd one on the right and
        # bottom. Symmetric for odd kernels, where torch calls the same convolution as with
        # explicit padding (k-1)/2; an even kernel would need asymmetric padding.
        kh, kw = conv.kernel_size
        if (kh - 1) % 2 or (kw - 1) % 2:
            raise HwgenError(f"layer '{layer}'{_where(name)} (nn.Conv2d) has padding='same' with "
                             f"the even kernel {kh}x{kw}, which pads asymmetrically; hwgen "
                             "convolutions pad symmetrically: use an odd kernel or explicit "
                             "padding")
        return ((kh - 1) // 2, (kw - 1) // 2)
    return _pair(conv.padding)


def _check_conv(layer: str, conv: nn.Conv2d, name: str) -> None:
    what = f"layer '{layer}'{_where(name)} (nn.Conv2d)"
    if tuple(conv.dilation) != (1, 1):
        raise HwgenError(f"{what} has dilation={tuple(conv.dilation)}; hwgen convolutions "
                         "have dilation 1: use dilation=1")
    if conv.padding_mode != "zeros":
        raise HwgenError(f"{what} has padding_mode='{conv.padding_mode}'; hwgen convolutions "
                         "pad with zeros (no event comes from outside the map): use "
                         "padding_mode='zeros'")


def _fold_batchnorm(bn_name: str, bn: nn.BatchNorm2d, conv_name: str, weight: np.ndarray,
                    bias: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Fold an eval-mode BatchNorm2d into the convolution before it.

    BatchNorm2d in eval mode computes, per output channel ``c``, from the running statistics:

        y = (z - mean[c]) / sqrt(var[c] + eps) * gamma[c] + beta[c],   z = conv(x) + b[c]

    which is again a convolution: with ``s[c] = gamma[c] / sqrt(var[c] + eps)``,

        W'[c] = W[c] * s[c]          b'[c] = (b[c] - mean[c]) * s[c] + beta[c]

    (``gamma = 1``, ``beta = 0`` without ``affine``). The running statistics are used even if
    the module is in training mode: that is what inference (and the hardware) computes. The
    fold is done in float64 and rounded once to float32. It is exact in real numbers but not
    in float32: torch rounds ``conv(x)`` and then the BatchNorm, the folded layer rounds one
    convolution, so a membrane within a few ulps of the threshold can fire differently.
    """
    where = f"layer '{bn_name}'{_where(name)} (nn.BatchNorm2d)"
    c_out = weight.shape[0]
    if bn.num_features != c_out:
        raise HwgenError(f"{where} has num_features={bn.num_features} but Conv2d '{conv_name}' "
                         f"before it has {c_out} output channels")
    if bn.running_mean is None or bn.running_var is None:
        raise HwgenError(f"{where} has track_running_stats=False, so it normalises with the "
                         "statistics of each batch even at inference; hwgen folds fixed "
                         "running statistics into the convolution: train with "
                         "track_running_stats=True")
    params = {"running_mean": bn.running_mean, "running_var": bn.running_var,
              "weight": bn.weight, "bias": bn.bias}
    values = {}
    for param, tensor in params.items():
        if tensor is None:  # affine=False
            values[param] = np.full(c_out, 1.0 if param == "weight" else 0.0)
            continue
        values[param] = tensor.detach().cpu().numpy().astype(np.float64)
        _finite(bn_name, param, values[param], name)
    denom = values["running_var"] + float(bn.eps)
    if np.any(denom <= 0):
        raise HwgenError(f"{where}: running_var + eps is not positive for channel "
                         f"{int(np.argmax(denom <= 0))}; the BatchNorm statistics are broken")
    s = values["weight"] / np.sqrt(denom)
    w = (weight.astype(np.float64) * s[:, None, None, None]).astype(np.float32)
    b = ((bias.astype(np.float64) - values["running_mean"]) * s + values["bias"]).astype(np.float32)
    _finite(conv_name, "weight (after folding BatchNorm2d)", w, name)
    _finite(conv_name, "bias (after folding BatchNorm2d)", b, name)
    return w, b


def _pool_layer(layer: str, m: nn.Module, shape: tuple[int, int, int], name: str
                ) -> tuple[SumPool2d, float]:
    """The IR pool for ``m`` and the factor to fold into the next synaptic layer."""
    kind = _type_name(m)
    what = f"layer '{layer}'{_where(name)} ({kind})"
    k = _pair(m.kernel_size)
    s = _pair(m.stride if m.stride is not None else m.kernel_size)
    p = _pair(m.padding)
    if isinstance(m, nn.MaxPool2d):
        if _pair(m.dilation) != (1, 1):
            raise HwgenError(f"{what} has dilation={m.dilation}; use dilation=1")
        if m.return_indices:
            raise HwgenError(f"{what} has return_indices=True; use return_indices=False")
    _, h, w = shape
    floor = [conv_output_size(n, kk, ss, pp) for n, kk, ss, pp in zip((h, w), k, s, p)]
    if m.ceil_mode:
        ceil = [-(-(n + 2 * pp - kk) // ss) + 1 for n, kk, ss, pp in zip((h, w), k, s, p)]
        if ceil != floor:
            raise HwgenError(f"{what} has ceil_mode=True, which adds partial windows on a "
                             f"{h}x{w} map; hwgen pools whole windows: use ceil_mode=False")
    if min(floor) <= 0:
        raise HwgenError(f"{what}: its {k[0]}x{k[1]} window does not fit the {h}x{w} map it "
                         f"receives (input shape {shape})")
    if isinstance(m, nn.MaxPool2d):
        return MaxPool2d(layer, shape, k, s, p), 1.0
    if any(p) and not m.count_include_pad:
        raise HwgenError(f"{what} has padding with count_include_pad=False, which divides "
                         "border windows by fewer elements; use count_include_pad=True (or no "
                         "padding)")
    divisor = m.divisor_override or k[0] * k[1]
    return SumPool2d(layer, shape, k, s, p), 1.0 / divisor


def _fold_scale(weight: np.ndarray, scale: float) -> np.ndarray:
    """Fold the ``1/divisor`` of the AvgPool2d layers before a synaptic layer into its weights.

    The float model computes ``W · (sum / d)``, hwgen computes ``(W / d) · sum`` with the sum
    pool's integer counts (docs/semantics.md, AvgPool2d). The bias is added once, not per
    input, so it is not scaled. For ``d`` a power of two both are the same float32 number;
    otherwise they differ by float32 rounding.
    """
    if scale == 1.0:
        return weight
    return (weight.astype(np.float64) * scale).astype(np.float32)


# ---------------------------------------------------------------------------- recurrence

def _recurrent(syn: _Synapse, conv: Conv2d | None, n: int, name: str
               ) -> tuple[np.ndarray, np.ndarray]:
    """The weight and bias of a recurrent neuron's connection to itself (``RLeaky`` /
    ``RSynaptic``), shaped as a second input of the synaptic layer before it: dense
    ``[N, N]``; convolution ``[C, C, kh, kw]`` in that layer's kernel geometry (``conv``, its
    feed-forward form), since the IR computes both inputs as one convolution over the stacked
    channels (docs/semantics.md, "Graphs"). ``all_to_all=False`` multiplies each neuron's
    spike by its ``V``: a diagonal weight (the centre tap of a convolution kernel), exact on
    0/1 spikes (every other product is an exact zero)."""
    lif_name, lif = syn.lif  # type: ignore[misc]
    where = f"neuron layer '{lif_name}'{_where(name)} ({_type_name(lif)})"
    rec = lif.recurrent
    rec_name = f"{lif_name}.recurrent"
    one_to_one = not lif.all_to_all
    if one_to_one and not any(_exact(rec, cls) for cls in _ONE_TO_ONE):
        raise HwgenError(f"{where}: its one-to-one recurrent connection is a "
                         f"{_type_name(rec)}, not snnTorch's RecurrentOneToOne (x * V); "
                         "hwgen maps only snnTorch's own")
    if conv is None:
        if one_to_one:
            v = _per_neuron(lif_name, "V", rec.V, n, name)
            return np.diag(v).astype(np.float32), np.zeros(n, dtype=np.float32)
        if not _is_linear(rec) or (rec.in_features, rec.out_features) != (n, n):
            raise HwgenError(f"{where}: its recurrent connection is {_type_name(rec)}"
                             f"{_shape_of(rec)}, but after nn.Linear '{syn.layer}' ({n} neurons) "
                             f"hwgen needs nn.Linear({n}, {n}): build it with "
                             f"linear_features={n}")
        return _weights(rec_name, rec, name)

    c, h, w = conv.output_shape
    _, h_in, w_in = conv.input_shape
    (kh, kw), pad = conv.kernel, conv.padding
    if conv.stride != (1, 1) or conv.groups != 1 or (h, w) != (h_in, w_in):
        raise HwgenError(f"{where} feeds its spikes back into nn.Conv2d '{syn.layer}', which "
                         f"has stride {conv.stride}, groups {conv.groups} and maps {h_in}x{w_in} "
                         f"to {h}x{w}; hwgen computes a layer's inputs as one convolution over "
                         "stacked channels, which needs stride 1, groups 1 and the same map size "
                         f"in and out (padding {(kh // 2, kw // 2)} with an odd kernel)")
    if one_to_one:
        v = _per_channel(lif_name, "V", rec.V, (c, h, w), name)
        weight = np.zeros((c, c, kh, kw), dtype=np.float32)
        # stride 1 and the same map size mean 2*padding = kernel - 1: the tap at `padding`
        # reads the position itself
        weight[np.arange(c), np.arange(c), pad[0], pad[1]] = v
        return weight, np.zeros(c, dtype=np.float32)
    if not _is_conv(rec) or (rec.in_channels, rec.out_channels) != (c, c):
        raise HwgenError(f"{where}: its recurrent connection is {_type_name(rec)}"
                         f"{_shape_of(rec)}, but after nn.Conv2d '{syn.layer}' ({c} channels) "
                         f"hwgen needs nn.Conv2d({c}, {c}, ...): build it with "
                         f"conv2d_channels={c}")
    _check_conv(rec_name, rec, name)
    rec_pad = _conv_padding(rec_name, rec, name)
    if (_pair(rec.kernel_size), rec_pad, _pair(rec.stride), rec.groups) != ((kh, kw), pad, (1, 1), 1):
        raise HwgenError(f"{where}: its recurrent nn.Conv2d (kernel {_pair(rec.kernel_size)}, "
                         f"padding {rec_pad}, stride {_pair(rec.stride)}, groups {rec.groups}) "
                         f"and nn.Conv2d '{syn.layer}' before it (kernel {(kh, kw)}, padding "
                         f"{pad}) differ in geometry; hwgen computes both as one convolution "
                         "over stacked channels: give the neuron the convolution's "
                         "kernel_size")
    return _weights(rec_name, rec, name)


def _shape_of(m: nn.Module) -> str:
    if isinstance(m, nn.Linear):
        return f"({m.in_features}, {m.out_features})"
    if isinstance(m, nn.Conv2d):
        return f"({m.in_channels}, {m.out_channels}, kernel_size={_pair(m.kernel_size)})"
    return ""


# ---------------------------------------------------------------------------- import

def _group(calls: list[Call], output: str, name: str, cls: str
           ) -> tuple[list[_Synapse | _Op | _Sum], str]:
    """Pair each synaptic layer with its BatchNorm and neuron; keep flattens, pools and sums.
    Every item's sources are the ``out`` of earlier items, or ``INPUT``; returns the items
    and the ``out`` the model returns (no-op layers skipped)."""
    alias: dict[str, str] = {}  # a no-op layer's output -> what it passes on
    resolved: list[Call] = []
    for call in calls:
        args = tuple(alias.get(a, a) for a in call.args)
        if call.module is not None and type(call.module) in _NO_OPS:
            alias[call.name] = args[0]
        else:
            resolved.append(Call(call.name, call.module, args))
    output = alias.get(output, output)
    users: dict[str, list[str]] = {}
    for call in resolved:
        for arg in call.args:
            users.setdefault(arg, []).append(call.name)

    def feeds_its_neuron_only(syn: _Synapse, out: str) -> None:
        if len(users.get(out, [])) > 1:
            raise HwgenError(f"the output of layer '{out}'{_where(name)} (nn.{syn.kind}, a synaptic "
                             f"current) goes to {len(users[out])} layers "
                             f"({', '.join(repr(u) for u in users[out])}); each synaptic layer "
                             "must feed its own neuron alone: branch after the neuron, on spikes")

    items: list[_Synapse | _Op | _Sum] = []
    pending: dict[str, _Synapse] = {}  # a synaptic layer's (or its BatchNorm's) output -> it
    for call in resolved:
        layer, m = call.name, call.module
        if m is None:
            current = next((a for a in call.args if a in pending), None)
            if current is not None:
                p = pending[current]
                raise HwgenError(f"{cls}.forward{_where(name)}: '{layer}' adds the output of "
                                 f"nn.{p.kind} '{p.layer}', a synaptic current before its neuron; "
                                 "hwgen adds spike tensors only (x + block(x), each side the "
                                 "output of a neuron, a pool of spikes or the input), and a "
                                 "neuron takes one synaptic layer: add the spikes after the "
                                 "neurons")
            items.append(_Sum(layer, call.args))
            continue
        source = call.args[0]
        syn = pending.get(source)
        if _is_flatten(m):
            if syn is not None:
                raise HwgenError(f"layer '{layer}'{_where(name)} (nn.Flatten) sits between "
                                 f"{syn.kind} '{syn.layer}' and its neuron; each "
                                 f"nn.{syn.kind} must be directly followed by {NEURONS}")
            if m.start_dim != 1 or m.end_dim != -1:
                raise HwgenError(f"layer '{layer}'{_where(name)}: nn.Flatten(start_dim="
                                 f"{m.start_dim}, end_dim={m.end_dim}) is not supported; use "
                                 "nn.Flatten() (start_dim=1, end_dim=-1), which keeps the "
                                 "batch dimension")
            items.append(_Op("flatten", layer, m, source))
        elif _is_pool(m):
            if syn is not None:
                kind = _type_name(m)
                raise HwgenError(
                    f"layer '{layer}'{_where(name)} ({kind}) pools the output of "
                    f"{syn.kind} '{syn.layer}' before its neuron, i.e. membrane "
                    "currents; hwgen pools spikes only (a max over currents needs every "
                    "current of the window first, so it is not event-driven): move the pool "
                    f"after the neuron (nn.{syn.kind} -> snntorch.Leaky -> {kind}) and "
                    "retrain")
            items.append(_Op("pool", layer, m, source))
        elif _is_bn(m):
            if syn is None or syn.kind != "Conv2d" or syn.bn is not None:
                raise HwgenError(f"layer '{layer}'{_where(name)} (nn.BatchNorm2d) does not "
                                 "directly follow an nn.Conv2d; hwgen folds BatchNorm2d into the "
                                 "convolution before it, so use nn.Conv2d -> nn.BatchNorm2d -> "
                                 "snntorch.Leaky")
            syn.bn = (layer, m)
            feeds_its_neuron_only(syn, layer)
            pending[layer] = pending.pop(source)
        elif _is_linear(m) or _is_conv(m):
            if syn is not None:
                raise HwgenError(f"layer '{syn.layer}'{_where(name)} (nn.{syn.kind}) is "
                                 f"followed by '{layer}' ({type(m).__name__}) instead of a "
                                 f"spiking neuron; each nn.{syn.kind} must be followed by "
                                 f"{NEURONS}")
            pending[layer] = _Synapse(layer, m, source)
            feeds_its_neuron_only(pending[layer], layer)
        elif _neuron_class(m) is not None:
            if syn is None:
                raise HwgenError(f"neuron layer '{layer}'{_where(name)} is not preceded by an "
                                 "nn.Linear or nn.Conv2d (two neuron layers in a row, or a "
                                 "neuron first); hwgen needs nn.Linear / nn.Conv2d -> "
                                 f"{NEURONS} pairs")
            syn.lif = (layer, m)
            items.append(pending.pop(source))
        elif isinstance(m, SpikingNeuron):
            raise _unsupported(layer, m, name, f"only {NEURONS} neurons are supported; its "
                                               "dynamics differ")
        else:
            raise _unsupported(layer, m, name)
    if pending:
        syn = next(iter(pending.values()))
        raise HwgenError(f"layer '{syn.layer}'{_where(name)} (nn.{syn.kind}) is the last "
                         "layer but is not followed by a spiking neuron; add snntorch.Leaky "
                         "after it")
    if not any(isinstance(item, _Synapse) for item in items):
        raise HwgenError(f"model{_where(name)} has no nn.Linear / nn.Conv2d -> snntorch.Leaky "
                         f"layers; {SEQUENTIAL_HINT}")
    by_out = {item.out: item for item in items}
    final = by_out[output]
    if isinstance(final, _Sum):
        raise HwgenError(f"{cls}.forward{_where(name)} returns the sum '{final.layer}'; the "
                         "readout counts the spikes of one neuron layer: return a neuron's "
                         "output")
    if isinstance(final, _Op):
        while isinstance(by_out.get(final.source), _Op):  # name the first after the neuron
            final = by_out[final.source]  # type: ignore[assignment]
        follow = "an nn.Linear" if _is_flatten(final.module) else "a synaptic layer"
        raise HwgenError(f"layer '{final.layer}'{_where(name)} ({_type_name(final.module)}) is "
                         f"not followed by {follow}: it comes after the last neuron layer, whose "
                         "spike counts are the readout; remove it")
    # Every layer must lead to what the model returns: hwgen builds all it imports.
    needed, todo = set(), [output]
    while todo:
        out = todo.pop()
        if out in by_out and out not in needed:
            needed.add(out)
            item = by_out[out]
            todo += list(item.sources) if isinstance(item, _Sum) else [item.source]
    unused = next((item for item in items if item.out not in needed), None)
    if unused is not None:
        raise HwgenError(f"the output of layer '{unused.out}'{_where(name)} does not reach what "
                         f"{cls}.forward returns ('{output}'); hwgen builds every layer it "
                         "imports: remove the unused branch")
    return items, output


def _infer_input_shape(items: list, name: str) -> tuple[int, ...]:
    first = items[0]
    if isinstance(first, _Synapse) and first.kind == "Linear":
        return (first.module.in_features,)
    syn = next(item for item in items if isinstance(item, _Synapse))
    if isinstance(first, _Synapse):
        c = first.module.in_channels
        raise HwgenError(f"model{_where(name)} starts with nn.Conv2d '{first.layer}' "
                         f"(in_channels={c}), so the height and width of one input sample "
                         f"cannot be inferred: pass --input-shape C,H,W (e.g. --input-shape "
                         f"{c},28,28)")
    if isinstance(first, _Sum):
        raise HwgenError(f"model{_where(name)} starts with the sum '{first.layer}', so the "
                         "shape of one input sample cannot be inferred: pass --input-shape")
    what = "nn.Flatten" if first.kind == "flatten" else _type_name(first.module)
    if syn.kind == "Linear" and all(isinstance(i, _Op) and i.kind == "flatten" for i in
                                    items[:items.index(syn)]):
        example = f"--input-shape 1,28,28; it must have {syn.module.in_features} elements"
    else:
        c = syn.module.in_channels if syn.kind == "Conv2d" else 1
        example = f"--input-shape {c},28,28"
    raise HwgenError(f"model{_where(name)} starts with {what}, so the shape of one input "
                     f"sample cannot be inferred: pass --input-shape (e.g. {example})")


def import_torch(module: nn.Module, input_shape: tuple[int, ...] | None = None,
                 name: str = "") -> Network:
    """Convert a single-timestep snnTorch model into hwgen's float IR.

    ``input_shape`` is the shape of one sample at one timestep (no batch, no time): ``(C, H,
    W)`` for a model that starts with a convolution or a pool. It may be omitted when the
    first layer is a Linear (it is then ``(in_features,)``). ``name`` is recorded as the
    network's source and used in error messages.

    Shapes are tracked along every edge and every layer is checked against what it
    receives. ``nn.AvgPool2d`` becomes a ``SumPool2d`` whose ``1/divisor`` is folded into the
    next synaptic layer's weights (``_fold_scale``); ``nn.BatchNorm2d`` is folded into its
    convolution (``_fold_batchnorm``). A recurrent neuron's connection to itself becomes a
    second input of its node, delayed by one timestep (``_recurrent``); ``x + y`` becomes a
    ``SpikeSum``. A chain gives a chain (``Network.inputs`` empty).
    """
    calls, output = _layer_graph(module, name)
    items, output = _group(calls, output, name, type(module).__name__)
    if input_shape is None:
        input_shape = _infer_input_shape(items, name)
    input_shape = tuple(int(s) for s in input_shape)
    if not input_shape or any(s <= 0 for s in input_shape):
        raise HwgenError(f"input shape {input_shape} is invalid: give positive sizes "
                         "(--input-shape)")

    used = {src for item in items for src in (item.sources if isinstance(item, _Sum) else [item.source])}
    layers: list = []
    edges: dict[str, list[Edge]] = {}
    # what travels out of each item (by its ``out``), and out of the input
    flows = {INPUT: _Flow(INPUT, input_shape, "input", "the input", raw=True, flat=True)}
    for item in items:
        if isinstance(item, _Sum):
            ins = [flows[s] for s in item.sources]
            what = f"the sum '{item.layer}'{_where(name)}"
            if any(f.shape != ins[0].shape for f in ins):
                raise HwgenError(f"{what} adds {' and '.join(str(f.shape) for f in ins)} (from "
                                 f"{' and '.join(f.after for f in ins)}); hwgen adds spike "
                                 "tensors of one shape element by element")
            pooled = next((f for f in ins if f.scale != 1.0), None)
            if pooled is not None:
                raise HwgenError(f"{what} adds the output of {pooled.after} (an nn.AvgPool2d, "
                                 "whose 1/divisor hwgen folds into the next synaptic layer); put "
                                 "the average pool after the sum, or use nn.MaxPool2d")
            layers.append(SpikeSum(item.layer, ins[0].shape))
            edges[item.layer] = [Edge(f.node) for f in ins]
            flows[item.out] = _Flow(item.layer, ins[0].shape, "counts", f"the sum '{item.layer}'",
                                    raw=all(f.raw for f in ins))
            continue
        flow = flows[item.source]
        shape, source, after, scale = flow.shape, flow.source, flow.after, flow.scale
        if isinstance(item, _Op):
            layer, m = item.layer, item.module
            if item.kind == "flatten":
                layers.append(Flatten(layer, input_shape=shape))
                flows[item.out] = _Flow(layer, (int(np.prod(shape)),), source, after, scale,
                                        flow.raw, flow.flat)
            else:
                what = f"layer '{layer}'{_where(name)} ({_type_name(m)})"
                if len(shape) != 3:
                    raise HwgenError(f"{what} pools (C, H, W) maps but receives shape {shape} "
                                     f"from {after}" + (" (pass --input-shape C,H,W)"
                                                        if source == "input" and flow.raw else ""))
                if isinstance(m, nn.MaxPool2d) and source == "counts":
                    counts = "an nn.AvgPool2d" if after.startswith("layer") else after
                    raise HwgenError(f"{what} max-pools the output of {counts}; hwgen "
                                     "max-pools spikes only (an OR of 0/1 values): put the max "
                                     "pool directly after a neuron")
                pool, factor = _pool_layer(layer, m, shape, name)  # type: ignore[arg-type]
                layers.append(pool)
                # a max pool keeps spikes spikes
                flows[item.out] = _Flow(layer, pool.output_shape,
                                        source if isinstance(pool, MaxPool2d) else "counts",
                                        f"layer '{layer}'", scale * factor, flow.raw)
            edges[layer] = [Edge(flow.node)]
            continue

        syn = item
        lif_name, lif = syn.lif  # type: ignore[misc]
        is_last = syn.out == output and syn.out not in used
        m = syn.module
        if syn.kind == "Linear":
            if len(shape) != 1:
                if flow.node == INPUT:
                    raise HwgenError(f"input shape {input_shape} is multi-dimensional but the "
                                     f"first layer '{syn.layer}' is an nn.Linear, which acts on "
                                     "the last dimension only; add nn.Flatten() before it or "
                                     f"pass --input-shape {m.in_features}")
                raise HwgenError(f"layer '{syn.layer}'{_where(name)} (nn.Linear) receives "
                                 f"{shape} maps from {after}, but nn.Linear acts on the last "
                                 "dimension only; add nn.Flatten() before it")
            if m.in_features != shape[0]:
                if flow.flat:
                    raise HwgenError(f"input shape {input_shape} has {shape[0]} elements but "
                                     f"the first Linear '{syn.layer}' has in_features="
                                     f"{m.in_features}; fix --input-shape")
                raise HwgenError(f"layer '{syn.layer}'{_where(name)}: in_features="
                                 f"{m.in_features} but the previous layer produces {shape[0]} "
                                 f"{'spikes' if source == 'spikes' else 'values'} per timestep "
                                 f"(shape {shape} from {after})")
            weight, bias = _weights(syn.layer, m, name)
            weight = _fold_scale(weight, scale)
            neurons = _neurons(lif_name, lif, m.out_features, is_last, name)
            node = Dense(name=syn.layer, weight=weight, bias=bias, neurons=neurons)
            conv = None
        else:
            what = f"layer '{syn.layer}'{_where(name)} (nn.Conv2d)"
            hint = "; fix --input-shape" if flow.raw else ""
            _check_conv(syn.layer, m, name)
            if len(shape) != 3:
                raise HwgenError(f"{what} needs (C, H, W) maps but receives shape {shape} from "
                                 f"{after}" + (" (pass --input-shape C,H,W)" if flow.raw else ""))
            if shape[0] != m.in_channels:
                raise HwgenError(f"{what} has in_channels={m.in_channels} but receives "
                                 f"{shape[0]} channels (shape {shape}) from {after}" + hint)
            padding = _conv_padding(syn.layer, m, name)
            weight, bias = _weights(syn.layer, m, name)
            if syn.bn is not None:
                weight, bias = _fold_batchnorm(syn.bn[0], syn.bn[1], syn.layer, weight, bias,
                                               name)
            weight = _fold_scale(weight, scale)
            stride, (kh, kw) = _pair(m.stride), _pair(m.kernel_size)
            out = (int(m.out_channels),
                   conv_output_size(shape[1], kh, stride[0], padding[0]),
                   conv_output_size(shape[2], kw, stride[1], padding[1]))
            if min(out[1:]) <= 0:
                raise HwgenError(f"{what}: its {kh}x{kw} kernel (padding {padding}) does not "
                                 f"fit the {shape[1]}x{shape[2]} map it receives from {after}"
                                 + hint)
            neurons = _neurons(lif_name, lif, out[0], is_last, name, spatial=out)
            node = conv = Conv2d(name=syn.layer, weight=weight, bias=bias, neurons=neurons,
                                 input_shape=shape, stride=stride, padding=padding,  # type: ignore[arg-type]
                                 groups=int(m.groups))
        edges[syn.layer] = [Edge(flow.node)]
        if _is_recurrent(_neuron_class(lif)):
            rec_weight, rec_bias = _recurrent(syn, conv, node.output_shape[0], name)
            width = (node.weight.shape[1], rec_weight.shape[1])
            node.weight = np.concatenate([node.weight, rec_weight], axis=1)
            node.segments, node.extra_bias = width, rec_bias[None, :]
            if conv is not None:  # the map the one convolution reads: both inputs' channels
                conv.input_shape = (sum(width), *conv.input_shape[1:])
            edges[syn.layer].append(Edge(syn.layer, 1))
        layers.append(node)
        flows[syn.out] = _Flow(syn.layer, tuple(node.output_shape), "spikes",
                               f"neuron layer '{lif_name}'")
    out_node = flows[output].node
    net = Network(input_shape=input_shape, layers=layers, source=name,
                  inputs=graph_from(layers, edges),
                  output="" if out_node == layers[-1].name else out_node)
    try:
        net.check_graph()
    except ValueError as exc:  # e.g. a module whose name is fx's name of a sum
        raise HwgenError(f"model{_where(name)}: {exc}") from exc
    return net
