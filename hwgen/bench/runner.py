"""``hwgen bench``: every measurement of docs/benchmarks.md, into one JSON results file.

The JSON is the source: ``render.py`` makes ``bench/RESULTS.md`` and the plots from it and
nothing else. Work folders (generated designs, compiled simulators, builds) live under
``--work`` (default ``build/bench``) and are reused between runs where their inputs match.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import __version__, golden
from ..accelerator.board_top import board_top_memories
from ..devices import board_fit, weight_plan
from ..distribute import run_tasks, validate, worker_folder
from ..dse import LOGIC_HEADROOM
from ..design import load_design
from ..errors import HwgenError
from ..accelerator.cycles import expected_cycles
from ..quantize import QuantOptions, quantize
from ..report import representative
from ..testing import random_conv_network, random_quant_network, random_spikes
from . import papers
from .measure import measure
from .models import MODELS, Inputs

SCHEMA = "hwgen-bench/1"
Progress = Callable[[str], None]

# ---- what each mode measures


@dataclass(frozen=True)
class Plan:
    mode: str
    models: tuple[str, ...]
    simulator: str  # model runs (cycles are the RTL's `cycles` port: simulator-independent)
    single_simulator: str  # single-layer runs: many small designs, so the cheap compile wins
    single_dense: tuple[tuple[int, int, tuple[int, ...]], ...]  # (inputs, neurons, Ps)
    single_conv: tuple[tuple[tuple[int, int, int], dict, tuple[int, ...]], ...]
    single_rates: tuple[float, ...]
    single_samples: int
    rate_model: str
    rate_parallel: int
    rates: tuple[float, ...]
    rate_samples: int
    all_active_check: bool  # measure the every-input-spiking run that checks the dense baseline
    speed_both_simulators: bool
    builds: tuple[tuple[str, int, str], ...]  # (model, P, board)
    sweep_models: tuple[str, ...]
    sweep_bits: tuple[int, ...] = (4, 6, 8)
    sweep_boards: tuple[str, ...] = ("icebreaker", "ulx3s-85f", "orangecrab-25f", "tangnano9k")
    # model -> simulators that also run the plain Verilog testbench (hdl_driver.py)
    plain_simulators: dict = field(default_factory=dict)
    # models whose whole sample set (BenchModel.speed_inputs, else the held-out set) runs
    # through `hwgen sim`'s harness once more: the speed a user checking a data set sees
    speed_models: tuple[str, ...] = ()
    auto_build: bool = False


CONV_CFGS = {
    "conv3x3": ((2, 16, 16), {"out": 8, "kernel": 3, "padding": 1}),
    "conv5x5 s2": ((2, 16, 16), {"out": 8, "kernel": 5, "stride": 2, "padding": 1}),
    "conv1x1": ((2, 16, 16), {"out": 16, "kernel": 1}),
    "depthwise conv3x3": ((4, 12, 12), {"out": 4, "kernel": 3, "padding": 1, "groups": 4}),
}

QUICK = Plan(
    mode="quick", models=("digits_mlp", "digits_conv", "mnist784"), simulator="verilator",
    single_simulator="icarus",
    single_dense=((64, 64, (1, 8, 64)),),
    single_conv=((*CONV_CFGS["conv3x3"], (1, 8)), (*CONV_CFGS["depthwise conv3x3"], (1, 4))),
    single_rates=(0.2,), single_samples=2,
    rate_model="mnist784", rate_parallel=8, rates=(0.01, 0.05, 0.2), rate_samples=2,
    all_active_check=False, speed_both_simulators=False, builds=(),
    sweep_models=("mnist784",), plain_simulators={"digits_mlp": ("icarus",)},
    speed_models=("digits_mlp",),
)

FULL = Plan(
    mode="full", models=("digits_mlp", "digits_conv", "cnn_sinabs", "mnist784", "digits_rnn", "braille_zero",
                         "braille_subtract"), simulator="verilator",
    single_simulator="icarus",
    single_dense=((64, 64, (1, 2, 4, 8, 16, 32, 64)), (64, 10, (1, 2, 4, 8)), (128, 32, (1, 4, 8, 32))),
    single_conv=((*CONV_CFGS["conv3x3"], (1, 2, 4, 8)), (*CONV_CFGS["conv5x5 s2"], (1, 4, 8)),
                 (*CONV_CFGS["conv1x1"], (1, 4, 16)), (*CONV_CFGS["depthwise conv3x3"], (1, 2, 4))),
    single_rates=(0.05, 0.2), single_samples=3,
    rate_model="mnist784", rate_parallel=8, rates=(0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5), rate_samples=3,
    all_active_check=True, speed_both_simulators=True,
    builds=(("digits_mlp", 1, "icebreaker"), ("digits_mlp", 4, "icebreaker"), ("digits_mlp", 16, "icebreaker"),
            ("digits_mlp", 4, "orangecrab-25f"), ("digits_conv", 4, "ulx3s-85f"),
            ("cnn_sinabs", 8, "orangecrab-25f"), ("mnist784", 8, "ulx3s-85f"), ("braille_zero", 2, "icebreaker"),
            ("braille_subtract", 1, "icebreaker")),
    sweep_models=("digits_mlp", "mnist784"), auto_build=True,
    plain_simulators={**{key: ("verilator", "icarus") for key in ("digits_mlp", "mnist784")},
                      "cnn_sinabs": ("verilator",)},
    speed_models=("digits_mlp", "cnn_sinabs"),
)

PLANS = {"quick": QUICK, "full": FULL}
SINGLE_TIMESTEPS = 10
# The MNIST-scale iCEBreaker row. The iCE40UP5K runs at 12 MHz; the weights' SPRAM words
# (4 x 16 bits) cap P at 8, and the cost model's worst held-out image takes ~62k cycles at
# P = 8 (5.2 ms), ~124k at P = 4 (10.4 ms), ~249k at P = 2 (20.7 ms); P = 8 overfills the
# UP5K's logic cells. 12 ms is the tightest round target a design that fits can meet:
# --parallel auto must find P = 4 (the cheapest that meets it), or say why not.
AUTO_MODEL, AUTO_BOARD, AUTO_LATENCY_US = "mnist784", "icebreaker", 12000.0


def _quiet(_: str) -> None:
    pass


@dataclass
class Bench:
    plan: Plan
    work: Path
    progress: Progress = _quiet
    jobs: int = 1  # the builds on this many local processes ...
    scheduler: str | None = None  # ... or on this Dask cluster (README, "A cluster")
    results: dict = field(default_factory=dict)
    _inputs: dict[str, Inputs] = field(default_factory=dict)
    _runs: dict[tuple[str, int, int], dict] = field(default_factory=dict)
    _designs: dict[tuple[str, int, int], tuple[Path, dict, float]] = field(default_factory=dict)

    # ---- helpers

    def inputs(self, key: str) -> Inputs:
        if key not in self._inputs:
            self._inputs[key] = MODELS[key].load_inputs()
        return self._inputs[key]

    def out_dir(self, key: str, parallel: int, weight_bits: int | None = None) -> Path:
        return self.work / "designs" / f"{key}_p{parallel}_w{weight_bits or MODELS[key].weight_bits}"

    @contextmanager
    def step(self, text: str) -> Iterator[None]:
        self.progress(text)
        yield

    def sim_dir(self, key: str, parallel: int, weight_bits: int | None = None) -> Path:
        # Outside OUT: `hwgen generate` replaces OUT as a whole, a compiled simulator here
        # survives and is reused while the Verilog stays the same (run_rtl checks its hash).
        return self.work / "sim" / f"{key}_p{parallel}_w{weight_bits or MODELS[key].weight_bits}"

    def design(self, key: str, parallel: int, weight_bits: int | None = None) -> tuple[Path, dict, float]:
        """``hwgen generate`` of a model at P (at the model's weight bits unless given), once
        per bench run."""
        weight_bits = weight_bits or MODELS[key].weight_bits
        if (key, parallel, weight_bits) not in self._designs:
            model = MODELS[key]
            out = self.out_dir(key, parallel, weight_bits)
            started = time.perf_counter()
            report = model.generate(out, parallel, self.inputs(key), weight_bits)
            self._designs[(key, parallel, weight_bits)] = (out, report, time.perf_counter() - started)
        return self._designs[(key, parallel, weight_bits)]

    # ---- 1-2. models at every P: cycles, bounds, efficiency, accuracy, rates

    def run_models(self) -> None:
        plan = self.plan
        models_out = {}
        runs = []
        for key in plan.models:
            model = MODELS[key]
            parallels = model.parallel_full if plan.mode == "full" else model.parallel_quick
            if not parallels:
                continue
            inputs = self.inputs(key)
            samples = model.samples_full if plan.mode == "full" else model.samples_quick
            x = inputs.heldout[:samples]
            info: dict = {"title": model.title, "source": model.source, "weights": model.weights,
                          "input_shape": list(model.input_shape), "timesteps": model.timesteps,
                          "inputs": inputs.description}
            for parallel in parallels:
                self.progress(f"{model.title}: generate P={parallel}")
                out, report, gen_seconds = self.design(key, parallel)
                design = load_design(out)
                if "generate_seconds" not in info:
                    info["generate_seconds"] = round(gen_seconds, 2)
                    fid = report["fidelity"] or {}
                    info["accuracy_float"] = fid.get("accuracy_float")
                    info["accuracy_int"] = fid.get("accuracy_int")
                    info["fidelity_samples"] = fid.get("samples")
                    info.update(self._activity(design.qnet, inputs))
                self.progress(f"{model.title}: {plan.simulator} P={parallel}, {len(x)} samples")
                row = measure(design.qnet, parallel, out / "hwgen_top.v", x, plan.simulator,
                              self.sim_dir(key, parallel))
                row.update(model=key, parallel=parallel, weight_bits=model.weight_bits,
                           generate_seconds=round(gen_seconds, 2),
                           weight_memory_bits=report["hardware"]["weight_memory_bits"])
                if inputs.labels is not None:
                    row["accuracy_rtl"] = float(np.mean(np.asarray(row["predictions"]) == inputs.labels[:samples]))
                runs.append(row)
                self._runs[(key, parallel, model.weight_bits)] = row
            models_out[key] = info
        self.results["models"] = models_out
        self.results["runs"] = runs

    def _activity(self, qnet, inputs: Inputs) -> dict:
        """Spike rates over the whole held-out set, and the golden model's speed on it."""
        started = time.perf_counter()
        trace = golden.run(qnet, inputs.heldout)
        seconds = time.perf_counter() - started
        return {
            "heldout_samples": int(len(inputs.heldout)),
            "input_spike_rate": float(np.count_nonzero(inputs.heldout) / inputs.heldout.size),
            "layer_spike_rates": {layer.name: float(s.double().mean())
                                  for layer, s in zip(qnet.spiking_layers, trace.spikes)},
            "synaptic_ops_per_inference": float(trace.synaptic_ops.double().mean()),
            "golden_samples_per_second": round(len(inputs.heldout) / seconds, 1),
        }

    # ---- per layer type: single-layer networks

    def run_single_layers(self) -> None:
        plan = self.plan
        rows = []
        jobs = [("dense", (n_in, n_out), p) for n_in, n_out, ps in plan.single_dense for p in ps]
        jobs += [("conv", (shape, conv), p) for shape, conv, ps in plan.single_conv for p in ps]
        for n, (kind, cfg, parallel) in enumerate(jobs):
            if kind == "dense":
                n_in, n_out = cfg
                qnet = random_quant_network([n_in, n_out], seed=n_in + n_out, timesteps=SINGLE_TIMESTEPS)
                label, shape = f"dense {n_in}-{n_out}", (n_in,)
            else:
                shape, conv = cfg
                # A 2-neuron dense readout behind the conv: read out directly, the conv would
                # need a counter per output neuron. The conv stays the busiest layer by far.
                qnet = random_conv_network(shape, [{"type": "conv", **conv}, {"type": "flatten"},
                                                   {"type": "dense", "out": 2}], seed=7, timesteps=SINGLE_TIMESTEPS)
                label = (f"conv {'x'.join(map(str, shape))} -> {conv['out']}, k{conv['kernel']} "
                         f"s{conv.get('stride', 1)} p{conv.get('padding', 0)}"
                         + (f" g{conv['groups']}" if conv.get("groups") else ""))
            from ..emit import verilog_text

            work = self.work / "single" / f"{label.replace(' ', '_').replace(',', '')}_p{parallel}"
            work.mkdir(parents=True, exist_ok=True)
            verilog = work / "hwgen_top.v"
            text = verilog_text(qnet, parallel)
            if not verilog.is_file() or verilog.read_text() != text:
                verilog.write_text(text)
            for rate in plan.single_rates:
                self.progress(f"single layer {label}, P={parallel}, rate {rate:.0%} ({n + 1}/{len(jobs)})")
                x = random_spikes((plan.single_samples, SINGLE_TIMESTEPS, *shape), rate, seed=int(rate * 1000))
                row = measure(qnet, parallel, verilog, x, plan.single_simulator, work / "sim")
                first = qnet.spiking_layers[0]
                row.update(network=label, layer_type=row["layers"][0]["kind"], parallel=parallel,
                           effective_lanes=_lanes(first, parallel), rate=rate)
                rows.append(row)
        self.results["layer_types"] = rows

    # ---- 3. event-driven vs dense baseline over input spike rate

    def run_rate_sweep(self) -> None:
        plan = self.plan
        key, parallel = plan.rate_model, plan.rate_parallel
        model = MODELS[key]
        out, _, _ = self.design(key, parallel)
        design = load_design(out)
        rows = []
        rates = list(plan.rates) + ([1.0] if plan.all_active_check else [])
        for rate in rates:
            self.progress(f"rate sweep {model.title} P={parallel}: input rate {rate:.1%}")
            x = random_spikes((plan.rate_samples, model.timesteps, *model.input_shape), rate, seed=int(rate * 10000) + 3)
            row = measure(design.qnet, parallel, out / "hwgen_top.v", x, plan.simulator, self.sim_dir(key, parallel))
            row.update(rate=rate, cycles_over_dense=row["cycles_mean"] / row["dense_baseline"])
            rows.append(row)
        natural = self._runs.get((key, parallel, MODELS[key].weight_bits))
        self.results["rate_sweep"] = {
            "model": key, "parallel": parallel, "inputs": "Bernoulli spikes at each rate, uniform over the 784 inputs",
            "dense_baseline": rows[0]["dense_baseline"], "rows": rows,
            "natural": ({"rate": natural["input_rate"], "cycles_mean": natural["cycles_mean"]} if natural else None),
        }

    # ---- 4. builds, the --parallel auto row and the design-space sweep

    def run_builds(self) -> None:
        """The plan's bitstream builds: independent work items (``hwgen.distribute``), here,
        on ``jobs`` local processes or on the cluster at ``scheduler``; rows in plan order."""
        from ..build import build

        outs = [self.design(key, parallel)[0] for key, parallel, _ in self.plan.builds]
        tasks = [BuildTask(str(out.resolve()), board, design_files(out) if self.scheduler else None)
                 for out, (_, _, board) in zip(outs, self.plan.builds)]
        where = f"Dask at {self.scheduler}" if self.scheduler else f"{self.jobs} process{'es' if self.jobs > 1 else ''}"
        self.progress(f"{len(tasks)} builds, {where}")
        finished = []

        def done(index: int, _) -> None:
            finished.append(index)
            key, parallel, board = self.plan.builds[index]
            self.progress(f"built {MODELS[key].title} P={parallel} for {board} ({len(finished)}/{len(tasks)})")

        built = run_tasks(build_task, tasks, jobs=self.jobs, scheduler=self.scheduler, done=done)
        rows = []
        for (key, parallel, board), out, result in zip(self.plan.builds, outs, built):
            if result.get("bitstream") is not None:  # built elsewhere: the bitstream here, as a local build leaves it
                _write_back(out, result)
            rows.append(self._build_row(key, parallel, board, out, lambda *_, r=result: _built(r)))
        self.results["builds"] = rows

    def _build_row(self, key: str, parallel: int, board: str, out: Path, build) -> dict:
        # ``out`` is ``self.design``'s folder, which is at the model's own weight bits
        weight_bits = MODELS[key].weight_bits
        row = {"model": key, "parallel": parallel, "weight_bits": weight_bits, "board": board}
        try:
            report = build(out, board, _quiet)
        except HwgenError as exc:
            return {**row, "ok": False, "error": str(exc)}
        row.update(ok=True, **{k: report[k] for k in ("lut", "ff", "bram", "spram", "dsp", "fmax_mhz", "target_mhz",
                                                       "timing_met", "seconds", "device")})
        run = self._runs.get((key, parallel, weight_bits))
        if run:
            row["cycles_mean"] = run["cycles_mean"]
            row.update(_latency(run["cycles_mean"], report["fmax_mhz"], report["target_mhz"]))
        return row

    def run_auto(self) -> None:
        """The MNIST-scale iCEBreaker row through ``--parallel auto`` (see AUTO_* above)."""
        key, board, latency_us = AUTO_MODEL, AUTO_BOARD, AUTO_LATENCY_US
        model = MODELS[key]
        out = self.work / "designs" / f"{key}_auto_{board}"
        call = (f"generate({model.source!r}, OUT, GenerateOptions(weights={Path(model.weights).name!r}, "
                f"input_shape={tuple(model.input_shape)}, parallel='auto', board={board!r}, latency_us={latency_us}, "
                f"quant=QuantOptions(weight_bits=8, timesteps={model.timesteps}), calibration=..., data=...)); "
                f"then build.build(OUT, {board!r})")
        row: dict = {"model": key, "board": board, "latency_target_us": latency_us, "weight_bits": 8, "call": call}
        self.progress(f"--parallel auto: {model.title} for {board}, latency <= {latency_us:g} us")
        try:
            model.generate(out, "auto", self.inputs(key), board=board, latency_us=latency_us)
            design = load_design(out)
        except (HwgenError, TypeError, ValueError) as exc:
            # TypeError: GenerateOptions without board / latency_us (--parallel auto not there yet)
            self.results["auto"] = {**row, "ok": False, "stage": "generate", "error": f"{type(exc).__name__}: {exc}"}
            return
        parallel = int(design.parallel)
        row["parallel"] = parallel
        # Cycles on the default (bitstream-initialised ROM) variant: the SPRAM variant has the
        # same schedule by construction.
        run = self._runs.get((key, parallel, MODELS[key].weight_bits))
        if run is None and self.plan.mode == "quick":
            row.update(ok=True, stage="generate (quick mode: no build, cycles not measured at this P)")
            self.results["auto"] = row
            return
        if run is None:
            src, _, _ = self.design(key, parallel)
            inputs = self.inputs(key)
            samples = model.samples_full if self.plan.mode == "full" else model.samples_quick
            self.progress(f"--parallel auto chose P={parallel}: {self.plan.simulator} run")
            run = measure(load_design(src).qnet, parallel, src / "hwgen_top.v", inputs.heldout[:samples],
                          self.plan.simulator, self.sim_dir(key, parallel))
        row["cycles_mean"] = run["cycles_mean"]
        row["cycles_measured_on"] = "default variant (ROM weights), same P"
        if self.plan.auto_build:
            from ..build import build

            self.progress(f"build --parallel auto design (P={parallel}) for {board}")
            built = self._build_row(key, parallel, board, out, build)
            built.pop("cycles_mean", None)
            row.update({k: v for k, v in built.items() if k not in ("model", "parallel", "weight_bits", "board")})
            if built.get("ok"):
                row.update(_latency(run["cycles_mean"], built["fmax_mhz"], built["target_mhz"]))
            row["stage"] = "build"
        else:
            row.update(ok=True, stage="generate (no build in quick mode)")
        self.results["auto"] = row

    def run_sweep(self) -> None:
        """P over powers of two up to the widest layer x weight bits: LUT estimate vs latency.

        Cycles are measured where a run of that (model, P, bits) exists and otherwise the
        event-driven cost model on the golden model's activity (measured / model is in
        ``runs``); LUTs are the fit check's estimate unless a real build of that point exists.
        A point fits by the rule of ``hwgen generate --board`` (``dse.choose``).
        """
        from hwgen.boards import get_board

        points = []
        built = [*self.results.get("builds", []), self.results.get("auto") or {}]
        builds = {(b["model"], b["parallel"], b["weight_bits"], b["board"]): b
                  for b in built if b.get("ok") and "lut" in b}

        for key in self.plan.sweep_models:
            model = MODELS[key]
            inputs = self.inputs(key)
            from ..frontend import import_torch, load_torch_model

            net = import_torch(load_torch_model(model.source, model.weights), model.input_shape)
            x = inputs.heldout[:64]
            width = max(int(np.prod(layer.output_shape)) for layer in net.spiking_layers)
            parallels = [2 ** i for i in range(int(math.log2(width)) + 1)]
            for bits in self.plan.sweep_bits:
                self.progress(f"sweep {model.title}: {bits}-bit weights, P in {parallels}")
                qnet, _ = quantize(net, QuantOptions(weight_bits=bits, timesteps=model.timesteps), inputs.calibration)
                trace = golden.run(qnet, x)
                for parallel in parallels:
                    run = self._runs.get((key, parallel, bits))
                    if run:
                        cycles, source = run["cycles_mean"], "measured"
                    else:
                        cycles = float(np.mean(expected_cycles(qnet, parallel, *representative(trace, x))))
                        source = "cost model"
                    for board in self.plan.sweep_boards:
                        cls = get_board(board)
                        # the fit rule of `hwgen generate --board` (hwgen/dse.py): weights moved
                        # to SPRAM where the block RAM is short, and LUT headroom for placement
                        extra = board_top_memories(qnet)
                        plan = weight_plan(qnet, parallel, cls.facts.device, extra)
                        verdict = board_fit(qnet, parallel, cls.facts.device, extra, plan)
                        fits = verdict.fits and verdict.lut <= LOGIC_HEADROOM * cls.fpga().lut
                        clock_mhz = cls().clock_hz / 1e6
                        point = {"model": key, "parallel": parallel, "weight_bits": bits, "board": board,
                                 "cycles": cycles, "cycles_source": source, "clock_mhz": clock_mhz,
                                 "latency_us": cycles / clock_mhz, "lut": verdict.lut, "lut_source": "estimate",
                                 "fits": fits, "bram": verdict.blocks_needed, "weights_in_spram": bool(plan)}
                        built = builds.get((key, parallel, bits, board))
                        if built:
                            point.update(lut=built["lut"], lut_source="build", fits=True, bram=built["bram"])
                        points.append(point)
        for key in self.plan.sweep_models:
            for board in self.plan.sweep_boards:
                group = [p for p in points if p["model"] == key and p["board"] == board and p["fits"]]
                for p in group:
                    p["pareto"] = not any(q is not p and q["lut"] <= p["lut"] and q["latency_us"] <= p["latency_us"]
                                          and (q["lut"], q["latency_us"]) != (p["lut"], p["latency_us"]) for q in group)
        self.results["sweep"] = points

    # ---- 5. tool speed

    def run_tool_speed(self) -> None:
        """Per model: the run's samples under `hwgen sim`'s capture harness on both simulators,
        under the per-cycle cocotb testbench (what `hwgen sim` ran before the capture harness),
        and (where the plan says) under the plain Verilog testbench, which shows how much of a
        run is the harness; for ``speed_models`` the whole sample set once more."""
        from .hdl_driver import run_hdl

        rows = []
        for key in self.plan.models:
            model_runs = [r for r in self.results["runs"] if r["model"] == key]
            if not model_runs:
                continue
            run = model_runs[0]
            info = self.results["models"][key]
            row = {"model": key, "parallel": run["parallel"], "samples": run["samples"],
                   "cycles_per_inference": run["cycles_mean"],
                   "golden_samples_per_second": info["golden_samples_per_second"],
                   "generate_seconds": info["generate_seconds"],
                   run["sim"]["simulator"]: run["sim"]}
            out = self.out_dir(key, run["parallel"])
            design = load_design(out)
            x = self.inputs(key).heldout[:run["samples"]]
            other = "icarus" if run["sim"]["simulator"] == "verilator" else "verilator"

            def again(simulator: str, harness: str, samples: np.ndarray) -> dict:
                result = measure(design.qnet, run["parallel"], out / "hwgen_top.v", samples, simulator,
                                 self.sim_dir(key, run["parallel"]), harness=harness)
                if len(samples) == len(x) and result["cycles"] != run["cycles"]:
                    raise HwgenError(f"{key}: {simulator} ({harness}) counts different cycles than the run")
                return result

            if self.plan.speed_both_simulators:
                self.progress(f"tool speed {MODELS[key].title}: {other}, capture harness")
                row[other] = again(other, "capture", x)["sim"]
                self.progress(f"tool speed {MODELS[key].title}: verilator, per-cycle cocotb testbench")
                row["per_cycle"] = again("verilator", "cocotb", x)["sim"]
            if "verilator" in row and "icarus" in row and row["icarus"]["cycles_per_second"]:
                row["verilator_over_icarus"] = row["verilator"]["cycles_per_second"] / row["icarus"]["cycles_per_second"]
            if key in self.plan.speed_models:
                whole = MODELS[key].speed_inputs() if MODELS[key].speed_inputs else self.inputs(key).heldout
                self.progress(f"tool speed {MODELS[key].title}: verilator, capture harness, {len(whole)} samples")
                row["whole_set"] = {"samples": len(whole), **again("verilator", "capture", whole)["sim"]}
                if row.get("per_cycle", {}).get("cycles_per_second"):
                    row["whole_set_over_per_cycle"] = (row["whole_set"]["cycles_per_second"]
                                                       / row["per_cycle"]["cycles_per_second"])
            plain = {}
            for sim in self.plan.plain_simulators.get(key, ()):
                self.progress(f"tool speed {MODELS[key].title}: {sim}, plain Verilog testbench")
                result = run_hdl(out / "hwgen_top.v", design.qnet, x, sim, self.sim_dir(key, run["parallel"]))
                expected = golden.run(design.qnet, x).prediction.tolist()
                if result["cycles"] != run["cycles"] or result["predictions"] != expected:
                    raise HwgenError(f"{key}: the plain {sim} testbench disagrees with the cocotb run "
                                     f"(cycles {result['cycles']} vs {run['cycles']}, predictions "
                                     f"{result['predictions']} vs golden {expected})")
                plain[sim] = result
                if sim in row and row[sim]["cycles_per_second"]:
                    # share of a harness run's time the harness takes, at equal simulated cycles
                    # (negative: the capture harness runs faster than the plain testbench)
                    result["harness_share"] = 1 - row[sim]["cycles_per_second"] / result["cycles_per_second"]
            if "whole_set" in row and plain.get("verilator"):
                row["whole_set_over_plain"] = (row["whole_set"]["cycles_per_second"]
                                               / plain["verilator"]["cycles_per_second"])
            if plain:
                row["plain_testbench"] = plain
            builds = [b for b in self.results.get("builds", []) if b["model"] == key and b.get("ok")]
            if builds:
                row["build_seconds"] = {f"{b['board']} P={b['parallel']}": b["seconds"] for b in builds}
            rows.append(row)
        self.results["tool_speed"] = rows

    # ---- the whole bench

    def run(self) -> dict:
        started = time.perf_counter()
        self.results.update(schema=SCHEMA, mode=self.plan.mode, hwgen_version=__version__,
                            date=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d"),
                            started_utc=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                            host={"python": platform.python_version(), "machine": platform.machine(),
                                  "cpus": os.cpu_count()},
                            simulator=self.plan.simulator, single_layer_simulator=self.plan.single_simulator,
                            definitions=DEFINITIONS)
        stages = [self.run_models, self.run_single_layers, self.run_rate_sweep,
                  *([self.run_builds] if self.plan.builds else []), self.run_auto, self.run_sweep,
                  self.run_tool_speed]
        for stage in stages:
            try:
                stage()
            except BaseException:
                # what was measured so far stays inspectable (the results file is only
                # written complete)
                (self.work / "partial_results.json").write_text(
                    json.dumps(self.results, indent=1, default=_json_default) + "\n")
                raise
        self.results["papers"] = papers.ROWS
        self.results["acceptance"] = acceptance(self.results)
        self.results["wall_seconds"] = round(time.perf_counter() - started, 1)
        return self.results


@dataclass(frozen=True)
class BuildTask:
    """One bitstream build of a generated design for a board, as a work item.

    A cluster worker has no ``out`` folder, so the task carries the design's files (``files``:
    name -> bytes, the folder's top-level files, what ``build`` reads: ~100 kB for the digits
    designs). Regenerating the design on the worker from the model's name was the other way;
    it would rerun the quantizer and the fidelity check per build, need the model's data on
    every worker, and give the bits the bench measured only if every library matched. Local
    workers (``files`` None) build ``out`` in place, as one process does."""

    out: str
    board: str
    files: dict[str, bytes] | None = None


def design_files(out: Path) -> dict[str, bytes]:
    """The generated design's files (not its sim/build subfolders), for a ``BuildTask``."""
    return {p.name: p.read_bytes() for p in sorted(Path(out).iterdir()) if p.is_file()}


def build_task(task: BuildTask) -> dict:
    """Run one ``BuildTask``: ``{"report": ...}`` (plus ``"bitstream"`` bytes when built from
    carried files), or ``{"error": ...}`` for a build that was refused or failed (a row, not
    an exception: the other builds go on)."""
    from ..build import bitstream_path, build
    from hwgen.boards import get_board

    out = Path(task.out)
    if task.files is not None:
        out = worker_folder("build", b"".join(name.encode() + data for name, data in task.files.items()))
        for name, data in task.files.items():
            (out / name).write_bytes(data)
    try:
        report = build(out, task.board, _quiet)
    except HwgenError as exc:
        return {"error": str(exc)}
    if task.files is None:
        return {"report": report}
    return {"report": report, "bitstream": bitstream_path(out, get_board(task.board)).read_bytes()}


def _built(result: dict) -> dict:
    if "error" in result:
        raise HwgenError(result["error"])
    return result["report"]


def _write_back(out: Path, result: dict) -> None:
    """A worker's bitstream and build report into ``out``, where a local build writes them
    (the tools' logs stay on the worker)."""
    report = result["report"]
    bitstream = Path(out) / report["bitstream"]
    bitstream.parent.mkdir(parents=True, exist_ok=True)
    bitstream.write_bytes(result["bitstream"])
    (bitstream.parent / "build_report.json").write_text(json.dumps(report, indent=1) + "\n")


DEFINITIONS = {
    "layer_bound": "sum over timesteps of ceil(synaptic ops / P) + T * ceil(neurons / P)",
    "bound_busiest": "max over layers of layer_bound (engines run concurrently): the network bound",
    "bound_sum": "sum over layers of layer_bound (one P-lane engine doing every layer in turn)",
    "efficiency": "bound_busiest / measured cycles, per inference, averaged",
    "dense_baseline": "the cost model (hwgen.accelerator.cycles) with every input of every layer active and "
                      "every neuron firing every timestep (same engines, clock-driven)",
    "latency_us": "measured cycles / Fmax (and / board clock)",
}


def _lanes(layer, parallel: int) -> int:
    return layer.geometry(parallel).lanes


def _latency(cycles: float, fmax_mhz: float | None, clock_mhz: float) -> dict:
    out = {"latency_us_at_clock": cycles / clock_mhz, "inferences_per_second_at_clock": clock_mhz * 1e6 / cycles}
    if fmax_mhz:
        out.update(latency_us_at_fmax=cycles / fmax_mhz, inferences_per_second_at_fmax=fmax_mhz * 1e6 / cycles)
    return out


def acceptance(results: dict) -> dict:
    """The issue's acceptance checks, computed from the results (never asserted here)."""
    checks = {}
    types = results.get("layer_types", [])
    by_type: dict[str, list] = {}
    for row in types:
        by_type.setdefault(row["layer_type"], []).append(row)
    checks["efficiency_per_layer_type"] = {
        kind: {"min": min(r["efficiency"] for r in rows),
               "below_0.8": [{"network": r["network"], "parallel": r["parallel"], "rate": r["rate"],
                              "efficiency": r["efficiency"], "effective_lanes": r["effective_lanes"]}
                             for r in rows if r["efficiency"] < 0.8]}
        for kind, rows in by_type.items()}
    sweep = results.get("rate_sweep")
    if sweep:
        five = [r for r in sweep["rows"] if abs(r["rate"] - 0.05) < 1e-9]
        if five:
            checks["cycles_over_dense_at_5pct"] = five[0]["cycles_over_dense"]
            checks["event_driven_at_5pct_within_one_fifth"] = five[0]["cycles_over_dense"] <= 0.2
    speed = [t for t in results.get("tool_speed", []) if "whole_set" in t]
    if speed:  # `hwgen sim` at simulator speed: the whole set's rate against the others
        checks["sim_speed"] = {t["model"]: {
            "cycles_per_second": t["whole_set"]["cycles_per_second"],
            "at_least_1M": t["whole_set"]["cycles_per_second"] >= 1e6,
            "over_per_cycle_cocotb": t.get("whole_set_over_per_cycle"),
            "over_plain_testbench": t.get("whole_set_over_plain"),
            "verilator_over_icarus": t.get("verilator_over_icarus")} for t in speed}
    auto = results.get("auto")
    if auto:
        checks["mnist784_icebreaker"] = {k: auto.get(k) for k in ("ok", "parallel", "lut", "bram", "spram", "fmax_mhz",
                                                                  "timing_met", "latency_us_at_clock", "error")}
    return checks


def run_bench(mode: str, results_dir: Path, work: Path, progress: Progress = _quiet,
              render: bool = True, jobs: int = 1, scheduler: str | None = None) -> dict:
    """Run the bench of ``mode`` and write ``results_dir/results/<date>.json``, RESULTS.md and
    plots/ (quick mode: the same under ``results_dir/quick/``). The bitstream builds run on
    ``jobs`` local processes or on the Dask cluster at ``scheduler`` (``Bench.run_builds``)."""
    if mode not in PLANS:
        raise HwgenError(f"--mode must be one of {', '.join(PLANS)}, got {mode!r}")
    validate(jobs, scheduler)
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    results = Bench(PLANS[mode], work, progress, jobs=jobs, scheduler=scheduler).run()
    # The quick mode (CI) renders beside, never over, the committed full results.
    results_dir = Path(results_dir) if mode == "full" else Path(results_dir) / "quick"
    (results_dir / "results").mkdir(parents=True, exist_ok=True)
    path = results_dir / "results" / f"{results['date']}{'' if mode == 'full' else '-' + mode}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=1, default=_json_default) + "\n")
    tmp.replace(path)
    results["_path"] = str(path)
    if render:
        from .render import render_all

        render_all(path, results_dir)
    return results


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    raise TypeError(f"not JSON serialisable: {type(value)}")
