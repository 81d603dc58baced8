"""``hwgen_top``: the units of a network in a chain, the readout and the cycle counter.

The ports are the contract of docs/hardware.md ("Ports of hwgen_top"); the cocotb testbench
and the board top rely on their names, widths and order of payload bits.

A network becomes a chain of *units* (:func:`plan_units`), one per layer that needs hardware:
a layer engine per spiking layer (``DenseLIFEngine``, ``ConvLIFEngine``), an address remap
per pool (``SumPoolRemap``, ``MaxPoolDedup``) and per ``Flatten`` of a map (``FlattenRemap``).
A stream over a 3-D shape ``(C, H, W)`` carries map tokens, any other stream flat ones
(``tokens.py``); a ``Flatten`` of a flat stream and the layers after the last spiking layer
produce no hardware.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from ..ir import Flatten, MaxPool2d, QuantConv2d, QuantDense, QuantNetwork, SumPool2d
from ..widths import address_bits, unsigned_bits
from .conv import ConvLIFEngine, axis_taps, check_conv, conv_tap_counts, conv_weight_words
from .dense import DenseLIFEngine, check_accumulator, dense_weight_words
from .lanes import lanes_and_groups
from .memories import load_signature, pack_words
from .pool import FlattenRemap, MaxPoolDedup, SumPoolRemap, flatten_is_identity
from .readout import Readout
from .stall import StallPoint
from .tokens import StreamShape, is_map, shape_size, token_layout, token_signature

__all__ = ["NetworkTop", "Unit", "estimate_cycles", "network_activity", "packed_weights", "plan_units",
           "tap_signature"]


def tap_signature(shape: StreamShape) -> wiring.Signature:
    """A copy of a token stream's handshake, every member an output: for observation only."""
    return wiring.Signature({
        "valid": Out(1),
        "ready": Out(1),
        "payload": Out(token_layout(shape)),
    })


@dataclass
class Unit:
    """One hardware unit of the chain: what it is, what flows in and out of it.

    ``kind`` is ``"dense"``, ``"conv"``, ``"sum_pool"``, ``"max_pool"`` or ``"flatten"``;
    ``layer`` the IR layer (``None`` for a flatten inserted before a dense layer or the
    readout); ``spiking`` the index of a spiking layer (its ``tap_K``), else ``None``.
    ``input_max`` is the largest value an input address carries per timestep (events per
    address after sum pooling, ``2**input_bits - 1`` for direct input).
    """

    kind: str
    layer: object
    in_shape: StreamShape
    out_shape: StreamShape
    value_bits: int = 0
    input_max: int = 1
    spiking: int | None = None

    def build(self, parallel: int, weight_target: str | None = None) -> wiring.Component:
        """The unit's component; ``weight_target`` (engines only) loads its weights at run
        time instead of from the bitstream (``memories.LoadedWeights``)."""
        if self.kind == "dense":
            return DenseLIFEngine(self.layer, parallel, input_bits=max(1, self.value_bits),
                                  input_max=self.input_max, weight_target=weight_target)
        if self.kind == "conv":
            return ConvLIFEngine(self.layer, parallel, input_bits=max(1, self.value_bits),
                                 input_max=self.input_max, weight_target=weight_target)
        if self.kind == "sum_pool":
            return SumPoolRemap(self.layer)
        if self.kind == "max_pool":
            return MaxPoolDedup(self.layer)
        return FlattenRemap(self.in_shape, self.value_bits)

    @property
    def latency(self) -> int:
        """Cycles a remap unit adds between its input and its output (0 for engines, whose
        latency is their own)."""
        if self.kind == "sum_pool":
            return SumPoolRemap.latency
        if self.kind == "max_pool":
            return MaxPoolDedup.latency
        if self.kind == "flatten":
            return 0 if flatten_is_identity(self.in_shape) else 1
        return 0


def _stream_shape(shape: Sequence[int]) -> StreamShape:
    dims = tuple(int(d) for d in shape)
    return dims if len(dims) == 3 else int(np.prod(dims))


def _window_population(layer: SumPool2d) -> int:
    """Most input positions inside one window (padding excluded): the largest count."""
    _, h, w = layer.input_shape
    _, h_out, w_out = layer.output_shape
    rows = [0] * h_out
    for _, n, first in axis_taps(h, layer.kernel[0], layer.stride[0], layer.padding[0], h_out):
        for i in range(n):
            rows[first - i] += 1
    cols = [0] * w_out
    for _, n, first in axis_taps(w, layer.kernel[1], layer.stride[1], layer.padding[1], w_out):
        for i in range(n):
            cols[first - i] += 1
    return max(rows) * max(cols)


def plan_units(qnet: QuantNetwork) -> tuple[list[Unit], StreamShape, int]:
    """The chain of units of ``qnet``: ``(units, input stream shape, input value bits)``.

    Raises ``ValueError`` naming the layer when a layer's input does not match what flows
    into it, or when a pool would see direct (multi-bit) input, which is not spikes.
    """
    layers = qnet.spiking_layers
    if not layers:
        raise ValueError("the network has no spiking layer")
    if qnet.timesteps < 1:
        raise ValueError(f"timesteps must be at least 1, not {qnet.timesteps}")
    if qnet.input_bits < 1:
        raise ValueError(f"input_bits must be at least 1, not {qnet.input_bits}")
    value_bits = qnet.input_bits if qnet.input_bits > 1 else 0
    in_shape = shape = _stream_shape(qnet.input_shape)
    in_value = value_bits
    input_max = (1 << qnet.input_bits) - 1
    units: list[Unit] = []
    last = max(i for i, layer in enumerate(qnet.layers) if isinstance(layer, (QuantDense, QuantConv2d)))
    spiking = 0
    for layer in qnet.layers[:last + 1]:
        name = getattr(layer, "name", type(layer).__name__)
        if isinstance(layer, Flatten):
            if layer.input_shape and shape_size(layer.input_shape) != shape_size(shape):
                raise ValueError(f"flatten {name!r} expects {tuple(layer.input_shape)} but is fed "
                                 f"{shape}")
            if is_map(shape):
                units.append(Unit("flatten", layer, shape, shape_size(shape), value_bits))
                shape = shape_size(shape)
        elif isinstance(layer, SumPool2d):  # MaxPool2d too
            if not is_map(shape) or tuple(shape) != tuple(layer.input_shape):
                raise ValueError(f"pool {name!r} takes a {tuple(layer.input_shape)} map but is fed "
                                 f"{shape}")
            if value_bits:
                raise ValueError(f"pool {name!r} would pool direct {qnet.input_bits}-bit input; "
                                 f"the hardware pools spikes only (docs/semantics.md)")
            if isinstance(layer, MaxPool2d):
                units.append(Unit("max_pool", layer, shape, tuple(layer.output_shape)))
                input_max = 1
            else:
                units.append(Unit("sum_pool", layer, shape, tuple(layer.output_shape)))
                input_max *= _window_population(layer)
            shape = tuple(layer.output_shape)
        elif isinstance(layer, QuantConv2d):
            if not is_map(shape) or tuple(shape) != tuple(layer.input_shape):
                raise ValueError(f"layer {name!r} takes a {tuple(layer.input_shape)} map but is "
                                 f"fed {shape}")
            check_conv(layer, input_max)
            units.append(Unit("conv", layer, shape, tuple(layer.output_shape), value_bits,
                              input_max, spiking))
            shape, value_bits, input_max, spiking = tuple(layer.output_shape), 0, 1, spiking + 1
        elif isinstance(layer, QuantDense):
            if is_map(shape):  # the golden model flattens implicitly too
                units.append(Unit("flatten", None, shape, shape_size(shape), value_bits))
                shape = shape_size(shape)
            if shape != layer.in_features:
                raise ValueError(f"layer {name!r} takes {layer.in_features} inputs but is fed "
                                 f"{shape}")
            check_accumulator(layer, layer.weight, input_max)
            units.append(Unit("dense", layer, shape, layer.out_features, value_bits, input_max,
                              spiking))
            shape, value_bits, input_max, spiking = layer.out_features, 0, 1, spiking + 1
        else:
            raise ValueError(f"layer {name!r}: {type(layer).__name__} has no hardware")
    return units, in_shape, in_value


def _engine_costs(unit: Unit, parallel: int) -> tuple[int, int, int]:
    """``(cycles per unit of work, fire-pass cycles, decode latency)`` of a spiking unit."""
    if unit.kind == "conv":
        c_out = unit.layer.output_shape[0]
        _, groups = lanes_and_groups(c_out // unit.layer.groups, parallel)
        _, h_out, w_out = unit.layer.output_shape
        return groups, h_out * w_out * unit.layer.groups * groups, ConvLIFEngine.decode_latency
    _, groups = lanes_and_groups(unit.layer.out_features, parallel)
    return groups, groups, 0


def estimate_cycles(qnet: QuantNetwork, parallel: int, active_inputs: Sequence[Sequence[int]],
                    final_spikes: int = 0, fanout: Sequence[Sequence[int]] | None = None) -> int:
    """An estimate of ``NetworkTop.cycles`` for one inference, input offered back to back.

    ``active_inputs[k][t]`` is the number of events into spiking layer ``k`` at timestep ``t``
    (row 0: the input; row ``k``: what reaches layer ``k`` from layer ``k - 1``, after any
    pooling); ``final_spikes`` is the number of spikes the last layer sends in the last
    timestep. For a convolution layer ``fanout[k][t]`` is the number of in-range kernel taps
    those events reach in total (``Σ_events taps``, see :func:`network_activity`); dense
    layers ignore it.

    Each engine spends ``work`` cycles integrating a timestep (dense: ``a * G``; convolution:
    ``fanout * G``) and ``pass`` cycles on its fire pass (dense: ``G``; convolution:
    ``H_out * W_out * groups * G``), back to back, but cannot start timestep ``t`` before its
    upstream's fire pass of ``t`` sends the first spike (``pipeline_latency`` after that
    upstream took its tick, plus the latency of the remap units and of the convolution
    engine's decode register in between), nor finish it before the upstream's tick arrives.
    Exact for one dense layer (tests/test_hardware.py); within 2 % for one convolution layer
    on an idle engine (tests/test_hardware_conv.py). It ignores the port's one cycle per
    token, which shows when most events reach no tap (kernel < stride: up to 15 % low). For a
    chain it assumes that a fire pass sends its spikes one per cycle, so it runs low when a
    layer is slower to accept than its upstream is to fire (backpressure into the upstream
    fire pass, which then stops overlapping the next timestep: about 20 % low on a
    conv -> max pool -> conv -> dense chain).
    """
    units, _, _ = plan_units(qnet)
    engines = [u for u in units if u.spiking is not None]
    if len(active_inputs) != len(engines):
        raise ValueError(f"need one row of spike counts per spiking layer ({len(engines)}), "
                         f"got {len(active_inputs)}")
    upstream = None  # (edges at which the previous engine took its ticks, its pass, latency)
    path = 0  # remap latency between the previous engine (or the input) and this one
    for unit in units:
        if unit.spiking is None:
            path += unit.latency
            continue
        k = unit.spiking
        per_cycle, fire_pass, decode = _engine_costs(unit, parallel)
        if unit.kind == "conv":
            if fanout is None or len(fanout) <= k or fanout[k] is None:
                raise ValueError(f"layer {unit.layer.name!r} is a convolution: give fanout[{k}], "
                                 f"the in-range taps its input events reach per timestep")
            work = [int(f) * per_cycle for f in fanout[k]]
        else:
            work = [int(a) * per_cycle for a in active_inputs[k]]
        ticks = []
        free = 0  # the edge from which the engine can take its next token
        for t, a in enumerate(active_inputs[k]):
            if upstream is None:  # the driver offers every token as soon as one is taken
                start = free if t else path + decode
                tick = max(free, start) + work[t]
            else:
                up_ticks, up_pass, up_latency = upstream
                first = up_ticks[t] + up_latency + path + decode
                arrival = first + max(up_pass - 1, int(a))
                tick = max(max(free, first) + work[t], arrival)
            ticks.append(tick)
            free = tick + fire_pass
        latency = (ConvLIFEngine if unit.kind == "conv" else DenseLIFEngine).pipeline_latency
        upstream, path = (ticks, fire_pass, latency), 0
    ticks, fire_pass, latency = upstream
    # The readout of a convolution layer counts flattened addresses.
    if is_map(engines[-1].out_shape):
        path += 0 if flatten_is_identity(engines[-1].out_shape) else 1
    # `cycles` runs from the first accepting edge (0 here) through the `done` cycle.
    return ticks[-1] + latency + max(fire_pass - 1, final_spikes) + path + 1


def network_activity(qnet: QuantNetwork, sample) -> tuple[list[list[int]], list[list[int] | None], int]:
    """``(active_inputs, fanout, final_spikes)`` of one inference, for :func:`estimate_cycles`.

    ``sample`` is ``[T, *input_shape]``; the counts come from the golden model (a sum pool's
    count ``n`` is ``n`` events, a direct input value one event).
    """
    import torch

    from .. import golden

    x_all = torch.as_tensor(np.asarray(sample)).to(torch.int64)
    trace = golden.run(qnet, x_all[None])
    timesteps = x_all.shape[0]
    units, _, _ = plan_units(qnet)
    active: list[list[int]] = [[] for u in units if u.spiking is not None]
    fanout: list[list[int] | None] = [None] * len(active)
    for t in range(timesteps):
        x = x_all[t].reshape(1, *qnet.input_shape)
        if qnet.input_bits > 1:
            x = (x != 0).long()  # one event per non-zero value
        for unit in units:
            if unit.kind in ("sum_pool", "max_pool"):
                x = golden.pool(unit.layer, x.reshape(1, *unit.in_shape))
            elif unit.spiking is not None:
                k = unit.spiking
                active[k].append(int(x.sum()))
                if unit.kind == "conv":
                    taps = torch.from_numpy(conv_tap_counts(unit.layer))
                    fanout[k] = (fanout[k] or []) + [int((x.reshape(unit.in_shape) * taps).sum())]
                x = trace.spikes[k][0, t].long()
    final = int(trace.spikes[-1][0, -1].sum())
    return active, fanout, final


def _unit_name(n: int, unit: Unit) -> str:
    """The submodule name of unit ``n`` of the chain (``layerK`` for spiking layer K)."""
    return f"layer{unit.spiking}" if unit.spiking is not None else f"unit{n}_{unit.kind}"


def engine_weight_words(unit: Unit, parallel: int) -> np.ndarray:
    """The weight memory contents of an engine unit, ``[depth, P]`` signed weights."""
    if unit.kind == "conv":
        return conv_weight_words(unit.layer, parallel)
    return dense_weight_words(unit.layer, parallel)


def packed_weights(qnet: QuantNetwork, parallel: int, layers: Iterable[int]) -> dict[int, np.ndarray]:
    """The words of run-time-loaded spiking layers ``layers`` as the ``weights_K`` streams and
    the host link's WEIGHTS command carry them: ``{K: uint8 [depth, ceil(P * bits / 8)]}``."""
    units, _, _ = plan_units(qnet)
    engines = {u.spiking: u for u in units if u.spiking is not None}
    return {k: pack_words(engine_weight_words(engines[k], parallel), engines[k].layer.weight_bits)
            for k in sorted(layers)}


class NetworkTop(wiring.Component):
    """The whole accelerator for ``qnet``, each layer ``parallel`` neurons (dense) or output
    channels (convolution) per cycle.

    ``units`` is the chain (:func:`plan_units`); ``lanes``, ``groups`` and
    ``pipeline_latency`` hold each spiking layer's ``P``, ``G`` and tick-to-output latency,
    and ``fire_pass`` its fire-pass cycles, for reports (:meth:`estimate_cycles`); the
    components themselves are built by :meth:`elaborate`.

    When the last spiking layer is a convolution, the readout counts its spikes per
    flattened C-order index ``c*H*W + y*W + x`` (a ``FlattenRemap`` feeds it).

    Members
    -------
    spikes_in : ``In(token_signature(input stream shape, value_bits))``, map tokens when
        ``qnet.input_shape`` is 3-D, with ``value`` when ``qnet.input_bits > 1``
    tap_0, tap_1, ... : ``Out(tap_signature(shape_K))``, spiking layer ``K``'s output handshake
    done : ``Out(1)``
    prediction : ``Out(address_bits(N_out))``
    counts : ``Out(ArrayLayout(count_bits, N_out))``, ``count_bits = ceil(log2(T + 1))``
    cycles : ``Out(32)``, cycles of the last completed inference

    With ``stall_points=True`` (test builds only, hwgen/hardware/stall.py) every stream of the
    chain passes a ``StallPoint`` that the testbench holds through ``stall`` (bit ``i`` for
    link ``stall_links[i]``: the input, each unit-to-unit link, the readout's input) and
    watches through ``stall_offer``; without it the design has neither port and no extra logic.

    ``weight_memories`` maps spiking layers ``K`` to a ``memories.TARGETS`` entry: those
    layers' weights are written at run time (docs/hardware.md, "Loaded weights") through a
    member ``weights_K : In(load_signature(depth, P * weight_bits))`` each, words as
    :meth:`weight_words` gives them; the other layers keep bitstream-initialised ROMs.
    """

    def __init__(self, qnet: QuantNetwork, parallel: int, *, stall_points: bool = False,
                 weight_memories: Mapping[int, str] | None = None):
        if parallel < 1:
            raise ValueError(f"parallel must be at least 1, not {parallel}")
        self.qnet = qnet
        self.parallel = parallel
        self.units, self.input_shape, self.input_value_bits = plan_units(qnet)
        engines = [u for u in self.units if u.spiking is not None]
        self.weight_memories = dict(sorted((weight_memories or {}).items()))
        unknown = set(self.weight_memories) - {u.spiking for u in engines}
        if unknown:
            raise ValueError(f"weight_memories names layers {sorted(unknown)}, but the network "
                             f"has spiking layers 0..{len(engines) - 1}")
        self._engine_units = {u.spiking: u for u in engines}
        self.lanes, self.groups, self.fire_pass, self.pipeline_latency = [], [], [], []
        for unit in engines:
            channels = (unit.layer.output_shape[0] // unit.layer.groups if unit.kind == "conv"
                        else unit.layer.out_features)
            lanes, _ = lanes_and_groups(channels, parallel)
            per_cycle, fire_pass, _ = _engine_costs(unit, parallel)
            self.lanes.append(lanes)
            self.groups.append(per_cycle)
            self.fire_pass.append(fire_pass)
            self.pipeline_latency.append(
                (ConvLIFEngine if unit.kind == "conv" else DenseLIFEngine).pipeline_latency)
        self.output_shape = engines[-1].out_shape
        self.count_bits = unsigned_bits(qnet.timesteps)
        n_out = shape_size(self.output_shape)

        members = {"spikes_in": In(token_signature(self.input_shape, self.input_value_bits))}
        for unit in engines:
            members[f"tap_{unit.spiking}"] = Out(tap_signature(unit.out_shape))
        for k in self.weight_memories:
            depth, lanes = self.weight_words(k).shape
            members[f"weights_{k}"] = In(load_signature(
                depth, lanes * self._engine_units[k].layer.weight_bits))
        members.update({
            "done": Out(1),
            "prediction": Out(address_bits(n_out)),
            "counts": Out(data.ArrayLayout(unsigned(self.count_bits), n_out)),
            "cycles": Out(32),
        })
        self.stall_links: list[str] = []
        if stall_points:
            names = [_unit_name(n, u) for n, u in enumerate(self.units)]
            self.stall_links = [f"spikes_in -> {names[0]}"]
            self.stall_links += [f"{a} -> {b}" for a, b in zip(names, names[1:])]
            if is_map(self.output_shape):
                self.stall_links.append(f"{names[-1]} -> readout_flatten")
                names.append("readout_flatten")
            self.stall_links.append(f"{names[-1]} -> readout")
            members["stall"] = In(len(self.stall_links))
            members["stall_offer"] = Out(len(self.stall_links))
        super().__init__(members)

    def estimate_cycles(self, active_inputs: Sequence[Sequence[int]], final_spikes: int = 0,
                        fanout: Sequence[Sequence[int]] | None = None) -> int:
        """:func:`estimate_cycles` for this network and ``parallel``."""
        return estimate_cycles(self.qnet, self.parallel, active_inputs, final_spikes, fanout)

    def weight_words(self, k: int) -> np.ndarray:
        """Spiking layer ``k``'s weight memory contents, ``[depth, P]`` signed weights (pack
        them with ``memories.pack_words`` for ``weights_k``)."""
        return engine_weight_words(self._engine_units[k], self.parallel)

    def packed_weights(self) -> dict[int, np.ndarray]:
        """:func:`packed_weights` of this network's loaded layers."""
        return packed_weights(self.qnet, self.parallel, self.weight_memories)

    def elaborate(self, platform) -> Module:
        m = Module()

        chain = []
        for n, unit in enumerate(self.units):
            target = self.weight_memories.get(unit.spiking)
            component = unit.build(self.parallel, target)
            m.submodules[_unit_name(n, unit)] = component
            chain.append((unit, component))
            if target is not None:
                wiring.connect(m, wiring.flipped(getattr(self, f"weights_{unit.spiking}")),
                               component.weights)
        n_out = shape_size(self.output_shape)
        m.submodules.readout = readout = Readout(n_out, self.qnet.timesteps)

        # ---- the cycle counter

        # `cycles` is measured per inference from a free-running timestamp: each inference's
        # first accepted token queues its start time, and its `last` tick reaching the readout
        # (the cycle before `done`) takes it out. Inferences may overlap in the chain, so the
        # queue holds one start per inference in flight (at most one per unit and register
        # stage); when it is full, the first token of a further inference waits.
        now = Signal(32)
        m.d.sync += now.eq(now + 1)
        m.submodules.starts = starts = SyncFIFO(width=32, depth=2 * len(chain) + 2)
        first = Signal(init=1)  # the next input token opens an inference
        admit = ~first | starts.w_rdy

        points = []

        def stall_point(layout: data.Layout) -> StallPoint:
            point = StallPoint(layout)
            m.submodules[f"stall{len(points)}"] = point
            m.d.comb += [point.stall.eq(self.stall[len(points)]),
                         self.stall_offer[len(points)].eq(point.offer)]
            points.append(point)
            return point

        def link(upstream, downstream) -> None:
            """Connect two streams of the chain, through a stall point in test builds."""
            if self.stall_links:
                point = stall_point(data.Layout.cast(upstream.payload.shape()))
                wiring.connect(m, upstream, point.i)
                upstream = point.o
            wiring.connect(m, upstream, downstream)

        head = chain[0][1].spikes_in
        if self.stall_links:
            point = stall_point(data.Layout.cast(head.payload.shape()))
            wiring.connect(m, point.o, head)
            head = point.i
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

        # ---- the chain, its taps and the readout

        for (_, upstream), (_, downstream) in zip(chain, chain[1:]):
            link(upstream.spikes_out, downstream.spikes_in)

        tail = chain[-1][1].spikes_out
        if is_map(self.output_shape):
            m.submodules.readout_flatten = flatten = FlattenRemap(self.output_shape)
            link(tail, flatten.spikes_in)
            tail = flatten.spikes_out
        link(tail, readout.spikes)

        finishing = tail.valid & tail.ready & tail.payload.tick & tail.payload.last
        m.d.comb += starts.r_en.eq(finishing)
        with m.If(finishing):
            # The cycles after the accepting edge, through this one (`now - start`), plus
            # the `done` cycle that follows.
            m.d.sync += self.cycles.eq(now - starts.r_data + 1)

        for unit, component in chain:
            if unit.spiking is None:
                continue
            tap = getattr(self, f"tap_{unit.spiking}")
            stream = component.spikes_out
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
