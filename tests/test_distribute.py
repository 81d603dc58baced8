"""Work spread over local processes or a Dask cluster gives the same results as one process.

``hwgen.distribute.run_tasks`` is checked on a trivial function in its three modes (here, N
spawned processes, a cluster), then ``hwgen sim`` end to end: ``--jobs 2`` and
``--scheduler`` on a ``distributed.LocalCluster`` (two worker processes spawned from this
venv, so they import the same hwgen and testbenches, as README "A cluster" asks of real
workers) write the same ``sim_report.json`` as ``--jobs 1``, apart from its ``run`` entry
(how it ran, how fast). The cluster (tests/conftest.py) is started once per session.
"""

from __future__ import annotations

import json
import re
import socket

import pytest
from cli_helpers import with_golden_thresholds_raised

from hwgen.cli import main
from hwgen.distribute import run_tasks
from hwgen.errors import HwgenError


def square(x: int) -> int:
    """A module-level (picklable) task."""
    return x * x


def fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError(f"item {x} is bad")
    return x


@pytest.fixture
def cluster(dask_cluster):
    return dask_cluster


MODES = [{"jobs": 1}, {"jobs": 2}, "cluster"]


def _mode(mode, cluster_address) -> dict:
    return {"scheduler": cluster_address, "jobs": 2} if mode == "cluster" else mode


@pytest.mark.parametrize("mode", MODES, ids=["here", "processes", "cluster"])
def test_run_tasks_keeps_item_order(mode, request):
    address = request.getfixturevalue("cluster") if mode == "cluster" else None
    items = [5, 3, 0, 7, 3, 11, 2]  # a repeated item is still its own task
    seen = []
    assert run_tasks(square, items, **_mode(mode, address),
                     done=lambda i, r: seen.append((i, r))) == [x * x for x in items]
    assert sorted(seen) == [(i, x * x) for i, x in enumerate(items)]


@pytest.mark.parametrize("mode", MODES, ids=["here", "processes", "cluster"])
def test_a_workers_exception_is_raised_here(mode, request):
    address = request.getfixturevalue("cluster") if mode == "cluster" else None
    with pytest.raises(ValueError, match="item 3 is bad"):
        run_tasks(fail_on_three, [1, 2, 3, 4], **_mode(mode, address))


def test_run_tasks_refuses_bad_arguments():
    with pytest.raises(HwgenError, match="--jobs must be at least 1"):
        run_tasks(square, [1], jobs=0)
    with pytest.raises(HwgenError, match="give the Dask scheduler's address"):
        run_tasks(square, [1], scheduler="localhost:8786")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_scheduler_is_one_clear_error(tmp_path, capsys, monkeypatch):
    import hwgen.distribute

    monkeypatch.setattr(hwgen.distribute, "CONNECT_TIMEOUT_S", 2)
    address = f"tcp://127.0.0.1:{_free_port()}"  # nothing listens there
    with pytest.raises(HwgenError, match=re.escape(f"no Dask scheduler answered at {address}")):
        run_tasks(square, [1, 2], scheduler=address)


def test_workers_with_several_threads_are_refused():
    """Two tasks at once in one worker process would share its environment, which the
    simulator runs are configured through: one clear error instead of mixed-up runs."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as local:
        with pytest.raises(HwgenError, match=r"run several tasks per process .*--nthreads 1"):
            run_tasks(square, [1, 2], scheduler=local.scheduler_address)


# ---- hwgen sim

@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    from test_sim_cli import MODEL  # the small 16-12-4 design of the sim CLI tests

    root = tmp_path_factory.mktemp("distribute")
    (root / "m.py").write_text(MODEL)
    out = root / "out"
    assert main(["generate", f"{root / 'm.py'}:net", "-o", str(out), "--input-shape", "1,4,4",
                 "--timesteps", "8", "--parallel", "5"]) == 0
    return out


def _sim(out, *spread: str) -> dict:
    # Icarus: each cluster worker compiles the design itself, which is quick with Icarus
    assert main(["sim", str(out), "--samples", "20", "--simulator", "icarus", *spread]) == 0
    report = json.loads((out / "sim_report.json").read_text())
    return report


def test_sim_reports_the_same_however_it_is_spread(generated, cluster):
    one = _sim(generated, "--jobs", "1")
    two = _sim(generated, "--jobs", "2")
    dask = _sim(generated, "--jobs", "2", "--scheduler", cluster)
    assert one["run"]["jobs"] == 1 and two["run"]["jobs"] == 2 and dask["run"]["scheduler"] == cluster
    assert one["samples"] == 20 and one["spikes_compared"] > 0 and one["mismatches"] == 0
    for report in (one, two, dask):
        report.pop("run")
    assert two == one
    assert dask == one


def test_a_mismatch_on_the_cluster_names_the_batchs_sample(generated, cluster, tmp_path, capsys):
    """A golden model with higher thresholds than the RTL's: the cluster's shards report
    the first mismatch with its sample counted over the whole batch, as one process does."""
    corrupted = with_golden_thresholds_raised(generated, tmp_path / "corrupted")
    reports = []
    for spread in (["--jobs", "1"], ["--jobs", "3", "--scheduler", cluster]):
        assert main(["sim", str(corrupted), "--samples", "20", "--simulator", "icarus", *spread]) == 1
        report = json.loads((corrupted / "sim_report.json").read_text())
        report.pop("run")
        reports.append(report)
    assert reports[0]["mismatches"] > 0
    assert reports[1] == reports[0]


def test_sim_with_an_unreachable_scheduler_exits_with_one_line(generated, capsys, monkeypatch):
    import hwgen.distribute

    monkeypatch.setattr(hwgen.distribute, "CONNECT_TIMEOUT_S", 2)
    address = f"tcp://127.0.0.1:{_free_port()}"
    assert main(["sim", str(generated), "--samples", "4", "--scheduler", address]) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(rf"hwgen: error: no Dask scheduler answered at {re.escape(address)} within 2 s "
                        r"\(.*\); start one .*\"A cluster\"\), or leave out --scheduler\n", err, re.S), err
    assert err.count("\n") == 1
