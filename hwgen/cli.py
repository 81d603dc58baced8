"""``hwgen`` command line: generate, sim, demo.

Errors in the user's input arrive as ``HwgenError`` and leave as one line on stderr with
exit status 2; anything else is a bug in hwgen and says so (exit 3), without a traceback
unless ``HWGEN_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from . import __version__
from .errors import HwgenError
from .protocol import DEFAULT_BAUD
from .quantize import QuantOptions

# emoji=False: rich would otherwise turn text such as "events.npz:a:" (an archive member)
# into an emoji inside an error message.
console = Console(stderr=True, emoji=False)
# Without a terminal (CI, pipes) stages are logged as plain lines on stdout, so that stderr
# carries nothing but errors.
log = Console(width=None if sys.stdout.isatty() else 132, emoji=False)


@contextmanager
def stages() -> Iterator:
    """A rich progress line per pipeline stage, each with its elapsed time."""
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                  console=console, transient=False, disable=not console.is_terminal) as bar:
        current: list = []

        def advance(description: str, completed: int | None = None, total: int | None = None) -> None:
            if completed is not None and current:  # how far the current stage is
                bar.update(current[-1], description=description, completed=completed, total=total)
            else:
                if current:
                    bar.update(current[-1], completed=1, total=1)
                current.append(bar.add_task(description, total=None))
            if not console.is_terminal:
                log.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {description}")

        yield advance
        if current:
            task = bar.tasks[-1]
            bar.update(current[-1], completed=task.total or 1, total=task.total or 1)


def _samples(text: str) -> int | str:
    if text == "all":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of samples (at least 1) or 'all', got {text!r}")
    return value


def _add_spread_options(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--jobs", type=int, default=1, help=f"local {what} (default 1)")
    parser.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                        help="a Dask scheduler: the work goes to its workers instead (README, \"A cluster\"); "
                             "--jobs is then the number of pieces it is cut into")


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(part) for part in text.replace("x", ",").split(",") if part)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated sizes like 1,8,8, got {text!r}")
    if not shape or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected positive sizes like 1,8,8, got {text!r}")
    return shape


class _Parser(argparse.ArgumentParser):
    """argparse's usage errors as hwgen's other errors: one ``hwgen: error:`` line (naming
    the subcommand's --help) and exit status 2, instead of the usage block first."""

    def error(self, message: str):
        console.print(f"hwgen: error: {message} (see `{self.prog} --help`)", markup=False, soft_wrap=True)
        self.exit(2)


def _parallel(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number or auto, got {text!r}") from None


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="hwgen", description="Trained SNN -> bit-exact FPGA accelerator.")
    parser.add_argument("--version", action="version", version=f"hwgen {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="model -> quantized IR -> Verilog + reports")
    gen.add_argument("model", help="package.module:attribute (or file.py:attribute) naming an nn.Module, "
                                   "a torch.save'd module file, or a .nir graph")
    gen.add_argument("-o", "--out", required=True, type=Path, help="output folder (replaced as a whole)")
    gen.add_argument("--weights", help="state_dict (.pt) to load into a module:attribute model")
    gen.add_argument("--input-shape", type=_shape, help="input shape without batch/time, e.g. 1,8,8")
    gen.add_argument("--weight-bits", type=int, default=8, help="signed weight width, 2..16 (default 8)")
    gen.add_argument("--per-channel", action="store_true", help="one power-of-two scale per output neuron")
    gen.add_argument("--state-bits", type=int, help="membrane width (default: from calibration)")
    gen.add_argument("--leak-bits", type=int, default=8,
                     help="fraction bits of the leak multiplier when beta is not 1-2^-k (default 8)")
    gen.add_argument("--timesteps", type=int, help="timesteps per inference (default: those of --data or "
                                                  "--calibration, else 16)")
    gen.add_argument("--input-bits", type=int, default=1,
                     help="1: spike input (default); 2..16: direct unsigned input of this width (frames)")
    gen.add_argument("--parallel", type=_parallel, default=4,
                     help="neurons updated per cycle, P (default 4), or auto with --board: the cheapest "
                          "P that fits the board (and meets --latency-us)")
    gen.add_argument("--board", help="generate for this board (see boards/README.md): weights that do not fit "
                                     "its block RAM go to SPRAM, loaded over the host link")
    gen.add_argument("--latency-us", type=float, help="with --parallel auto: the most microseconds per "
                                                      "inference (at the board clock) to accept")
    gen.add_argument("--data", help=".npz with x [samples, T, *input_shape] 0/1 spikes and optional labels y: "
                                    "held-out data for fidelity and `hwgen sim --samples`")
    gen.add_argument("--calibration", help=".npz with x, for state widths (default: --data, else random spikes)")
    gen.add_argument("--dt", type=float, help="NIR only: seconds per timestep for LIF nodes, beta = 1 - dt/tau "
                                              "(default: the exporter's convention, e.g. snnTorch's 1e-4)")
    gen.add_argument("--reset", choices=["subtract", "zero"],
                     help="NIR only: reset after a spike (default subtract, as Sinabs and snnTorch compute)")

    sim = sub.add_parser("sim", help="simulate OUT/hwgen_top.v in cocotb against the golden model")
    sim.add_argument("out", type=Path)
    sim.add_argument("--samples", type=_samples, help="how many samples, or 'all': every sample of --inputs / "
                                                      "--events or of the held-out data in OUT (default: all of "
                                                      "a file, else 10)")
    sim.add_argument("--inputs", help=".npy shaped [samples, T, *input_shape] of 0/1 spikes")
    sim.add_argument("--events", help=".npz of tonic-style event arrays (fields t, x, y, p), one per sample, "
                                      "binned into the model's timesteps (hwgen/events.py)")
    sim.add_argument("--duration", type=float, help="time span binned into the timesteps, in the events' "
                                                    "time unit (default: each sample's own span)")
    sim.add_argument("--simulator", default="verilator", choices=["verilator", "icarus"])
    sim.add_argument("--harness", default="auto", choices=["auto", "capture", "cocotb"],
                     help="capture: the simulator drives and records, Python checks once per run (fast); "
                          "cocotb: Python steps every cycle; auto: capture unless the design loads its "
                          "weights at run time (default auto)")
    _add_spread_options(sim, "simulator processes the samples are shared out to")

    demo = sub.add_parser("demo", help="digits end to end: model -> Verilog -> cocotb vs golden")
    demo.add_argument("--model", choices=["mlp", "conv", "rnn"], default="mlp",
                      help="mlp: 64-64-10 LIF; conv: conv 8x3x3 -> LIF -> max pool -> dense 10; rnn: the digits "
                           "read row by row, 16-64(recurrent LIF)-10 (default mlp)")
    demo.add_argument("--out", type=Path, default=Path("hwgen-demo"))
    demo.add_argument("--samples", type=_samples, default="all",
                      help="held-out digits checked in RTL, or 'all' (default: all 450)")
    demo.add_argument("--parallel", type=int, default=4)
    demo.add_argument("--simulator", default="verilator", choices=["verilator", "icarus"])

    build = sub.add_parser("build", help="OUT -> bitstream for a board (Yosys + nextpnr, YoWASP), fit check first")
    build.add_argument("out", type=Path)
    build.add_argument("--board", required=True, help="board name (see boards/README.md): icebreaker, "
                                                      "ulx3s-85f, orangecrab-25f, tangnano9k")
    build.add_argument("--seed", type=int, default=1, help="nextpnr placement seed (default 1)")

    flash = sub.add_parser("flash", help="load OUT's bitstream for a board with openFPGALoader")
    flash.add_argument("out", type=Path)
    flash.add_argument("--board", required=True, help="board name, as given to hwgen build")
    flash.add_argument("--dry-run", action="store_true", help="print the openFPGALoader command, do not run it")

    run = sub.add_parser("run", help="run inferences on a board over its serial link, compared with the golden model")
    run.add_argument("out", type=Path)
    run.add_argument("--port", required=True, help="the board's serial port (/dev/ttyUSB1, COM3, ...) "
                                                   "or a pyserial URL (socket://host:port)")
    run.add_argument("--inputs", required=True, help=".npy shaped [samples, T, *input_shape]")
    run.add_argument("--baud", type=int, default=DEFAULT_BAUD,
                     help=f"UART baud rate of the board top (default {DEFAULT_BAUD})")
    run.add_argument("--timeout", type=float, default=1.0,
                     help="seconds to wait for a reply beyond its time on the wire (default 1)")

    bench = sub.add_parser("bench", help="cycles, bounds, efficiency, builds and tool speed -> bench/RESULTS.md")
    bench.add_argument("--mode", choices=["quick", "full"], default="quick",
                       help="quick: a few minutes, no builds (CI); full: every P, layer type and build (default quick)")
    bench.add_argument("--out", type=Path, default=Path("bench"),
                       help="where results/<date>.json, RESULTS.md and plots/ go (default bench; quick mode: bench/quick)")
    bench.add_argument("--work", type=Path, default=Path("build/bench"),
                       help="generated designs, compiled simulators and builds, reused between runs (default build/bench)")
    bench.add_argument("--render", type=Path, metavar="RESULTS_JSON",
                       help="measure nothing: render RESULTS.md and plots/ into --out from this results file")
    _add_spread_options(bench, "processes the bitstream builds (full mode) are shared out to")
    return parser


def _generate(args: argparse.Namespace) -> int:
    from .pipeline import GenerateOptions, generate

    opts = GenerateOptions(
        weights=args.weights, input_shape=args.input_shape, parallel=args.parallel, data=args.data,
        calibration=args.calibration, dt=args.dt, reset=args.reset, board=args.board,
        latency_us=args.latency_us,
        quant=QuantOptions(weight_bits=args.weight_bits, per_channel=args.per_channel,
                           state_bits=args.state_bits, leak_frac_bits=args.leak_bits,
                           timesteps=16 if args.timesteps is None else args.timesteps,
                           input_bits=args.input_bits),
        timesteps_given=args.timesteps is not None)
    with stages() as progress:
        report = generate(args.model, args.out, opts, progress)
    hw = report["hardware"]
    log.print(f"wrote {args.out}/hwgen_top.v: {hw['neurons']} neurons, {hw['synapses']} synapses, "
                  f"{hw['weight_memory_bits']} weight bits, ~{hw.get('cycles_per_inference_expected', hw['cycles_per_inference_worst']):.0f} cycles/inference")
    plan = report.get("board_plan")
    if plan:
        chosen = next(c for c in plan["candidates"] if c["parallel"] == plan["parallel"])
        loaded = ", ".join(f"layer {k} in {t}" for k, t in plan["weight_memories"].items())
        log.print(f"for {plan['board']}: P={plan['parallel']}, ~{chosen['lut_estimate']} LUT (estimate), "
                  f"{chosen['block_ram']} block RAM, {chosen['spram']} SPRAM, latency <= "
                  f"{chosen['latency_us_max']:.0f} us at {plan['clock_mhz']:g} MHz"
                  + (f"; weights loaded at run time: {loaded}" if loaded else ""), markup=False, soft_wrap=True)
    for warning in report["quantization"]["warnings"]:
        console.print(f"hwgen: warning: {warning}", markup=False, soft_wrap=True)
    return 0


def _sim(args: argparse.Namespace) -> int:
    from .pipeline import simulate
    from .summary import print_sim

    with stages() as progress:
        report = simulate(args.out, args.samples, args.inputs, args.simulator, progress,
                          events=args.events, duration=args.duration, harness=args.harness,
                          jobs=args.jobs, scheduler=args.scheduler)
    print_sim(report, log)
    if report["mismatches"]:
        m = report["first_mismatch"]
        console.print(f"hwgen: error: {report['mismatches']} mismatches between RTL and golden model; first: "
                      f"sample {m['sample']}, layer {m['layer']}, timestep {m['timestep']}, neuron {m['neuron']}, "
                      f"expected {m['expected']}, got {m['got']}", markup=False, soft_wrap=True)
        return 1
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args.out, args.samples, args.parallel, args.simulator, stages, args.model)


def _build(args: argparse.Namespace) -> int:
    from .build import build

    with stages() as progress:
        report = build(args.out, args.board, progress, seed=args.seed)
    log.print(f"wrote {args.out}/{report['bitstream']} ({report['device']}): {report['lut']} LUT, {report['ff']} FF, "
              f"{report['bram']} BRAM, {report['spram']} SPRAM, {report['dsp']} DSP; Fmax {report['fmax_mhz']} MHz "
              f"(target {report['target_mhz']:g}); {report['seconds']} s", markup=False, soft_wrap=True)
    for warning in report["warnings"]:
        console.print(f"hwgen: warning: {warning}", markup=False, soft_wrap=True)
    if not report["timing_met"]:
        console.print(f"hwgen: error: timing not met on {report['board']}: Fmax {report['fmax_mhz']} MHz < "
                      f"{report['target_mhz']:g} MHz board clock (the bitstream is written but may not work; "
                      "try a lower --parallel or another --seed)", markup=False, soft_wrap=True)
        return 1
    return 0


def _flash(args: argparse.Namespace) -> int:
    from .flash import flash

    return flash(args.out, args.board, args.dry_run)


def _run(args: argparse.Namespace) -> int:
    from .run import run_on_board

    with stages() as progress:
        report = run_on_board(args.out, args.port, args.inputs, args.baud, args.timeout, progress)
    log.print(f"board on {report['port']} (design {report['design_hash']}): {report['samples']} samples, "
              f"{report['mismatches']} mismatches against the golden model, "
              f"{report['cycles_per_inference_mean']:.0f} cycles/inference (max {report['cycles_per_inference_max']}), "
              f"{report['inferences_per_second']:.1f} inferences/s over the link; {args.out}/run_report.json",
              markup=False, soft_wrap=True)
    if report["mismatches"]:
        m = report["first_mismatch"]
        console.print(f"hwgen: error: {report['mismatches']} mismatches between the board and the golden model; "
                      f"first: sample {m['sample']}, {m['what']}"
                      + (f" of neuron {m['neuron']}" if m["neuron"] is not None else "")
                      + f", expected {m['expected']}, got {m['got']}", markup=False, soft_wrap=True)
        return 1
    return 0


def _bench(args: argparse.Namespace) -> int:
    from .bench import run_bench
    from .distribute import validate

    validate(args.jobs, args.scheduler)  # before anything is measured
    if args.render:
        from .bench.render import render_all

        if not args.render.is_file():
            raise HwgenError(f"{args.render}: results file not found (hwgen bench writes bench/results/<date>.json)")
        written = render_all(args.render, args.out)
        log.print(f"wrote {', '.join(str(p) for p in written)}", markup=False, soft_wrap=True)
        return 0
    with stages() as progress:
        results = run_bench(args.mode, args.out, args.work, progress, jobs=args.jobs, scheduler=args.scheduler)
    where = Path(results["_path"]).parent.parent
    log.print(f"wrote {results['_path']}, {where}/RESULTS.md and {where}/plots/ "
              f"({results['wall_seconds'] / 60:.1f} min)", markup=False, soft_wrap=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # usage errors (status 2, already printed), --help, --version
        return exc.code if isinstance(exc.code, int) else 2
    handlers = {"generate": _generate, "sim": _sim, "demo": _demo, "build": _build, "flash": _flash,
                "run": _run, "bench": _bench}
    try:
        return handlers[args.command](args)
    except HwgenError as exc:
        console.print(f"hwgen: error: {exc}", markup=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        console.print("hwgen: interrupted")
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place that turns bugs into a clean exit
        if os.environ.get("HWGEN_DEBUG"):
            raise
        console.print(f"hwgen: internal error: {type(exc).__name__}: {exc} "
                      "(a bug in hwgen; rerun with HWGEN_DEBUG=1 for the traceback)", markup=False, soft_wrap=True)
        return 3


if __name__ == "__main__":
    sys.exit(main())
