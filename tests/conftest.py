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
