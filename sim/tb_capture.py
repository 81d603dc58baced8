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

from .tb_top import (VECTORS_ENV, StreamRecord, Vectors, add_stray_tokens, checked_run, input_tokens,
                     sample_budget, sample_result)

CAPTURE_IN_ENV, CAPTURE_OUT_ENV = "HWGEN_CAPTURE_IN", "HWGEN_CAPTURE_OUT"


def write_stimulus(vec: Vectors, path: Path) -> None:
    lines = [f"{vec.samples:x}"]
    for s in range(vec.samples):
        tokens = input_tokens(vec.inputs[s], vec.streams[0])
        lines.append(f"{len(tokens):x} {sample_budget(vec, s):x}")
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
    for s in range(vec.samples):
        got = per_sample[s]
        report["samples"].append(sample_result(vec, s, records[s], got["counts"], got["prediction"],
                                               got["cycles"], got["done"] - got["accept"]))
    add_stray_tokens(report, stray)


@cocotb.test()
async def run_vectors(dut):
    """Every sample of HWGEN_SIM_VECTORS through hwgen_capture, checked against the golden model."""
    vec = Vectors(os.environ[VECTORS_ENV])  # no run-time weights: run_rtl refuses them here

    async def body(report: dict) -> None:
        write_stimulus(vec, Path(os.environ[CAPTURE_IN_ENV]))
        await RisingEdge(dut.finished)
        read_record(vec, Path(os.environ[CAPTURE_OUT_ENV]), report)

    await checked_run(body, stall=False)
