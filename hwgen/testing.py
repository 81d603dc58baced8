"""Random integer networks and spike inputs, for tests and benchmarks of golden vs RTL."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .ir import INPUT, Edge, Leak, QuantNetwork, ResetMode, Synapse, graph_from
from .kinds import Flatten, MaxPool2d, QuantConv2d, QuantDense, SpikeSum, SumPool2d
from .widths import accumulator_bits


def random_quant_network(
    sizes: list[int],
    *,
    seed: int = 0,
    weight_bits: int = 6,
    state_bits: int = 12,
    timesteps: int = 8,
    reset: ResetMode = "subtract",
    leak: Leak = Leak("shift", shift=3),
    per_neuron_threshold: bool = False,
    with_bias: bool = True,
    synapse: Synapse | None = None,
    membrane_bias: tuple[int, int] | None = None,
    v_reset: tuple[int, int] | None = None,
    reset_before_leak: bool = False,
) -> QuantNetwork:
    """A chain of dense LIF layers ``sizes[0] -> sizes[1] -> ...`` with random integers.

    Weights are biased slightly positive and thresholds set near the typical input so that
    every layer both fires and stays silent a fair share of the time.

    The neuron beyond plain LIF (docs/semantics.md), in every layer: ``synapse`` makes them
    CuBa neurons (its ``leak``, ``bits`` and ``delay``; ``acc_bits`` is sized for its rails),
    with a ``membrane_bias`` per neuron drawn from ``[lo, hi]`` if given; ``v_reset``: reset
    "zero" to a value per neuron drawn from ``[lo, hi]``; ``reset_before_leak`` for
    "subtract". These draw from their own random stream, so the integers of a network without
    them do not change.
    """
    rng = np.random.default_rng(seed)
    neuron_rng = np.random.default_rng([seed, 1])
    wmax = (1 << (weight_bits - 1)) - 1
    layers: list = []
    for n, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        weight = rng.integers(-wmax - 1, wmax + 1, size=(n_out, n_in)).astype(np.int64)
        weight += rng.integers(0, max(1, wmax // 2) + 1, size=weight.shape)
        weight = np.clip(weight, -wmax - 1, wmax)
        bias = (rng.integers(-wmax // 2, wmax // 2 + 1, size=n_out) if with_bias
                else np.zeros(n_out)).astype(np.int64)
        base = max(1, int(wmax * max(1, n_in // 4) // 4))
        threshold = (rng.integers(max(1, base // 2), base + 1, size=n_out) if per_neuron_threshold
                     else np.full(n_out, base)).astype(np.int64)
        threshold = np.minimum(threshold, (1 << (state_bits - 1)) - 2)
        layer = QuantDense(
            name=f"fc{n}", weight=weight, bias=bias, threshold=threshold, leak=leak, reset=reset,
            weight_bits=weight_bits, state_bits=state_bits,
            acc_bits=accumulator_bits(weight, bias, state_bits),
            scale_exp=np.zeros(n_out, dtype=np.int64))
        layers.append(_with_neuron(layer, neuron_rng, synapse, membrane_bias, v_reset, reset_before_leak))
    return QuantNetwork((sizes[0],), layers, timesteps, source=f"random(seed={seed})")


def _with_neuron(layer, rng: np.random.Generator, synapse: Synapse | None,
                 membrane_bias: tuple[int, int] | None, v_reset: tuple[int, int] | None,
                 reset_before_leak: bool):
    """``layer`` with the neuron options of :func:`random_quant_network` (per output channel
    values drawn from ``rng``), ``acc_bits`` sized for what its events add into."""
    channels = len(layer.bias)
    if synapse is not None:
        bias = () if membrane_bias is None else tuple(
            int(v) for v in rng.integers(membrane_bias[0], membrane_bias[1] + 1, size=channels))
        layer.synapse = replace(synapse, membrane_bias=bias)
        layer.acc_bits = accumulator_bits(layer.weight.reshape(channels, -1), layer.bias, synapse.bits,
                                          input_max=layer.input_max)
    if v_reset is not None:
        layer.v_reset = rng.integers(v_reset[0], v_reset[1] + 1, size=channels).astype(np.int64)
    layer.reset_before_leak = reset_before_leak
    return layer


def random_spikes(shape: tuple[int, ...], rate: float, seed: int = 0) -> np.ndarray:
    """Bernoulli spikes of the given rate, as uint8 (``shape = [samples, T, *input]``)."""
    rng = np.random.default_rng(seed)
    return (rng.random(shape) < rate).astype(np.uint8)


def random_conv_network(
    input_shape: tuple[int, int, int],
    layers: list[dict],
    *,
    seed: int = 0,
    weight_bits: int = 5,
    state_bits: int = 10,
    timesteps: int = 4,
    reset: ResetMode = "subtract",
    leak: Leak = Leak("shift", shift=3),
    input_bits: int = 1,
    rate: float = 0.3,
    with_bias: bool = True,
    synapse: Synapse | None = None,
    membrane_bias: tuple[int, int] | None = None,
    v_reset: tuple[int, int] | None = None,
    reset_before_leak: bool = False,
) -> QuantNetwork:
    """A chain of conv / pool / flatten / dense layers with random integers, for tests.

    ``layers`` are dicts with a ``"type"``:

    * ``"conv"``: ``out`` channels, ``kernel``, ``stride`` (1), ``padding`` (0), ``groups`` (1);
    * ``"sum_pool"`` / ``"max_pool"``: ``kernel``, ``stride`` (= kernel), ``padding`` (0);
    * ``"flatten"``;
    * ``"dense"``: ``out`` neurons.

    A spiking layer's dict may override the network-wide ``weight_bits``, ``state_bits``,
    ``reset``, ``leak``, ``with_bias`` and the neuron options (``synapse``, ``membrane_bias``,
    ``v_reset``, ``reset_before_leak``, as in :func:`random_quant_network`), and fix
    ``threshold`` (an int for every channel) instead of calibrating it.

    Thresholds are per output channel (neuron), calibrated layer by layer on random inputs at
    spike ``rate`` (direct input: that share of non-zero values, uniform over
    ``1 .. 2**input_bits - 1``) so that every layer both fires and stays silent a fair share
    of the time. ``acc_bits`` is sized for each layer's largest input value (``input_max``:
    ``k*k`` per sum pool, ``2**input_bits - 1`` for direct input).
    """
    rng = np.random.default_rng(seed)
    neuron_rng = np.random.default_rng([seed, 1])  # the neuron options' own stream
    shape: tuple[int, ...] = tuple(int(d) for d in input_shape)
    input_max = (1 << input_bits) - 1
    out: list = []
    fixed: set[int] = set()  # id() of layers whose threshold the spec fixes
    for n, spec in enumerate(layers):
        kind = spec["type"]
        if kind in ("sum_pool", "max_pool"):
            k = spec["kernel"]
            cls = MaxPool2d if kind == "max_pool" else SumPool2d
            pool = cls(f"pool{n}", shape, (k, k), (spec.get("stride", k),) * 2,
                       (spec.get("padding", 0),) * 2)
            out.append(pool)
            shape = pool.output_shape
            input_max = 1 if kind == "max_pool" else input_max * k * k
            continue
        if kind == "flatten":
            out.append(Flatten(f"flat{n}", input_shape=shape))
            shape = (int(np.prod(shape)),)
            continue
        c_out = spec["out"]
        layer_bits = spec.get("weight_bits", weight_bits)
        layer_state = spec.get("state_bits", state_bits)
        wmax = (1 << (layer_bits - 1)) - 1
        if kind == "conv":
            k = spec["kernel"]
            wshape = (c_out, shape[0] // spec.get("groups", 1), k, k)
        else:
            wshape = (c_out, int(np.prod(shape)))
        weight = rng.integers(-wmax - 1, wmax + 1, size=wshape).astype(np.int64)
        weight += rng.integers(0, max(1, wmax // 2) + 1, size=weight.shape)
        weight = np.clip(weight, -wmax - 1, wmax)
        bias = (rng.integers(-wmax // 2, wmax // 2 + 1, size=c_out)
                if spec.get("with_bias", with_bias) else np.zeros(c_out)).astype(np.int64)
        flat = weight.reshape(c_out, -1)
        common = dict(weight=weight, bias=bias,
                      threshold=np.full(c_out, spec.get("threshold", 1), dtype=np.int64),
                      leak=spec.get("leak", leak), reset=spec.get("reset", reset),
                      weight_bits=layer_bits, state_bits=layer_state,
                      acc_bits=accumulator_bits(flat, bias, layer_state, input_max=input_max),
                      scale_exp=np.zeros(c_out, dtype=np.int64), input_max=input_max)
        if kind == "conv":
            s, p = spec.get("stride", 1), spec.get("padding", 0)
            layer = QuantConv2d(name=f"conv{n}", input_shape=shape, stride=(s, s), padding=(p, p),
                                groups=spec.get("groups", 1), **common)
            shape = layer.output_shape
        elif kind == "dense":
            layer = QuantDense(name=f"fc{n}", **common)
            shape = (c_out,)
        else:
            raise ValueError(f"unknown layer type {kind!r}")
        layer = _with_neuron(layer, neuron_rng, spec.get("synapse", synapse),
                             spec.get("membrane_bias", membrane_bias), spec.get("v_reset", v_reset),
                             spec.get("reset_before_leak", reset_before_leak))
        if "threshold" in spec:
            fixed.add(id(layer))
        out.append(layer)
        input_max = 1
    net = QuantNetwork(tuple(int(d) for d in input_shape), out, timesteps,
                       source=f"random_conv(seed={seed})", input_bits=input_bits)
    _calibrate_thresholds(net, rate, rng, skip=fixed)
    return net


def _calibrate_thresholds(net: QuantNetwork, rate: float, rng: np.random.Generator,
                          skip: set[int] = frozenset()) -> None:
    """Sets each spiking layer's per-channel thresholds, first layer first, near the upper
    quartile of what one timestep adds to the channel's membranes (bias included), on a few
    random inputs: a membrane then crosses it every timestep or two."""
    import torch

    shape = (6, net.timesteps, *net.input_shape)
    x_all = (rng.random(shape) < rate).astype(np.int64)
    if net.input_bits > 1:
        x_all *= rng.integers(1, 1 << net.input_bits, size=shape)
    x_all = torch.from_numpy(x_all)
    for target in net.spiking_layers:
        if id(target) in skip:
            continue
        currents = []
        states: dict = {}
        for t in range(net.timesteps):
            x = x_all[:, t]
            for layer in net.layers:
                if not layer.has_neurons:
                    x = layer.golden_step(x)
                    continue
                current = layer.synaptic_input(layer.golden_input(x))
                if layer is target:
                    currents.append(current)
                    break
                s, states[id(layer)], _ = layer.fire(states.get(id(layer), layer.golden_state()), current)
                x = s.long()
        c = torch.stack(currents).transpose(0, 2).reshape(len(target.bias), -1).double()
        drive = c.quantile(0.75, dim=1).numpy() + target.bias
        cap = (1 << (target.state_bits - 1)) - 2
        target.threshold = np.clip(drive.round().astype(np.int64), 1, cap)


def network_from_spec(spec: dict) -> QuantNetwork:
    """A :func:`random_conv_network` (or a dense chain on a flat input) from a JSON-able spec.

    ``spec`` holds ``input_shape`` (``[C, H, W]`` or ``[N]``), ``layers`` (the dicts of
    :func:`random_conv_network`, a ``leak`` written as a dict of ``Leak``'s fields) and
    optionally ``seed``, ``timesteps``, ``input_bits``, ``weight_bits``, ``state_bits``,
    ``reset``, ``leak`` and ``rate``. Stress tests draw specs and keep the failing ones as
    regression cases, so a spec alone must rebuild the same integers.
    """
    def leak_of(value):
        return Leak(**value) if isinstance(value, dict) else value

    layers = [{**layer, **({"leak": leak_of(layer["leak"])} if "leak" in layer else {})}
              for layer in spec["layers"]]
    options = {k: spec[k] for k in ("seed", "timesteps", "input_bits", "weight_bits",
                                    "state_bits", "reset", "rate") if k in spec}
    if "leak" in spec:
        options["leak"] = leak_of(spec["leak"])
    return random_conv_network(tuple(spec["input_shape"]), layers, **options)


def edge_inputs(qnet: QuantNetwork, rates: list[float], seed: int = 0) -> np.ndarray:
    """``[len(rates) + 2, T, *input_shape]`` inputs: one random sample per spike rate (direct
    input: that share of non-zero values, uniform over ``1 .. 2**input_bits - 1``), then an
    all-zero sample and an all-ones (direct input: all at the largest value) one."""
    rng = np.random.default_rng(seed)
    top = (1 << qnet.input_bits) - 1
    shape = (qnet.timesteps, *qnet.input_shape)
    samples = []
    for rate in rates:
        x = (rng.random(shape) < rate).astype(np.int64)
        if top > 1:
            x *= rng.integers(1, top + 1, size=shape)
        samples.append(x)
    samples += [np.zeros(shape, dtype=np.int64), np.full(shape, top, dtype=np.int64)]
    return np.stack(samples).astype(np.uint8 if top < 256 else np.uint16)


# ----------------------------------------------------------------------------- graphs

def random_graph_network(spec: dict) -> QuantNetwork:
    """A random graph network (docs/semantics.md, "Graphs") from a JSON-able ``spec``.

    ``spec`` holds ``input_shape`` (``[N]`` or ``[C, H, W]``), ``seed``, ``timesteps``,
    ``rate`` and ``nodes``, each a dict with ``type`` (``"dense"``, ``"conv"`` or ``"sum"``),
    ``inputs`` (a list of ``[source, delay]``, ``source`` the index of an earlier node,
    or of any spiking node with delay 1, or -1 for the network input) and, for neuron
    layers, ``out`` (neurons, or channels: a conv keeps the map size, kernel 3 with
    padding 1 or kernel 1) plus the neuron options of ``random_conv_network``'s layer dicts
    (``weight_bits``, ``state_bits``, ``reset``, ``leak``, ``with_bias``, ``threshold``)
    and ``v_reset`` (an int), ``reset_before_leak``, ``cuba`` (``{"leak": ..., "bits":
    ..., "delay": 0|1, "membrane_bias": int}``). ``output``: the index of the node the
    readout counts (default: the last neuron layer).

    A dense layer takes flat inputs (its sources' outputs flattened, concatenated); a conv
    layer maps of its size (channels concatenated); a sum node inputs of one shape. Unset
    thresholds are calibrated per layer, in order, on random inputs at spike ``rate``.
    """
    rng = np.random.default_rng(spec.get("seed", 0))
    input_shape = tuple(int(d) for d in spec["input_shape"])
    timesteps = spec.get("timesteps", 4)
    shapes: dict[int, tuple[int, ...]] = {-1: input_shape}
    maxima: dict[int, int] = {-1: 1}
    names = {-1: INPUT}
    nodes: list = []
    inputs: dict[str, list[Edge]] = {}
    fixed: set[str] = set()

    def leak_of(value):
        return Leak(**value) if isinstance(value, dict) else (value or Leak("shift", shift=3))

    for n, node in enumerate(spec["nodes"]):
        sources = [(int(s), int(d)) for s, d in node["inputs"]]
        kind = node["type"]
        name = f"{kind}{n}"
        names[n] = name
        # A delayed input comes from a spiking node: its output is 0/1, whatever comes later.
        src_shape = [shapes[s] if s in shapes else _declared_shape(spec, s, input_shape) for s, _ in sources]
        src_max = [1 if d else maxima[s] for s, d in sources]
        edges = [Edge(INPUT if s == -1 else f"{spec['nodes'][s]['type']}{s}", d) for s, d in sources]
        if kind == "sum":
            nodes.append(SpikeSum(name, src_shape[0]))
            shapes[n], maxima[n] = src_shape[0], sum(src_max)
            inputs[name] = edges
            continue
        c_out = node["out"]
        bits = node.get("weight_bits", 5)
        state_bits = node.get("state_bits", 10)
        wmax = (1 << (bits - 1)) - 1
        if kind == "conv":
            k = node.get("kernel", 3)
            segments = tuple(int(s[0]) for s in src_shape)
            wshape = (c_out, sum(segments), k, k)
        else:
            segments = tuple(int(np.prod(s)) for s in src_shape)
            wshape = (c_out, sum(segments))
        weight = rng.integers(-wmax - 1, wmax + 1, size=wshape).astype(np.int64)
        weight = np.clip(weight + rng.integers(0, max(1, wmax // 2) + 1, size=wshape), -wmax - 1, wmax)
        bias = (rng.integers(-wmax // 2, wmax // 2 + 1, size=c_out) if node.get("with_bias", True)
                else np.zeros(c_out)).astype(np.int64)
        input_max = max(src_max)
        synapse = None
        if node.get("cuba"):
            cuba = node["cuba"]
            mb = int(cuba.get("membrane_bias", 0))
            synapse = Synapse(leak_of(cuba.get("leak")), int(cuba.get("bits", state_bits)),
                              int(cuba.get("delay", 0)), (mb,) * c_out if mb else ())
        integrated = synapse.bits if synapse else state_bits
        common = dict(weight=weight, bias=bias,
                      threshold=np.full(c_out, node.get("threshold", 1), dtype=np.int64),
                      leak=leak_of(node.get("leak")), reset=node.get("reset", "subtract"),
                      weight_bits=bits, state_bits=state_bits,
                      acc_bits=accumulator_bits(weight.reshape(c_out, -1), bias, integrated, input_max=input_max),
                      scale_exp=np.zeros(c_out, dtype=np.int64), input_max=input_max)
        if kind == "conv":
            k = node.get("kernel", 3)
            _, h, w = src_shape[0]
            layer = QuantConv2d(name=name, input_shape=(sum(segments), h, w), padding=(k // 2, k // 2), **common)
        elif kind == "dense":
            layer = QuantDense(name=name, **common)
        else:
            raise ValueError(f"unknown node type {kind!r}")
        layer.synapse = synapse
        if node.get("v_reset"):
            layer.v_reset = np.full(c_out, int(node["v_reset"]), dtype=np.int64)
        layer.reset_before_leak = bool(node.get("reset_before_leak", False))
        if len(segments) > 1:
            layer.segments = segments
        if "threshold" in node:
            fixed.add(name)
        nodes.append(layer)
        inputs[name] = edges
        shapes[n], maxima[n] = tuple(layer.output_shape), 1
    output = names[spec["output"]] if "output" in spec else ""
    net = QuantNetwork(input_shape, nodes, timesteps, source=f"random_graph(seed={spec.get('seed', 0)})",
                       inputs=graph_from(nodes, inputs), output=output)
    net.check_graph()
    _calibrate_graph_thresholds(net, spec.get("rate", 0.3), rng, fixed)
    return net


def _declared_shape(spec: dict, index: int, input_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The output shape of node ``index`` before it is built (a delayed input from a later
    node): a dense layer's ``(out,)``, a conv's ``(out, H, W)`` of the input map."""
    node = spec["nodes"][index]
    if node["type"] == "dense":
        return (int(node["out"]),)
    return (int(node["out"]), *input_shape[1:])


def _calibrate_graph_thresholds(net: QuantNetwork, rate: float, rng: np.random.Generator,
                                fixed: set[str]) -> None:
    """Each neuron layer's thresholds, in layer order, near the upper quartile of what its
    inputs add to a channel's membrane (bias included) in one timestep on random inputs,
    with every later layer silent: the feed-forward drive (a recurrent input counts with the
    spikes of the layers already calibrated)."""
    import torch

    from . import golden

    x = torch.from_numpy((rng.random((6, net.timesteps, *net.input_shape)) < rate).astype(np.int64))
    for target in net.spiking_layers:
        if target.name not in fixed:
            target.threshold = np.full(len(target.threshold), (1 << (target.state_bits - 1)) - 2)
    for target in net.spiking_layers:
        if target.name in fixed:
            continue
        trace = golden.run(net, x)
        outputs = _node_outputs(net, trace, x)
        currents = []
        for t in range(net.timesteps):
            xs = [outputs[e.source][:, t - e.delay] if t >= e.delay else torch.zeros_like(outputs[e.source][:, 0])
                  for e in net.sources(target)]
            xs = [target.golden_input(v) for v in xs]
            currents.append(target.synaptic_input(target.golden_concat(xs) if len(xs) > 1 else xs[0]))
        c = torch.stack(currents).transpose(0, 2).reshape(len(target.bias), -1).double()
        drive = c.quantile(0.75, dim=1).numpy() + target.bias
        target.threshold = np.clip(drive.round().astype(np.int64), 1, (1 << (target.state_bits - 1)) - 2)


def _node_outputs(net: QuantNetwork, trace, x) -> dict:
    """Every node's output ``[B, T, *shape]`` from a golden trace (sums re-added)."""
    index = {layer.name: k for k, layer in enumerate(net.spiking_layers)}
    outputs = {INPUT: x}
    batch, steps = x.shape[0], x.shape[1]
    for layer in net.layers:
        if layer.name in index:
            outputs[layer.name] = trace.spikes[index[layer.name]].long().reshape(batch, steps, *layer.output_shape)
        else:
            parts = [outputs[e.source] for e in net.sources(layer)]
            outputs[layer.name] = sum(p.reshape(batch, steps, *layer.output_shape) for p in parts)
    return outputs
