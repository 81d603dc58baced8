"""Shared by every test file: the helper modules next to them are imported by name
(``from hwsim import ...``), which works because tests/ is no package: pytest puts this
folder on ``sys.path`` (rootdir-based ``prepend`` import mode)."""

import pytest

# pytest rewrites the asserts of test files and conftest only; the helpers assert too, and
# their failures should explain themselves as well as they did inside the test files.
pytest.register_assert_rewrite("cli_helpers", "hwsim", "snntorch_ref")


def pytest_addoption(parser):
    parser.addoption("--long", action="store_true", default=False,
                     help="long stress runs: tests/test_fuzz.py checks thousands of random "
                          "networks instead of about a hundred")


def pytest_collection_modifyitems(config, items):
    """Files that hold slow tests run first, each file's tests in their own order.

    The suite runs one file per xdist worker at a time (``--dist loadfile``, pyproject.toml),
    handed out in this order: starting the long files early and filling in with the short
    ones keeps a worker from running one long file alone at the end (longest first is the
    classic rule for scheduling on identical machines)."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: file order is kept


@pytest.fixture(scope="session")
def dask_cluster():
    """A ``distributed.LocalCluster`` of two worker processes, as CI's stand-in for a real
    cluster (README, "A cluster"): its address, for ``--scheduler`` / ``HWGEN_SCHEDULER``.
    The workers are spawned from this interpreter, so they see the same hwgen and sys.path."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as local:
        yield local.scheduler_address
