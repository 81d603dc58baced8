"""PyTorch frontend, tracing: the ordered chain of submodules one timestep flows through.

One job: walk a plain ``nn.Sequential`` (nested ones included), or trace any other module's
forward with torch.fx (snnTorch neurons kept opaque), and return ``[(qualified name, module),
...]`` in call order. A forward that is not a straight chain of module calls (several inputs,
functional ops, a layer called twice, the (spk, mem) tuple unpacked, ...) is refused here;
whether each module is a supported layer is ``torch_convert``'s job.
"""

from __future__ import annotations

from collections.abc import Iterator

from torch import fx, nn

from ..errors import HwgenError
from .torch_load import _oneline

try:  # snnTorch is a dependency, but keep the error readable if an install is broken.
    import snntorch as snn
    from snntorch._neurons.neurons import SpikingNeuron
except ImportError as exc:  # pragma: no cover - exercised only on broken installs
    raise HwgenError(f"snnTorch is not importable ({exc}); reinstall hwgen's dependencies "
                     "(pip install -e .)") from exc

SEQUENTIAL_HINT = ("the model's forward must process one timestep as a chain of layers, e.g. "
                   "nn.Sequential(nn.Linear(...), snn.Leaky(beta=..., init_hidden=True), ...)")


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
