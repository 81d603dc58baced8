"""``hwgen`` run in-process, as the CLI tests drive it (tests/test_cli.py,
tests/test_frontend_nir.py, tests/test_sim_cli.py, tests/test_distribute.py)."""

from __future__ import annotations

import json
from pathlib import Path

from hwgen.cli import main


def copy_outputs(out: Path, to: Path) -> Path:
    """The files of the output folder ``out`` (not its builds) copied into a new folder ``to``."""
    to.mkdir()
    for f in out.iterdir():
        if f.is_file():
            (to / f.name).write_bytes(f.read_bytes())
    return to


def with_golden_thresholds_raised(out: Path, to: Path, by: int = 7) -> Path:
    """A copy of ``out`` whose model.json (the golden model's integers) has the first dense
    layer's thresholds raised by ``by``: the RTL, generated from the original integers, then
    fires where the golden model does not."""
    copy_outputs(out, to)
    model = json.loads((to / "model.json").read_text())
    layer = next(l for l in model["layers"] if l["type"] == "quant_dense")
    layer["threshold"] = [t + by for t in layer["threshold"]]
    (to / "model.json").write_text(json.dumps(model))
    return to


def run_cli(args, capsys) -> tuple[int, str]:
    """``hwgen *args``: its exit code and what it wrote to stderr."""
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def assert_clean_failure(code, err, out, *fragments):
    """A refusal as a user should see it: exit code 2, one ``hwgen: error:`` line naming
    every fragment, and neither the output folder ``out`` nor a staging folder left."""
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("hwgen: error: "), err
    for fragment in fragments:
        assert fragment in err, err
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}.*")), "staging folder left behind"
