"""``hwgen_top``: the layer engines in a chain, the readout and the cycle counter.

The ports are the contract of docs/hardware.md ("Ports of hwgen_top"); the cocotb testbench
and the board top rely on their names, widths and order of payload bits.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from ..ir import QuantNetwork
from ..widths import address_bits
from .dense import DenseLIFEngine
from .readout import Readout
from .tokens import token_layout, token_signature

__all__ = ["NetworkTop", "tap_signature"]


def tap_signature(n: int) -> wiring.Signature:
    """A copy of a token stream's handshake, every member an output: for observation only."""
    return wiring.Signature({
        "valid": Out(1),
        "ready": Out(1),
        "payload": Out(token_layout(n)),
    })


class NetworkTop(wiring.Component):
    """The whole accelerator for ``qnet``, each layer ``parallel`` neurons per cycle.

    Flatten layers are no-ops on addresses and produce no hardware. ``engines`` holds one
    :class:`DenseLIFEngine` per spiking layer, with its ``groups`` and ``pipeline_latency``
    for cycle estimates (:meth:`estimate_cycles`).

    Members
    -------
    spikes_in : ``In(token_signature(qnet.input_size))``
    tap_0, tap_1, ... : ``Out(tap_signature(N_k))``, spiking layer ``k``'s output handshake
    done : ``Out(1)``
    prediction : ``Out(address_bits(N_out))``
    counts : ``Out(ArrayLayout(C, N_out))``, ``C = ceil(log2(timesteps + 1))``
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
        self.engines = [DenseLIFEngine(layer, parallel) for layer in layers]
        self.readout = Readout(qnet.output_size, qnet.timesteps)
        members = {"spikes_in": In(token_signature(qnet.input_size))}
        for k, layer in enumerate(layers):
            members[f"tap_{k}"] = Out(tap_signature(layer.out_features))
        members.update({
            "done": Out(1),
            "prediction": Out(address_bits(qnet.output_size)),
            "counts": Out(data.ArrayLayout(unsigned(self.readout.count_bits), qnet.output_size)),
            "cycles": Out(32),
        })
        super().__init__(members)

    @property
    def groups(self) -> list[int]:
        """``G`` of each spiking layer."""
        return [engine.groups for engine in self.engines]

    @property
    def pipeline_latency(self) -> list[int]:
        """Tick-to-first-output latency of each spiking layer (see DenseLIFEngine)."""
        return [engine.pipeline_latency for engine in self.engines]

    def estimate_cycles(self, active_inputs: list[list[int]]) -> int:
        """A lower-bound style estimate of one inference's ``cycles``.

        ``active_inputs[k][t]`` is the number of spikes into spiking layer ``k`` at timestep
        ``t``. Layers overlap in time, so the slowest layer sets the pace:
        ``max_k Σ_t (a[k][t] + 1) * G_k`` plus every layer's pipeline latency and the readout's
        cycle. Output drain and inter-layer backpressure are not modelled.
        """
        busiest = max(sum(engine.timestep_cycles(a) for a in per_step)
                      for engine, per_step in zip(self.engines, active_inputs))
        return busiest + sum(self.pipeline_latency) + 1

    def elaborate(self, platform) -> Module:
        m = Module()

        for k, engine in enumerate(self.engines):
            m.submodules[f"layer{k}"] = engine
        m.submodules.readout = readout = self.readout

        # ---- the cycle counter

        # `cycles` is measured per inference from a free-running timestamp: each inference's
        # first accepted token queues its start time, and its `last` tick reaching the readout
        # (the cycle before `done`) takes it out. Inferences may overlap in the layer chain, so
        # the queue holds one start per inference in flight; when it is full, the first token
        # of a further inference waits.
        now = Signal(32)
        m.d.sync += now.eq(now + 1)
        m.submodules.starts = starts = SyncFIFO(width=32, depth=len(self.engines) + 2)
        first = Signal(init=1)  # the next input token opens an inference
        admit = ~first | starts.w_rdy

        head = self.engines[0].spikes_in
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

        tail = self.engines[-1].spikes_out
        finishing = tail.valid & tail.ready & tail.payload.tick & tail.payload.last
        m.d.comb += starts.r_en.eq(finishing)
        with m.If(finishing):
            # From the cycle after the accepting edge (1) to the `done` cycle (`now` + 1 here).
            m.d.sync += self.cycles.eq(now - starts.r_data + 1)

        # ---- the layer chain and its taps

        for upstream, downstream in zip(self.engines, self.engines[1:]):
            wiring.connect(m, upstream.spikes_out, downstream.spikes_in)
        wiring.connect(m, tail, readout.spikes)

        for k, engine in enumerate(self.engines):
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
