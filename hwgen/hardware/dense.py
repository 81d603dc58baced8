"""The fully connected LIF layer engine (docs/hardware.md, "Layer engine").

One engine realises one ``QuantDense`` exactly as docs/semantics.md states it, event by event:

* an input spike ``j`` adds weight column ``j`` into the membrane memory, ``P`` neurons
  (one *group*) per cycle, ``G`` cycles per spike;
* a tick runs the fire pass over the ``G`` groups (saturate, fire, leak, reset, write back)
  and queues the spikes of each group, as a bit mask, for the serializer that turns them into
  one token per spike in ascending address order, followed by the tick.

The datapath is two stages deep. Stage 0 presents a group address to the synchronous memory
read ports; stage 1 receives the words, computes and writes the membrane back. The next read
of the same group can happen in the very cycle of that write at the earliest, which the
membrane's transparent read port resolves, so there is no hazard logic and no bubble between
back-to-back events.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..widths import accumulator_bits
from .memories import MemorySpec, load_signature
from .lanes import (lane_memories, lane_memories_list, lane_table, lanes_and_groups, neuron_tables_memories,
                    neuron_values, update_lanes)
from .spike_queue import SpikeQueue, queue_word
from .tokens import token_signature

if TYPE_CHECKING:  # the layer kinds build these engines; the engines only read the node's fields
    from ..kinds.dense import QuantDense

__all__ = ["DenseLIFEngine", "check_accumulator", "dense_weight_words", "dense_words_read"]


def check_accumulator(layer, weight: np.ndarray, input_max: int) -> None:
    """Refuse a layer whose ``acc_bits`` could wrap (docs/semantics.md: the sum never wraps).

    ``weight`` is ``[out, fan_in]``; ``input_max`` the largest input value per address.
    """
    # What the events add into has the rails of the membrane (LIF) or of the current (CuBa).
    need = accumulator_bits(weight, layer.bias, layer.integrated_bits, input_max=input_max)
    if layer.acc_bits < need:
        raise ValueError(f"layer {layer.name!r}: acc_bits={layer.acc_bits} cannot hold every "
                         f"partial sum (inputs up to {input_max} need {need}); the accumulator "
                         f"would wrap")
    if (np.asarray(layer.threshold) < 1).any():
        raise ValueError(f"layer {layer.name!r}: thresholds must be >= 1")


def dense_weight_words(layer: QuantDense, parallel: int) -> np.ndarray:
    """The weight memory of ``layer`` at ``parallel`` lanes, ``[in_features * G, P]``: word
    ``j*G + g`` holds the weights from input ``j`` to the ``P`` neurons of group ``g`` (zeros
    past the layer)."""
    P, G = lanes_and_groups(layer.out_features, parallel)
    n_in, n_out = layer.in_features, layer.out_features
    weight = np.zeros((G * P, n_in), dtype=np.int64)
    weight[:n_out] = layer.weight
    return weight.reshape(G, P, n_in).transpose(2, 0, 1).reshape(n_in * G, P)


def dense_words_read(layer: QuantDense, parallel: int, active: np.ndarray) -> np.ndarray:
    """Which words of :func:`dense_weight_words` the engine reads, ``[in_features * G]`` bool,
    when the inputs ``active`` (``[in_features]`` bool) carry at least one event: an event
    ``j`` walks the ``G`` words ``j*G .. j*G + G-1``, and nothing else reads the memory."""
    _, G = lanes_and_groups(layer.out_features, parallel)
    return np.repeat(np.asarray(active, dtype=bool).reshape(layer.in_features), G)


class DenseLIFEngine(wiring.Component):
    """One fully connected LIF layer, ``parallel`` neurons per cycle (capped at the layer width).

    Members
    -------
    spikes_in : ``In(token_signature(layer.in_features))``
    spikes_out : ``Out(token_signature(layer.out_features))``

    Input addresses must be below ``layer.in_features``. An address may repeat within a
    timestep (after a sum pool): each occurrence adds its weights once more.

    Direct input (``input_bits > 1``, first layer only): ``spikes_in`` tokens carry a
    ``value`` (``input_bits`` wide, unsigned, non-zero) and the engine adds ``W·value``,
    with ``P`` multipliers of ``multiplier_bits = (weight_bits, input_bits)`` (signed by
    unsigned); ``multiplier_bits`` is ``None`` for spikes.

    Timing (``G = groups``, measured by tests/test_hardware.py): an input spike occupies the
    input for ``G`` cycles and a tick for ``G`` cycles, back to back without bubbles, so a
    timestep with ``a`` active inputs costs ``(a + 1) * G`` cycles at the input. The first
    output token of a fire pass appears ``pipeline_latency`` cycles after the tick was accepted.
    The output drains one token per cycle; when downstream cannot keep up, the spike queue
    (``G + 2`` entries) fills and the engine waits in the fire pass, never losing a spike.
    After reset the engine spends ``G`` cycles writing the biases back into the membrane (it
    accepts nothing meanwhile), so that a reset also abandons a half-finished inference.
    """

    #: Cycles from the edge accepting a tick to the first token of its fire pass on
    #: ``spikes_out`` (with ``spikes_out.ready`` high): stage 0, stage 1, the two-cycle
    #: buffered FIFO and the serializer register.
    pipeline_latency = 5

    def __init__(self, layer: QuantDense, parallel: int, input_bits: int = 1,
                 input_max: int | None = None, weight_target: str | None = None):
        """``input_max``: the largest value an input address carries per timestep (default:
        the larger of ``layer.input_max`` and ``2**input_bits - 1``); it sizes the check that
        ``acc_bits`` cannot wrap. ``weight_target``: ``None`` for weights in a ROM that the
        bitstream initialises, else a ``memories.TARGETS`` entry: the weights are loaded at
        run time through an extra member ``weights`` (``In(load_signature(...))``), words as
        :meth:`weight_words` gives them."""
        if input_bits < 1:
            raise ValueError(f"input_bits must be at least 1, not {input_bits}")
        if input_max is None:
            input_max = max(getattr(layer, "input_max", 1), (1 << input_bits) - 1)
        check_accumulator(layer, layer.weight, input_max)
        self.layer = layer
        self.input_bits = input_bits
        self.multiplier_bits = (layer.weight_bits, input_bits) if input_bits > 1 else None
        self.lanes, self.groups = lanes_and_groups(layer.out_features, parallel)
        self.weight_target = weight_target
        members = {
            "spikes_in": In(token_signature(layer.in_features,
                                            input_bits if input_bits > 1 else 0)),
            "spikes_out": Out(token_signature(layer.out_features)),
        }
        if weight_target is not None:
            members["weights"] = In(load_signature(layer.in_features * self.groups,
                                                   self.lanes * layer.weight_bits))
        super().__init__(members)

    def weight_words(self) -> np.ndarray:
        """The weight memory's contents: :func:`dense_weight_words`."""
        return dense_weight_words(self.layer, self.lanes)

    @staticmethod
    def memories_for(layer: QuantDense, parallel: int, weight_target: str | None = None) -> list[MemorySpec]:
        """The memories :meth:`elaborate` builds, for the fit check and the reports (without
        building anything)."""
        P, G = lanes_and_groups(layer.out_features, parallel)
        return [*lane_memories_list(layer, P, layer.in_features * G, G, weight_target),
                *neuron_tables_memories(layer, P, G),
                *SpikeQueue.memories_for(layer.name, layer.out_features, P, G)]

    def elaborate(self, platform) -> Module:
        m = Module()
        layer = self.layer
        P, G = self.lanes, self.groups
        n_in, n_out = layer.in_features, layer.out_features

        w_rd, state = lane_memories(m, layer, self.weight_words(), lane_table(layer.bias, P, G),
                                    self.weight_target)
        if self.weight_target is not None:
            wiring.connect(m, wiring.flipped(self.weights), w_rd.load)

        # ---- stage 0: walk the groups of the current token, present the read addresses

        # The engine leaves reset in a pass that writes the biases back, exactly the state
        # after a `last` tick, without sending anything.
        busy = Signal(init=1)
        fire = Signal(init=1)
        last = Signal(init=1)
        emit = Signal()
        value = Signal(self.input_bits)  # the token's input value (1 for spikes)
        group = Signal(range(G))
        base = Signal(range(n_out))
        w_addr = Signal(range(n_in * G))
        at_end = group == G - 1

        stall = Signal()  # stage 1 holds a fire-pass result that the spike queue cannot take
        advance = busy & ~stall

        m.d.comb += [
            self.spikes_in.ready.eq(~busy | (advance & at_end)),
            *state.read(group, ~stall),
            w_rd.addr.eq(w_addr),
            w_rd.en.eq(~stall),
        ]
        tables = neuron_values(m, layer, P, G, group, ~stall)

        with m.If(advance):
            with m.If(at_end):
                m.d.sync += [busy.eq(0), group.eq(0), base.eq(0)]
            with m.Else():
                m.d.sync += [group.eq(group + 1), base.eq(base + P), w_addr.eq(w_addr + 1)]
        with m.If(self.spikes_in.valid & self.spikes_in.ready):
            token = self.spikes_in.payload
            m.d.sync += [
                busy.eq(1),
                group.eq(0),
                base.eq(0),
                fire.eq(token.tick),
                last.eq(token.tick & token.last),
                emit.eq(token.tick),
                w_addr.eq(token.addr * G),
            ]
            if self.input_bits > 1:
                m.d.sync += value.eq(token.value)

        # ---- stage 1: the memory words of one group are here; compute and write back

        s1_valid = Signal()
        s1_fire = Signal()
        s1_last = Signal()
        s1_emit = Signal()
        s1_end = Signal()
        s1_group = Signal(range(G))
        s1_base = Signal(range(n_out))
        s1_value = Signal(self.input_bits)
        with m.If(~stall):
            m.d.sync += [
                s1_value.eq(value),
                s1_valid.eq(busy),
                s1_fire.eq(fire),
                s1_last.eq(last),
                s1_emit.eq(emit),
                s1_end.eq(at_end),
                s1_group.eq(group),
                s1_base.eq(base),
            ]

        # Lanes at or past `full_lanes` have no neuron in the last group (s1_end).
        spikes = update_lanes(m, layer, state, w_rd,
                              value=s1_value if self.input_bits > 1 else None,
                              tables=tables, fire=s1_fire, last=s1_last,
                              dead=s1_end, full_lanes=n_out - (G - 1) * P)
        state.write(m, s1_group, s1_valid & ~stall, s1_fire)

        # ---- spike queue and serializer

        m.submodules.queue = queue = SpikeQueue(n_out, P, depth=G)  # a whole fire pass
        m.d.comb += stall.eq(queue_word(m, queue, valid=s1_valid, emit=s1_emit, base=s1_base,
                                        spikes=spikes, end=s1_end, last=s1_last))
        wiring.connect(m, queue.tokens, wiring.flipped(self.spikes_out))

        return m
