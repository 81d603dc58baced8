"""Drivers and monitors for the hardware in Amaranth's simulator, shared by
tests/test_hardware.py (dense networks) and tests/test_hardware_conv.py (maps, pools).

A design is fed token streams and every stream it sends is decoded back into
``[samples, timesteps, neurons]`` spike arrays (C-order), checking the stream rules on the
way, so that the tests can compare them with ``hwgen.golden.run``.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
from amaranth.hdl import ClockDomain, Elaboratable, Fragment, Module
from amaranth.sim import Simulator

from hwgen import golden
from hwgen.hardware.tokens import pack_token, token_layout, unpack_token
from hwgen.accelerator.top import NetworkTop, build_top
from hwgen.hardware.tokens import is_map, shape_size
from hwgen.ir import QuantNetwork


def run(design, testbench, domain: ClockDomain | str = "sync") -> None:
    """Runs the async ``testbench`` against ``design`` on a 1 MHz clock of ``domain``."""
    sim = Simulator(design)
    sim.add_clock(1e-6, domain=domain)
    sim.add_testbench(testbench)
    sim.run()


def input_tokens(sample: np.ndarray, shape, value_bits: int, rng: np.random.Generator
                 ) -> list[int]:
    """The token sequence of one inference ``[T, *input_shape]``: each timestep's non-zero
    inputs in a random order (the contract allows any), carrying their value on a direct-input
    stream, then its tick."""
    timesteps = sample.shape[0]
    flat = sample.reshape(timesteps, -1)
    tokens = []
    for t in range(timesteps):
        addrs = np.flatnonzero(flat[t])
        rng.shuffle(addrs)
        tokens += [pack_token(shape, addr=int(a), value=int(flat[t, a]) if value_bits else 0,
                              value_bits=value_bits) for a in addrs]
        tokens.append(pack_token(shape, tick=True, last=t == timesteps - 1,
                                 value_bits=value_bits))
    return tokens


def emit_order(shape, addr: int) -> tuple:
    """The order an engine documents for its spikes: ascending address (dense), raster of
    positions then ascending channel (convolution)."""
    if not is_map(shape):
        return (addr,)
    _, h, w = shape
    c, rest = divmod(addr, h * w)
    return divmod(rest, w) + (c,)


def unpack_counts(counts: int, bits: int, n: int) -> list[int]:
    """The ``n`` counters of ``bits`` each of the packed ``counts`` port."""
    return [(counts >> (k * bits)) & ((1 << bits) - 1) for k in range(n)]


class StreamDecoder:
    """Rebuilds ``[samples, T, N]`` spikes (C-order) from one token stream's transfers and
    checks the stream rules: addresses inside the map, no duplicates, the engine's documented
    order within a timestep, ``last`` on the tick of timestep ``T - 1`` only."""

    def __init__(self, shape, samples: int, timesteps: int, name: str):
        self.shape, self.timesteps, self.name = shape, timesteps, name
        self.n = shape_size(shape)
        self.spikes = np.zeros((samples, timesteps, self.n), dtype=np.uint8)
        self.sample = self.t = 0
        self.previous = None
        self.tick_edges: list[int] = []

    def transfer(self, payload: int, edge: int = 0) -> None:
        addr, tick, last = unpack_token(self.shape, payload)
        where = f"{self.name}: sample {self.sample} timestep {self.t}"
        assert self.sample < self.spikes.shape[0], f"{self.name}: token after the last inference"
        if tick:
            assert last == (self.t == self.timesteps - 1), f"{where}: last={last} on the tick"
            self.previous = None
            self.tick_edges.append(edge)
            self.t += 1
            if last:
                self.sample, self.t = self.sample + 1, 0
        else:
            assert addr < self.n, f"{where}: address {addr} out of range"
            order = emit_order(self.shape, addr)
            assert self.previous is None or order > self.previous, \
                f"{where}: spike {addr} out of order (or repeated)"
            assert self.t < self.timesteps, f"{where}: spike after the last timestep"
            self.previous = order
            self.spikes[self.sample, self.t, addr] = 1

    @property
    def complete(self) -> bool:
        return self.sample == self.spikes.shape[0]


def simulate_top(top: NetworkTop, inputs: np.ndarray, *, gap: float = 0.0, seed: int = 0,
                 settle: int | None = None, max_cycles: int = 400_000) -> dict:
    """Runs every sample of ``inputs`` ``[B, T, *input_shape]`` back to back through ``top``.

    ``gap`` is the probability that the driver leaves a cycle idle before offering a token
    (once offered, a token stays until it is taken, as streams require). With ``settle``,
    each sample is instead sent ``settle`` idle cycles after the previous one's ``done`` (and
    after reset): an inference on an idle accelerator, as ``estimate_cycles`` models it.
    Returns the decoded spikes of every tap and the edges of its ticks, the readout of each
    ``done`` pulse and per-inference timing.
    """
    samples, timesteps = inputs.shape[:2]
    rng = np.random.default_rng(seed)
    per_sample = [input_tokens(sample, top.input_shape, top.input_value_bits, rng)
                  for sample in inputs]
    tokens = [tok for sample in per_sample for tok in sample]
    # The token index that opens each sample, and the cycle from which it may be offered.
    opens = np.cumsum([0] + [len(sample) for sample in per_sample])[:-1].tolist()
    release = {0: settle or 0}
    engines = [u for u in top.units if u.spiking is not None]
    taps = [getattr(top, f"tap_{k}") for k in range(len(engines))]
    decoders = [StreamDecoder(u.out_shape, samples, timesteps, f"tap_{k}")
                for k, u in enumerate(engines)]
    n_out = shape_size(top.output_shape)
    c_bits = top.count_bits
    result = {"counts": [], "prediction": [], "cycles": [], "tick_edges": [], "done_edges": [],
              "start_edges": []}
    a_bits = token_layout(top.input_shape).size - 2

    async def testbench(ctx):
        await load_weights(ctx, top)
        sent, opening, offer, drain = 0, True, False, None
        for cycle in range(max_cycles):
            held = settle is not None and sent in opens and release.get(sent, max_cycles) > cycle
            offer = offer or (sent < len(tokens) and not held and rng.random() >= gap)
            ctx.set(top.spikes_in.valid, offer)
            ctx.set(top.spikes_in.payload.as_value(), tokens[sent] if offer else 0)
            _, _, ready, done, prediction, counts, cycles, *observed = await ctx.tick().sample(
                top.spikes_in.ready, top.done, top.prediction, top.counts.as_value(), top.cycles,
                *(s for tap in taps for s in (tap.valid, tap.ready, tap.payload.as_value())))
            # Edge `cycle` ends the cycle in which these inputs were offered.
            if offer and ready:
                if opening:
                    result["start_edges"].append(cycle)
                tick, last = (tokens[sent] >> a_bits) & 1, (tokens[sent] >> (a_bits + 1)) & 1
                if tick:
                    result["tick_edges"].append(cycle)
                opening = bool(tick and last)
                sent += 1
                offer = False
            for k, decoder in enumerate(decoders):
                valid, tap_ready, payload = observed[3 * k: 3 * k + 3]
                if valid and tap_ready:
                    decoder.transfer(payload, cycle)
            if done:
                result["done_edges"].append(cycle)
                result["prediction"].append(prediction)
                result["counts"].append(unpack_counts(counts, c_bits, n_out))
                result["cycles"].append(cycles)
                if settle is not None and len(result["prediction"]) < samples:
                    release[opens[len(result["prediction"])]] = cycle + settle
            # After the final `done`, a layer off the readout's path may still be finishing
            # (a graph's side branch); once every tap has closed, a stray token would show.
            if drain is None and len(result["prediction"]) == samples and \
                    all(d.complete for d in decoders):
                drain = cycle + 8
            if cycle == drain:
                return
        raise AssertionError(f"no result after {max_cycles} cycles")

    run(top, testbench)
    assert all(d.complete for d in decoders), "a layer did not finish every inference"
    result["spikes"] = [d.spikes for d in decoders]
    result["tap_ticks"] = [d.tick_edges for d in decoders]
    return result


async def load_weights(ctx, top: NetworkTop) -> None:
    """Write every run-time-loaded weight memory of ``top`` (``weights_K``), one word per
    cycle, as the board top's WEIGHTS command does; nothing for bitstream ROMs."""
    for k, packed in top.packed_weights().items():
        port = getattr(top, f"weights_{k}")
        for addr, row in enumerate(packed):
            ctx.set(port.valid, 1)
            ctx.set(port.payload.addr, addr)
            ctx.set(port.payload.data, int.from_bytes(row.tobytes(), "little"))
            await ctx.tick()
        ctx.set(port.valid, 0)


def check_against_golden(qnet: QuantNetwork, parallel: int, inputs: np.ndarray, **kw) -> dict:
    """:func:`simulate_top` on ``build_top(qnet, parallel)``: every layer's spikes, the counts
    and the predictions must be the golden model's. Returns the run, with ``top``."""
    top = build_top(qnet, parallel)
    got = simulate_top(top, inputs, **kw)
    want = golden.run(qnet, inputs)
    for k, (g, w) in enumerate(zip(got["spikes"], want.spikes)):
        mismatch = np.argwhere(g != w.numpy())
        assert len(mismatch) == 0, \
            f"layer {k}: {len(mismatch)} spikes differ, first at [sample, t, neuron] = {mismatch[0]}"
    assert got["counts"] == want.counts.tolist()
    assert got["prediction"] == want.prediction.tolist()
    got["top"] = top
    return got


def activity(qnet: QuantNetwork, inputs: np.ndarray) -> list[float]:
    """How much each layer fires: a test whose layers never (or always) fire proves little."""
    return [float(s.float().mean()) for s in golden.run(qnet, inputs).spikes]


def drive(unit, tokens: list[int], decoder: StreamDecoder, rng: np.random.Generator, *,
          out_stall: float, longest_stall: int, in_gap: float = 0.0,
          max_cycles: int) -> StreamDecoder:
    """Drives ``tokens`` into one component (``spikes_in``) and decodes its ``spikes_out``
    into ``decoder`` until that is complete.

    ``out_stall`` is the probability that a stretch of 1 to ``longest_stall`` cycles of
    ``ready`` low starts in a cycle; ``in_gap`` the probability that the driver leaves a cycle
    idle before offering a token (with ``in_gap = 0``, no random number is drawn for it).
    """
    async def testbench(ctx):
        sent, stall, offer = 0, 0, False
        for cycle in range(max_cycles):
            if stall == 0 and rng.random() < out_stall:
                stall = int(rng.integers(1, longest_stall + 1))
            ctx.set(unit.spikes_out.ready, stall == 0)
            stall = max(0, stall - 1)
            offer = offer or (sent < len(tokens) and (in_gap == 0 or rng.random() >= in_gap))
            ctx.set(unit.spikes_in.valid, offer)
            ctx.set(unit.spikes_in.payload.as_value(), tokens[sent] if offer else 0)
            _, _, ready, valid, out_ready, payload = await ctx.tick().sample(
                unit.spikes_in.ready, unit.spikes_out.valid, unit.spikes_out.ready,
                unit.spikes_out.payload.as_value())
            if offer and ready:
                sent += 1
                offer = False
            if valid and out_ready:
                decoder.transfer(payload, cycle)
            if decoder.complete:
                return
        raise AssertionError(f"{decoder.name} did not finish")

    run(unit, testbench)
    return decoder


class InDomain(Elaboratable):
    """``design`` in an explicit ``sync`` domain, so that a testbench can drive its reset."""

    def __init__(self, design, domain: ClockDomain):
        self.design, self.domain = design, domain

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = self.domain
        m.submodules.design = self.design
        return m


def reset_midway(top: NetworkTop, half: list[int], full: list[int],
                 decoders: list[StreamDecoder], *, phase_cycles: int, chew: int) -> int:
    """Sends ``half`` (the start of an inference), lets ``top`` chew on it for ``chew``
    cycles and pulses ``rst``; then sends ``full``, decoding the taps into ``decoders``
    (tap ``k`` into ``decoders[k]``) until ``done``. Returns ``counts`` at ``done``; each
    phase may take ``phase_cycles``."""
    domain = ClockDomain("sync")
    taps = [getattr(top, f"tap_{k}") for k in range(len(decoders))]
    got = {}

    async def testbench(ctx):
        for phase, stream in (("half", half), ("full", full)):
            sent = 0
            for _ in range(phase_cycles):
                offer = sent < len(stream)
                ctx.set(top.spikes_in.valid, offer)
                ctx.set(top.spikes_in.payload.as_value(), stream[sent] if offer else 0)
                _, _, ready, done, counts, *observed = await ctx.tick().sample(
                    top.spikes_in.ready, top.done, top.counts.as_value(),
                    *(s for tap in taps for s in (tap.valid, tap.ready, tap.payload.as_value())))
                sent += offer and ready
                if phase == "half" and sent == len(stream):
                    await ctx.tick().repeat(chew)
                    ctx.set(domain.rst, 1)
                    await ctx.tick()
                    ctx.set(domain.rst, 0)
                    break
                if phase == "full":
                    for k, decoder in enumerate(decoders):
                        valid, tap_ready, payload = observed[3 * k: 3 * k + 3]
                        if valid and tap_ready:
                            decoder.transfer(payload)
                    if done:
                        got["counts"] = counts
                        return
        raise AssertionError("no result")

    run(Fragment.get(InDomain(top, domain), None), testbench, domain)
    return got["counts"]


def verilog_under_hash_seeds(build: str, parallel: int, seeds=("1", "2")) -> set[str]:
    """The Verilog of ``build_top(qnet, parallel)``, where the Python source ``build`` makes
    ``qnet``, from a fresh interpreter per ``PYTHONHASHSEED`` in ``seeds``: set and dict
    iteration orders change with the seed, the text must not (one text in the set)."""
    script = ("import sys\n"
              "from amaranth.back import verilog\n"
              "from hwgen.accelerator.top import build_top\n"
              f"{build}\n"
              f"sys.stdout.write(verilog.convert(build_top(qnet, {parallel}), name='hwgen_top',"
              " emit_src=False))\n")
    return {subprocess.run([sys.executable, "-c", script], check=True, capture_output=True,
                           text=True, env={**os.environ, "PYTHONHASHSEED": seed}).stdout
            for seed in seeds}


def top_ports(text: str) -> set[str]:
    """The port names of module ``hwgen_top`` in Verilog ``text``."""
    header = text[text.index("module hwgen_top("):].split(";")[0]
    return {p.strip() for p in header[len("module hwgen_top("):].rstrip(")").split(",")}
