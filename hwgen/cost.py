"""The cycle cost of one inference: a token-level model of the chain of units.

``NetworkTop`` (docs/hardware.md) is a chain of *units* joined by valid/ready token streams:
layer engines (``dense.py``, ``conv.py``) and address remaps (``pool.py``: sum pool, max pool,
flatten), then the readout. This module predicts its ``cycles`` port (from the edge that
accepted the first input token through the ``done`` cycle) from the work that flows through
that chain, without running the RTL.

Why a token-level model
-----------------------
Two older models (``report.event_driven_cycles``: the busiest layer sets the pace;
``top.estimate_cycles``: timestep-following, but every output spike at one per cycle; both
replaced by this one) missed the same thing: a unit that is slow to accept holds its upstream back. A convolution's spike
queue holds 18 fire-pass words, not a pass; when it is full the fire pass waits, so the
walker does not start the next timestep, so the engine stops taking input, and so on up the
chain. On the NIR paper's N-MNIST CNN that made the busiest-layer model 1.5x low.

So this model follows every token, and every fire-pass word that holds spikes, through the
structures that the RTL has, with the RTL's handshake rules written as max-plus recurrences
over *edges* (edge ``e`` ends cycle ``e``; a transfer happens at an edge where valid and ready
are both high):

* a stream transfer: ``x[i] = max(offer[i], ready[i])``; a producer offers its next token from
  the cycle after the previous one transferred (``offer[i+1] >= x[i] + 1``): one per cycle;
* a *register stage* (sum-pool remap, max-pool dedup, flatten with multiplies, the spike
  serializer) takes the next token in the cycle its held one leaves (``ready = ~valid |
  out.ready``): ``take[i] = max(offer[i], x[last token of i-1])``; a token that becomes ``n``
  tokens (a window count, a mask of spikes) holds it for ``n`` transfers, one per cycle;
* a FIFO of depth ``D`` (amaranth ``SyncFIFO``, the convolution's event buffer) has room for
  write ``k`` only after read ``k - D`` (``write[k] >= read[k-D] + 1``), and a written entry is
  readable the cycle after (``read[k] >= write[k] + 1``);
* the spike queue (``SyncFIFOBuffered`` of ``queue_words`` entries: an inner memory of
  ``queue_words - 1`` and an output register): write ``k`` needs the inner read of entry
  ``k - (queue_words - 1)`` (``write[k] >= inner[k - queue_words + 1] + 1``); the inner read
  moves an entry to the output register once it is written and the register is free
  (``inner[k] = max(write[k] + 1, serializer_take[k-1])``); the serializer takes it a cycle
  later at the earliest, and once its previous entry's last token left;
* the engine's walker (stage 0) and lane datapath (stage 1): a job (an input event of ``n``
  walker steps, or a tick's fire pass of ``fire_words`` steps) is taken when the walker is
  free, in the cycle its previous job's last step advances; each step advances one cycle after
  the previous one, except that stage 1 holds a fire-pass word until the spike queue has room
  (``groups.ready``, for every word, with spikes or not), and stage 0 waits with it.

Everything is an ``int`` edge; no cycle is simulated. The walker is followed per job, the fire
pass per word that holds spikes (a run of empty words costs one addition), every stream per
token: an inference of the NIR CNN (~57k cycles at ``P = 4``) takes about 20 ms.

Accuracy: cycle-exact, every sample, on every row of bench/results/2026-11-22.json (the four
models at every ``P``, the NIR CNN among them, the 56 single-layer rows and the rate sweep)
and on the Amaranth-simulated chains of tests/test_cost_model.py (overlapping pools, pools and
flattens at the input, grouped and depthwise convolutions, dropped events, direct input, dense
layers held back by a slower one).

Assumptions
-----------
* The accelerator is idle when the inference starts (as after the previous inference's
  ``done``): every unit is empty, every engine's walker free. The input is offered back to
  back (the cocotb testbench and ``hwgen bench`` do that), one token per cycle at most.
* The order of tokens within a timestep is the one the RTL sees: the testbench sends the input
  in C-order, a dense engine fires in ascending address order, a convolution in raster order of
  positions, channels ascending; remaps keep their input's order (a sum pool sends a spike's
  windows together). The stages carry per-token arrays in that order
  (``hwgen.accelerator.cycles.chain_stages`` builds them from the golden model, asking each
  unit's kind).
* The structure constants are those of ``lanes.py`` and ``spike_queue.py``: stage 0 takes a
  step the cycle after it takes its job, stage 1 writes the fire-pass word one cycle later, the
  queue moves an entry to its output register one cycle after the write, the serializer takes
  it a cycle after that and sends its first token the cycle after: ``pipeline_latency`` = 5.
  A kind with a longer ``pipeline_latency`` is modelled as a longer path from the queue to the
  serializer (its walker still advances one step per cycle).
* Cross-inference effects are left out: the max-pool bitmap clear of the previous inference,
  the reset passes after reset (``cycles`` excludes them anyway), and the start queue of
  ``NetworkTop`` (it only bounds inferences in flight).

Graphs (docs/hardware.md, "Graphs") add two structures, followed the same way on the links
of the network top: a fork (:class:`ForkStage`; a token leaves at its last consumer's take)
and a join (:class:`JoinStage`; round-robin grants into an output register, a delayed
input's buffer, its step-0 credit and final-step drop), run by :func:`graph_timing`. Cycle-exact
on the simulated graphs of tests/test_graph_rtl.py, and equal to :func:`inference_timing` on
chains.

The API knows nothing of layers: :class:`EngineGeometry` (every number of an engine that the
model needs; each layer kind's ``geometry``), :class:`EngineStage` and :class:`RemapStage` (one
unit of the chain and the work of one inference through it; each kind's ``cost_stages``),
:func:`inference_cycles` (the model). ``hwgen.accelerator.cycles`` applies it to a network:
every report, the DSE, the bench and the tests ask it, and nothing else models cycles.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["EngineGeometry", "EngineStage", "ForkStage", "GraphNode", "JoinStage", "RemapStage", "Stage",
           "Timing", "graph_timing", "inference_cycles", "inference_timing"]

#: An edge before anything happened: ``max`` with it is a no-op.
_NEVER = -(1 << 60)
#: Cycles from a spike-queue write to the serializer's first token of that entry: the inner
#: read into the output register, the serializer taking it, its token register.
_QUEUE_TO_TOKEN = 3


# ============================================================================ the stages


@dataclass(frozen=True)
class EngineGeometry:
    """How a spiking layer is folded onto lanes, and the engine's buffers and latencies.

    ``lanes`` (``P``) neurons or channels are updated per cycle; ``groups`` (``G``) is the
    number of words a step over one output position takes (dense: ``ceil(N_out / P)``;
    convolution: ``ceil(C_out_g / P)``), so an input event costs ``G`` walker steps per
    in-range output position it reaches. ``reach`` is the number of neurons one input event
    reaches per in-range position (``G * P`` rounded down to the layer: ``ops / reach`` is the
    number of (event, position) pairs of the golden model's ``layer_ops``).

    ``fire_words`` is the number of membrane words a tick's fire pass walks (dense: ``G``;
    convolution: ``H_out * W_out * groups * G``), ``words_per_position`` those of one output
    position (dense: all of them); ``queue_words`` the spike queue's capacity in fire-pass
    words (the ``SyncFIFOBuffered`` depth: ``G + 2`` dense, ``queue_depth + 2`` = 18 conv).
    ``event_buffer`` is the depth of the FIFO between the input port and the walker (conv: 4)
    or 0 when the port is the walker (dense); ``decode_latency`` the cycles from the port
    taking an event to the walker taking it at the earliest (conv: 1, dense: 0).
    ``pipeline_latency`` runs from the edge at which the walker took a tick to the first token
    of its fire pass (5 for both engines).
    """

    lanes: int
    groups: int
    reach: int
    fire_words: int
    queue_words: int
    pipeline_latency: int = 5
    decode_latency: int = 0
    event_buffer: int = 0
    words_per_position: int | None = None  # None: every fire word is one position (dense)

    def __post_init__(self):
        if min(self.lanes, self.groups, self.fire_words) < 1 or self.queue_words < 2:
            raise ValueError(f"not an engine geometry: {self}")
        if self.event_buffer < 0 or self.decode_latency < 0 or self.pipeline_latency < 4:
            raise ValueError(f"not an engine geometry: {self}")


@dataclass
class EngineStage:
    """A layer engine and the work of one inference through it.

    ``taps[t]`` has one entry per input token of timestep ``t`` (ticks excluded) in the order
    the engine receives them: the in-range output positions the event reaches (dense: 1 for
    every token). The walker spends ``taps * G`` steps on it; a convolution event with 0 taps
    is dropped at the port (it costs its transfer only).

    ``spike_words[t]`` (ascending) are the fire-pass words of timestep ``t`` that hold spikes
    and ``spike_counts[t]`` their number of spikes (at most ``lanes`` each): the engine sends
    those spikes in word order, then the tick. :meth:`from_words` makes both from the word of
    every spike; :meth:`from_totals` approximates a stage from per-timestep totals.
    """

    geometry: EngineGeometry
    taps: Sequence[np.ndarray]
    spike_words: Sequence[np.ndarray]
    spike_counts: Sequence[np.ndarray]

    def __post_init__(self):
        if not (len(self.taps) == len(self.spike_words) == len(self.spike_counts)):
            raise ValueError("an EngineStage needs taps, spike words and counts per timestep")

    @property
    def timesteps(self) -> int:
        return len(self.taps)

    def tokens_in(self, t: int) -> int:
        return len(self.taps[t])

    def tokens_out(self, t: int) -> int:
        return int(np.sum(self.spike_counts[t]))

    @classmethod
    def from_words(cls, geometry: EngineGeometry, taps: Sequence[np.ndarray],
                   words: Sequence[np.ndarray]) -> EngineStage:
        """``words[t]``: the fire-pass word of every spike of timestep ``t``, in any order."""
        spike_words, spike_counts = [], []
        for w in words:
            found, counts = np.unique(np.asarray(w, dtype=np.int64), return_counts=True)
            if len(found) and (found[0] < 0 or found[-1] >= geometry.fire_words):
                raise ValueError(f"fire-pass word outside 0..{geometry.fire_words - 1}")
            spike_words.append(found)
            spike_counts.append(counts)
        return cls(geometry, [np.asarray(t, dtype=np.int64) for t in taps], spike_words,
                   spike_counts)

    @classmethod
    def from_totals(cls, geometry: EngineGeometry, events: Sequence[float],
                    taps: Sequence[float], spikes: Sequence[float]) -> EngineStage:
        """An approximate stage from per-timestep totals only (e.g. means over a data set):
        ``events[t]`` input tokens sharing ``taps[t]`` in-range positions evenly, and
        ``spikes[t]`` output spikes spread evenly over the fire pass. Use per-token arrays
        where they are known: where the spikes sit in the pass matters when the pass waits
        on its queue. In a chain, each stage's input tokens per timestep must still be what
        its upstream sends (:func:`inference_cycles` checks), so round totals consistently."""
        stage_taps, words = [], []
        for e, f, s in zip(events, taps, spikes):
            e, f, s = round(e), round(f), round(s)
            spread = np.full(e, f // e if e else 0, dtype=np.int64)
            spread[:f - int(spread.sum()) if e else 0] += 1
            stage_taps.append(spread)
            s = min(s, geometry.fire_words * geometry.lanes)
            # s spikes, at most `lanes` per word, spread over the pass
            full, rest = divmod(s, geometry.lanes)
            n_words = full + (rest > 0)
            where = (np.arange(n_words) * geometry.fire_words) // max(n_words, 1)
            per = np.full(n_words, geometry.lanes, dtype=np.int64)
            if rest:
                per[-1] = rest
            words.append(np.repeat(where, per))
        return cls.from_words(geometry, stage_taps, words)


@dataclass
class RemapStage:
    """An address remap between engines (pool, flatten) and the work through it.

    ``latency`` 0: wires (an identity flatten), tokens pass untouched. Otherwise a register
    stage that turns input token ``i`` of timestep ``t`` into ``fanout[t][i]`` output tokens,
    one per cycle (a sum pool's windows; 0 drops it: a max-pool dedup repeat, a spike in no
    window), followed by ``latency - 1`` plain register stages. ``fanout`` ``None`` passes
    every token once. A max pool is two stages: the window remap, then the dedup
    (``fanout`` 1 for the first event of a window in a timestep, else 0, and ``tick_wait``).

    ``tick_wait``: a tick leaves no earlier than ``tick_wait + 1`` cycles after the previous
    tick left (the max-pool dedup clears the other bitmap bank, ``C * H_out`` rows, before it
    lets the next timestep's tick through).
    """

    latency: int
    fanout: Sequence[np.ndarray] | None = None
    tick_wait: int = 0

    def __post_init__(self):
        if self.latency < 0 or (self.latency == 0 and (self.fanout is not None or self.tick_wait)):
            raise ValueError("a RemapStage of latency 0 is wires: no fanout, no tick_wait")


Stage = EngineStage | RemapStage


@dataclass
class ForkStage:
    """A fork (``hardware.fork``): each token goes to every consumer, offered to all from the
    edge it is offered to the fork; it leaves the producer at the edge the last consumer
    takes it."""

    consumers: int


@dataclass
class JoinStage:
    """A join (``hardware.merge``) and what its inputs carry in one inference:
    ``tokens[k][t]`` is input ``k``'s number of events (ticks excluded) in its source's
    timestep ``t``; ``delayed[k]`` marks a recurrent input (its step ``t`` lands in the join's
    step ``t + 1``, its last is dropped; it passes a buffer of one timestep first).

    Inputs offered at once are granted round-robin (the RTL's arbiter, from reset: input 1
    first), one per cycle into the output register; a tick is taken when offered; the join's
    tick loads the cycle after the last input's tick was taken."""

    delayed: Sequence[bool]
    tokens: Sequence[Sequence[int]]

    def tokens_out(self, t: int) -> int:
        return sum(int(n[t - 1] if d else n[t]) if (t or not d) else 0
                   for n, d in zip(self.tokens, self.delayed))


@dataclass
class GraphNode:
    """A stage of a graph (:func:`graph_timing`) and its links: ``inputs`` and ``outputs``
    are link numbers (a join's inputs, a fork's outputs in port order)."""

    stage: Stage | ForkStage | JoinStage
    inputs: list[int]
    outputs: list[int]


# ============================================================================ the model

# Every unit of the chain is a Python generator that computes its edges in token order. When
# it needs an edge that another generator has not computed yet, it yields that generator; the
# scheduler (:func:`_run`) then runs the one it waits on. The handshakes only ever depend on
# earlier tokens, so this always progresses, and the recurrences stay as plain as the RTL
# they mirror.

_Proc = Generator["_Proc", None, None]


class _Link:
    """One valid/ready stream: the edge from which each token is offered, and the edge it
    transferred at. The producer appends ``offer``, the consumer ``xfer``; each waits on the
    other's generator."""

    __slots__ = ("consumer", "offer", "producer", "xfer")

    def __init__(self):
        self.offer: list[int] = []
        self.xfer: list[int] = []
        self.producer: _Proc | None = None
        self.consumer: _Proc | None = None


def _source(out: _Link, tokens: int) -> _Proc:
    """The driver: a token in every cycle the chain takes one (back-to-back input)."""
    offer = 0
    for i in range(tokens):
        out.offer.append(offer)
        while len(out.xfer) <= i:
            yield out.consumer
        offer = out.xfer[i] + 1


def _sink(inp: _Link, tokens: int) -> _Proc:
    """The readout: always ready."""
    for i in range(tokens):
        while len(inp.offer) <= i:
            yield inp.producer
        inp.xfer.append(inp.offer[i])


def _send(out: _Link, count: int, offer: int, j: int, sent: int
          ) -> Generator[_Proc, None, tuple[int, int]]:
    """Offer ``count`` tokens on ``out`` (its ``j``-th on), one per cycle from edge ``offer``;
    returns the edge at which the last one left (``sent`` if none) and the next index."""
    for _ in range(count):
        out.offer.append(offer)
        while len(out.xfer) <= j:
            yield out.consumer
        sent = out.xfer[j]
        j += 1
        offer = sent + 1
    return sent, j


def _register(inp: _Link, out: _Link, fanout: list[list[int]], tick_wait: int) -> _Proc:
    """A register stage that sends ``n`` tokens for each input token (a tick sends itself).

    It takes the next token in the cycle its last one leaves (``ready = ~valid | (out.ready &
    done)``), or the cycle after it took one that sends nothing (dropped while held).
    """
    release = _NEVER  # the edge from which the stage can take its next token
    last_tick = None
    i = j = 0
    for per_step in fanout:
        for n in per_step + [-1]:  # -1: the tick
            while len(inp.offer) <= i:
                yield inp.producer
            take = max(inp.offer[i], release)
            inp.xfer.append(take)
            i += 1
            if n == 0:
                release = take + 1
                continue
            offer = take + 1
            if n < 0 and last_tick is not None:
                offer = max(offer, last_tick + tick_wait + 1)
            sent, j = yield from _send(out, max(n, 1), offer, j, _NEVER)
            release = sent
            if n < 0:
                last_tick = sent


class _Engine:
    """A layer engine: the input port (with the event buffer, if any), the walker and lane
    datapath, the spike queue with its serializer: three generators over shared lists."""

    def __init__(self, stage: EngineStage, inp: _Link, out: _Link):
        self.stage, self.g = stage, stage.geometry
        self.inp, self.out = inp, out
        self.events: list[tuple[int, int]] = []  # event buffer: (write edge, steps; -1 tick)
        self.takes: list[int] = []  # edge at which the walker took each buffered event
        self.writes: list[tuple[int, int]] = []  # spike queue: (write edge, tokens)
        self.inner: list[int] = []  # edge at which each queue entry reached the output register
        self.tick_edges: list[int] = []  # walker takes of the ticks (for inspection)
        self.busy = 0  # walker steps, to report the engine's own work
        self.walker = self._walker()
        self.serializer = self._serializer()
        self.port = self._port() if self.g.event_buffer else None
        inp.consumer = self.port or self.walker
        out.producer = self.serializer

    def processes(self) -> list[_Proc]:
        return [p for p in (self.port, self.walker, self.serializer) if p is not None]

    def _port(self) -> _Proc:
        """The conv engine's port: takes a token when the event buffer has room, drops an
        event that reaches no tap, buffers the others and the ticks."""
        depth = self.g.event_buffer
        inp, events, takes = self.inp, self.events, self.takes
        groups = self.g.groups
        i = 0
        for taps in self.stage.taps:
            for n in taps.tolist() + [-1]:
                while len(inp.offer) <= i:
                    yield inp.producer
                take = inp.offer[i]
                k = len(events)
                if k >= depth:  # room: the entry `depth` back has been taken by the walker
                    while len(takes) <= k - depth:
                        yield self.walker
                    take = max(take, takes[k - depth] + 1)
                inp.xfer.append(take)
                i += 1
                if n != 0:
                    events.append((take, n * groups if n > 0 else -1))

    def _jobs(self) -> Generator[tuple[int, int] | _Proc, None, None]:
        """The walker's jobs ``(edge from which it is available, steps; -1 a tick)``, or the
        generator to wait on."""
        if self.g.event_buffer:
            k = 0
            for taps in self.stage.taps:
                for _ in range(int(np.count_nonzero(taps)) + 1):
                    while len(self.events) <= k:
                        yield self.port
                    written, steps = self.events[k]
                    yield written + self.g.decode_latency, steps
                    k += 1
        else:
            inp, i = self.inp, 0
            groups = self.g.groups
            for taps in self.stage.taps:
                for n in taps.tolist() + [-1]:
                    while len(inp.offer) <= i:
                        yield inp.producer
                    yield inp.offer[i], n * groups if n >= 0 else -1
                    i += 1

    def _walker(self) -> _Proc:
        """Stage 0 (the walker) and stage 1 (lanes, write-back, the word to the queue)."""
        g = self.g
        room_back = g.queue_words - 1  # inner entries of the buffered FIFO
        words = g.fire_words
        buffered = bool(g.event_buffer)
        writes, inner = self.writes, self.inner
        free = _NEVER  # edge from which the walker can take its next job
        q_last = _NEVER  # edge at which stage 1 let go of the last step it held
        t = 0
        for job in self._jobs():
            if not isinstance(job, tuple):
                yield job
                continue
            ready, steps = job
            take = max(ready, free)
            if buffered:
                self.takes.append(take)
            else:
                self.inp.xfer.append(take)
            # Stage 0 holds the first step from the cycle after the take; it advances when
            # stage 1 lets go of what it holds (a fire-pass word waiting for queue room).
            first = max(take + 1, q_last)
            if steps >= 0:  # integrate: stage 1 never waits on an integrating step
                self.busy += steps
                free = first + steps - 1  # walker_free in the cycle the last step advances
                q_last = free + 1
                continue
            # ---- a tick: the fire pass. Word s leaves stage 1 at q[s] = max(q[s-1] + 1,
            # room): every word, with spikes or not, needs room in the queue (groups.ready),
            # and only words with spikes (and the last, which carries the tick) take an
            # entry. The room a word waits for changes only when an entry is written, so a
            # run of empty words costs one addition.
            self.tick_edges.append(take)
            self.busy += words
            spike_words = self.stage.spike_words[t].tolist()
            counts = self.stage.spike_counts[t].tolist()
            if not spike_words or spike_words[-1] != words - 1:
                spike_words.append(words - 1)
                counts.append(0)
            counts[-1] += 1  # the last word's entry carries the tick
            pos = 0  # next word of the pass
            q = first  # stage 1 can take word `pos` from edge q + 1 (q of word pos - 1)
            before_last = first  # stage-0 advance edge of the last word: q of the word before
            for p, n in zip(spike_words, counts):
                k = len(writes)
                room = _NEVER
                if k >= room_back:
                    while len(inner) <= k - room_back:
                        yield self.serializer
                    room = inner[k - room_back] + 1
                q_pos = max(q + 1, room)
                before_last = q if p == pos else q_pos + (p - pos) - 1
                q = q_pos + (p - pos)
                writes.append((q, n))
                pos = p + 1
            free = before_last
            q_last = q
            t += 1

    def _serializer(self) -> _Proc:
        """The buffered FIFO's output register and the serializer: one token per cycle."""
        extra = self.g.pipeline_latency - 2 - _QUEUE_TO_TOKEN  # 0 for today's engines
        writes, inner, out = self.writes, self.inner, self.out
        entries = sum(len(w) + (not len(w) or w[-1] != self.g.fire_words - 1)
                      for w in self.stage.spike_words)
        took = _NEVER  # edge at which the serializer took the previous entry
        sent = _NEVER  # edge at which the previous entry's last token left
        j = 0
        for k in range(entries):
            while len(writes) <= k:
                yield self.walker
            written, tokens = writes[k]
            # the inner read moves the entry to the output register once that is free
            moved = max(written + 1 + extra, took)
            inner.append(moved)
            # the serializer takes it in the cycle the previous entry's last token leaves
            took = max(moved + 1, sent)
            sent, j = yield from _send(out, tokens, took + 1, j, sent)


def _run(procs: list[_Proc], sink: _Proc) -> None:
    """Runs the generators, demand-driven from the readout: a generator that waits is
    suspended and the one it waits on runs; when that one in turn waits on a generator
    already waiting (upstream and downstream need each other's earlier tokens), control goes
    back there. A generator waiting on one that has finished is a bug (token counts that do
    not match), not a schedule."""
    stack, waiting, finished = [sink], {sink}, set()
    while stack:
        proc = stack[-1]
        try:
            target = next(proc)
        except StopIteration:
            finished.add(stack.pop())
            waiting.discard(proc)
            continue
        if target in finished or target is None:
            raise RuntimeError("cost model stuck: the stages' token counts do not match")
        if target in waiting:
            while stack[-1] is not target:
                waiting.discard(stack.pop())
        else:
            stack.append(target)
            waiting.add(target)
    for proc in procs:  # what is left only records (the serializers' last waits)
        if proc not in finished:
            for target in proc:
                raise RuntimeError("cost model stuck: the stages' token counts do not match")


def _tokens_in(stages: Sequence[Stage], timesteps: int) -> list[list[int]]:
    """Input tokens per timestep (ticks excluded) of every stage, checked along the chain."""
    counts: list[list[int] | None] = []
    flow = None  # what the previous stage sends per timestep
    for n, stage in enumerate(stages):
        if isinstance(stage, EngineStage):
            own = [stage.tokens_in(t) for t in range(timesteps)]
        elif stage.fanout is not None:
            own = [len(f) for f in stage.fanout]
        else:
            own = flow
        if flow is not None and own is not None and list(own) != list(flow):
            raise ValueError(f"stage {n} takes {list(own)} tokens per timestep but its upstream "
                             f"sends {list(flow)}")
        counts.append(own)
        flow = _tokens_out(stage, own, timesteps) if own is not None else None
    # pass-through remaps at the head take what the first stage that knows expects
    known = next((c for c in counts if c is not None), None)
    if known is None:
        raise ValueError("no stage says how many input tokens each timestep has")
    return [known if c is None else c for c in counts]


def _tokens_out(stage: Stage, tokens_in: list[int], timesteps: int) -> list[int]:
    if isinstance(stage, EngineStage):
        return [stage.tokens_out(t) for t in range(timesteps)]
    if stage.fanout is not None:
        return [int(np.sum(f)) for f in stage.fanout]
    return list(tokens_in)


@dataclass
class Timing:
    """What :func:`inference_timing` found: the ``cycles`` port's value and the edges behind
    it, counted from the edge that took the first input token (0)."""

    cycles: int
    #: per engine stage, the edge at which its walker took each timestep's tick
    engine_ticks: list[list[int]] = field(default_factory=list)
    #: per engine stage, its walker steps over the inference (integrate and fire passes)
    engine_busy: list[int] = field(default_factory=list)
    #: per link (0: into the first stage, n: out of stage n - 1), the edge each tick left at
    link_ticks: list[list[int]] = field(default_factory=list)


def inference_timing(stages: Sequence[Stage], readout_latency: int = 1) -> Timing:
    """:func:`inference_cycles`, with the edges it found (for reports and debugging)."""
    stages = [s for s in stages if not (isinstance(s, RemapStage) and s.latency == 0)]
    engines = [s for s in stages if isinstance(s, EngineStage)]
    if not engines:
        raise ValueError("the chain has no engine")
    timesteps = engines[0].timesteps
    if any(e.timesteps != timesteps for e in engines):
        raise ValueError("every engine stage needs the same number of timesteps")
    counts = _tokens_in(stages, timesteps)
    flows = [counts[0]] + [_tokens_out(s, c, timesteps) for s, c in zip(stages, counts)]

    links = [_Link() for _ in range(len(stages) + 1)]
    ends = list(links)  # the link each stage's output reaches the next stage on
    source = _source(links[0], sum(flows[0]) + timesteps)
    links[0].producer = source
    procs: list[_Proc] = [source]
    units: list[_Engine] = []
    for n, stage in enumerate(stages):
        inp, out = ends[n], links[n + 1]
        if isinstance(stage, EngineStage):
            unit = _Engine(stage, inp, out)
            procs += unit.processes()
            units.append(unit)
            continue
        fanout = ([list(map(int, f)) for f in stage.fanout] if stage.fanout is not None
                  else [[1] * c for c in counts[n]])
        proc = _register(inp, out, fanout, stage.tick_wait)
        inp.consumer = out.producer = proc
        procs.append(proc)
        for _ in range(stage.latency - 1):  # plain register stages behind the first
            nxt = _Link()
            proc = _register(out, nxt, [[1] * c for c in flows[n + 1]], 0)
            out.consumer = nxt.producer = proc
            procs.append(proc)
            out = nxt
        ends[n + 1] = out
    sink = _sink(ends[-1], sum(flows[-1]) + timesteps)
    ends[-1].consumer = sink
    procs.append(sink)

    _run(procs, sink)
    first = links[0].xfer[0]
    timing = Timing(cycles=ends[-1].xfer[-1] - first + readout_latency)
    for unit in units:
        timing.engine_ticks.append([e - first for e in unit.tick_edges])
        timing.engine_busy.append(unit.busy)
    for link, flow in zip([links[0]] + ends[1:], flows):
        at = np.cumsum(np.asarray(flow) + 1) - 1
        timing.link_ticks.append([link.xfer[e] - first for e in at])
    return timing


def inference_cycles(stages: Sequence[Stage], readout_latency: int = 1) -> int:
    """The ``cycles`` port of one inference through the chain ``stages`` (input first; the
    readout follows the last stage and is always ready).

    ``readout_latency``: cycles from the edge at which the readout takes the last tick
    through the end of the count (``done`` is high the cycle after: 1).
    """
    return inference_timing(stages, readout_latency).cycles


# ============================================================================ graphs


def _fork(inp: _Link, outs: list[_Link], tokens: int) -> _Proc:
    """Every token to every output, from the edge it is offered; it leaves at the latest
    consumer's take (the RTL's per-output taken bits)."""
    for i in range(tokens):
        while len(inp.offer) <= i:
            yield inp.producer
        for out in outs:
            out.offer.append(inp.offer[i])
        for out in outs:
            while len(out.xfer) <= i:
                yield out.consumer
        inp.xfer.append(max(out.xfer[i] for out in outs))


class _Buffer:
    """A delayed input's buffer (``SyncFIFOBuffered`` of one timestep): it always has room,
    so a token is written at the edge it is offered; it reaches the output register a cycle
    later, or when the previous one was taken, and is offered from the edge after. Two
    generators, so that writing never waits on the reading side."""

    def __init__(self, inp: _Link, out: _Link, tokens: int):
        self.inp, self.out, self.tokens = inp, out, tokens
        self.writer = self._writer()
        self.reader = self._reader()
        inp.consumer = self.writer
        out.producer = self.reader

    def _writer(self) -> _Proc:
        inp = self.inp
        for i in range(self.tokens):
            while len(inp.offer) <= i:
                yield inp.producer
            inp.xfer.append(inp.offer[i])

    def _reader(self) -> _Proc:
        inp, out = self.inp, self.out
        for i in range(self.tokens):
            while len(inp.xfer) <= i:
                yield self.writer
            taken = _NEVER
            if i:
                while len(out.xfer) < i:
                    yield out.consumer
                taken = out.xfer[i - 1]
            out.offer.append(max(inp.xfer[i] + 1, taken) + 1)


#: What the scheduler sends a generator it resumes because another one waits on it.
_NEEDED = object()


def _join(stage: JoinStage, inps: list[_Link], out: _Link, timesteps: int) -> _Proc:
    """The join's arbiter and output register (``hardware.merge``); a delayed input's link
    here is its buffer's output.

    To grant, the arbiter needs to know which inputs are offered by the edge it grants at.
    An input whose next offer cannot be computed before the join itself acts (its producer
    waits, through the graph, on this join: the scheduler resumes the join with ``_NEEDED``)
    is offered after that act, by causality, so the join decides without it. A tick it waits
    for is asked again until it comes (its producer progresses in between)."""
    n = len(inps)
    pos = [0] * n  # next token on each input

    def probe(k: int, strict: bool = False) -> Generator[_Proc, object, int | None]:
        inp = inps[k]
        while len(inp.offer) <= pos[k]:
            got = yield inp.producer
            if got is _NEEDED and len(inp.offer) <= pos[k]:
                if strict:
                    raise RuntimeError("cost model stuck: a join waits on itself")
                return None
        return inp.offer[pos[k]]

    def take(k: int, edge: int) -> None:
        inps[k].xfer.append(edge)
        pos[k] += 1

    release = _NEVER  # the output register can load from this edge
    prev = 0  # the input granted last (0 after reset: input 1 has priority first)
    loaded = _NEVER  # edge the last tick was loaded
    j = 0
    for t in range(timesteps):
        left = [0 if (d and t == 0) else int(stage.tokens[k][t - 1] if d else stage.tokens[k][t])
                for k, d in enumerate(stage.delayed)]
        # edge each input's tick was taken (a delayed input's credit at step 0)
        ticked: list[int | None] = [_NEVER if (d and t == 0) else None for d in stage.delayed]
        while True:
            for k in range(n):  # a tick is taken in the cycle it is offered
                if ticked[k] is None and left[k] == 0:
                    edge = yield from probe(k)
                    if edge is not None:
                        take(k, edge)
                        ticked[k] = edge
            if not any(left):
                if all(x is not None for x in ticked):
                    break
                continue
            offers = {}
            for k in range(n):
                if left[k]:
                    edge = yield from probe(k)
                    if edge is not None:
                        offers[k] = edge
            if not offers:  # every pending input waits on this join: nothing can move
                k = next(k for k in range(n) if left[k])
                yield from probe(k, strict=True)
                continue
            x = max(release, min(offers.values()))
            k = next(k for k in [(prev + 1 + i) % n for i in range(n)] if k in offers and offers[k] <= x)
            take(k, x)
            left[k] -= 1
            prev = k
            release, j = yield from _send(out, 1, x + 1, j, release)
        loaded = max(release, max(ticked) + 1)
        release, j = yield from _send(out, 1, loaded + 1, j, release)
    # the delayed inputs' final step is taken and dropped, from the cycle after the last tick
    for k in range(n):
        if stage.delayed[k]:
            for _ in range(int(stage.tokens[k][timesteps - 1]) + 1):
                edge = yield from probe(k, strict=True)
                take(k, max(edge, loaded + 1))


def graph_timing(nodes: Sequence[GraphNode], links: int, input_link: int, readout_link: int,
                 flows: Sequence[Sequence[int]], readout_latency: int = 1) -> Timing:
    """:func:`inference_timing` of a graph of stages: ``links`` streams, ``flows[l][t]`` the
    tokens (ticks excluded) link ``l`` carries in timestep ``t``; the network input drives
    ``input_link`` back to back and the readout takes ``readout_link``; a link no stage reads
    is always taken (a spiking layer whose output feeds nothing). ``cycles`` runs from the
    first input token to the readout's ``last`` tick, as on a chain."""
    timesteps = len(flows[input_link])
    ls = [_Link() for _ in range(links)]
    total = [int(sum(f)) + timesteps for f in flows]
    procs: list[_Proc] = []
    source = _source(ls[input_link], total[input_link])
    ls[input_link].producer = source
    procs.append(source)
    engines: list[_Engine] = []
    for node in nodes:
        stage = node.stage
        if isinstance(stage, ForkStage):
            inp = ls[node.inputs[0]]
            proc = _fork(inp, [ls[o] for o in node.outputs], total[node.inputs[0]])
            inp.consumer = proc
            for o in node.outputs:
                ls[o].producer = proc
        elif isinstance(stage, JoinStage):
            out = ls[node.outputs[0]]
            inps = []
            for i, delayed in zip(node.inputs, stage.delayed):
                if delayed:
                    head = _Link()
                    buffer = _Buffer(ls[i], head, total[i])
                    procs += [buffer.writer, buffer.reader]
                    inps.append(head)
                else:
                    inps.append(ls[i])
            proc = _join(stage, inps, out, timesteps)
            for head in inps:
                head.consumer = proc
            out.producer = proc
        elif isinstance(stage, EngineStage):
            unit = _Engine(stage, ls[node.inputs[0]], ls[node.outputs[0]])
            procs += unit.processes()
            engines.append(unit)
            continue
        else:
            inp, out = ls[node.inputs[0]], ls[node.outputs[0]]
            if stage.latency == 0:
                proc = _wires(inp, out, total[node.inputs[0]])
            else:
                fanout = ([list(map(int, f)) for f in stage.fanout] if stage.fanout is not None
                          else [[1] * c for c in flows[node.inputs[0]]])
                proc = _register(inp, out, fanout, stage.tick_wait)
                if stage.latency > 1:
                    raise ValueError("a graph's remap stages have a latency of 0 or 1")
            inp.consumer = out.producer = proc
        procs.append(proc)
    roots = []
    for n, link in enumerate(ls):
        if link.consumer is None:
            sink = _sink(link, total[n])
            link.consumer = sink
            procs.append(sink)
            roots.append(sink)
    readout = ls[readout_link].consumer
    roots.sort(key=lambda p: p is not readout)
    _run_all(procs, roots)
    first = ls[input_link].xfer[0]
    timing = Timing(cycles=ls[readout_link].xfer[-1] - first + readout_latency)
    for unit in engines:
        timing.engine_ticks.append([e - first for e in unit.tick_edges])
        timing.engine_busy.append(unit.busy)
    return timing


def _wires(inp: _Link, out: _Link, tokens: int) -> _Proc:
    """A stage of latency 0: the consumer's take is the producer's."""
    for i in range(tokens):
        while len(inp.offer) <= i:
            yield inp.producer
        out.offer.append(inp.offer[i])
        while len(out.xfer) <= i:
            yield out.consumer
        inp.xfer.append(out.xfer[i])


def _run_all(procs: list[_Proc], roots: list[_Proc]) -> None:
    """:func:`_run` from each root in turn (the readout first, then the links no stage
    reads), then every generator still unfinished. A generator resumed because one it
    waited on (directly or not) now waits on it is sent ``_NEEDED`` (:func:`_join`)."""
    finished: set = set()
    for root in roots + procs:
        if root in finished:
            continue
        stack, waiting = [root], {root}
        needed = None
        while stack:
            proc = stack[-1]
            try:
                target = proc.send(_NEEDED) if needed is proc else next(proc)
            except StopIteration:
                finished.add(stack.pop())
                waiting.discard(proc)
                needed = None
                continue
            needed = None
            if target in finished or target is None:
                raise RuntimeError("cost model stuck: the stages' token counts do not match")
            if target in waiting:
                while stack[-1] is not target:
                    waiting.discard(stack.pop())
                needed = target
            else:
                stack.append(target)
                waiting.add(target)
