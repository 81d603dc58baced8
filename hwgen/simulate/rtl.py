"""``run_rtl``: the generated ``hwgen_top`` under cocotb, checked spike for spike against the
golden model.

``run_rtl`` writes the stimulus and the golden model's expectations to an ``.npz``
(``hwgen.simulate.vectors``), runs the testbench ``sim/tb_top.py`` on Icarus Verilog or
Verilator (``hwgen.simulate.runner``: compiled once per build directory, reused while the
Verilog stays the same) and turns the testbench's results JSON into a ``SimResult``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import HwgenError
from ..golden import GoldenTrace
from ..ir import QuantNetwork
from ..protocol import token_fields
from . import capture
from .runner import SIMULATORS, compile_verilog, log_tail, make_runner, run_testbench
from .vectors import count_bits, write_vectors

__all__ = ["HARNESSES", "SimResult", "TEST_MODULE", "TOPLEVEL", "compare_traces", "compile_rtl", "run_rtl",
           "spikes_compared"]

TOPLEVEL = "hwgen_top"
TEST_MODULE = "hwgen.sim.tb_top"


@dataclass(frozen=True)
class Harness:
    """How ``run_rtl`` simulates with one testbench: the simulated top level, the cocotb test
    module, what is compiled beside the design and whether it can stall the input or load
    run-time weights."""

    toplevel: str
    test_module: str
    per_cycle: bool  # Python steps every cycle: stalls and run-time weights are possible
    extra_args: dict[str, tuple[str, ...]] = field(default_factory=dict)  # per simulator
    verilator_main: Path | None = None

    def libraries(self, verilog: str, qnet: QuantNetwork) -> dict[str, str]:
        return {} if self.per_cycle else {"capture_harness.v": _capture_harness(verilog, qnet)}


HARNESSES = {
    "cocotb": Harness(TOPLEVEL, TEST_MODULE, per_cycle=True),
    "capture": Harness(capture.TOPLEVEL, "hwgen.sim.tb_capture", per_cycle=False,
                       extra_args=capture.EXTRA_ARGS, verilator_main=capture.MAIN_CPP),
}


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


def harness_named(name: str) -> Harness:
    """The ``HARNESSES`` entry ``name``, or one clear error naming the choices."""
    if name not in HARNESSES:
        raise HwgenError(f"unknown harness {name!r}: choose one of {', '.join(HARNESSES)}")
    return HARNESSES[name]


def _capture_harness(verilog: str, qnet: QuantNetwork) -> str:
    """``hwgen_capture`` for the ``hwgen_top`` in ``verilog``, sized from its port list. The
    per-cycle testbench checks the ports' widths against ``qnet`` in the simulator; this
    harness is generated from them, so they are checked here, with the same messages."""
    start = verilog.find(f"module {TOPLEVEL}(")
    if start < 0:
        raise HwgenError(f"no module {TOPLEVEL} in the Verilog")
    body = verilog[start:verilog.index("endmodule", start)]
    # ANSI (in the header) or not (`output [3:0] x;` in the body), as Amaranth emits them
    widths = {name: int(msb) + 1 if msb else 1 for msb, name in
              re.findall(r"\b(?:input|output)\s+(?:wire\s+|reg\s+)?(?:\[(\d+):0\]\s*)?(\w+)\s*[;,)]", body)}
    if any(name.startswith("weights_") for name in widths):
        raise HwgenError("the capture harness does not load run-time weights (weights_K ports)")
    layers = qnet.spiking_layers
    expected = {"spikes_in__payload": token_fields(qnet.input_shape, qnet.input_bits)[1],
                **{f"tap_{k}__payload": token_fields(layer.output_shape, 1)[1] for k, layer in enumerate(layers)},
                "counts": qnet.output_size * count_bits(qnet.timesteps)}
    for name, want in expected.items():  # the checks of sim/tb_top.py's _run, in its words
        if name not in widths:
            raise HwgenError(f"hwgen_top has no port {name!r} (docs/hardware.md)")
        if widths[name] != want:
            raise HwgenError(f"port {name} is {widths[name]} bits wide, expected {want}")
    tap_bits = [widths[f"tap_{k}__payload"] for k in range(len(layers))]
    # a tap's payload ends with tick and last (docs/hardware.md): they sit at A and A + 1
    return capture.harness_verilog(widths["spikes_in__payload"], tap_bits, [b - 2 for b in tap_bits],
                                   widths["counts"], widths["prediction"])


def compile_rtl(verilog: Path, qnet: QuantNetwork, simulator: str, build_dir: Path, harness: str = "cocotb",
                waves: bool = False, libraries: dict[str, str] | None = None) -> tuple[object, Path, float]:
    """Build ``verilog`` (generated for ``qnet``) with ``harness``'s testbench for ``simulator`` under ``build_dir``
    (reused while nothing changed): the cocotb runner, the build folder and the seconds spent."""
    testbench = harness_named(harness)
    work = (Path(build_dir) / (simulator if testbench.per_cycle else f"{simulator}_{harness}")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    runner = make_runner(simulator, testbench.verilator_main)
    runner.log = logging.getLogger("hwgen.simulate.cocotb")
    seconds = compile_verilog(runner, simulator, Path(verilog), work, waves, testbench.toplevel,
                              libraries={**(libraries or {}), **testbench.libraries(Path(verilog).read_text(), qnet)},
                              extra_args=testbench.extra_args.get(simulator, ()))
    return runner, work, seconds


def run_rtl(verilog: Path, qnet: QuantNetwork, inputs: np.ndarray, golden: GoldenTrace,
            simulator: str = "verilator", build_dir: Path = Path("build/sim"),
            stall: bool = False, stall_seed: int = 1, waves: bool = False,
            weights: dict[int, np.ndarray] | None = None,
            libraries: dict[str, str] | None = None, harness: str = "cocotb",
            run_dir: Path | None = None) -> SimResult:
    """Simulate ``verilog`` (a ``hwgen_top`` generated for ``qnet``) on ``inputs``.

    ``inputs`` is ``[B, T, *input_shape]`` 0/1 spikes (or direct values) and ``golden`` the golden model's
    trace of the same batch (``hwgen.golden.run``). The simulator (``"verilator"`` or
    ``"icarus"``) builds into ``build_dir / simulator`` and that build is reused while the
    Verilog does not change. With ``stall`` the testbench withholds the input stream for
    random numbers of cycles (seeded by ``stall_seed``); the results must not change.
    ``waves`` records every signal (``hwgen_top.fst`` for Icarus, ``dump.vcd`` for
    Verilator, in the build directory); it recompiles and slows the run down. One build
    directory serves one run at a time, unless each run has its own ``run_dir`` (where the
    stimulus, the results and the log go; default the build directory) and the build is
    already there.

    Mismatches are returned in the ``SimResult``, not raised. ``HwgenError`` is raised
    when the simulation cannot be run or does not finish (compile error, crash, hang
    caught by the testbench's watchdog, ports not matching docs/hardware.md); its message
    ends with the tail of the simulator log.

    A design with run-time-loaded weights (``NetworkTop(weight_memories=...)``) needs
    ``weights`` (``NetworkTop.packed_weights()``), which the testbench writes through the
    ``weights_K`` ports before the first sample, and ``libraries`` for the memory primitives
    (``hwgen.simulate.weight_memory_sources``).

    ``harness`` ``"cocotb"`` steps every cycle from Python (sim/tb_top.py); ``"capture"``
    runs the simulation-only ``hwgen_capture`` around the design (``hwgen.simulate.capture``),
    which drives and records in the simulator, and checks its record with the same functions
    (sim/tb_capture.py): no stalls, no run-time-loaded weights.
    """
    testbench = harness_named(harness)
    if not testbench.per_cycle and (stall or weights):
        raise HwgenError(f"the {harness} harness runs without stalls and without run-time-loaded "
                         "weights: use harness='cocotb' for those")
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
    if timesteps > qnet.timesteps:  # fewer are fine: the input's `last` tick ends an inference
        raise HwgenError(f"inputs have {timesteps} timesteps but the hardware was generated "
                         f"for {qnet.timesteps}: its readout counters hold at most {qnet.timesteps} spikes")
    if golden.batch != samples or int(golden.spikes[0].shape[1]) != timesteps:
        raise HwgenError("the golden trace does not belong to these inputs "
                         f"({golden.batch} samples, {samples} given)")

    from cocotb_tools.check_results import get_results

    runner, work, compile_seconds = compile_rtl(verilog, qnet, simulator, build_dir, harness, waves, libraries)

    run_dir = Path(run_dir).resolve() if run_dir else work
    run_dir.mkdir(parents=True, exist_ok=True)
    vectors, results, xml, log = (run_dir / n for n in
                                  ("vectors.npz", "results.json", "results.xml", "sim.log"))
    for stale in (results, xml):
        stale.unlink(missing_ok=True)
    write_vectors(vectors, qnet, x, golden, weights)
    env = {
        "HWGEN_SIM_VECTORS": str(vectors),
        "HWGEN_SIM_RESULTS": str(results),
        "HWGEN_SIM_STALL": str(stall_seed) if stall else None,
        "COCOTB_ANSI_OUTPUT": "0",
        "WAVES": None,  # the `waves` argument decides, not the caller's environment
        # Outside pytest cocotb's runner returns the results file; under pytest it would
        # sys.exit() on a failed test, and mismatches are a result here, not an exit.
        "PYTEST_CURRENT_TEST": None,
        # the capture harness opens these names in the simulator's folder (hwgen.simulate.capture)
        "HWGEN_CAPTURE_IN": str(run_dir / capture.CAPTURE_IN),
        "HWGEN_CAPTURE_OUT": str(run_dir / capture.CAPTURE_OUT),
    }
    report, run_seconds = run_testbench(runner, simulator, f"simulation of {verilog}", work, env,
                                        results, xml, log, test_module=testbench.test_module,
                                        toplevel=testbench.toplevel, waves=waves, run_dir=run_dir)
    try:
        get_results(xml)
    except RuntimeError as e:
        raise HwgenError(f"{simulator} left no test results ({e}); {log} ends:\n"
                         f"{log_tail(log)}") from None

    per = report["samples"]
    if len(per) != samples:
        raise HwgenError(f"the testbench reported {len(per)} of {samples} samples; "
                         f"{log} ends:\n{log_tail(log)}")
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
