"""cocotb testbench for the generated ``hwgen_top`` (ports and token streams: docs/hardware.md).

``hwgen.simulate.run_rtl`` runs this module; it talks to it through the environment:

``HWGEN_SIM_VECTORS``
    an ``.npz`` with ``inputs`` ``[B, T, N_in]`` (0/1 spikes, or direct values), ``spikes_K``
    ``[B, T, N_K]`` uint8 for every spiking layer ``K`` (the golden model's spikes, C-order),
    ``counts`` ``[B, N_out]``, ``prediction`` ``[B]``, ``streams`` (JSON: the shape and
    address fields of the input stream, then of every tap; see ``Stream``), ``fanout`` (per
    layer, for the watchdog), ``count_bits`` and ``timesteps``.
``HWGEN_SIM_RESULTS``
    where to write the results JSON: per sample the ``cycles`` port, the testbench's own
    cycle count, the ``counts`` / ``prediction`` ports and every mismatch found.
``HWGEN_SIM_STALL``
    optional integer seed: withhold the input stream (valid low) between tokens for random
    numbers of cycles. The results must not change.

For every sample the testbench sends, per timestep, one token per spiking input (C-order)
and then a tick (``last`` on the final timestep); it waits for ``done`` and for every tap's
``last`` tick (in a graph a tap can close after ``done``), then compares the tokens recorded on every ``tap_K`` stream (per timestep, as sets, plus
duplicates, tick count and ``last`` flags) and the readout ports with the golden
model. A mismatch record is ``{sample, layer, timestep, neuron, expected, got, what}``; the
readout's records have ``layer = "readout"``. Any mismatch fails the test, after the
results JSON has been written.

Timing discipline, one loop iteration per clock cycle ``n``::

    just after rising edge n    set the input stream's valid / payload for cycle n
    ReadOnly of cycle n         every signal has settled: a stream with valid & ready now
                                transfers at edge n+1; record it
    await RisingEdge            edge n+1

Drivers are only written after a rising edge and signals only read in the ReadOnly phase,
so neither races the design's flip-flops. Driving and monitoring share this one loop (one
RisingEdge and one ReadOnly per cycle) because a coroutine per stream costs several
scheduler round trips per cycle.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter

import numpy as np

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

VECTORS_ENV = "HWGEN_SIM_VECTORS"
RESULTS_ENV = "HWGEN_SIM_RESULTS"
STALL_ENV = "HWGEN_SIM_STALL"

CLOCK_PERIOD_NS = 10
RESET_CYCLES = 4
DRAIN_CYCLES = 16  # idle cycles watched after the last sample for stray tap tokens
RECORD_CAP = 200  # mismatch records kept per sample (all are counted)


# ----------------------------------------------------------------------------- tokens

class Stream:
    """The payload layout of one token stream (docs/hardware.md).

    ``addr`` is the packed address: for a ``(C, H, W)`` map the fields ``x, y, c`` (LSB
    first), for a vector a plain index. ``tick`` follows at bit ``A``, ``last`` at ``A + 1``
    and, on a direct-input stream, ``value`` from ``A + 2``. Neurons are numbered in C-order,
    as the golden model records them. The packing is deliberately done here again rather than
    taken from ``hwgen.protocol`` (``pack_token`` / ``unpack_token``): the testbench checks
    the hardware against its own reading of docs/hardware.md.
    """

    def __init__(self, spec: dict):
        self.shape = spec["shape"]
        self.fields = spec["fields"]
        self.value_bits = spec["value_bits"]
        self.addr_bits = sum(self.fields)
        self.mask = (1 << self.addr_bits) - 1

    @property
    def payload_bits(self) -> int:
        return self.addr_bits + 2 + self.value_bits

    def encode(self, index: int) -> int:
        if len(self.shape) != 3:
            return index
        _, h, w = self.shape
        c, rest = divmod(index, h * w)
        y, x = divmod(rest, w)
        bx, by, _ = self.fields
        return (c << (bx + by)) | (y << bx) | x

    def decode(self, addr: int) -> int:
        if len(self.shape) != 3:
            return addr
        _, h, w = self.shape
        bx, by, _ = self.fields
        x, y, c = addr & ((1 << bx) - 1), (addr >> bx) & ((1 << by) - 1), addr >> (bx + by)
        # Out-of-map field values would alias a real neuron: report them as impossible indices.
        return c * h * w + y * w + x if x < w and y < h else -1 - addr

    def tick(self, last: bool) -> int:
        return (1 << self.addr_bits) | (int(last) << (self.addr_bits + 1))

    def is_tick(self, payload: int) -> bool:
        return bool((payload >> self.addr_bits) & 1)


def input_tokens(values: np.ndarray, stream: Stream) -> list[int]:
    """The input stream of one inference: ``values`` is ``[T, N_in]``.

    One token per spiking input (or, with direct input, per non-zero value, carrying it),
    in C-order, then a tick; ``last`` on the final one."""
    steps = values.shape[0]
    out: list[int] = []
    value_shift = stream.addr_bits + 2
    for t in range(steps):
        for j in np.flatnonzero(values[t]).tolist():
            token = stream.encode(j)
            if stream.value_bits:
                token |= int(values[t, j]) << value_shift
            out.append(token)
        out.append(stream.tick(t == steps - 1))
    return out


class StreamRecord:
    """The tokens one tap stream carried during one inference, split at its ticks."""

    def __init__(self, stream: Stream):
        self.stream = stream
        self.spikes: list[list[int]] = [[]]  # per timestep, C-order neuron indices in arrival order
        self.lasts: list[int] = []  # the last flag of every tick, in order

    @property
    def ticks(self) -> int:
        return len(self.lasts)

    def push(self, payload: int) -> None:
        if self.stream.is_tick(payload):
            self.lasts.append((payload >> (self.stream.addr_bits + 1)) & 1)
            self.spikes.append([])
        else:
            self.spikes[-1].append(self.stream.decode(payload & self.stream.mask))


# ----------------------------------------------------------------------------- checks

def mismatch(sample, layer, timestep, neuron, expected, got, what="spike") -> dict:
    return {"sample": sample, "layer": layer, "timestep": timestep, "neuron": neuron,
            "expected": expected, "got": got, "what": what}


def check_stream(sample: int, layer: int, expected: np.ndarray, rec: StreamRecord) -> list[dict]:
    """Compare one tap's record with the golden spikes ``expected`` ``[T, N]`` of one sample.

    Per timestep the neurons are compared as sets (an engine emits in its own order,
    docs/hardware.md); a neuron seen twice is reported with ``got = 2``. Also checked:
    exactly ``T`` ticks, ``last`` only on the final tick, and no spike after it.
    """
    steps = expected.shape[0]
    out: list[dict] = []
    for t, got in enumerate(rec.spikes):
        seen = Counter(got)
        want = set(np.flatnonzero(expected[t]).tolist()) if t < steps else set()
        for n in sorted(want | set(seen)):
            if seen[n] != (n in want):
                what = "spike" if t < steps else "spike after last tick"
                out.append(mismatch(sample, layer, t, n, int(n in want), seen[n], what))
    for t in range(len(rec.spikes), steps):  # timesteps the stream never reached
        for n in np.flatnonzero(expected[t]).tolist():
            out.append(mismatch(sample, layer, t, n, 1, 0))
    if rec.ticks != steps:
        out.append(mismatch(sample, layer, None, None, steps, rec.ticks, "tick count"))
    for t, last in enumerate(rec.lasts):
        if last != (t == steps - 1):
            out.append(mismatch(sample, layer, t, None, int(t == steps - 1), last, "last flag"))
    return out


def check_readout(sample: int, counts: list[int], prediction: int,
                  exp_counts: np.ndarray, exp_prediction: int) -> list[dict]:
    out = [mismatch(sample, "readout", None, k, int(e), g, "count")
           for k, (e, g) in enumerate(zip(exp_counts.tolist(), counts)) if int(e) != g]
    if prediction != int(exp_prediction):
        out.append(mismatch(sample, "readout", None, None, int(exp_prediction), prediction,
                            "prediction"))
    return out


def work_estimate(inputs: np.ndarray, layer_spikes: list[np.ndarray], fanout: list[int]) -> int:
    """Cycles one inference needs with a single lane: every input event of a layer costs
    its largest fan-out, every timestep a fire pass of ``N_out`` plus one per output spike.
    (Pooled streams carry at most as many events as the spikes before the pool.)"""
    cycles = 0
    events = int(np.count_nonzero(inputs))
    for spikes, reach in zip(layer_spikes, fanout):
        steps, width = spikes.shape
        cycles += events * reach + steps * (width + 8) + int(spikes.sum())
        events = int(spikes.sum())
    return cycles + int(np.count_nonzero(inputs)) + inputs.shape[0]


def sample_budget(vec, s: int) -> int:
    """Watchdog budget of sample ``s`` in cycles: generous against ``work_estimate``."""
    return 20 * work_estimate(vec.inputs[s], [sp[s] for sp in vec.spikes], vec.fanout) + 10000


def sample_result(vec, s: int, records: list[StreamRecord], counts_word: int, prediction: int,
                  cycles: int, tb_cycles: int) -> dict:
    """The results-JSON entry of sample ``s``: every tap's record and the readout checked."""
    mask = (1 << vec.count_bits) - 1
    counts = [(counts_word >> (k * vec.count_bits)) & mask for k in range(vec.counts.shape[1])]
    found: list[dict] = []
    for k, rec in enumerate(records):
        found += check_stream(s, k, vec.spikes[k][s], rec)
    found += check_readout(s, counts, prediction, vec.counts[s], vec.prediction[s])
    return {"sample": s, "cycles": cycles, "tb_cycles": tb_cycles, "counts": counts,
            "prediction": prediction, "mismatch_count": len(found), "mismatches": found[:RECORD_CAP]}


def add_stray_tokens(report: dict, stray: list[tuple[int, int]]) -> None:
    """Tap tokens ``(tap, payload)`` after the last inference: mismatches of its sample."""
    if stray and report["samples"]:
        last = report["samples"][-1]
        for k, payload in stray:
            last["mismatches"].append(mismatch(last["sample"], k, None, payload, None, payload,
                                               "token after done"))
            last["mismatch_count"] += 1


# ----------------------------------------------------------------------------- the test

class Vectors:
    def __init__(self, path: str):
        with np.load(path) as z:
            self.inputs = z["inputs"]
            self.layers = int(z["layers"])
            self.spikes = [z[f"spikes_{k}"] for k in range(self.layers)]
            self.counts = z["counts"]
            self.prediction = z["prediction"]
            self.streams = [Stream(spec) for spec in json.loads(str(z["streams"]))]
            self.fanout = [int(f) for f in z["fanout"]]
            self.count_bits = int(z["count_bits"])
            self.timesteps = int(z["timesteps"])
            # Run-time-loaded weight memories: layer K -> packed words [depth, bytes].
            self.weights = {int(name[len("weights_"):]): z[name] for name in z.files
                            if name.startswith("weights_")}
            # layer K -> the address bits below the word in the weights_K payload
            self.weight_addr_bits = {int(k): v for k, v in
                                     json.loads(str(z["weight_addr_bits"])).items()} \
                if "weight_addr_bits" in z.files else {}
        self.samples = int(self.inputs.shape[0])


def _port(dut, name: str):
    try:
        return getattr(dut, name)
    except AttributeError:
        raise AssertionError(f"hwgen_top has no port {name!r} (docs/hardware.md)") from None


def _check_width(handle, name: str, want: int) -> None:
    if len(handle) != want:
        raise AssertionError(f"port {name} is {len(handle)} bits wide, expected {want}")


async def checked_run(body, stall: bool) -> None:
    """Run ``await body(report)``, which fills ``report["samples"]``; write the results JSON to
    ``HWGEN_SIM_RESULTS`` whatever happens (a protocol or watchdog failure is recorded, then
    re-raised), then fail the test on any mismatch. Shared with sim/tb_capture.py."""
    results_path = os.environ[RESULTS_ENV]
    report: dict = {"complete": False, "error": None, "samples": [], "sim_cycles": 0, "stall": stall}
    started = time.perf_counter()
    try:
        await body(report)
        report["complete"] = True
    except AssertionError as e:
        report["error"] = str(e)
        raise
    finally:
        report["wall_seconds"] = time.perf_counter() - started
        with open(results_path, "w") as f:
            json.dump(report, f, indent=1)
    failed = sum(s["mismatch_count"] for s in report["samples"])
    assert failed == 0, f"{failed} mismatches against the golden model, first: " + \
        json.dumps(next(m for s in report["samples"] for m in s["mismatches"]))


@cocotb.test()
async def run_vectors(dut):
    """Every sample of HWGEN_SIM_VECTORS through hwgen_top, checked against the golden model."""
    vec = Vectors(os.environ[VECTORS_ENV])
    stall_seed = os.environ.get(STALL_ENV, "")
    rng = random.Random(int(stall_seed)) if stall_seed else None
    await checked_run(lambda report: _run(dut, vec, rng, report), stall=rng is not None)


async def load_weights(dut, vec: Vectors, rising) -> None:
    """Write the run-time-loaded weight memories (``weights_K`` ports, docs/hardware.md
    "Loaded weights") one word per cycle before the first sample, as a board's host does."""
    for k, words in sorted(vec.weights.items()):
        valid, payload = (_port(dut, f"weights_{k}__{f}") for f in ("valid", "payload"))
        shift = vec.weight_addr_bits[k]  # payload = {data, addr}
        valid.value = 1
        for a, row in enumerate(words):
            payload.value = a | (int.from_bytes(row.tobytes(), "little") << shift)
            await rising
        valid.value = 0


async def _run(dut, vec: Vectors, rng: random.Random | None, report: dict) -> None:
    clk = dut.clk
    in_valid, in_ready, in_payload = (_port(dut, f"spikes_in__{f}")
                                      for f in ("valid", "ready", "payload"))
    in_stream = vec.streams[0]
    _check_width(in_payload, "spikes_in__payload", in_stream.payload_bits)
    taps = []
    for k in range(vec.layers):
        v, r, p = (_port(dut, f"tap_{k}__{f}") for f in ("valid", "ready", "payload"))
        _check_width(p, f"tap_{k}__payload", vec.streams[k + 1].payload_bits)
        taps.append((v, r, p))
    done, counts_port, prediction_port, cycles_port = (
        _port(dut, n) for n in ("done", "counts", "prediction", "cycles"))
    n_out = vec.counts.shape[1]
    _check_width(counts_port, "counts", n_out * vec.count_bits)

    in_valid.value = 0
    in_payload.value = 0
    rst = _port(dut, "rst")
    rst.value = 1
    Clock(clk, CLOCK_PERIOD_NS, unit="ns").start()
    rising = RisingEdge(clk)
    read_only = ReadOnly()
    for _ in range(RESET_CYCLES):
        await rising
    rst.value = 0
    await rising
    await load_weights(dut, vec, rising)

    cycle = 0  # cycles since reset; the loop below is always just after a rising edge
    driven = 0  # the value on spikes_in__valid
    for s in range(vec.samples):
        tokens = input_tokens(vec.inputs[s], in_stream)
        records = [StreamRecord(stream) for stream in vec.streams[1:]]
        budget = sample_budget(vec, s)
        deadline = cycle + budget
        sent = 0  # tokens transferred
        ticks_sent = 0
        first_accept = None
        done_at = observed_cycles = None
        stall = 0  # cycles left with the input withheld
        valid = 0  # a token is presented this cycle
        while True:
            # -- just after edge `cycle`: drive the input stream for this cycle. A presented
            # token stays until it transfers; stalls only happen between tokens.
            if not valid and sent < len(tokens):
                if rng is not None and stall == 0 and rng.random() < 0.3:
                    stall = rng.randint(1, 40 if rng.random() < 0.1 else 5)
                if stall:
                    stall -= 1
                else:
                    valid = 1
                    in_payload.value = tokens[sent]
            if valid != driven:
                in_valid.value = driven = valid
            # -- settled values of this cycle; valid & ready transfers at the next edge
            await read_only
            if valid and in_ready.value:
                if first_accept is None:
                    first_accept = cycle
                if in_stream.is_tick(tokens[sent]):
                    ticks_sent += 1
                sent += 1
                valid = 0
            for (v, r, p), rec in zip(taps, records):
                if v.value and r.value:
                    rec.push(int(p.value))
            if done_at is not None and observed_cycles is None:
                # the cycle after `done` (input idle): `cycles` now holds this inference's count
                observed_cycles = int(cycles_port.value)
            if done_at is None and done.value:
                done_at = cycle
                counts_word = int(counts_port.value)
                prediction = int(prediction_port.value)
                if sent != len(tokens):
                    raise AssertionError(f"sample {s}: `done` after only {sent} of "
                                         f"{len(tokens)} input tokens were accepted")
            await rising
            cycle += 1
            # In a graph a tap's final tokens can follow `done` (a branch that does not feed
            # the readout, a recurrent tail): the inference is over once every tap has closed
            # it with a `last` tick (or sent all its ticks, so that a missing `last` shows as
            # a mismatch rather than a hang).
            if observed_cycles is not None and all(
                    rec.ticks >= vec.timesteps or any(rec.lasts) for rec in records):
                break
            if cycle >= deadline:
                reached = ", ".join(f"tap_{k} {r.ticks}" for k, r in enumerate(records))
                waited = "`done`" if done_at is None else "every tap's `last` tick after `done`"
                raise AssertionError(
                    f"watchdog: sample {s} got no {waited} within {budget} cycles; the input "
                    f"stream reached timestep {ticks_sent} of {vec.timesteps} ({sent} of "
                    f"{len(tokens)} tokens accepted); ticks seen per tap: {reached}")

        tb_cycles = done_at - first_accept  # edge after `first_accept` .. the done cycle
        result = sample_result(vec, s, records, counts_word, prediction, observed_cycles, tb_cycles)
        report["samples"].append(result)
        report["sim_cycles"] = cycle
        dut._log.info("sample %d: %d cycles (port), %d (testbench), %d mismatches",
                      s, observed_cycles, tb_cycles, result["mismatch_count"])

    # -- stray tokens after the last inference
    for _ in range(DRAIN_CYCLES):
        await read_only
        stray = [(k, int(p.value)) for k, (v, r, p) in enumerate(taps) if v.value and r.value]
        await rising
        cycle += 1
        add_stray_tokens(report, stray)
    report["sim_cycles"] = cycle
