"""``hwgen_top``: the layer engines in a chain, the readout and the cycle counter.

The ports are the contract of docs/hardware.md ("Ports of hwgen_top"); the cocotb testbench
and the board top rely on their names, widths and order of payload bits.
"""

from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from ..ir import QuantNetwork
from ..widths import address_bits, unsigned_bits
from .dense import DenseLIFEngine, lanes_and_groups
from .readout import Readout
from .tokens import token_layout, token_signature

__all__ = ["NetworkTop", "estimate_cycles", "tap_signature"]


def tap_signature(n: int) -> wiring.Signature:
    """A copy of a token stream's handshake, every member an output: for observation only."""
    return wiring.Signature({
        "valid": Out(1),
        "ready": Out(1),
        "payload": Out(token_layout(n)),
    })


def estimate_cycles(qnet: QuantNetwork, parallel: int, active_inputs: Sequence[Sequence[int]],
                    final_spikes: int = 0) -> int:
    """An estimate of ``NetworkTop.cycles`` for one inference, input offered back to back.

    ``active_inputs[k][t]`` is the number of spikes into spiking layer ``k`` at timestep ``t``
    (row 0: the input; row ``k``: the output of layer ``k - 1``); ``final_spikes`` is the
    number of spikes the last layer sends in the last timestep.

    Each layer takes a token every ``G`` cycles (docs/hardware.md: a timestep costs
    ``(a + 1) * G``) but cannot take the spikes of timestep ``t`` before its upstream's fire
    pass of ``t`` sends them, ``DenseLIFEngine.pipeline_latency`` cycles after that upstream
    took its tick. Exact for one layer (tests/test_hardware.py); for a chain it assumes that
    a fire pass sends its spikes one per cycle, so it runs low when a layer is slower to
    accept than its upstream is to fire (backpressure into the upstream fire pass).
    """
    layers = qnet.spiking_layers
    if len(active_inputs) != len(layers):
        raise ValueError(f"need one row of spike counts per spiking layer ({len(layers)}), "
                         f"got {len(active_inputs)}")
    latency = DenseLIFEngine.pipeline_latency
    upstream = upstream_groups = None  # the edges at which the previous layer took its ticks
    for layer, per_step in zip(layers, active_inputs):
        _, groups = lanes_and_groups(layer.out_features, parallel)
        ticks = []
        free = 0  # the edge from which the engine can take its next token
        for t, a in enumerate(per_step):
            if upstream is None:  # the driver offers every token as soon as one is taken
                tick = free + a * groups
            else:
                first = upstream[t] + latency
                arrival = first + max(upstream_groups - 1, a)
                tick = max(max(free, first) + a * groups, arrival)
            ticks.append(tick)
            free = tick + groups
        upstream, upstream_groups = ticks, groups
    # `cycles` runs from the first accepting edge (0 here) through the `done` cycle.
    return upstream[-1] + latency + max(upstream_groups - 1, final_spikes) + 1


class NetworkTop(wiring.Component):
    """The whole accelerator for ``qnet``, each layer ``parallel`` neurons per cycle.

    Flatten layers are no-ops on addresses and produce no hardware. ``lanes``, ``groups`` and
    ``pipeline_latency`` hold each spiking layer's ``P``, ``G`` and tick-to-output latency, for
    reports (:meth:`estimate_cycles`); the engines themselves are built by :meth:`elaborate`.

    Members
    -------
    spikes_in : ``In(token_signature(qnet.input_size))``
    tap_0, tap_1, ... : ``Out(tap_signature(N_k))``, spiking layer ``k``'s output handshake
    done : ``Out(1)``
    prediction : ``Out(address_bits(N_out))``
    counts : ``Out(ArrayLayout(count_bits, N_out))``, ``count_bits = ceil(log2(T + 1))``
    cycles : ``Out(32)``, cycles of the last completed inference
    """

    def __init__(self, qnet: QuantNetwork, parallel: int):
        layers = qnet.spiking_layers
        if not layers:
            raise ValueError("the network has no spiking layer")
        width = qnet.input_size
        for layer in layers:
            if layer.in_features != width:
                raise ValueError(f"layer {layer.name!r} takes {layer.in_features} inputs but is "
                                 f"fed {width}")
            width = layer.out_features
        if qnet.timesteps < 1:
            raise ValueError(f"timesteps must be at least 1, not {qnet.timesteps}")

        self.qnet = qnet
        self.parallel = parallel
        shapes = [lanes_and_groups(layer.out_features, parallel) for layer in layers]
        self.lanes = [lanes for lanes, _ in shapes]
        self.groups = [groups for _, groups in shapes]
        self.pipeline_latency = [DenseLIFEngine.pipeline_latency] * len(layers)
        self.count_bits = unsigned_bits(qnet.timesteps)

        members = {"spikes_in": In(token_signature(qnet.input_size))}
        for k, layer in enumerate(layers):
            members[f"tap_{k}"] = Out(tap_signature(layer.out_features))
        members.update({
            "done": Out(1),
            "prediction": Out(address_bits(qnet.output_size)),
            "counts": Out(data.ArrayLayout(unsigned(self.count_bits), qnet.output_size)),
            "cycles": Out(32),
        })
        super().__init__(members)

    def estimate_cycles(self, active_inputs: Sequence[Sequence[int]], final_spikes: int = 0) -> int:
        """:func:`estimate_cycles` for this network and ``parallel``."""
        return estimate_cycles(self.qnet, self.parallel, active_inputs, final_spikes)

    def elaborate(self, platform) -> Module:
        m = Module()

        engines = [DenseLIFEngine(layer, self.parallel) for layer in self.qnet.spiking_layers]
        for k, engine in enumerate(engines):
            m.submodules[f"layer{k}"] = engine
        m.submodules.readout = readout = Readout(self.qnet.output_size, self.qnet.timesteps)

        # ---- the cycle counter

        # `cycles` is measured per inference from a free-running timestamp: each inference's
        # first accepted token queues its start time, and its `last` tick reaching the readout
        # (the cycle before `done`) takes it out. Inferences may overlap in the layer chain, so
        # the queue holds one start per inference in flight; when it is full, the first token
        # of a further inference waits.
        now = Signal(32)
        m.d.sync += now.eq(now + 1)
        m.submodules.starts = starts = SyncFIFO(width=32, depth=len(engines) + 2)
        first = Signal(init=1)  # the next input token opens an inference
        admit = ~first | starts.w_rdy

        head = engines[0].spikes_in
        m.d.comb += [
            head.payload.eq(self.spikes_in.payload),
            head.valid.eq(self.spikes_in.valid & admit),
            self.spikes_in.ready.eq(head.ready & admit),
        ]
        accepted = self.spikes_in.valid & self.spikes_in.ready
        token = self.spikes_in.payload
        with m.If(accepted):
            m.d.sync += first.eq(token.tick & token.last)
        m.d.comb += [
            starts.w_data.eq(now),
            starts.w_en.eq(accepted & first),
        ]

        tail = engines[-1].spikes_out
        finishing = tail.valid & tail.ready & tail.payload.tick & tail.payload.last
        m.d.comb += starts.r_en.eq(finishing)
        with m.If(finishing):
            # The cycles after the accepting edge, through this one (`now - start`), plus
            # the `done` cycle that follows.
            m.d.sync += self.cycles.eq(now - starts.r_data + 1)

        # ---- the layer chain and its taps

        for upstream, downstream in zip(engines, engines[1:]):
            wiring.connect(m, upstream.spikes_out, downstream.spikes_in)
        wiring.connect(m, tail, readout.spikes)

        for k, engine in enumerate(engines):
            tap = getattr(self, f"tap_{k}")
            stream = engine.spikes_out
            m.d.comb += [
                tap.valid.eq(stream.valid),
                tap.ready.eq(stream.ready),
                tap.payload.eq(stream.payload),
            ]

        m.d.comb += [
            self.done.eq(readout.done),
            self.prediction.eq(readout.prediction),
            self.counts.eq(readout.counts),
        ]

        return m
