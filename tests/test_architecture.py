"""The architecture is checked, not only reviewed: the import contract (.importlinter) and the
one-home-per-layer-kind rule (no dispatch on layer classes outside the kinds and frontends)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from importlinter.cli import lint_imports

REPO = Path(__file__).resolve().parent.parent
HWGEN = REPO / "hwgen"

# Where asking "which kind is this?" is the job: the kinds themselves, and the frontends,
# which map a framework's classes onto them.
KIND_HOMES = ("kinds", "frontend")


def test_import_contract_is_kept():
    """cli above pipeline above the stages above the kinds above the engines above ir, and no
    cycle between the modules of any package (lint-imports prints the broken contract)."""
    assert lint_imports(config_filename=str(REPO / ".importlinter")) == 0


def _node_class_names() -> set[str]:
    from hwgen.kinds import NODE_TYPES

    return {cls.__name__ for cls in NODE_TYPES.values()} | {"SynapticLIF", "FloatSynapticLIF"}


def _outside_kind_homes():
    for path in sorted(HWGEN.rglob("*.py")):
        if path.relative_to(HWGEN).parts[0] not in KIND_HOMES:
            yield path, ast.parse(path.read_text(), filename=str(path))


def _names(node: ast.expr) -> set[str]:
    return {n.id if isinstance(n, ast.Name) else n.attr
            for n in ast.walk(node) if isinstance(n, (ast.Name, ast.Attribute))}


def layer_class_dispatch(tree: ast.AST, classes: set[str]) -> list[int]:
    """Lines of ``isinstance(x, C)`` / ``type(x) is C`` with ``C`` a layer node class."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "isinstance" \
                and len(node.args) == 2 and _names(node.args[1]) & classes:
            lines.append(node.lineno)
        elif isinstance(node, ast.Compare) and any(isinstance(op, (ast.Is, ast.Eq)) for op in node.ops) \
                and any(_names(c) & classes for c in node.comparators):
            lines.append(node.lineno)
    return lines


def kind_string_dispatch(tree: ast.AST) -> list[int]:
    """Lines comparing a unit's or layer's kind name with a string (``unit.kind == "conv"``,
    ``node.unit_stem == "conv"``); a leak's kind (``leak.kind``, ``spec.kind``) is a
    parameter, not a layer kind."""
    parameters = {"leak", "spec", "dtype"}  # a leak's kind, numpy's dtype.kind
    inside_leak = {id(n) for c in ast.walk(tree) if isinstance(c, ast.ClassDef) and c.name == "Leak"
                   for n in ast.walk(c)}
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare) or id(node) in inside_leak:
            continue
        sides = [node.left, *node.comparators]
        strings = any(isinstance(s, ast.Constant) and isinstance(s.value, str) for s in sides)
        kinds = [s for s in sides if isinstance(s, ast.Attribute) and s.attr in ("kind", "unit_stem", "type_name")
                 and not _names(s.value) & parameters]
        if strings and kinds:
            lines.append(node.lineno)
    return lines


def test_no_layer_kind_dispatch_outside_the_kinds():
    classes = _node_class_names()
    found = [f"{path.relative_to(REPO)}:{line}" for path, tree in _outside_kind_homes()
             for line in layer_class_dispatch(tree, classes) + kind_string_dispatch(tree)]
    assert not found, "dispatch on layer kinds outside hwgen/kinds and the frontends: " + ", ".join(found)


@pytest.mark.parametrize("source, expected", [
    ("isinstance(layer, QuantDense)", 1),
    ("isinstance(layer, (Flatten, kinds.SumPool2d))", 1),
    ("type(layer) is MaxPool2d", 1),
    ("unit.kind == 'conv'", 1),
    ("layer.leak.kind == 'shift'", 0),
    ("x.dtype.kind in 'iu'", 0),
    ("isinstance(value, dict)", 0),
])
def test_the_dispatch_scan_finds_what_it_should(source, expected):
    """The scan above is a check that can fail: it flags each form of dispatch it names."""
    tree = ast.parse(source)
    assert len(layer_class_dispatch(tree, _node_class_names()) + kind_string_dispatch(tree)) == expected
