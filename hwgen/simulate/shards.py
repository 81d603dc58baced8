"""``run_rtl`` over slices of a batch at once: local processes or a Dask cluster, one merged result.

A batch is cut into contiguous shards of samples (``shard_bounds``); each shard is a
self-contained, picklable ``Shard`` (the Verilog text, the network, its samples and their
golden traces), so a worker on another machine needs nothing but the same environment.
Local workers share the build the caller compiled (``prepare``) and each runs in its own
folder; a cluster worker compiles the design once into a folder of its own and reuses it
for every further shard of the same Verilog. ``merge`` joins the shards' ``SimResult``s in
sample order, with every mismatch record's ``sample`` counted over the whole batch: the
same result as one ``run_rtl`` over the batch, apart from timings and the reset and drain
cycles each run adds to ``sim_cycles``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..distribute import run_tasks, worker_folder
from ..golden import GoldenTrace
from ..ir import QuantNetwork
from .rtl import SimResult, compile_rtl, run_rtl

__all__ = ["SHARD_SAMPLES", "Shard", "merge", "run_sharded", "shard_bounds"]

# At most this many samples per shard: each finished shard moves the progress bar, and a
# shard costs a simulator start-up (~0.4 s), small beside this many inferences.
SHARD_SAMPLES = 256


@dataclass(frozen=True)
class Shard:
    """Samples ``first .. first + len(inputs)`` of a batch, with all a worker needs."""

    verilog: str  # the text: a cluster worker has no OUT folder
    qnet: QuantNetwork
    inputs: np.ndarray
    golden: GoldenTrace
    first: int
    simulator: str
    harness: str
    build_dir: str | None  # a build shared by local workers, or None: the worker's own
    run_dir: str | None
    weights: dict | None = None  # run-time-loaded weights and their memories' sources (run_rtl)
    libraries: dict | None = None


def shard_bounds(samples: int, jobs: int) -> list[tuple[int, int]]:
    """Contiguous ``(start, stop)`` slices: at least ``jobs`` of them (one per worker) and
    none over ``SHARD_SAMPLES`` samples, as equal as they can be."""
    count = min(samples, max(jobs, math.ceil(samples / SHARD_SAMPLES)))
    edges = np.linspace(0, samples, count + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def run_shard(shard: Shard) -> SimResult:
    """One shard through ``run_rtl``; mismatch records count samples over the whole batch."""
    if shard.build_dir is not None:
        build_dir, run_dir = Path(shard.build_dir), Path(shard.run_dir)
    else:  # a cluster worker: its own build per design, kept for the next shard of it
        build_dir = run_dir = worker_folder("sim", shard.verilog.encode())
    run_dir.mkdir(parents=True, exist_ok=True)
    verilog = run_dir / "hwgen_top.v"
    verilog.write_text(shard.verilog)
    result = run_rtl(verilog, shard.qnet, shard.inputs, shard.golden, simulator=shard.simulator,
                     build_dir=build_dir, harness=shard.harness, run_dir=run_dir,
                     weights=shard.weights, libraries=shard.libraries)
    records = [{**m, "sample": m["sample"] + shard.first} if isinstance(m.get("sample"), int) else m
               for m in result.mismatch_records]
    return replace(result, mismatch_records=records, first_mismatch=records[0] if records else None)


def merge(results: list[SimResult]) -> SimResult:
    """The shards' results (in sample order) as one."""
    cycles = [c for r in results for c in r.cycles]
    records = [m for r in results for m in r.mismatch_records]
    first = results[0]
    return SimResult(
        simulator=first.simulator, samples=sum(r.samples for r in results), timesteps=first.timesteps,
        spikes_compared=sum(r.spikes_compared for r in results),
        mismatches=sum(r.mismatches for r in results),
        first_mismatch=records[0] if records else None, cycles=cycles,
        cycles_per_inference_mean=float(np.mean(cycles)) if cycles else 0.0,
        cycles_per_inference_max=max(cycles, default=0),
        counts=[c for r in results for c in r.counts],
        predictions=[p for r in results for p in r.predictions], mismatch_records=records,
        testbench_cycles=[c for r in results for c in r.testbench_cycles],
        sim_cycles=sum(r.sim_cycles for r in results),
        compile_seconds=max(r.compile_seconds for r in results),
        run_seconds=sum(r.run_seconds for r in results), build_dir=first.build_dir)


def run_sharded(verilog: Path, qnet: QuantNetwork, inputs: np.ndarray, golden: GoldenTrace, *,
                simulator: str, harness: str, build_dir: Path, jobs: int = 1,
                scheduler: str | None = None, weights: dict | None = None,
                libraries: dict[str, str] | None = None,
                done: Callable[[SimResult, float], None] | None = None) -> SimResult:
    """``run_rtl`` over ``inputs`` in shards (``shard_bounds``) on ``jobs`` local processes or
    on the Dask cluster at ``scheduler``; ``done`` sees each shard's result as it finishes,
    with the seconds since the shards started (the compile before them not counted).
    ``run_seconds`` of the result is the wall-clock time of the whole run."""
    text = Path(verilog).read_text()
    # compiled once here for the local workers, which share it; a cluster's compile their own
    compile_seconds = 0.0 if scheduler else compile_rtl(verilog, qnet, simulator, build_dir, harness,
                                                        libraries=libraries)[2]
    bounds = shard_bounds(len(inputs), jobs)
    shards = [Shard(verilog=text, qnet=qnet, inputs=inputs[a:b], golden=golden.samples(slice(a, b)),
                    first=a, simulator=simulator, harness=harness,
                    build_dir=None if scheduler else str(Path(build_dir).resolve()),
                    run_dir=None if scheduler else str((Path(build_dir) / "shards" / str(i)).resolve()),
                    weights=weights, libraries=libraries)
              for i, (a, b) in enumerate(bounds)]
    started = time.perf_counter()
    results = run_tasks(run_shard, shards, jobs=jobs, scheduler=scheduler,
                        done=(lambda _, r: done(r, time.perf_counter() - started)) if done else None)
    merged = merge(results)
    return replace(merged, run_seconds=time.perf_counter() - started,
                   compile_seconds=max(compile_seconds, merged.compile_seconds))
