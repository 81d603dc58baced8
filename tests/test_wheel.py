"""Packaging: what ``pip install hwgen-*.whl`` puts in site-packages, and that it runs alone.

``sim/``, ``boards/`` and ``rtl_templates/`` stay top-level folders in the checkout but
install as ``hwgen.sim``, ``hwgen.boards`` and ``hwgen.rtl_templates`` (the ``package-dir``
mapping in pyproject.toml), so the wheel adds no generic top-level name to site-packages.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]

# What the demo and the builds need from the wheel besides hwgen's own modules.
SHIPPED = ["hwgen/sim/tb_top.py", "hwgen/sim/tb_board.py", "hwgen/sim/tb_fuzz.py", "hwgen/sim/tb_capture.py",
           "hwgen/sim/verilator_capture_main.cpp", "hwgen/sim/LICENSE-cocotb",
           "hwgen/boards/__init__.py", "hwgen/boards/icebreaker.py",
           "hwgen/rtl_templates/ice40_spram.v", "hwgen/data/digits_mlp.pt",
           "hwgen/data/digits_conv.pt", "hwgen/data/digits_mnist784.pt"]
DEMO_SAMPLES = 10


def test_every_package_is_listed_under_hwgen():
    """The package list is explicit (``packages.find`` cannot see mapped folders), so a new
    ``hwgen/<sub>/`` package must be added to it or the wheel silently lacks it."""
    listed = set(SETUPTOOLS["packages"])
    assert all(name == "hwgen" or name.startswith("hwgen.") for name in listed), listed
    on_disk = {".".join(init.parent.relative_to(REPO).parts)
               for init in (REPO / "hwgen").rglob("__init__.py")}
    missing = sorted(on_disk - listed)
    assert not missing, f"add {missing} to [tool.setuptools] packages in pyproject.toml"
    for name, folder in SETUPTOOLS["package-dir"].items():
        assert name in listed and (REPO / folder / "__init__.py").is_file(), (name, folder)


def _run(args, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, (f"{' '.join(map(str, args))} exited {done.returncode}\n"
                                  f"stdout:\n{done.stdout[-4000:]}\nstderr:\n{done.stderr[-4000:]}")
    return done


def _requirement_names(requirements) -> set[str]:
    return {re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.-]+", r.strip()).group(0)).lower()
            for r in requirements}


@pytest.mark.slow
def test_wheel_runs_the_demo_outside_the_checkout(tmp_path):
    """Builds the wheel (``python -m build --wheel``, isolated: build-system.requires
    suffices) from a copy of the checkout, installs it with ``--no-deps`` into a fresh venv
    in tmp_path and runs that venv's ``hwgen demo`` from tmp_path.

    The fresh venv borrows the third-party dependencies from the running environment through
    a ``.pth`` line written after the install (so pip never sees the checkout's editable
    install, and that line is a plain path: its ``__editable__`` finder is not loaded). No
    PYTHONPATH, no checkout on sys.path: ``hwgen``, ``hwgen.sim``, ``hwgen.boards`` and
    ``hwgen.rtl_templates`` can come only from the wheel, which the test checks, and the
    demo's cocotb testbench (imported by the simulator's own Python) and the
    data/checkpoints come from there too. What it does not prove: that pip resolves the
    dependencies from scratch; the wheel's Requires-Dist is compared with pyproject.toml's
    instead, and ``importlib.metadata`` in the fresh venv finds each at its pinned version.
    """
    started = time.perf_counter()
    source, dist, venv, run = (tmp_path / n for n in ("src", "dist", "venv", "run"))
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, capture_output=True, text=True, check=True).stdout
    for name in filter(None, listed.split("\0")):  # the build writes egg-info/ build/ there
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    _run([sys.executable, "-m", "build", "--wheel", "--outdir", dist, source])
    (wheel,) = dist.glob("hwgen-*.whl")

    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        metadata = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    top = {n.split("/")[0] for n in names}
    assert top == {"hwgen", f"hwgen-{PYPROJECT['project']['version']}.dist-info"}, top
    assert not [n for n in SHIPPED if n not in names], "missing from the wheel"
    requires = [line.split(":", 1)[1] for line in metadata.splitlines()
                if line.startswith("Requires-Dist:") and "extra ==" not in line]
    assert sorted(r.strip() for r in requires) == sorted(PYPROJECT["project"]["dependencies"])

    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
          "--disable-pip-version-check", "--quiet", wheel])
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"])
                .stdout.strip())
    borrowed = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    (site / "_hwgen_test_dependencies.pth").write_text("\n".join(borrowed) + "\n")

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    run.mkdir()
    probe = """if True:
        import importlib.metadata, importlib.util, json
        from packaging.requirements import Requirement
        import hwgen, hwgen.boards, hwgen.rtl_templates, hwgen.sim.tb_top
        from hwgen.hardware.memories import SPRAM_SHIM
        deps = {}
        for req in map(Requirement, importlib.metadata.requires("hwgen")):
            if req.marker is None:  # the `test` extra's come with a marker
                have = importlib.metadata.version(req.name)
                deps[req.name] = [str(req.specifier), have, req.specifier.contains(have)]
        print(json.dumps({"files": [m.__file__ for m in (hwgen, hwgen.boards, hwgen.rtl_templates,
                                                          hwgen.sim.tb_top)] + [str(SPRAM_SHIM)],
                          "generic": [n for n in ("sim", "boards", "rtl_templates")
                                      if importlib.util.find_spec(n)],
                          "deps": deps}))
    """
    found = json.loads(_run([python, "-c", probe], cwd=run, env=env).stdout)
    for file in found["files"]:
        assert Path(file).resolve().is_relative_to(site.resolve()), file
    assert found["generic"] == []
    assert all(ok for _, _, ok in found["deps"].values()), found["deps"]
    assert _requirement_names(found["deps"]) == _requirement_names(PYPROJECT["project"]["dependencies"])

    demo = _run([venv / "bin" / "hwgen", "demo", "--out", "demo", "--samples", DEMO_SAMPLES],
                cwd=run, env=env)
    assert "hwgen demo" in demo.stdout and "outputs in demo/" in demo.stdout, demo.stdout
    for name in ("hwgen_top.v", "model.json", "report.json", "report.md", "sim_report.json"):
        assert (run / "demo" / name).is_file(), name
    report = json.loads((run / "demo" / "sim_report.json").read_text())
    assert report["samples"] == DEMO_SAMPLES and report["mismatches"] == 0, report
    assert report["spikes_compared"] > 0
    print(f"wheel test: {time.perf_counter() - started:.0f} s")
