"""Graphs in hardware: the fork and merge engines in Amaranth's simulator, then whole graph
networks (recurrence, fan-out, concatenating fan-in, SEW residual sums) against the golden
model on Verilator, spike for spike on every layer, with random stalls on every link."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from hwgen.hardware.fork import StreamFork
from hwgen.hardware.merge import StreamMerge
from hwgen.hardware.tokens import pack_token, unpack_token
from hwsim import run

# ----------------------------------------------------------------------------- engines


def _step_tokens(shape, steps: list[list[int]], last_step: bool = True) -> list[int]:
    out = []
    for t, addrs in enumerate(steps):
        out += [pack_token(shape, addr=a) for a in addrs]
        out.append(pack_token(shape, tick=True, last=last_step and t == len(steps) - 1))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fork_delivers_every_token_once_to_each_output(seed):
    """Outputs ready at different times each see the input sequence exactly once, in order."""
    rng = np.random.default_rng(seed)
    shape = 10
    tokens = _step_tokens(shape, [sorted(rng.choice(10, 4, replace=False).tolist()) for _ in range(5)])
    fork = StreamFork(shape, 3)
    got = [[] for _ in range(3)]

    async def testbench(ctx):
        sent = 0
        for _ in range(2000):
            offer = sent < len(tokens) and rng.random() < 0.7
            ctx.set(fork.spikes_in.valid, offer)
            ctx.set(fork.spikes_in.payload.as_value(), tokens[sent] if offer else 0)
            for out in fork.outputs():
                ctx.set(out.ready, rng.random() < 0.4)
            sampled = await ctx.tick().sample(
                fork.spikes_in.ready, *[s for out in fork.outputs() for s in (out.valid, out.ready,
                                                                              out.payload.as_value())])
            _, _, ready, *outs = sampled
            if offer and ready:
                sent += 1
            for k in range(3):
                valid, out_ready, payload = outs[3 * k:3 * k + 3]
                if valid and out_ready:
                    got[k].append(payload)
            if sent == len(tokens) and all(len(g) == len(tokens) for g in got):
                return
        raise AssertionError(f"fork stuck: {sent} of {len(tokens)} in, {[len(g) for g in got]} out")

    run(fork, testbench)
    assert got == [tokens] * 3


def _merge_run(merge: StreamMerge, feeds: list[list[list[list[int]]]], rng, delayed_release=True,
               max_cycles=20000) -> list[list[Counter]]:
    """Drive ``feeds[k][i][t]`` (input ``k``, inference ``i``, step ``t``: addresses) into
    ``merge`` with random gaps and output stalls; a delayed input's step ``t`` is offered only
    after the merge sent its tick of step ``t`` (its source depends on it, as on a cycle).
    Returns per inference and step the addresses that left (a Counter) ."""
    n = len(feeds)
    T = len(feeds[0][0])
    streams = []
    for k, feed in enumerate(feeds):
        shape = merge.in_shapes[k]
        seq = []  # (token, global step it belongs to: released after that many ticks out)
        for i, inference in enumerate(feed):
            for t, addrs in enumerate(inference):
                gate = i * T + t + 1 if merge.delayed[k] and delayed_release else 0
                seq += [(pack_token(shape, addr=a), gate) for a in addrs]
                seq.append((pack_token(shape, tick=True, last=t == T - 1), gate))
        streams.append(seq)
    inferences = len(feeds[0])
    steps: list[list[int]] = [[]]
    lasts: list[int] = []

    async def testbench(ctx):
        sent = [0] * n
        offer = [False] * n
        ports = merge.inputs()
        for _ in range(max_cycles):
            for k, port in enumerate(ports):
                seq = streams[k]
                if not offer[k] and sent[k] < len(seq) and seq[sent[k]][1] <= len(lasts) \
                        and rng.random() < 0.6:
                    offer[k] = True
                ctx.set(port.valid, offer[k])
                ctx.set(port.payload.as_value(), seq[sent[k]][0] if offer[k] else 0)
            ctx.set(merge.spikes_out.ready, rng.random() < 0.6)
            sampled = await ctx.tick().sample(*[p.ready for p in ports], merge.spikes_out.valid,
                                              merge.spikes_out.ready, merge.spikes_out.payload.as_value())
            _, _, *ready, valid, out_ready, payload = sampled
            for k in range(n):
                if offer[k] and ready[k]:
                    sent[k] += 1
                    offer[k] = False
            if valid and out_ready:
                addr, tick, last = unpack_token(merge.out_shape, payload)
                if tick:
                    lasts.append(int(last))
                    steps.append([])
                else:
                    steps[-1].append(addr)
            if len(lasts) == inferences * T and all(s == len(q) for s, q in zip(sent, streams)):
                return
        raise AssertionError(f"merge stuck: sent {sent} of {[len(s) for s in streams]}, "
                             f"{len(lasts)} ticks out")

    run(merge, testbench)
    assert lasts == ([0] * (T - 1) + [1]) * inferences
    assert steps[-1] == [], "tokens after the last tick"
    return [[Counter(steps[i * T + t]) for t in range(T)] for i in range(inferences)]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_merge_concatenates_and_delays_by_one_step(seed):
    """A feed-forward input at offset 0 and a delayed one at offset 6: step ``u`` of the
    output holds the first's step ``u`` and the delayed one's step ``u - 1`` (nothing at step
    0: its credit); the delayed input's final step is dropped, and three inferences back to
    back each start afresh."""
    rng = np.random.default_rng(seed)
    T, inferences = 4, 3
    merge = StreamMerge([6, 5], 11, [0, 6], [False, True])
    a = [[sorted(rng.choice(6, rng.integers(0, 7), replace=False).tolist()) for _ in range(T)]
         for _ in range(inferences)]
    b = [[sorted(rng.choice(5, rng.integers(1, 6), replace=False).tolist()) for _ in range(T)]
         for _ in range(inferences)]
    got = _merge_run(merge, [a, b], rng)
    for i in range(inferences):
        for u in range(T):
            want = Counter(a[i][u]) + Counter(x + 6 for x in (b[i][u - 1] if u else []))
            assert got[i][u] == want, (i, u)


def test_merge_sums_maps_without_offsets():
    """SpikeSum: two map streams, offsets 0: the output carries every event of both (an
    address twice is a count of 2)."""
    rng = np.random.default_rng(5)
    shape = (2, 3, 3)
    merge = StreamMerge([shape, shape], shape, [0, 0], [False, False])
    T = 3
    feeds = [[[sorted(rng.choice(18, 7, replace=False).tolist()) for _ in range(T)]] for _ in range(2)]
    got = _merge_run(merge, feeds, rng)
    for t in range(T):
        assert got[0][t] == Counter(feeds[0][0][t]) + Counter(feeds[1][0][t])


def test_merge_map_channel_offsets():
    """Conv concatenation: the second map's channels follow the first's."""
    rng = np.random.default_rng(6)
    merge = StreamMerge([(2, 2, 3), (1, 2, 3)], (3, 2, 3), [0, 2], [False, False])
    feeds = [[[[0, 7, 11]]], [[[1, 5]]]]
    got = _merge_run(merge, feeds, rng)
    # C-order indices: the second input's channel 0 is the output's channel 2 (+ 2 * 6)
    assert got[0][0] == Counter([0, 7, 11, 13, 17])


def test_merge_check_sees_a_missing_delay():
    """The step check above can fail: the same feeds through a merge that does not delay the
    second input put its events one step early (and keep its final step)."""
    rng = np.random.default_rng(0)
    merge = StreamMerge([4, 4], 8, [0, 4], [False, False])
    a = [[[0], [1], [2]]]
    b = [[[0], [1], [2]]]
    got = _merge_run(merge, [a, b], rng, delayed_release=False)
    assert got[0][1] != Counter([1, 4])
    assert got[0][1] == Counter([1, 5])
