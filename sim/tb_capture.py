"""cocotb testbench for ``hwgen_capture`` (``hwgen.simulate.capture``): the same checks as
``sim/tb_top.py`` with the per-cycle work in the simulator.

It reads the same ``HWGEN_SIM_VECTORS`` and writes the same results JSON to
``HWGEN_SIM_RESULTS``; ``HWGEN_CAPTURE_IN`` / ``HWGEN_CAPTURE_OUT`` name the harness's files
(``hwgen.simulate.capture``: not imported here, because importing ``hwgen`` imports torch,
seconds of start-up in every simulator process). Python writes the stimulus file and wakes once, when
``finished`` rises; it then reads the harness's record of every tap token, ``done``, readout
and ``cycles`` port and checks it with ``tb_top``'s own functions (``check_stream``,
``check_readout``): every spike of every tap at every timestep, tick counts and ``last``
flags, the readout, and tokens after the last inference.
"""

from __future__ import annotations

import os
from pathlib import Path

import cocotb
from cocotb.triggers import RisingEdge

from .tb_top import (RECORD_CAP, VECTORS_ENV, StreamRecord, Vectors, check_readout, check_stream,
                     checked_run, input_tokens, mismatch, work_estimate)

CAPTURE_IN_ENV, CAPTURE_OUT_ENV = "HWGEN_CAPTURE_IN", "HWGEN_CAPTURE_OUT"


def write_stimulus(vec: Vectors, path: Path) -> None:
    lines = [f"{vec.samples:x}"]
    for s in range(vec.samples):
        tokens = input_tokens(vec.inputs[s], vec.streams[0])
        budget = 20 * work_estimate(vec.inputs[s], [sp[s] for sp in vec.spikes], vec.fanout) + 10000
        lines.append(f"{len(tokens):x} {budget:x}")
        lines += [f"{t:x}" for t in tokens]
    path.write_text("\n".join(lines) + "\n")


def read_record(vec: Vectors, path: Path, report: dict) -> None:
    """Turn the harness's record into ``report["samples"]`` (tb_top's format)."""
    records = [[StreamRecord(stream) for stream in vec.streams[1:]] for _ in range(vec.samples)]
    current = 0  # the sample whose tokens the taps carry: advanced at each `e`
    stray: list[tuple[int, int]] = []
    per_sample: dict[int, dict] = {s: {} for s in range(vec.samples)}
    for line in path.read_text().splitlines():
        if not line:
            continue
        kind, *fields = line.split()
        if kind == "t":
            k, payload = int(fields[0]), int(fields[2], 16)
            if current < vec.samples:
                records[current][k].push(payload)
            else:
                stray.append((k, payload))
        elif kind == "a":
            per_sample[int(fields[0])]["accept"] = int(fields[1])
        elif kind == "d":
            s = int(fields[0])
            per_sample[s].update(done=int(fields[1]), counts=int(fields[2], 16), prediction=int(fields[3], 16))
        elif kind == "c":
            per_sample[int(fields[0])]["cycles"] = int(fields[1])
        elif kind == "e":
            current = int(fields[0]) + 1
        elif kind == "w":
            s = int(fields[0])
            reached = ", ".join(f"tap_{k} {r.ticks}" for k, r in enumerate(records[s]))
            raise AssertionError(f"watchdog: sample {s} did not finish (`done` and every tap's `last` "
                                 f"tick) within its budget; ticks seen per tap: {reached}")
        elif kind == "f":
            report["sim_cycles"] = int(fields[0])
    mask = (1 << vec.count_bits) - 1
    n_out = vec.counts.shape[1]
    for s in range(vec.samples):
        got = per_sample[s]
        counts = [(got["counts"] >> (k * vec.count_bits)) & mask for k in range(n_out)]
        found: list[dict] = []
        for k, rec in enumerate(records[s]):
            found += check_stream(s, k, vec.spikes[k][s], rec)
        found += check_readout(s, counts, got["prediction"], vec.counts[s], vec.prediction[s])
        report["samples"].append({
            "sample": s, "cycles": got["cycles"], "tb_cycles": got["done"] - got["accept"],
            "counts": counts, "prediction": got["prediction"],
            "mismatch_count": len(found), "mismatches": found[:RECORD_CAP]})
    if stray and report["samples"]:
        last = report["samples"][-1]
        for k, payload in stray:
            last["mismatches"].append(mismatch(last["sample"], k, None, payload, None, payload, "token after done"))
            last["mismatch_count"] += 1


@cocotb.test()
async def run_vectors(dut):
    """Every sample of HWGEN_SIM_VECTORS through hwgen_capture, checked against the golden model."""
    vec = Vectors(os.environ[VECTORS_ENV])
    if vec.weights:
        raise AssertionError("hwgen_capture does not load run-time weights (weights_K ports)")

    async def body(report: dict) -> None:
        write_stimulus(vec, Path(os.environ[CAPTURE_IN_ENV]))
        await RisingEdge(dut.finished)
        read_record(vec, Path(os.environ[CAPTURE_OUT_ENV]), report)

    await checked_run(body, stall=False)
