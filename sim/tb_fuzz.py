"""cocotb testbench for stress runs: a batch of networks, stalls on every stream, resets.

``hwgen.stress.run_batch`` runs this module on a ``hwgen_batch`` design
(``hwgen.hardware.stall.BatchTop``): network ``k``'s ports carry the prefix ``n{k}_`` and,
besides the ports of docs/hardware.md, a ``stall`` input and a ``stall_offer`` output with
one bit per stream of its chain (hwgen/hardware/stall.py). The environment names:

``HWGEN_FUZZ_MANIFEST``
    JSON: per network its prefix, its vectors ``.npz`` (the format of ``sim/tb_top.py``),
    a label, the names of its stall links and its *program*, a list of inferences
    ``{sample, stall, seed, input_stall, reset_at, overlap, stall_links}``
    (``hwgen.stress.Inference``).
``HWGEN_FUZZ_RESULTS``
    where to write the results JSON: per network, per inference, the mismatches, readout,
    ``cycles`` port, the testbench's cycle count, the cycles in which a token was held
    back, and a digest of the exact token sequence of each tap.

The networks run one after another on one clock and one reset (the others stay idle), each
inference checked exactly as ``sim/tb_top.py`` checks it (same helpers). Normally an
inference starts after the previous one's ``done``; entries marked ``overlap`` start as soon
as the previous one's input is in, so several inferences are in flight in the chain at once. The loop keeps its
timing discipline: drivers (input stream, stall vector, ``rst``) are written just after a
rising edge, everything is read in the ReadOnly phase.

An inference is over when ``done`` has come *and* every tap has sent its final (``last``)
tick: in a graph a layer's tokens can still be on their way after ``done`` (a fork passes a
token on, and its source's handshake completes, only when every consumer has taken it; a
delayed edge held at a stall point keeps the final tick of a layer whose other consumer
already finished the inference, and a layer that feeds nothing runs at its own pace). After
the (last) ``done`` the stalls are released, so that these tails drain at once; the watchdog
still applies.

Stall policies, per stream (stall point), chosen per inference by the manifest:

* ``beat``: the stall is raised whenever the stream is idle, so *every* beat, the first of
  an inference and its final tick included, is held when it is offered; it is released
  after a random 0 to 6 cycles, and in 3 % of the beats after 50 to 400 cycles;
* ``burst``: on/off bursts regardless of traffic, on for 1 to 8 cycles or (5 %) 100 to 600;
* ``mixed``: one of the two per stream; ``none``: never;
* ``hold``: every stream held for good: a hang, for the watchdog's own test.

``stall_links`` (optional) limits the policy to the links it names; the others never stall.

The watchdog allows ``20 * work_estimate + 10000`` cycles per inference (``tb_top``'s
budget) plus every cycle in which a token was actually being held back (capped at 4 times
the budget), and fails with the network, the program entry, the sample, how far the input
got, the ticks seen on every tap and which streams had a token waiting.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from hwgen.sim.tb_top import (CLOCK_PERIOD_NS, DRAIN_CYCLES, RECORD_CAP, RESET_CYCLES,
                              StreamRecord, Vectors, check_readout, check_stream,
                              input_tokens, mismatch, work_estimate)

MANIFEST_ENV = "HWGEN_FUZZ_MANIFEST"
RESULTS_ENV = "HWGEN_FUZZ_RESULTS"
LONG_BEAT_STALL = (50, 400)
LONG_BURST = (100, 600)
# Cycles of held-back tokens the watchdog forgives, in budgets: a stall policy holds a beat
# for ~10 cycles on average, far less than a budget per beat, so 4 is ample, and a stream
# held forever still ends in the watchdog within 5 budgets.
HOLD_ALLOWANCE = 4


class StallPolicy:
    """The stall vector of one network's stall points, cycle by cycle (module docstring)."""

    def __init__(self, kind: str, links: list[str], rng: random.Random,
                 only: list[str] | None = None):
        self.rng = rng
        self.links = len(links)
        if kind == "mixed":
            self.kinds = [rng.choice(("beat", "burst")) for _ in links]
        else:
            self.kinds = [kind] * len(links)
        if only is not None:
            unknown = set(only) - set(links)
            if unknown:
                raise AssertionError(f"stall_links names no link of the network: {sorted(unknown)}")
            self.kinds = [k if name in only else "none" for k, name in zip(self.kinds, links)]
        self.left = [0] * self.links  # beat: cycles still to hold the offered beat; burst: phase left
        self.state = ["idle" if k == "beat" else "off" for k in self.kinds]
        self.mask = 0

    def step(self, offers: int) -> int:
        """The mask for this cycle, given the ``stall_offer`` bits of the previous one."""
        rng = self.rng
        mask = 0
        for i, kind in enumerate(self.kinds):
            bit = 1 << i
            if kind == "none":
                continue
            if kind == "hold":
                mask |= bit
                continue
            if kind == "beat":
                state = self.state[i]
                if state == "idle" and offers & bit and self.mask & bit:
                    self.left[i] = (rng.randint(*LONG_BEAT_STALL) if rng.random() < 0.03
                                    else rng.randint(0, 6))
                    state = "hold"
                if state == "hold":
                    if self.left[i] == 0:
                        state = "release"
                    else:
                        self.left[i] -= 1
                elif state == "release":
                    state = "idle"
                self.state[i] = state
                if state != "release":
                    mask |= bit
            else:
                if self.left[i] == 0:
                    on = self.state[i] == "off"
                    self.state[i] = "on" if on else "off"
                    self.left[i] = ((rng.randint(*LONG_BURST) if rng.random() < 0.05
                                     else rng.randint(1, 8)) if on else rng.randint(1, 20))
                self.left[i] -= 1
                if self.state[i] == "on":
                    mask |= bit
        self.mask = mask
        return mask


class Ports:
    """The handles of one network of the batch."""

    def __init__(self, dut, prefix: str, vec: Vectors):
        def port(name):
            try:
                return getattr(dut, prefix + name)
            except AttributeError:
                raise AssertionError(f"hwgen_batch has no port {prefix + name!r}") from None

        self.in_valid, self.in_ready, self.in_payload = (
            port(f"spikes_in__{f}") for f in ("valid", "ready", "payload"))
        self.taps = [tuple(port(f"tap_{k}__{f}") for f in ("valid", "ready", "payload"))
                     for k in range(vec.layers)]
        self.done, self.counts, self.prediction, self.cycles = (
            port(n) for n in ("done", "counts", "prediction", "cycles"))
        self.stall, self.offer = port("stall"), port("stall_offer")


class Clocked:
    """The one clock of the batch: the cycle count since the first reset."""

    def __init__(self, dut):
        self.dut = dut
        self.rising = RisingEdge(dut.clk)
        self.read_only = ReadOnly()
        self.cycle = 0

    async def edge(self) -> None:
        await self.rising
        self.cycle += 1

    async def reset(self, cycles: int) -> None:
        self.dut.rst.value = 1
        for _ in range(cycles):
            await self.edge()
        self.dut.rst.value = 0
        await self.edge()


@cocotb.test()
async def run_programs(dut):
    """Every network's program through the batch, checked against the golden model."""
    with open(os.environ[MANIFEST_ENV]) as f:
        manifest = json.load(f)
    results_path = os.environ[RESULTS_ENV]
    report: dict = {"complete": False, "error": None, "networks": [], "sim_cycles": 0}
    started = time.perf_counter()
    clock = Clocked(dut)
    try:
        await _run(dut, manifest, report, clock)
        report["complete"] = True
    except AssertionError as e:  # a watchdog / protocol failure: recorded, then re-raised
        report["error"] = str(e)
        raise
    finally:
        report["wall_seconds"] = time.perf_counter() - started
        report["sim_cycles"] = clock.cycle
        with open(results_path, "w") as f:
            json.dump(report, f)
    failed = sum(r["mismatches"] for net in report["networks"] for r in net["items"])
    assert failed == 0, f"{failed} mismatches against the golden model"


async def _run(dut, manifest: dict, report: dict, clock: Clocked) -> None:
    networks = manifest["networks"]
    # Every network idle, no stall, then one reset for all.
    for net in networks:
        prefix = net["prefix"]
        for name in ("spikes_in__valid", "spikes_in__payload", "stall"):
            getattr(dut, prefix + name).value = 0
    Clock(dut.clk, CLOCK_PERIOD_NS, unit="ns").start()
    await clock.reset(RESET_CYCLES)
    for net in networks:
        vec = Vectors(net["vectors"])
        ports = Ports(dut, net["prefix"], vec)
        items: list[dict] = []
        report["networks"].append({"label": net["label"], "items": items})
        program = net["program"]
        index = 0
        while index < len(program):
            group = 1  # entries that follow with `overlap` start before this one is done
            while index + group < len(program) and program[index + group].get("overlap"):
                group += 1
            if group == 1:
                items.append(await _inference(dut, clock, net, index, program[index], vec, ports))
            else:
                items += await _pipelined(clock, net, index, program[index:index + group], vec,
                                          ports)
            index += group
        # Stray tokens after the network's last inference.
        for _ in range(DRAIN_CYCLES):
            await clock.read_only
            stray = [(k, int(p.value)) for k, (v, r, p) in enumerate(ports.taps)
                     if v.value and r.value]
            await clock.edge()
            if stray and items:
                for k, payload in stray:
                    items[-1]["records"].append(mismatch(items[-1]["sample"], k, None, payload,
                                                         None, payload, "token after done"))
                    items[-1]["mismatches"] += 1


async def _inference(dut, clock: Clocked, net: dict, index: int, item: dict, vec: Vectors,
                     ports: Ports) -> dict:
    s = item["sample"]
    rng = random.Random(item["seed"] * 1_000_003 + index)
    policy = StallPolicy(item["stall"], net["links"], rng, item.get("stall_links"))
    in_stream = vec.streams[0]
    tokens = input_tokens(vec.inputs[s], in_stream)
    records = [StreamRecord(stream) for stream in vec.streams[1:]]
    raw: list[list[int]] = [[] for _ in ports.taps]
    budget = 20 * work_estimate(vec.inputs[s], [sp[s] for sp in vec.spikes], vec.fanout) + 10000
    extension = 0  # cycles in which a token was held back, added to the budget
    start = clock.cycle
    sent = ticks_sent = 0
    first_accept = None
    input_wait = 0  # cycles left with the input withheld
    valid = driven = 0
    mask = 0
    offers = 0
    reset_at = item["reset_at"]
    aborted = False
    counts_word = prediction = observed_cycles = 0
    done_at = None  # the cycle in which `done` was high
    while True:
        # -- just after an edge: drive the input stream and the stall vector for this cycle
        if not valid and sent < len(tokens):
            if item["input_stall"] and input_wait == 0 and rng.random() < 0.3:
                input_wait = rng.randint(1, 40 if rng.random() < 0.1 else 5)
            if input_wait:
                input_wait -= 1
            else:
                valid = 1
                ports.in_payload.value = tokens[sent]
        if valid != driven:
            ports.in_valid.value = driven = valid
        # After `done` only the taps' tails are awaited: unstalled (module docstring).
        new_mask = policy.step(offers) if done_at is None else 0
        if new_mask != mask:
            ports.stall.value = mask = new_mask
        # -- settled values; valid & ready transfers at the next edge
        await clock.read_only
        withheld = not valid and sent < len(tokens)
        if valid and ports.in_ready.value:
            if first_accept is None:
                first_accept = clock.cycle
            if in_stream.is_tick(tokens[sent]):
                ticks_sent += 1
            sent += 1
            valid = 0
        for (v, r, p), rec, seq in zip(ports.taps, records, raw):
            if v.value and r.value:
                payload = int(p.value)
                rec.push(payload)
                seq.append(payload)
        offers = int(ports.offer.value)
        if done_at is None and ports.done.value:
            done_at = clock.cycle
            counts_word = int(ports.counts.value)
            prediction = int(ports.prediction.value)
            observed_cycles = int(ports.cycles.value)
        if withheld or offers & mask:
            extension += 1
        await clock.edge()
        # Every tap has closed the inference: a tick with `last` (or all its ticks, so that a
        # missing `last` shows as a mismatch rather than a hang).
        if done_at is not None and all(rec.ticks >= vec.timesteps or any(rec.lasts)
                                       for rec in records):
            break
        if reset_at is not None and first_accept is not None and done_at is None \
                and clock.cycle - first_accept >= reset_at:
            # Reset in the middle of the inference: drop it, the design must come back clean.
            ports.in_valid.value = driven = 0
            ports.stall.value = mask = 0
            await clock.reset(rng.randint(1, RESET_CYCLES))
            aborted = True
            break
        if clock.cycle - start >= budget + min(extension, HOLD_ALLOWANCE * budget):
            waiting = [name for i, name in enumerate(net["links"]) if offers >> i & 1]
            held = [name for i, name in enumerate(net["links"]) if (offers & mask) >> i & 1]
            reached = ", ".join(f"tap_{k} {r.ticks}" for k, r in enumerate(records))
            raise AssertionError(
                f"watchdog: {net['label']} ({net['prefix']}), program entry {index} (sample "
                f"{s}, stall policy {item['stall']}): "
                f"{'no `done`' if done_at is None else f'`done` in cycle {done_at}, not every tap closed'}"
                f" within {clock.cycle - start} cycles ({budget} allowed plus {extension} held back); the input reached "
                f"timestep {ticks_sent} of {vec.timesteps} ({sent} of {len(tokens)} tokens "
                f"accepted); ticks seen per tap: {reached}; streams with a token waiting: "
                f"{waiting or 'none'}; of those stalled by the testbench: {held or 'none'}")
    result = {"sample": s, "stall": item["stall"], "aborted": aborted, "mismatches": 0,
              "records": [], "counts": [], "prediction": -1, "cycles": 0, "tb_cycles": 0,
              "held_cycles": extension, "digests": [], "accepted_at": first_accept,
              "done_at": None}
    if aborted:
        return result
    if sent != len(tokens):
        raise AssertionError(f"{net['label']}, program entry {index} (sample {s}): `done` "
                             f"after only {sent} of {len(tokens)} input tokens were accepted")
    if driven:
        ports.in_valid.value = 0
    if mask:
        ports.stall.value = 0
    n_out = vec.counts.shape[1]
    mask_c = (1 << vec.count_bits) - 1
    counts = [(counts_word >> (k * vec.count_bits)) & mask_c for k in range(n_out)]
    found: list[dict] = []
    for k, rec in enumerate(records):
        found += check_stream(s, k, vec.spikes[k][s], rec)
    found += check_readout(s, counts, prediction, vec.counts[s], vec.prediction[s])
    result.update(mismatches=len(found), records=found[:RECORD_CAP], counts=counts,
                  prediction=prediction, cycles=observed_cycles,
                  tb_cycles=done_at - first_accept, done_at=done_at,
                  digests=[hashlib.sha1(json.dumps(seq).encode()).hexdigest() for seq in raw])
    return result


async def _pipelined(clock: Clocked, net: dict, first: int, group: list[dict], vec: Vectors,
                     ports: Ports) -> list[dict]:
    """Several inferences in flight at once: each one's input follows the previous one's
    final tick without waiting for its ``done``. Every tap's tokens are split into
    inferences at their ``last`` ticks and ``done`` pulses are matched in order; the stall
    policy is the first entry's, the ``cycles`` port is read in each ``done`` cycle (the
    next inference may end in the cycle after). The group is over when every ``done`` has
    come and every tap has closed every inference (module docstring)."""
    head = group[0]
    if any(item["reset_at"] is not None for item in group):
        raise AssertionError("a reset inside a group of overlapping inferences is not supported")
    rng = random.Random(head["seed"] * 1_000_003 + first)
    policy = StallPolicy(head["stall"], net["links"], rng, head.get("stall_links"))
    in_stream = vec.streams[0]
    samples = [item["sample"] for item in group]
    tokens: list[int] = []
    starts: list[int] = []  # index of each inference's first token
    for s in samples:
        starts.append(len(tokens))
        tokens += input_tokens(vec.inputs[s], in_stream)
    records = [[StreamRecord(stream) for _ in group] for stream in vec.streams[1:]]
    raw: list[list[list[int]]] = [[[] for _ in group] for _ in ports.taps]
    position = [0] * len(ports.taps)  # the inference each tap is in
    budget = sum(20 * work_estimate(vec.inputs[s], [sp[s] for sp in vec.spikes], vec.fanout)
                 for s in samples) + 10000
    extension = 0
    start = clock.cycle
    sent = 0
    accepted_at: list[int] = []  # cycle of each inference's first accepted token
    dones: list[tuple[int, int, int, int]] = []  # (cycle, counts, prediction, cycles port)
    input_wait = 0
    valid = driven = mask = offers = 0
    while len(dones) < len(group) or min(position, default=len(group)) < len(group):
        if not valid and sent < len(tokens):
            if head["input_stall"] and input_wait == 0 and rng.random() < 0.3:
                input_wait = rng.randint(1, 40 if rng.random() < 0.1 else 5)
            if input_wait:
                input_wait -= 1
            else:
                valid = 1
                ports.in_payload.value = tokens[sent]
        if valid != driven:
            ports.in_valid.value = driven = valid
        # After the last `done` only the taps' tails are awaited: unstalled.
        new_mask = policy.step(offers) if len(dones) < len(group) else 0
        if new_mask != mask:
            ports.stall.value = mask = new_mask
        await clock.read_only
        withheld = not valid and sent < len(tokens)
        if valid and ports.in_ready.value:
            if len(accepted_at) < len(starts) and sent == starts[len(accepted_at)]:
                accepted_at.append(clock.cycle)
            sent += 1
            valid = 0
        for k, (v, r, p) in enumerate(ports.taps):
            if v.value and r.value:
                payload = int(p.value)
                n = min(position[k], len(group) - 1)  # past the last: reported as extra
                records[k][n].push(payload)
                raw[k][n].append(payload)
                stream = records[k][n].stream
                if stream.is_tick(payload) and (payload >> (stream.addr_bits + 1)) & 1:
                    position[k] += 1
        offers = int(ports.offer.value)
        if ports.done.value and len(dones) < len(group):
            dones.append((clock.cycle, int(ports.counts.value), int(ports.prediction.value),
                          int(ports.cycles.value)))
        if withheld or offers & mask:
            extension += 1
        await clock.edge()
        if clock.cycle - start >= budget + min(extension, HOLD_ALLOWANCE * budget):
            reached = ", ".join(f"tap_{k} at inference {n}" for k, n in enumerate(position))
            raise AssertionError(
                f"watchdog: {net['label']} ({net['prefix']}), overlapping program entries "
                f"{first}..{first + len(group) - 1} (samples {samples}): {len(dones)} of "
                f"{len(group)} `done` within {clock.cycle - start} cycles; {sent} of "
                f"{len(tokens)} input tokens accepted; {reached}; streams with a token "
                f"waiting: {[n for i, n in enumerate(net['links']) if offers >> i & 1]}")
    if driven:
        ports.in_valid.value = 0
    if mask:
        ports.stall.value = 0
    n_out = vec.counts.shape[1]
    mask_c = (1 << vec.count_bits) - 1
    out = []
    for n, (item, s) in enumerate(zip(group, samples)):
        done_cycle, counts_word, prediction, observed = dones[n]
        counts = [(counts_word >> (k * vec.count_bits)) & mask_c for k in range(n_out)]
        found: list[dict] = []
        for k in range(len(ports.taps)):
            found += check_stream(s, k, vec.spikes[k][s], records[k][n])
        found += check_readout(s, counts, prediction, vec.counts[s], vec.prediction[s])
        out.append({"sample": s, "stall": head["stall"], "aborted": False,
                    "mismatches": len(found), "records": found[:RECORD_CAP], "counts": counts,
                    "prediction": prediction, "cycles": observed,
                    "tb_cycles": done_cycle - accepted_at[n], "held_cycles": extension,
                    "accepted_at": accepted_at[n], "done_at": done_cycle,
                    "digests": [hashlib.sha1(json.dumps(raw[k][n]).encode()).hexdigest()
                                for k in range(len(ports.taps))]})
    return out
