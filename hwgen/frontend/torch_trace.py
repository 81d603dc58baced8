"""PyTorch frontend, tracing: the graph of submodule calls one timestep flows through.

One job: walk a plain ``nn.Sequential`` (nested ones included), or trace any other module's
forward with torch.fx (snnTorch neurons kept opaque), and return the calls in evaluation
order, each naming the calls whose outputs it takes (``Call``), and the call the forward
returns. A call is a module applied to one earlier output, or the sum of two earlier outputs
(``x + block(x)``, SEW-style). Anything else in a forward (several inputs, other functional
ops, a layer called twice, the (spk, mem) tuple unpacked, ...) is refused here; whether each
module is a supported layer, and whether a sum adds spikes, is ``torch_convert``'s job.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import fx, nn

from ..errors import HwgenError
from ..ir import INPUT
from .torch_load import _oneline

try:  # snnTorch is a dependency, but keep the error readable if an install is broken.
    import snntorch as snn
    from snntorch._neurons.neurons import SpikingNeuron
except ImportError as exc:  # pragma: no cover - exercised only on broken installs
    raise HwgenError(f"snnTorch is not importable ({exc}); reinstall hwgen's dependencies "
                     "(pip install -e .)") from exc

SEQUENTIAL_HINT = ("the model's forward must process one timestep as a chain of layers, e.g. "
                   "nn.Sequential(nn.Linear(...), snn.Leaky(beta=..., init_hidden=True), ...), "
                   "or a graph of such layers whose branches meet in 'x + y' of spike tensors")

# The functions fx records for ``a + b`` and ``torch.add(a, b)``.
_ADDS = (operator.add, torch.add)


@dataclass(frozen=True)
class Call:
    """One step of a timestep: ``module`` applied to the output of ``args[0]``, or (``module``
    is ``None``) the element-wise sum of the outputs of ``args``. ``name`` is the module's
    qualified name, or fx's name of the sum (``add``, ``add_1``, ...); an arg is the name of
    an earlier call, or ``INPUT`` (the model's input)."""

    name: str
    module: nn.Module | None
    args: tuple[str, ...]


class _SnnTracer(fx.Tracer):
    """fx tracer that keeps snnTorch neurons opaque: their forward branches on state."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, SpikingNeuron) or super().is_leaf_module(m, module_qualified_name)


def _where(name: str) -> str:
    return f" in model '{name}'" if name else ""


def _layer_graph(model: nn.Module, name: str) -> tuple[list[Call], str]:
    """The model's calls in the order a timestep flows through them, and the returned one."""
    if isinstance(model, nn.Sequential) and type(model).forward is nn.Sequential.forward:
        calls, prev = [], INPUT
        for qual, child in _walk_sequential(model, ""):
            calls.append(Call(qual, child, (prev,)))
            prev = qual
        return calls, prev
    return _trace_graph(model, name)


def _walk_sequential(seq: nn.Sequential, prefix: str) -> Iterator[tuple[str, nn.Module]]:
    for child_name, child in seq.named_children():
        qual = f"{prefix}.{child_name}" if prefix else child_name
        if isinstance(child, nn.Sequential) and type(child).forward is nn.Sequential.forward:
            yield from _walk_sequential(child, qual)
        else:
            yield qual, child


def _trace_graph(model: nn.Module, name: str) -> tuple[list[Call], str]:
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
    # fx node -> the name of the call that produces it
    names: dict[fx.Node, str] = {inputs[0]: INPUT}
    calls: list[Call] = []
    for node in nodes:
        if node.op == "placeholder":
            continue
        if node.op == "output":
            (result,) = node.args
            if not isinstance(result, fx.Node) or result not in names or result is inputs[0]:
                raise HwgenError(f"{cls}.forward{_where(name)} does not return the output of "
                                 f"one layer directly; {SEQUENTIAL_HINT}")
            return calls, names[result]
        args = node.args
        if node.op == "call_function" and node.target in _ADDS and len(args) == 2 and \
                not node.kwargs and all(isinstance(a, fx.Node) for a in args):
            calls.append(Call(node.name, None, tuple(names[a] for a in args)))  # type: ignore[index]
            names[node] = node.name
            continue
        if node.op != "call_module":
            what = getattr(node.target, "__name__", str(node.target))
            source = args[0] if args and isinstance(args[0], fx.Node) else None
            if what == "getitem" and source is not None and source.op == "call_module" and \
                    isinstance(model.get_submodule(source.target), SpikingNeuron):
                raise HwgenError(
                    f"{cls}.forward{_where(name)} unpacks the (spk, mem) tuple of neuron layer "
                    f"'{source.target}'; hwgen needs single-step neurons that keep their state "
                    "and return spikes only: snn.Leaky(..., init_hidden=True)")
            raise HwgenError(
                f"{cls}.forward{_where(name)} applies '{what}' ({node.op} '{node.name}') "
                "outside a layer module; only module calls and 'x + y' are supported (use "
                f"nn.Flatten() instead of x.view/flatten); {SEQUENTIAL_HINT}")
        if len(args) != 1 or node.kwargs or not isinstance(args[0], fx.Node):
            raise HwgenError(f"{cls}.forward{_where(name)}: layer '{node.target}' does not "
                             f"take one earlier output as its only input; " + SEQUENTIAL_HINT)
        if any(call.name == node.target for call in calls):
            raise HwgenError(f"{cls}.forward{_where(name)} calls layer '{node.target}' more "
                             "than once (a loop over timesteps?); " + SEQUENTIAL_HINT)
        calls.append(Call(str(node.target), model.get_submodule(node.target), (names[args[0]],)))
        names[node] = str(node.target)
    raise HwgenError(f"{cls}.forward{_where(name)} returns nothing; {SEQUENTIAL_HINT}")
