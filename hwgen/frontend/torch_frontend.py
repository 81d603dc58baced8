"""PyTorch / snnTorch frontend: load a model, check it is something hwgen can build, and
turn it into the float IR (``hwgen.ir.Network``).

What is accepted is deliberately narrow: a single-timestep forward that is a chain of
``nn.Linear`` -> ``snntorch.Leaky`` pairs (optionally ``nn.Flatten`` before a Linear), the
snnTorch ``nn.Sequential`` + ``init_hidden=True`` convention. Everything else is refused with
a message naming the layer, because silently approximating a model would break the promise
that the hardware reproduces the trained network spike for spike.

The neuron semantics were read from snnTorch 1.0.0's source (``_neurons/leaky.py`` and
``_neurons/neurons.py``); ``hwgen.ir_sim`` mirrors them and the tests compare against
snnTorch itself.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import fx, nn

from ..errors import HwgenError
from ..ir import Dense, Flatten, LIFNeurons, Network

try:  # snnTorch is a dependency, but keep the error readable if an install is broken.
    import snntorch as snn
    from snntorch._neurons.neurons import SpikingNeuron
except ImportError as exc:  # pragma: no cover - exercised only on broken installs
    raise HwgenError(f"snnTorch is not importable ({exc}); reinstall hwgen's dependencies "
                     "(pip install -e .)") from exc

SUPPORTED = ("nn.Linear (with or without bias), nn.Flatten (start_dim=1, end_dim=-1) before "
             "a Linear, snntorch.Leaky (after each Linear; beta=1 for integrate-and-fire), "
             "and nn.Identity / nn.Dropout (no-ops at inference)")

SEQUENTIAL_HINT = ("the model's forward must process one timestep as a chain of layers, e.g. "
                   "nn.Sequential(nn.Linear(...), snn.Leaky(beta=..., init_hidden=True), ...)")

SURROGATE_PICKLE_HINT = (
    "snnTorch's default surrogate gradients are closures that do not pickle, so whole snnTorch "
    "models cannot be torch.save'd reliably; save model.state_dict() instead and pass the model "
    "code as module:attribute with --weights FILE")

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


def _oneline(exc: BaseException, limit: int = 300) -> str:
    """Framework exceptions are often multi-line; the CLI prints one line."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ============================================================================ loading

def load_torch_model(spec: str, weights: str | None = None) -> nn.Module:
    """Load the model named by ``spec`` and, if given, a state_dict from ``weights``.

    ``spec`` is ``package.module:attribute``, ``path/to/file.py:attribute`` (the attribute
    may be a module instance, an ``nn.Module`` class or a zero-argument factory), or the path
    of a whole module saved with ``torch.save`` (unpickled with ``weights_only=False``, which
    runs code from the file: only use files you trust). The module is put in eval mode.
    """
    if os.path.isfile(spec):
        if spec.endswith(".py"):
            raise HwgenError(f"model spec '{spec}' is a Python file: say which attribute holds "
                             f"the model, e.g. '{spec}:Net' or '{spec}:model'")
        module = _load_whole_module(spec)
    elif ":" in spec and not spec.endswith(":"):
        module = _load_attribute(spec)
    elif spec.endswith((".pt", ".pth", ".ckpt", ".tar")):
        raise HwgenError(f"model file '{spec}' does not exist; check the path")
    else:
        raise HwgenError(f"model spec '{spec}' is neither an existing torch.save file nor "
                         "'package.module:attribute' / 'path/to/file.py:attribute'")
    if weights is not None:
        _apply_state_dict(module, spec, weights)
    return module.eval()


@contextmanager
def _on_sys_path(directory: str) -> Iterator[None]:
    # Users expect `hwgen build mymodel:Net` to find mymodel.py in the current directory, as
    # `python -m` would; the console script's sys.path[0] is its own bin directory instead.
    added = directory not in sys.path
    if added:
        sys.path.insert(0, directory)
    try:
        yield
    finally:
        if added and directory in sys.path:
            sys.path.remove(directory)


def _load_attribute(spec: str) -> nn.Module:
    target, _, attr = spec.rpartition(":")
    if not target or not attr:
        raise HwgenError(f"model spec '{spec}' must look like 'package.module:attribute' or "
                         "'path/to/file.py:attribute'")
    if target.endswith(".py") or "/" in target or os.sep in target:
        pymod = _import_file(target, spec)
    else:
        pymod = _import_module(target, spec)

    obj: object = pymod
    for part in attr.split("."):
        if not hasattr(obj, part):
            candidates = sorted(
                n for n, v in vars(pymod).items()
                if not n.startswith("_") and (isinstance(v, nn.Module) or
                                             (isinstance(v, type) and issubclass(v, nn.Module)
                                              and v.__module__ == pymod.__name__)))
            hint = f"; nn.Module candidates there: {', '.join(candidates)}" if candidates else ""
            raise HwgenError(f"model spec '{spec}': '{target}' has no attribute '{attr}'{hint}")
        obj = getattr(obj, part)

    if isinstance(obj, nn.Module):
        return obj
    if isinstance(obj, type) and not issubclass(obj, nn.Module):
        raise HwgenError(f"model spec '{spec}': '{attr}' is the class {obj.__name__}, which is "
                         "not a torch.nn.Module")
    if not callable(obj):
        raise HwgenError(f"model spec '{spec}': '{attr}' is a {type(obj).__name__}, not a "
                         "torch.nn.Module, an nn.Module class or a zero-argument factory")
    try:
        made = obj()
    except TypeError as exc:
        raise HwgenError(f"model spec '{spec}': calling '{attr}()' with no arguments failed "
                         f"({_oneline(exc)}); point the spec at a module instance or a "
                         "zero-argument factory function instead") from exc
    except Exception as exc:
        raise HwgenError(f"model spec '{spec}': '{attr}()' raised {type(exc).__name__}: "
                         f"{_oneline(exc)}") from exc
    if not isinstance(made, nn.Module):
        raise HwgenError(f"model spec '{spec}': '{attr}()' returned a {type(made).__name__}, "
                         "not a torch.nn.Module")
    return made


def _import_module(target: str, spec: str) -> object:
    try:
        with _on_sys_path(os.getcwd()):
            return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (target == missing or target.startswith(missing + ".")):
            raise HwgenError(
                f"model spec '{spec}': cannot import module '{target}' (no module named "
                f"'{missing}'); run from the directory that contains it, install its package, "
                "or give a file path such as path/to/model.py:attribute") from exc
        raise HwgenError(f"model spec '{spec}': importing '{target}' failed because its "
                         f"dependency '{missing}' is not installed") from exc
    except Exception as exc:
        raise HwgenError(f"model spec '{spec}': importing '{target}' raised "
                         f"{type(exc).__name__}: {_oneline(exc)}") from exc


def _import_file(target: str, spec: str) -> object:
    path = Path(target)
    if not path.is_file():
        raise HwgenError(f"model spec '{spec}': file '{target}' does not exist")
    # A private name so that a user's model.py cannot shadow or be shadowed by an installed
    # package; registered in sys.modules because dataclasses and pickling look it up there.
    mod_name = f"_hwgen_user_{abs(hash(str(path.resolve())))}_{path.stem}"
    loader_spec = importlib.util.spec_from_file_location(mod_name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise HwgenError(f"model spec '{spec}': '{target}' cannot be imported as Python")
    pymod = importlib.util.module_from_spec(loader_spec)
    sys.modules[mod_name] = pymod
    try:
        with _on_sys_path(str(path.resolve().parent)):
            loader_spec.loader.exec_module(pymod)
    except Exception as exc:
        sys.modules.pop(mod_name, None)
        raise HwgenError(f"model spec '{spec}': executing '{target}' raised "
                         f"{type(exc).__name__}: {_oneline(exc)}") from exc
    return pymod


def _sniff_torch_file(path: str, role: str) -> None:
    """Refuse files torch.load would fail on with a confusing message (KeyError 101, ...)."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    if not head:
        raise HwgenError(f"{role} '{path}' is empty, not a torch.save file")
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except zipfile.BadZipFile as exc:
            raise HwgenError(f"{role} '{path}' is a damaged zip archive, not a readable "
                             f"torch.save file ({_oneline(exc)})") from exc
        if not any(n.endswith("/data.pkl") or n == "data.pkl" for n in names):
            # What torch.save leaves behind when pickling fails part way, which is exactly
            # what happens to a whole snnTorch model with the default surrogate gradient.
            raise HwgenError(f"{role} '{path}' is an incomplete torch.save archive (it has no "
                             "data.pkl): the save that wrote it failed part way. "
                             + SURROGATE_PICKLE_HINT)
        return
    if head[0] != 0x80:  # torch's legacy format starts with a pickle protocol marker
        raise HwgenError(f"{role} '{path}' is not a torch.save file (torch files are zip "
                         "archives); pass a file written by torch.save")


def _load_whole_module(path: str) -> nn.Module:
    _sniff_torch_file(path, "model file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        msg = _oneline(exc)
        if "local object" in msg:
            raise HwgenError(f"model file '{path}' cannot be unpickled ({msg}): "
                             + SURROGATE_PICKLE_HINT) from exc
        if "Can't get attribute" in msg or isinstance(exc, (ModuleNotFoundError, ImportError)):
            raise HwgenError(
                f"model file '{path}' refers to code that is not importable here ({msg}): a "
                "whole saved module needs the class that defined it; save model.state_dict() "
                "and pass the model code as module:attribute with --weights FILE") from exc
        raise HwgenError(f"model file '{path}' could not be loaded with torch.load "
                         f"({type(exc).__name__}: {msg})") from exc
    if isinstance(obj, nn.Module):
        return obj
    if isinstance(obj, Mapping):
        raise HwgenError(f"model file '{path}' holds a {type(obj).__name__} (a state_dict or "
                         "checkpoint), not a module: pass the model code as "
                         f"'package.module:attribute' and this file as --weights {path}")
    raise HwgenError(f"model file '{path}' holds a {type(obj).__name__}, not a "
                     "torch.nn.Module")


def _apply_state_dict(module: nn.Module, spec: str, weights: str) -> None:
    if not os.path.isfile(weights):
        raise HwgenError(f"weights file '{weights}' does not exist; check the --weights path")
    _sniff_torch_file(weights, "weights file")
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:
        if "Weights only load failed" in str(exc):
            raise HwgenError(
                f"weights file '{weights}' holds pickled Python objects, not a plain "
                "state_dict; if it is a whole saved module, pass it as the model instead of "
                "--weights, otherwise save model.state_dict()") from exc
        raise HwgenError(f"weights file '{weights}' could not be loaded with torch.load "
                         f"({type(exc).__name__}: {_oneline(exc)})") from exc
    if not isinstance(state, Mapping):
        raise HwgenError(f"weights file '{weights}' holds a {type(state).__name__}, not a "
                         "state_dict; save model.state_dict()")
    not_tensors = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise HwgenError(f"weights file '{weights}' is not a state_dict: entries "
                         f"{not_tensors[:5]} are not tensors (a training checkpoint?); save "
                         "model.state_dict() on its own")

    # Compare before load_state_dict so the message lists every problem in one line.
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [f"{k} file {list(state[k].shape)} vs model {list(v.shape)}"
                  for k, v in expected.items() if k in state and state[k].shape != v.shape]
    problems = []
    if missing:
        problems.append(f"missing keys {missing[:8]}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected[:8]}")
    if mismatched:
        problems.append(f"shape mismatches: {'; '.join(mismatched[:8])}")
    if problems:
        raise HwgenError(f"weights file '{weights}' does not match model '{spec}': "
                         f"{', '.join(problems)}; use the weights saved from this model's "
                         "architecture (same layer sizes and names)")
    try:
        module.load_state_dict(state, strict=True)
    except Exception as exc:
        raise HwgenError(f"weights file '{weights}' does not match model '{spec}': "
                         f"{_oneline(exc)}") from exc


# ============================================================================ import

class _SnnTracer(fx.Tracer):
    """fx tracer that keeps snnTorch neurons opaque: their forward branches on state."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, SpikingNeuron) or super().is_leaf_module(m, module_qualified_name)


def _where(name: str) -> str:
    return f" in model '{name}'" if name else ""


def _layer_chain(model: nn.Module, name: str) -> list[tuple[str, nn.Module]]:
    """The model's layers in the order a timestep flows through them."""
    if isinstance(model, nn.Sequential) and type(model).forward is nn.Sequential.forward:
        return list(_walk_sequential(model, ""))
    return _trace_chain(model, name)


def _walk_sequential(seq: nn.Sequential, prefix: str) -> Iterator[tuple[str, nn.Module]]:
    for child_name, child in seq.named_children():
        qual = f"{prefix}.{child_name}" if prefix else child_name
        if isinstance(child, nn.Sequential) and type(child).forward is nn.Sequential.forward:
            yield from _walk_sequential(child, qual)
        else:
            yield qual, child


def _trace_chain(model: nn.Module, name: str) -> list[tuple[str, nn.Module]]:
    cls = type(model).__name__
    try:
        graph = _SnnTracer().trace(model)
    except Exception as exc:
        raise HwgenError(f"could not trace {cls}{_where(name)} with torch.fx "
                         f"({type(exc).__name__}: {_oneline(exc, 200)}); {SEQUENTIAL_HINT}"
                         ) from exc

    nodes = list(graph.nodes)
    inputs = [n for n in nodes if n.op == "placeholder"]
    if len(inputs) != 1:
        raise HwgenError(
            f"{cls}.forward{_where(name)} takes {len(inputs)} inputs "
            f"({', '.join(n.target for n in inputs)}); hwgen needs exactly one (the spikes of "
            "one timestep) with the neuron state kept inside the neurons (init_hidden=True); "
            + SEQUENTIAL_HINT)
    chain: list[tuple[str, nn.Module]] = []
    seen: set[str] = set()
    prev = inputs[0]
    for node in nodes:
        if node.op == "placeholder":
            continue
        if node.op == "output":
            if node.args != (prev,):
                raise HwgenError(f"{cls}.forward{_where(name)} does not return the output of "
                                 f"its last layer directly; {SEQUENTIAL_HINT}")
            break
        if node.op != "call_module":
            what = getattr(node.target, "__name__", str(node.target))
            after = prev.target if prev.op == "call_module" else None
            if what == "getitem" and after is not None and \
                    isinstance(model.get_submodule(after), SpikingNeuron):
                raise HwgenError(
                    f"{cls}.forward{_where(name)} unpacks the (spk, mem) tuple of neuron layer "
                    f"'{after}'; hwgen needs single-step neurons that keep their state and "
                    "return spikes only: snn.Leaky(..., init_hidden=True)")
            raise HwgenError(
                f"{cls}.forward{_where(name)} applies '{what}' ({node.op} '{node.name}') "
                "outside a layer module; only a chain of modules is supported (use "
                f"nn.Flatten() instead of x.view/flatten); {SEQUENTIAL_HINT}")
        if node.args != (prev,) or node.kwargs:
            raise HwgenError(f"{cls}.forward{_where(name)}: layer '{node.target}' does not "
                             f"take the previous layer's output as its only input; "
                             + SEQUENTIAL_HINT)
        if node.target in seen:
            raise HwgenError(f"{cls}.forward{_where(name)} calls layer '{node.target}' more "
                             "than once (a loop over timesteps?); " + SEQUENTIAL_HINT)
        seen.add(node.target)
        chain.append((node.target, model.get_submodule(node.target)))
        prev = node
    return chain


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


def _per_neuron(layer: str, param: str, value: object, n: int, name: str) -> np.ndarray:
    """A Leaky parameter as the float32 values snnTorch computes with, one per neuron."""
    t = value.detach().cpu() if isinstance(value, torch.Tensor) else torch.as_tensor(value)
    if t.is_complex():
        raise HwgenError(f"layer '{layer}'{_where(name)}: '{param}' is complex")
    if t.dtype == torch.float64 and t.dim() > 0:
        # A float64 per-neuron tensor promotes snnTorch's membrane to float64, which the
        # float32 simulator (and the quantizer's error estimates) would not reproduce.
        raise HwgenError(f"layer '{layer}'{_where(name)}: '{param}' is a float64 tensor, "
                         "which makes snnTorch compute the membrane in float64; convert the "
                         "model with model.float() before exporting")
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


def _neurons(layer: str, lif: nn.Module, n: int, is_last: bool, name: str) -> LIFNeurons:
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

    beta = np.clip(_per_neuron(layer, "beta", lif.beta, n, name), 0.0, 1.0)
    threshold = _per_neuron(layer, "threshold", lif.threshold, n, name)
    if np.any(threshold <= 0):
        raise HwgenError(f"{where}: threshold must be > 0 (found {threshold.min():g}); a "
                         "neuron with threshold <= 0 fires at rest: use a positive threshold")
    return LIFNeurons(beta=beta, threshold=threshold, reset=reset)


def _dense(layer: str, lin: nn.Linear, name: str) -> tuple[np.ndarray, np.ndarray]:
    for param, tensor in (("weight", lin.weight), ("bias", lin.bias)):
        if tensor is not None and tensor.dtype != torch.float32:
            raise HwgenError(f"layer '{layer}'{_where(name)}: '{param}' is {tensor.dtype}; "
                             "hwgen imports float32 models: convert with model.float()")
    weight = lin.weight.detach().cpu().numpy().astype(np.float32, copy=True)
    _finite(layer, "weight", weight, name)
    if lin.bias is None:
        bias = np.zeros(weight.shape[0], dtype=np.float32)
    else:
        bias = lin.bias.detach().cpu().numpy().astype(np.float32, copy=True)
        _finite(layer, "bias", bias, name)
    return weight, bias


def import_torch(module: nn.Module, input_shape: tuple[int, ...] | None = None,
                 name: str = "") -> Network:
    """Convert a single-timestep snnTorch model into hwgen's float IR.

    ``input_shape`` is the shape of one sample at one timestep (no batch, no time). It may be
    omitted when the first layer is a Linear (it is then ``(in_features,)``); a model that
    starts with ``nn.Flatten`` needs it. ``name`` is recorded as the network's source and used
    in error messages.
    """
    chain = _layer_chain(module, name)

    # Pair the layers up first, so that the neuron checks know which layer is the last.
    flattens: list[str] = []
    pairs: list[tuple[list[str], str, nn.Linear, str, nn.Module]] = []
    linear: tuple[str, nn.Linear] | None = None
    for layer, m in chain:
        if type(m) in (nn.Identity, nn.Dropout):
            continue
        if isinstance(m, nn.Flatten) and type(m).forward is nn.Flatten.forward:
            if linear is not None:
                raise HwgenError(f"layer '{layer}'{_where(name)} (nn.Flatten) sits between "
                                 f"Linear '{linear[0]}' and its neuron; each nn.Linear must be "
                                 "directly followed by snntorch.Leaky")
            if m.start_dim != 1 or m.end_dim != -1:
                raise HwgenError(f"layer '{layer}'{_where(name)}: nn.Flatten(start_dim="
                                 f"{m.start_dim}, end_dim={m.end_dim}) is not supported; use "
                                 "nn.Flatten() (start_dim=1, end_dim=-1), which keeps the "
                                 "batch dimension")
            flattens.append(layer)
        elif isinstance(m, nn.Linear) and type(m).forward is nn.Linear.forward:
            if linear is not None:
                raise HwgenError(f"layer '{linear[0]}'{_where(name)} (nn.Linear) is followed by "
                                 f"'{layer}' ({type(m).__name__}) instead of a spiking neuron; "
                                 "each nn.Linear must be followed by snntorch.Leaky")
            linear = (layer, m)
        elif _is_leaky(m):
            if linear is None:
                raise HwgenError(f"neuron layer '{layer}'{_where(name)} is not preceded by an "
                                 "nn.Linear (two neuron layers in a row, or a neuron first); "
                                 "hwgen needs nn.Linear -> snntorch.Leaky pairs")
            pairs.append((flattens, linear[0], linear[1], layer, m))
            flattens, linear = [], None
        elif isinstance(m, SpikingNeuron):
            raise _unsupported(layer, m, name, "only snntorch.Leaky neurons are supported; its "
                                               "dynamics differ")
        else:
            raise _unsupported(layer, m, name)
    if linear is not None:
        raise HwgenError(f"layer '{linear[0]}'{_where(name)} (nn.Linear) is the last layer but "
                         "is not followed by a spiking neuron; add snntorch.Leaky after it")
    if flattens:
        raise HwgenError(f"layer '{flattens[-1]}'{_where(name)} (nn.Flatten) is not followed by "
                         "an nn.Linear; remove it")
    if not pairs:
        raise HwgenError(f"model{_where(name)} has no nn.Linear -> snntorch.Leaky layers; "
                         f"{SEQUENTIAL_HINT}")

    first_in = pairs[0][2].in_features
    if input_shape is None:
        if pairs[0][0]:
            raise HwgenError(f"model{_where(name)} starts with nn.Flatten, so the shape of one "
                             "input sample cannot be inferred: pass --input-shape (e.g. "
                             f"--input-shape 1,28,28; it must have {first_in} elements)")
        input_shape = (first_in,)
    input_shape = tuple(int(s) for s in input_shape)
    if not input_shape or any(s <= 0 for s in input_shape):
        raise HwgenError(f"input shape {input_shape} is invalid: give positive sizes "
                         "(--input-shape)")
    size = int(np.prod(input_shape))
    if not pairs[0][0] and len(input_shape) != 1:
        raise HwgenError(f"input shape {input_shape} is multi-dimensional but the first layer "
                         f"'{pairs[0][1]}' is an nn.Linear, which acts on the last dimension "
                         "only; add nn.Flatten() before it or pass --input-shape "
                         f"{first_in}")
    if size != first_in:
        raise HwgenError(f"input shape {input_shape} has {size} elements but the first "
                         f"Linear '{pairs[0][1]}' has in_features={first_in}; fix "
                         "--input-shape")

    layers: list[Dense | Flatten] = []
    prev_out = first_in
    for index, (flats, lin_name, lin, lif_name, lif) in enumerate(pairs):
        if lin.in_features != prev_out:
            raise HwgenError(f"layer '{lin_name}'{_where(name)}: in_features={lin.in_features} "
                             f"but the previous layer produces {prev_out} spikes per timestep")
        weight, bias = _dense(lin_name, lin, name)
        neurons = _neurons(lif_name, lif, lin.out_features, index == len(pairs) - 1, name)
        layers.extend(Flatten(f) for f in flats)
        layers.append(Dense(name=lin_name, weight=weight, bias=bias, neurons=neurons))
        prev_out = lin.out_features
    return Network(input_shape=input_shape, layers=layers, source=name)
