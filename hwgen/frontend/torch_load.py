"""PyTorch frontend, loading: find the ``nn.Module`` a model spec names and load its weights.

One job: turn ``package.module:attribute``, ``path/to/file.py:attribute`` or the path of a
whole module saved with ``torch.save`` into an ``nn.Module`` in eval mode, applying a
``--weights`` state_dict if given, and refuse anything else with a message that says what to
pass instead. Nothing here looks at the layers (``torch_trace`` and ``torch_convert`` do).
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

import torch
from torch import nn

from ..errors import HwgenError

SURROGATE_PICKLE_HINT = (
    "snnTorch's default surrogate gradients are closures that do not pickle, so whole snnTorch "
    "models cannot be torch.save'd reliably; save model.state_dict() instead and pass the model "
    "code as module:attribute with --weights FILE")


def _oneline(exc: BaseException, limit: int = 300) -> str:
    """Framework exceptions are often multi-line; the CLI prints one line."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
    elif os.path.isdir(spec):
        raise HwgenError(f"model '{spec}' is a folder; give a torch.save file, a .nir file or "
                         "'package.module:attribute'")
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
    if os.path.isdir(weights):
        raise HwgenError(f"weights file '{weights}' is a folder; give the state_dict file saved with "
                         "torch.save(model.state_dict(), path)")
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
