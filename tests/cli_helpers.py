"""``hwgen`` run in-process, as the CLI tests drive it (tests/test_cli.py,
tests/test_frontend_nir.py)."""

from __future__ import annotations

from hwgen.cli import main


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
