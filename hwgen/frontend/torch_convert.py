"""PyTorch frontend, conversion: the traced chain of modules -> hwgen float IR layers.

One job: check every module of the chain ``torch_trace`` returns and map it to an IR layer:
``nn.Linear`` / ``nn.Conv2d`` (with an ``nn.BatchNorm2d`` folded in) and the
``snntorch.Leaky`` after it become ``Dense`` / ``Conv2d`` with ``LIFNeurons``; ``nn.Flatten``,
``nn.MaxPool2d`` and ``nn.AvgPool2d`` (as ``SumPool2d``, its ``1/divisor`` folded into the
next synaptic layer) become ``Flatten`` / ``MaxPool2d`` / ``SumPool2d``; shapes are tracked
through the chain. Anything else is refused with a message naming the layer.

The neuron semantics were read from snnTorch 1.0.0's source (``_neurons/leaky.py`` and
``_neurons/neurons.py``); ``hwgen.ir_sim`` mirrors them and the tests compare against
snnTorch itself.

Two imports change the float arithmetic and so are exact only up to float32 rounding (both
documented where they happen): ``nn.BatchNorm2d`` folded into its convolution, and
``nn.AvgPool2d`` with a window that is not a power of two (its ``1/(kh*kw)`` is folded into
the next synaptic layer's weights; for 2x2, 4x4, ... that fold is exact).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..errors import HwgenError
from ..ir import LIFNeurons, Network, conv_output_size
from ..kinds import Conv2d, Dense, Flatten, MaxPool2d, SumPool2d
# snnTorch comes through torch_trace, whose import of it turns a broken install into a
# readable HwgenError.
from .torch_trace import SEQUENTIAL_HINT, SpikingNeuron, _layer_chain, _where, snn

SUPPORTED = ("nn.Linear and nn.Conv2d (dilation 1, zero padding, any groups, with or without "
             "bias), each directly followed by snntorch.Leaky (beta=1 for integrate-and-fire); "
             "nn.BatchNorm2d directly after an nn.Conv2d (folded into it); nn.MaxPool2d and "
             "nn.AvgPool2d on spikes (after a Leaky or at the input); nn.Flatten "
             "(start_dim=1, end_dim=-1); and nn.Identity / nn.Dropout / nn.Dropout2d (no-ops at "
             "inference)")

# The exact Leaky methods whose behaviour hwgen.ir_sim reproduces. A subclass that overrides
# any of them (e.g. snntorch.DeltaLeaky) computes something else and is refused.
_LEAKY_METHODS = ("forward", "fire", "mem_reset", "_base_state_function",
                  "_base_sub", "_base_zero", "_base_int")
_STATE_FUNCTIONS = {
    snn.Leaky._base_sub: "subtract",
    snn.Leaky._base_zero: "zero",
    snn.Leaky._base_int: "none",
}
_RESET_BY_VAL = {v: k for k, v in SpikingNeuron.reset_dict.items()}


def _is_leaky(m: nn.Module) -> bool:
    return isinstance(m, snn.Leaky) and all(
        getattr(type(m), a) is getattr(snn.Leaky, a) for a in _LEAKY_METHODS)


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
    """The Leaky's parameters; ``spatial`` is the conv output shape (per-channel values)."""
    where = f"neuron layer '{layer}'{_where(name)}"
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
                         "snn.Leaky(..., init_hidden=True) (output=True is fine on the last "
                         "layer only)")

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
    reset = _STATE_FUNCTIONS.get(func)
    if reset is None:
        raise HwgenError(f"{where} has a replaced state_function; only snnTorch's own "
                         "subtract / zero / none resets are supported")
    declared = _RESET_BY_VAL.get(int(lif.reset_mechanism_val))
    if declared != reset:
        # snnTorch picks the update rule once, in __init__; setting reset_mechanism later or
        # loading another model's reset_mechanism_val buffer changes the buffer but not what
        # forward computes. Neither choice would be safe to guess.
        raise HwgenError(f"{where}: its forward resets by '{reset}' (chosen when it was "
                         f"built) but its reset_mechanism_val buffer says '{declared}' (set "
                         "afterwards or loaded from another model's state_dict); build the "
                         f"model with reset_mechanism='{declared}' directly")

    if spatial is None:
        beta = _per_neuron(layer, "beta", lif.beta, n, name)
        threshold = _per_neuron(layer, "threshold", lif.threshold, n, name)
    else:
        beta = _per_channel(layer, "beta", lif.beta, spatial, name)
        threshold = _per_channel(layer, "threshold", lif.threshold, spatial, name)
    beta = np.clip(beta, 0.0, 1.0)
    if np.any(threshold <= 0):
        raise HwgenError(f"{where}: threshold must be > 0 (found {threshold.min():g}); a "
                         "neuron with threshold <= 0 fires at rest: use a positive threshold")
    return LIFNeurons(beta=beta, threshold=threshold, reset=reset)


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
    """A synaptic layer, the BatchNorm2d folded into it (if any) and its neuron."""

    def __init__(self, layer: str, module: nn.Linear | nn.Conv2d) -> None:
        self.layer, self.module = layer, module
        self.bn: tuple[str, nn.BatchNorm2d] | None = None
        self.lif: tuple[str, nn.Module] | None = None

    @property
    def kind(self) -> str:
        return "Conv2d" if isinstance(self.module, nn.Conv2d) else "Linear"


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


# ---------------------------------------------------------------------------- import

def _group(chain: list[tuple[str, nn.Module]], name: str) -> list[tuple[str, str, nn.Module] | _Synapse]:
    """Pair each synaptic layer with its BatchNorm and neuron; keep flattens and pools."""
    items: list[tuple[str, str, nn.Module] | _Synapse] = []
    pending: _Synapse | None = None
    for layer, m in chain:
        if type(m) in _NO_OPS:
            continue
        if _is_flatten(m):
            if pending is not None:
                raise HwgenError(f"layer '{layer}'{_where(name)} (nn.Flatten) sits between "
                                 f"{pending.kind} '{pending.layer}' and its neuron; each "
                                 f"nn.{pending.kind} must be directly followed by snntorch.Leaky")
            if m.start_dim != 1 or m.end_dim != -1:
                raise HwgenError(f"layer '{layer}'{_where(name)}: nn.Flatten(start_dim="
                                 f"{m.start_dim}, end_dim={m.end_dim}) is not supported; use "
                                 "nn.Flatten() (start_dim=1, end_dim=-1), which keeps the "
                                 "batch dimension")
            items.append(("flatten", layer, m))
        elif _is_pool(m):
            if pending is not None:
                kind = _type_name(m)
                raise HwgenError(
                    f"layer '{layer}'{_where(name)} ({kind}) pools the output of "
                    f"{pending.kind} '{pending.layer}' before its neuron, i.e. membrane "
                    "currents; hwgen pools spikes only (a max over currents needs every "
                    "current of the window first, so it is not event-driven): move the pool "
                    f"after the neuron (nn.{pending.kind} -> snntorch.Leaky -> {kind}) and "
                    "retrain")
            items.append(("pool", layer, m))
        elif _is_bn(m):
            if pending is None or pending.kind != "Conv2d" or pending.bn is not None:
                raise HwgenError(f"layer '{layer}'{_where(name)} (nn.BatchNorm2d) does not "
                                 "directly follow an nn.Conv2d; hwgen folds BatchNorm2d into the "
                                 "convolution before it, so use nn.Conv2d -> nn.BatchNorm2d -> "
                                 "snntorch.Leaky")
            pending.bn = (layer, m)
        elif _is_linear(m) or _is_conv(m):
            if pending is not None:
                raise HwgenError(f"layer '{pending.layer}'{_where(name)} (nn.{pending.kind}) is "
                                 f"followed by '{layer}' ({type(m).__name__}) instead of a "
                                 f"spiking neuron; each nn.{pending.kind} must be followed by "
                                 "snntorch.Leaky")
            pending = _Synapse(layer, m)
        elif _is_leaky(m):
            if pending is None:
                raise HwgenError(f"neuron layer '{layer}'{_where(name)} is not preceded by an "
                                 "nn.Linear or nn.Conv2d (two neuron layers in a row, or a "
                                 "neuron first); hwgen needs nn.Linear / nn.Conv2d -> "
                                 "snntorch.Leaky pairs")
            pending.lif = (layer, m)
            items.append(pending)
            pending = None
        elif isinstance(m, SpikingNeuron):
            raise _unsupported(layer, m, name, "only snntorch.Leaky neurons are supported; its "
                                               "dynamics differ")
        else:
            raise _unsupported(layer, m, name)
    if pending is not None:
        raise HwgenError(f"layer '{pending.layer}'{_where(name)} (nn.{pending.kind}) is the last "
                         "layer but is not followed by a spiking neuron; add snntorch.Leaky "
                         "after it")
    synapses = [i for i, item in enumerate(items) if isinstance(item, _Synapse)]
    if not synapses:
        raise HwgenError(f"model{_where(name)} has no nn.Linear / nn.Conv2d -> snntorch.Leaky "
                         f"layers; {SEQUENTIAL_HINT}")
    if synapses[-1] != len(items) - 1:
        _, layer, m = items[synapses[-1] + 1]  # type: ignore[misc]
        follow = "an nn.Linear" if _is_flatten(m) else "a synaptic layer"
        raise HwgenError(f"layer '{layer}'{_where(name)} ({_type_name(m)}) is not followed by "
                         f"{follow}: it comes after the last neuron layer, whose spike counts "
                         "are the readout; remove it")
    return items


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
    what = "nn.Flatten" if first[0] == "flatten" else _type_name(first[2])
    if syn.kind == "Linear" and all(isinstance(i, tuple) and i[0] == "flatten" for i in
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

    Shapes are tracked through the chain and every layer is checked against what it
    receives. ``nn.AvgPool2d`` becomes a ``SumPool2d`` whose ``1/divisor`` is folded into the
    next synaptic layer's weights (``_fold_scale``); ``nn.BatchNorm2d`` is folded into its
    convolution (``_fold_batchnorm``).
    """
    items = _group(_layer_chain(module, name), name)
    if input_shape is None:
        input_shape = _infer_input_shape(items, name)
    input_shape = tuple(int(s) for s in input_shape)
    if not input_shape or any(s <= 0 for s in input_shape):
        raise HwgenError(f"input shape {input_shape} is invalid: give positive sizes "
                         "(--input-shape)")

    synapses = [item for item in items if isinstance(item, _Synapse)]
    layers: list = []
    shape: tuple[int, ...] = input_shape
    source = "input"  # what produces `shape`: "input", "spikes" or "counts" (after AvgPool2d)
    after = "the input"  # for messages
    scale = 1.0  # product of the 1/divisor of AvgPool2d layers since the last neuron

    def layers_with_neurons() -> bool:
        return any(isinstance(layer, (Dense, Conv2d)) for layer in layers)

    def first_hint() -> str:
        return "; fix --input-shape" if not layers_with_neurons() else ""

    for item in items:
        if isinstance(item, tuple):
            kind, layer, m = item
            if kind == "flatten":
                layers.append(Flatten(layer, input_shape=shape))
                shape = (int(np.prod(shape)),)
                continue
            what = f"layer '{layer}'{_where(name)} ({_type_name(m)})"
            if len(shape) != 3:
                raise HwgenError(f"{what} pools (C, H, W) maps but receives shape {shape} from "
                                 f"{after}" + (" (pass --input-shape C,H,W)" if source == "input"
                                                and not layers_with_neurons() else ""))
            if isinstance(m, nn.MaxPool2d) and source == "counts":
                raise HwgenError(f"{what} max-pools the output of an nn.AvgPool2d; hwgen "
                                 "max-pools spikes only (an OR of 0/1 values): put the max "
                                 "pool directly after a neuron")
            pool, factor = _pool_layer(layer, m, shape, name)  # type: ignore[arg-type]
            layers.append(pool)
            shape, scale = pool.output_shape, scale * factor
            if not isinstance(pool, MaxPool2d):  # a max pool keeps spikes spikes
                source = "counts"
            after = f"layer '{layer}'"
            continue

        syn = item
        is_last = syn is synapses[-1]
        m = syn.module
        if syn.kind == "Linear":
            if len(shape) != 1:
                if not layers_with_neurons() and not layers:
                    raise HwgenError(f"input shape {input_shape} is multi-dimensional but the "
                                     f"first layer '{syn.layer}' is an nn.Linear, which acts on "
                                     "the last dimension only; add nn.Flatten() before it or "
                                     f"pass --input-shape {m.in_features}")
                raise HwgenError(f"layer '{syn.layer}'{_where(name)} (nn.Linear) receives "
                                 f"{shape} maps from {after}, but nn.Linear acts on the last "
                                 "dimension only; add nn.Flatten() before it")
            if m.in_features != shape[0]:
                if not layers_with_neurons() and all(isinstance(x, Flatten) for x in layers):
                    raise HwgenError(f"input shape {input_shape} has {shape[0]} elements but "
                                     f"the first Linear '{syn.layer}' has in_features="
                                     f"{m.in_features}; fix --input-shape")
                raise HwgenError(f"layer '{syn.layer}'{_where(name)}: in_features="
                                 f"{m.in_features} but the previous layer produces {shape[0]} "
                                 f"{'spikes' if source == 'spikes' else 'values'} per timestep "
                                 f"(shape {shape} from {after})")
            weight, bias = _weights(syn.layer, m, name)
            weight = _fold_scale(weight, scale)
            lif_name, lif = syn.lif  # type: ignore[misc]
            neurons = _neurons(lif_name, lif, m.out_features, is_last, name)
            layers.append(Dense(name=syn.layer, weight=weight, bias=bias, neurons=neurons))
            shape = (m.out_features,)
        else:
            what = f"layer '{syn.layer}'{_where(name)} (nn.Conv2d)"
            _check_conv(syn.layer, m, name)
            if len(shape) != 3:
                raise HwgenError(f"{what} needs (C, H, W) maps but receives shape {shape} from "
                                 f"{after}" + (" (pass --input-shape C,H,W)"
                                               if not layers_with_neurons() else ""))
            if shape[0] != m.in_channels:
                raise HwgenError(f"{what} has in_channels={m.in_channels} but receives "
                                 f"{shape[0]} channels (shape {shape}) from {after}"
                                 + first_hint())
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
                                 + first_hint())
            lif_name, lif = syn.lif  # type: ignore[misc]
            neurons = _neurons(lif_name, lif, out[0], is_last, name, spatial=out)
            layers.append(Conv2d(name=syn.layer, weight=weight, bias=bias, neurons=neurons,
                                 input_shape=shape, stride=stride, padding=padding,  # type: ignore[arg-type]
                                 groups=int(m.groups)))
            shape = out
        source, after, scale = "spikes", f"neuron layer '{syn.lif[0]}'", 1.0  # type: ignore[index]
    return Network(input_shape=input_shape, layers=layers, source=name)
