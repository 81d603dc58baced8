"""The pipeline, stage by stage: frontend -> quantize -> golden -> hardware -> emit -> sim.

``hwgen generate``, ``hwgen sim`` and ``hwgen demo`` are thin wrappers over the two
functions here; each stage is a call into its own module and data only flows forward.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import golden, ir_sim
from .arrays import load_npy, load_npz
from .design import (SIM_BUILD, SIM_REPORT, VERILOG, LoadedDesign, check_replaceable, load_design,  # noqa: F401
                     write_atomic, write_design)
from .dse import choose
from .accelerator.cycles import expected_cycles
from .accelerator.identity import model_hash
from .errors import HwgenError
from .events import load_event_samples
from .frontend import import_torch, load_torch_model
from .ir import Network, QuantNetwork
from .quantize import QuantOptions, calibration_inputs, fidelity, quantize
from .report import hardware_report, render_markdown

# progress(description) starts a stage; progress(description, completed=k, total=n) reports
# how far the current one is (the CLI draws a bar, a log prints a line).
Progress = Callable[..., None]
# The readout keeps a counter per output neuron and an argmax tree over them: beyond this
# it is a classifier no one meant, and synthesis of it runs out of memory.
MAX_OUTPUTS = 1024


def _quiet(_: str, **counts: int) -> None:
    pass


@dataclass
class GenerateOptions:
    weights: str | None = None
    input_shape: tuple[int, ...] | None = None
    parallel: int | str = 4  # or "auto" (with a board): the cheapest that fits and meets latency_us
    quant: QuantOptions = field(default_factory=QuantOptions)
    data: str | None = None  # held-out .npz: x [S, T, *input_shape], optional labels y
    calibration: str | None = None  # .npz with x, for state widths; default: data, else random
    dt: float | None = None  # NIR only: seconds per timestep for LIF nodes (default: exporter's)
    reset: str | None = None  # NIR only: "subtract" (default) or "zero"
    board: str | None = None  # generate for this board: its memory plan, fit and clock (hwgen.dse)
    latency_us: float | None = None  # with parallel="auto": the latency per inference to meet
    timesteps_given: bool = False  # quant.timesteps was asked for: data must agree, not override

    def validate(self) -> None:
        if self.parallel == "auto":
            if not self.board:
                raise HwgenError("--parallel auto chooses P for a board: give --board too")
        elif not isinstance(self.parallel, int) or self.parallel < 1:
            raise HwgenError(f"--parallel must be a whole number of at least 1, or auto; "
                             f"got {self.parallel}")
        if self.latency_us is not None:
            if self.parallel != "auto":
                raise HwgenError("--latency-us is the target of --parallel auto; give both")
            if not self.latency_us > 0:
                raise HwgenError(f"--latency-us must be positive, got {self.latency_us:g}")
        if self.board:
            from hwgen.boards import get_board

            get_board(self.board)  # a clear error for an unknown board, before any work
        self.quant.validate()


def load_frontend(model: str, opts: GenerateOptions) -> tuple[Network, list[str]]:
    """The float network and the frontend's notes for the report (assumptions it made)."""
    if model.endswith(".nir"):
        from .frontend import import_nir

        if opts.weights:
            raise HwgenError(f"--weights applies to module:attribute models; the NIR file {model} "
                             "carries its own weights")
        net, notes = import_nir(model, opts.dt, opts.reset)
        if opts.input_shape is not None and tuple(opts.input_shape) != tuple(net.input_shape):
            raise HwgenError(f"--input-shape {','.join(map(str, opts.input_shape))} does not match "
                             f"the Input node of {model} ({','.join(map(str, net.input_shape))}); "
                             "drop --input-shape, a NIR graph states its input shape")
        return net, notes
    if opts.dt is not None or opts.reset is not None:
        raise HwgenError("--dt and --reset apply to .nir models only; an snnTorch model states "
                         "its own beta and reset_mechanism")
    module = load_torch_model(model, opts.weights)
    return import_torch(module, opts.input_shape, name=model), []


def load_data(path: str, net: Network, input_bits: int = 1) -> tuple[np.ndarray, np.ndarray | None]:
    """Read ``x`` (and labels ``y`` if present) from an .npz and check it fits the model."""
    archive = load_npz(path, "data", "numpy.savez(path, x=spikes, y=labels)")
    if "x" not in archive:
        raise HwgenError(f"{path}: no array named 'x' (expected x [samples, timesteps, "
                         f"{', '.join(map(str, net.input_shape))}] and optional labels y)")
    x, y = archive["x"], archive.get("y")
    check_spikes(x, net.input_shape, path, input_bits=input_bits)
    if y is not None and (y.ndim != 1 or len(y) != len(x) or y.dtype.kind not in "iuf"
                          or not np.array_equal(y, np.round(y))):
        raise HwgenError(f"{path}: labels y shaped {list(y.shape)} ({y.dtype}); expected one integer "
                         f"class per sample, shape [{len(x)}]")
    return x, y


def check_spikes(x: np.ndarray, input_shape: tuple[int, ...], what: str,
                 timesteps: int | None = None, input_bits: int = 1) -> None:
    """Refuse inputs of the wrong shape, type or range, naming the file and what was expected."""
    expected = f"[samples, timesteps, {', '.join(map(str, input_shape))}]"
    if x.ndim != 2 + len(input_shape) or tuple(x.shape[2:]) != tuple(input_shape):
        raise HwgenError(f"{what}: inputs shaped {list(x.shape)}, expected {expected}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise HwgenError(f"{what}: inputs shaped {list(x.shape)} hold no "
                         f"{'samples' if x.shape[0] == 0 else 'timesteps'}")
    if timesteps is not None and x.shape[1] != timesteps:
        raise HwgenError(f"{what}: {x.shape[1]} timesteps, but the hardware was generated for "
                         f"{timesteps} (--timesteps)")
    kind = "spike inputs must be integers 0/1 (or bool)" if input_bits == 1 else \
        f"direct inputs must be unsigned integers below 2**{input_bits}"
    if not (np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_):
        raise HwgenError(f"{what}: dtype {x.dtype}; {kind}")
    if x.size and (x.min() < 0 or x.max() > (1 << input_bits) - 1):
        raise HwgenError(f"{what}: values {int(x.min())}..{int(x.max())}; {kind}")


def generate(model: str, out: Path, opts: GenerateOptions, progress: Progress = _quiet) -> dict:
    """Run frontend, quantizer, golden and hardware generation; write ``out`` all at once."""
    opts.validate()
    check_replaceable(out)  # before the work, not after it
    progress("frontend: importing model")
    net, frontend_notes = load_frontend(model, opts)
    if net.output_size > MAX_OUTPUTS:
        last = net.spiking_layers[-1]
        raise HwgenError(f"layer '{last.name}' is the last layer and has {net.output_size} neurons; the readout "
                         f"counts spikes per output neuron (at most {MAX_OUTPUTS}): end the network with a "
                         "classifier layer such as nn.Linear + snn.Leaky")
    x = y = calib = None
    if opts.data:
        x, y = load_data(opts.data, net, opts.quant.input_bits)
        _agree_on_timesteps(opts, x, opts.data)
        opts.quant.timesteps = int(x.shape[1])
    calib_source = opts.calibration or opts.data or ""
    if opts.calibration:
        calib, _ = load_data(opts.calibration, net, opts.quant.input_bits)
        if x is not None and calib.shape[1] != x.shape[1]:
            raise HwgenError(f"{opts.calibration}: {calib.shape[1]} timesteps, but {opts.data} has {x.shape[1]}")
        _agree_on_timesteps(opts, calib, opts.calibration)
        opts.quant.timesteps = int(calib.shape[1])
    elif x is not None:
        calib = x
    progress("quantize: integer weights, thresholds, leaks, state widths")
    qnet, qreport = quantize(net, opts.quant, calib, calibration_source=calib_source)
    progress("golden: integer reference traces")
    fid = fidelity(net, qnet, x, y) if x is not None else None
    activity_inputs = x if x is not None else _activity_inputs(net, qnet)
    activity = golden.run(qnet, activity_inputs)
    parallel, weight_memories, choice = opts.parallel, {}, None
    if opts.board:
        progress(f"hardware plan: P and memories for {opts.board}")
        choice = choose(qnet, opts.board, activity, opts.parallel, opts.latency_us, activity_inputs)
        parallel, weight_memories = choice.parallel, choice.weight_memories
    report = {
        "model": model,
        "design_hash": model_hash(qnet, parallel, weight_memories),
        "hardware": hardware_report(qnet, parallel, activity, activity_inputs),
        "board_plan": choice.to_dict() if choice else None,
        "quantization": qreport.to_dict(),
        "fidelity": fid.to_dict() if fid else None,
        "fidelity_data": opts.data or "",
        "frontend_notes": frontend_notes,
    }
    if not qnet.is_chain:  # each node's inputs, [source, delay]: what the graph is
        report["graph"] = {layer.name: [[e.source, e.delay] for e in qnet.sources(layer)] for layer in qnet.layers}
    progress("hardware + emit: Amaranth -> Verilog")
    data = {"x": x, "y": y} if x is not None and y is not None else ({"x": x} if x is not None else None)
    write_design(out, net, qnet, parallel, report, render_markdown(report), data, weight_memories, opts.board)
    return report


def _agree_on_timesteps(opts: GenerateOptions, x: np.ndarray, source: str) -> None:
    """The data sets T unless --timesteps was given; then they must be the same."""
    if opts.timesteps_given and x.shape[1] != opts.quant.timesteps:
        raise HwgenError(f"--timesteps {opts.quant.timesteps}, but {source} holds {x.shape[1]} "
                         "timesteps per sample: drop --timesteps (the data sets it) or encode the "
                         f"data over {opts.quant.timesteps} timesteps")


def _activity_inputs(net: Network, qnet: QuantNetwork) -> np.ndarray:
    return calibration_inputs(net, qnet.timesteps, samples=16, seed=1, input_bits=qnet.input_bits)


def check_samples(samples: int | str | None) -> None:
    """Refuse a ``--samples`` that is neither a positive number nor ``"all"`` (``None``: the
    default)."""
    if samples is not None and samples != "all" and (not isinstance(samples, int) or samples < 1):
        raise HwgenError(f"--samples must be at least 1 or 'all', got {samples!r}")


def sim_inputs(design: LoadedDesign, samples: int | str | None, inputs: str | None,
               events: str | None = None, duration: float | None = None,
               seed: int = 0) -> tuple[np.ndarray, np.ndarray | None, str]:
    """Pick what to simulate: a user file (arrays or events), held-out data shipped in OUT,
    or random spikes. ``samples``: how many (the first ones), ``"all"`` for every sample of
    the file or the held-out data, ``None`` for all of a file and 10 otherwise."""
    qnet = design.qnet
    check_samples(samples)
    if samples == "all":
        if not (inputs or events or design.data_x is not None):
            raise HwgenError("--samples all: OUT holds no held-out data (generate with --data) and "
                             "no --inputs or --events were given; give a number of random samples")
        samples = None
    if inputs and events:
        raise HwgenError("give --inputs or --events, not both")
    if events:
        if len(qnet.input_shape) != 3:
            raise HwgenError(f"{events}: event input needs a (2, H, W) input map; the model takes "
                             f"{list(qnet.input_shape)}")
        x = load_event_samples(events, qnet.input_shape, qnet.timesteps, duration)
        return (x[:samples] if samples else x), None, f"events from {events}, binned into {qnet.timesteps} timesteps"
    if inputs:
        x = load_npy(inputs, "input")
        check_spikes(x, qnet.input_shape, inputs, input_bits=qnet.input_bits)
        _fit_timesteps(x, qnet.timesteps, inputs)
        if samples:
            x = x[:samples]
        return x, None, inputs
    if design.data_x is not None:
        x = design.data_x if samples is None else design.data_x[:samples]
        y = design.data_y[:len(x)] if design.data_y is not None else None
        return x, y, "held-out data shipped with the model"
    n = samples or 10
    rng = np.random.default_rng(seed)
    x = (rng.random((n, qnet.timesteps, *qnet.input_shape)) < 0.2).astype(np.uint8)
    return x, None, "random spikes, rate 20%"


def _fit_timesteps(x: np.ndarray, timesteps: int, what: str) -> None:
    """Samples of fewer timesteps than the hardware's are fine (the input's ``last`` tick ends an
    inference and resets every state); more would overflow its spike counters."""
    if x.shape[1] > timesteps:
        raise HwgenError(f"{what}: {x.shape[1]} timesteps, but the hardware was generated for "
                         f"{timesteps} (--timesteps): its readout counters hold at most {timesteps} "
                         "spikes; cut the samples or generate for more timesteps")


def simulate(out: Path, samples: int | str | None = None, inputs: str | None = None,
             simulator: str = "verilator", progress: Progress = _quiet,
             events: str | None = None, duration: float | None = None, harness: str = "auto",
             jobs: int = 1, scheduler: str | None = None) -> dict:
    """Run the RTL in cocotb against the golden model; write ``OUT/sim_report.json``.

    ``harness`` (``run_rtl``): ``"auto"`` is the capture harness unless the design loads its
    weights at run time, which only the per-cycle testbench does. The samples run in shards
    (``hwgen.simulate.shards``) on ``jobs`` local simulator processes or on the Dask cluster
    at ``scheduler``; the report does not depend on how they were spread."""
    from .distribute import validate
    from .simulate import measure_coverage, weight_memory_sources
    from .simulate.shards import run_sharded

    if simulator not in ("verilator", "icarus"):
        raise HwgenError(f"--simulator must be verilator or icarus, got {simulator!r}")
    validate(jobs, scheduler)
    design = load_design(out)
    x, y, source = sim_inputs(design, samples, inputs, events, duration)
    progress("golden: integer reference traces")
    trace = golden.run(design.qnet, x)
    float_trace = ir_sim.run_float(design.net, torch.as_tensor(x, dtype=torch.float32))
    weights = design.packed_weights()
    if harness == "auto":
        harness = "cocotb" if weights else "capture"
    where = f"Dask at {scheduler}" if scheduler else f"{jobs} process{'es' if jobs > 1 else ''}"
    progress(f"sim: {simulator} + cocotb ({harness} harness), {len(x)} samples, {where}")
    state = {"samples": 0, "mismatches": 0, "cycles": 0}

    def shard_done(part, seconds: float) -> None:
        state["samples"] += part.samples
        state["mismatches"] += part.mismatches
        state["cycles"] += part.sim_cycles
        rate = state["cycles"] / max(seconds, 1e-9)
        progress(f"sim: {state['samples']}/{len(x)} samples, {state['mismatches']} mismatches, "
                 f"{rate:,.0f} cycles/s", completed=state["samples"], total=len(x))

    result = run_sharded(Path(out) / VERILOG, design.qnet, x, trace, simulator=simulator,
                         harness=harness, build_dir=Path(out) / SIM_BUILD, jobs=jobs,
                         scheduler=scheduler, weights=weights,
                         libraries=weight_memory_sources(design.weight_memories.values()), done=shard_done)
    report = {
        "simulator": simulator,
        "harness": harness,
        "inputs": source,
        "samples": result.samples,
        "timesteps": result.timesteps,
        "spikes_compared": result.spikes_compared,
        "mismatches": result.mismatches,
        "first_mismatch": result.first_mismatch,
        "cycles_per_inference_mean": result.cycles_per_inference_mean,
        "cycles_per_inference_max": result.cycles_per_inference_max,
        "synaptic_ops_per_inference_mean": float(trace.synaptic_ops.float().mean()),
        "accuracy_float": None, "accuracy_int": None, "accuracy_rtl": None,
    }
    if y is not None:
        report["accuracy_float"] = float((float_trace.prediction.numpy() == y).mean())
        report["accuracy_int"] = float((trace.prediction.numpy() == y).mean())
        report["accuracy_rtl"] = float((np.asarray(result.predictions) == y).mean())
    report["coverage"] = measure_coverage(design.qnet, trace, design.parallel)  # what the samples exercised
    modelled = expected_cycles(design.qnet, design.parallel, trace, x)
    ratios = np.asarray(result.cycles, dtype=np.float64) / np.asarray(modelled, dtype=np.float64)
    report["cycles_model_mean"] = float(np.mean(modelled))
    report["cycles_vs_model_mean"] = float(ratios.mean())
    report["cycles_vs_model_max"] = float(ratios.max())
    # how the run was spread and how fast it went: the only part that depends on --jobs
    report["run"] = {"jobs": jobs, "scheduler": scheduler, "seconds": round(result.run_seconds, 3),
                     "sim_cycles": result.sim_cycles,
                     "cycles_per_second": round(result.sim_cycles / result.run_seconds) if result.run_seconds else None}
    write_atomic(Path(out) / SIM_REPORT, json.dumps(report, indent=1) + "\n")
    return report
