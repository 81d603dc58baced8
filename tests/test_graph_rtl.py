"""Graphs in hardware: the fork and merge engines in Amaranth's simulator, then whole graph
networks (recurrence, fan-out, concatenating fan-in, SEW residual sums) against the golden
model on Verilator, spike for spike on every layer, with random stalls on every link."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from amaranth.hdl import Fragment

from hwgen import golden
from hwgen.accelerator.cycles import chain_stages, expected_cycles, graph_model
from hwgen.accelerator.top import NetworkTop, network_memories, plan_units
from hwgen.cost import graph_timing, inference_timing
from hwgen.hardware.fork import StreamFork
from hwgen.hardware.merge import StreamMerge
from hwgen.hardware.tokens import pack_token, unpack_token
from hwgen.ir import INPUT, Edge, QuantNetwork
from hwgen.kinds import SpikeSum
from hwgen.stress import Inference, NetworkCase, run_batch
from hwgen.testing import random_conv_network, random_quant_network, random_spikes
from hwgen.widths import accumulator_bits
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


# ----------------------------------------------------------------------------- networks


def recurrent_dense() -> QuantNetwork:
    """12 inputs -> fc0 (8, recurrent to itself, delay 1) -> fc1 (5)."""
    net = random_quant_network([20, 8, 5], seed=11, timesteps=6)
    net.input_shape = (12,)
    net.layers[0].segments = (12, 8)
    net.inputs = {"fc0": [Edge(INPUT), Edge("fc0", 1)]}
    return net


def two_layer_cycle() -> QuantNetwork:
    """12 inputs -> fc0 (10) -> fc1 (6), and fc1 back into fc0 with delay 1."""
    net = random_quant_network([18, 10, 6], seed=12, timesteps=6)
    net.input_shape = (12,)
    net.layers[0].segments = (12, 6)
    net.inputs = {"fc0": [Edge(INPUT), Edge("fc1", 1)]}
    return net


def fanout_concat() -> QuantNetwork:
    """12 inputs -> fc0 (8) -> fc1 (6); fc2 (5) reads fc0 and fc1 side by side (a fork of
    fc0, a concatenating join in front of fc2); the output is fc2, and fc1 also feeds a
    second, unread branch fc3 (a spiking layer that feeds nothing), whose fire pass is long
    enough that its final tick comes after ``done``."""
    net = random_quant_network([12, 8, 6], seed=13, timesteps=5)
    head = random_quant_network([14, 5], seed=14, timesteps=5).layers[0]
    head.name = "fc2"
    side = random_quant_network([6, 40], seed=15, timesteps=5).layers[0]
    side.name = "fc3"
    head.segments = (8, 6)
    net.layers += [head, side]
    net.inputs = {"fc2": [Edge("fc0"), Edge("fc1")], "fc3": [Edge("fc1")]}
    net.output = "fc2"
    return net


def sew_residual() -> QuantNetwork:
    """(2, 6, 6) -> conv0 (4) -> conv1 (4); SpikeSum(conv0, conv1) -> conv2 (3): the sum's
    counts reach conv2 as events (``input_max`` 2)."""
    net = random_conv_network((2, 6, 6), [{"type": "conv", "out": 4, "kernel": 3, "padding": 1},
                                          {"type": "conv", "out": 4, "kernel": 3, "padding": 1},
                                          {"type": "conv", "out": 3, "kernel": 3, "padding": 1}],
                              seed=16, timesteps=4, rate=0.4)
    conv2 = net.layers[2]
    conv2.input_max = 2
    conv2.acc_bits = accumulator_bits(conv2.weight.reshape(3, -1), conv2.bias, conv2.state_bits, input_max=2)
    net.layers.insert(2, SpikeSum("sum", (4, 6, 6)))
    net.inputs = {"sum": [Edge("conv0"), Edge("conv1")]}
    return net


def recurrent_conv() -> QuantNetwork:
    """(2, 5, 5) -> conv0 (4, reading its own spikes of the step before: channels 2..5 of its
    input) -> flatten -> fc (4): a fire pass (25 positions) far larger than the conv engine's
    spike queue, so only the delayed edge's buffer keeps the cycle from deadlocking."""
    net = random_conv_network((6, 5, 5), [{"type": "conv", "out": 4, "kernel": 3, "padding": 1},
                                          {"type": "flatten"}, {"type": "dense", "out": 4}],
                              seed=17, timesteps=4, rate=0.35)
    net.input_shape = (2, 5, 5)
    net.layers[0].segments = (2, 4)
    net.inputs = {"conv0": [Edge(INPUT), Edge("conv0", 1)]}
    return net


def recurrent_direct() -> QuantNetwork:
    """3-bit direct input (10 values) -> fc0 (6, recurrent to itself) -> fc1 (4): the join
    gives the recurrent spikes the value 1 beside the input's values."""
    net = random_quant_network([16, 6, 4], seed=18, timesteps=5)
    net.input_shape = (10,)
    net.input_bits = 3
    fc0 = net.layers[0]
    fc0.segments = (10, 6)
    fc0.input_max = 7
    fc0.acc_bits = accumulator_bits(fc0.weight, fc0.bias, fc0.state_bits, input_max=7)
    fc0.threshold = fc0.threshold * 3
    net.inputs = {"fc0": [Edge(INPUT), Edge("fc0", 1)]}
    return net


GRAPHS = {
    "recurrent_dense": (recurrent_dense, 3),
    "recurrent_direct": (recurrent_direct, 2),
    "two_layer_cycle": (two_layer_cycle, 4),
    "fanout_concat": (fanout_concat, 2),
    "sew_residual": (sew_residual, 2),
    "recurrent_conv": (recurrent_conv, 1),
}


def graph_inputs(net: QuantNetwork, samples: int, seed: int) -> np.ndarray:
    """Spikes at rate 0.35, or for direct input values 1 .. 2**bits - 1 at that rate."""
    x = random_spikes((samples, net.timesteps, *net.input_shape), 0.35, seed=seed).astype(np.int64)
    if net.input_bits > 1:
        x *= np.random.default_rng(seed).integers(1, 1 << net.input_bits, size=x.shape)
    return x


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_graph_networks_are_graphs(name):
    """Each test network is a valid graph, not a chain, and its golden run has spikes in
    every layer (so the RTL comparison below compares something)."""
    net = GRAPHS[name][0]()
    net.check_graph()
    assert not net.is_chain
    x = graph_inputs(net, 4, seed=3)
    trace = golden.run(net, x)
    for k, spikes in enumerate(trace.spikes):
        assert 0 < int(spikes.sum()) < spikes.numel(), (name, k)


def test_graph_plans():
    """What the top builds for a graph: forks where a node feeds several, joins in front of
    several inputs, the delay buffer sized to one timestep of its source."""
    top = NetworkTop(two_layer_cycle(), 2, stall_points=True)
    assert [u.stem for u in top.units] == ["join", "dense", "dense", "fork"]
    assert top.stall_links == ["spikes_in -> unit0_join.0", "unit3_fork.0 -> unit0_join.1",
                               "unit0_join -> layer0", "layer0 -> layer1", "layer1 -> unit3_fork",
                               "unit3_fork.1 -> readout"]
    # fc1's 6 neurons and a tick: one timestep in the delayed input's buffer (6 in memory,
    # one in the output register), each token 3 address bits + tick + last
    mems = network_memories(two_layer_cycle(), 2)
    assert [(m.role, m.depth, m.width) for m in mems if "delay" in m.role] == [("delay buffer 1", 6, 5)]
    Fragment.get(top, None)


def test_unpaceable_graphs_are_refused():
    net = random_quant_network([20, 8, 5], seed=11, timesteps=6)
    net.input_shape = (20,)
    net.layers[1].segments = (8, 5)
    net.layers[1].weight = np.zeros((5, 13), dtype=np.int64)
    # fc1 reads fc0 and, delayed, itself: fine; fc1 reading only its own spikes is not
    net.inputs = {"fc1": [Edge("fc1", 1)]}
    with pytest.raises(ValueError, match="'fc1': every input is delayed"):
        plan_units(net)
    # a delay on a feed-forward edge (no cycle): refused, naming both nodes
    net.layers[1].weight = np.zeros((5, 8), dtype=np.int64)
    net.layers[1].segments = ()
    net.inputs = {"fc1": [Edge("fc0", 1)]}
    with pytest.raises(ValueError, match="every input is delayed"):
        plan_units(net)
    net.layers[1].weight = np.zeros((5, 28), dtype=np.int64)
    net.layers[1].segments = (20, 8)
    net.inputs = {"fc1": [Edge(INPUT), Edge("fc0", 1)]}
    with pytest.raises(ValueError, match="'fc1': the delayed input from 'fc0' is not part of a cycle"):
        plan_units(net)


@pytest.mark.slow
def test_graphs_on_verilator_with_stalls_on_every_link(tmp_path):
    """Every graph network against the golden model, every spike of every layer: each sample
    without stalls, again with random stalls on every link and the input, and then all
    samples back to back (overlapping inferences)."""
    cases = []
    for name, (make, parallel) in sorted(GRAPHS.items()):
        net = make()
        x = graph_inputs(net, 3, seed=5)
        program = [Inference(s) for s in range(len(x))]
        program += [Inference(s, policy, 10 * s + 1, input_stall=True)
                    for s in range(len(x)) for policy in ("beat", "mixed")]
        program += [Inference(0, "mixed", 99)] + [Inference(s, overlap=True) for s in range(1, len(x))]
        cases.append(NetworkCase(net, parallel, x, program, label=name))
    result = run_batch(cases, tmp_path / "graphs")
    for case, items in zip(cases, result.networks):
        for i, r in enumerate(items):
            assert not r.aborted
            assert r.mismatches == 0, f"{case.label}, program entry {i}: {r.records[:3]}"
        # Stalls and overlap change timing only: every tap sent the plain run's tokens.
        plain = {r.sample: r.digests for r in items[:len(case.inputs)]}
        for i, r in enumerate(items):
            assert r.digests == plain[r.sample], f"{case.label}, program entry {i}: other tokens"
    assert result.mismatches == 0
    print(f"\ngraph RTL: {result.spikes_compared} decisions compared, {result.sim_cycles} cycles")


def test_a_layer_may_close_an_inference_after_done(tmp_path):
    """`done` need not wait for every layer: a fork hands a token on only once every consumer
    has it, so while a recurrent edge is held, the layer's final tick has reached the output
    path (and `done` has come) but has not left the layer, whose tap shows it later. The
    testbench waits for it (the graph fuzzer found this as a lost tick, then as an extra
    tick in the next inference: GRAPH_REGRESSIONS in tests/test_fuzz.py).

    Deterministic: T = 1, and the sample makes fc0 silent, so fc0's whole output is its
    tick; the recurrent link is held until `done`, and the next inference must not see that
    tick."""
    net = recurrent_dense()
    net.timesteps = 1
    net.layers[0].bias = np.minimum(net.layers[0].bias, 0)  # fc0 silent on a silent input
    x = graph_inputs(net, 2, seed=5)
    x[0] = 0
    trace = golden.run(net, x)
    assert not trace.spikes[0][0].any() and trace.spikes[0][1].any()
    recurrent = [name for name in NetworkTop(net, 2, stall_points=True).stall_links
                 if name.endswith("_join.1")]
    assert recurrent == ["unit2_fork.0 -> unit0_join.1"]
    held = {"stall": "hold", "stall_links": recurrent}
    program = [Inference(0, **held), Inference(1), Inference(0, seed=1, **held), Inference(0)]
    result = run_batch([NetworkCase(net, 2, x, program, label="recurrent_dense T=1")],
                       tmp_path / "late_tick")
    items = result.networks[0]
    for i, r in enumerate(items):
        assert not r.aborted and r.mismatches == 0, f"program entry {i}: {r.records[:3]}"
    # fc0's tick did wait: it left fc0 (and its tap) after `done`, and the token sequences
    # are those of the unstalled run.
    assert items[0].digests == items[2].digests == items[3].digests
    assert items[0].held_cycles > 0


# ----------------------------------------------------------------------------- cost model


def test_graph_model_is_the_chain_model_on_chains():
    """The graph form of the cost model (forks, joins, links) gives a chain's cycles exactly
    as the chain form does, pools and a map at the readout included."""
    nets = [(random_quant_network([20, 12, 5], seed=3, timesteps=4), 3),
            (random_conv_network((2, 8, 8), [{"type": "conv", "out": 6, "kernel": 3, "padding": 1},
                                             {"type": "max_pool", "kernel": 2},
                                             {"type": "conv", "out": 4, "kernel": 3, "groups": 2}],
                                 seed=5, timesteps=3), 2),
            (random_conv_network((2, 8, 8), [{"type": "conv", "out": 6, "kernel": 3, "padding": 1},
                                             {"type": "sum_pool", "kernel": 2}, {"type": "flatten"},
                                             {"type": "dense", "out": 3}], seed=5, timesteps=3), 2)]
    for net, parallel in nets:
        x = random_spikes((3, net.timesteps, *net.input_shape), 0.3, seed=1)
        trace = golden.run(net, x)
        for b in range(3):
            chain = inference_timing(chain_stages(net, parallel, trace, b, x)).cycles
            assert graph_timing(*graph_model(net, parallel, trace, b, x)).cycles == chain


@pytest.mark.parametrize("name", ["recurrent_dense", "two_layer_cycle"])
def test_a_recurrent_spike_costs_what_an_input_event_costs(name):
    """The engine reading a delayed edge spends ``G`` walker steps on each of its events,
    recurrent or external (the golden model's ``layer_events`` count both), plus a fire pass
    of ``G`` words per step."""
    make, parallel = GRAPHS[name]
    net = make()
    x = graph_inputs(net, 3, seed=5)
    trace = golden.run(net, x)
    g = net.layers[0].geometry(parallel)
    for b in range(3):
        timing = graph_timing(*graph_model(net, parallel, trace, b, x))
        events = int(trace.layer_events[0][b].sum())
        external = int(np.count_nonzero(x[b]))
        assert events > external  # recurrent events are part of it
        assert timing.engine_busy[0] == (events + net.timesteps) * g.groups


@pytest.mark.parametrize("wide", [False, True])
def test_graph_cost_model_is_cycle_exact(monkeypatch, wide):
    """The modelled ``cycles`` of every graph network equal the Amaranth-simulated RTL's, on
    an idle accelerator fed in C-order (tests/test_cost_model.py's conditions); the RTL's
    spikes are checked against the golden model on the way. ``wide``: every layer at full
    width (``G = 1``), so that the joins and forks, not the walkers, set the pace."""
    import hwsim
    from test_cost_model import c_order_tokens

    monkeypatch.setattr(hwsim, "input_tokens", c_order_tokens)
    for name, (make, parallel) in sorted(GRAPHS.items()):
        net = make()
        parallel = 16 if wide else parallel
        x = graph_inputs(net, 3, seed=5)
        rtl = hwsim.check_against_golden(net, parallel, x, settle=2000)["cycles"]
        assert expected_cycles(net, parallel, golden.run(net, x), x) == rtl, name


@pytest.mark.slow
@pytest.mark.parametrize("name", ["two_layer_cycle", "sew_residual", "fanout_concat"])
def test_graphs_through_run_rtl_on_icarus(tmp_path, name):
    """``hwgen sim``'s path (``run_rtl``, sim/tb_top.py) on Icarus, a four-state simulator:
    a join whose token had constant bits in an ``always @*`` without inputs left them X
    there (extra ticks, a hang) while Verilator and Amaranth's simulator saw 0."""
    from amaranth.back import verilog

    from hwgen.accelerator.top import build_top
    from hwgen.simulate import run_rtl

    make, parallel = GRAPHS[name]
    net = make()
    x = graph_inputs(net, 3, seed=9)
    path = tmp_path / "hwgen_top.v"
    path.write_text(verilog.convert(build_top(net, parallel), name="hwgen_top", emit_src=False))
    result = run_rtl(path, net, x, golden.run(net, x), simulator="icarus", build_dir=tmp_path / "sim",
                     stall=True)
    assert result.mismatches == 0, result.first_mismatch
