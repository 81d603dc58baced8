"""What every synapse-plus-LIF-neuron kind shares (dense and convolution today).

The LIF neuron itself (docs/semantics.md: integrate, saturate, fire, leak, reset) is the
same for every synapse kind, and so is the quantization rule of its parameters (a
power-of-two weight scale with integer thresholds, ``hwgen.quant_rules``). A synapse kind
subclasses :class:`FloatSynapticLIF` and :class:`SynapticLIF` and adds what is its own:
the synaptic current, the event fan-out, the folding onto lanes and its hardware unit.

The neuron is docs/semantics.md's: LIF, or CuBa (a synaptic current with its own decay
feeding the membrane, ``ir.Synapse``), with every reset the frameworks use. A plain LIF
layer's state is one tensor (the membrane ``u``); the others carry a ``NeuronState``.
A layer may take several inputs (a recurrent connection, a fan-in): its weight is their
concatenation (``segments``), and in integers their sum is one sum.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from ..hardware.lanes import NeuronMemories
from ..ir import Leak, LIFNeurons, Node, StateRails, Synapse
from ..quant_rules import (MAX_ACC_BITS, MAX_STATE_BITS, UNCLAMPED_STATE_BITS, QuantOptions,  # noqa: F401
                           check_finite, integers, leak_for, rows, scale_exponents)
from ..widths import accumulator_bits, signed_bits
from .base import EngineGeometry, Flow


def leak(v: torch.Tensor, spec: Leak) -> torch.Tensor:
    """``leak(v)`` of docs/semantics.md on integer tensors (``>>`` floors)."""
    if spec.kind == "none":
        return v
    if spec.kind == "shift":
        return v - (v >> spec.shift)
    return (v * spec.mul) >> spec.frac_bits


@dataclass
class FloatState:
    """A float layer's state between timesteps: membrane, and current for CuBa neurons."""

    mem: torch.Tensor | None = None
    syn: torch.Tensor | None = None


@dataclass
class NeuronState:
    """An integer layer's state between timesteps beyond the membrane ``u``: the synaptic
    current ``i`` (CuBa, after its decay), and ``hold`` (reset "zero_step": the next step
    is held at zero). ``j``, the current's unsaturated sum of the step just done, is kept
    for the quantizer's calibration."""

    u: torch.Tensor | int = 0
    i: torch.Tensor | int = 0
    hold: torch.Tensor | bool = False
    j: torch.Tensor | None = None


class FloatLIF:
    """One spiking layer's float32 tensors, shaped like the source framework's buffers, and
    its step, which repeats the source's float32 operations in the source's order
    (``hwgen.ir_sim``):

    * snnTorch 1.0 ``Leaky`` / ``RLeaky`` / ``Synaptic`` / ``RSynaptic`` (default
      ``reset_delay=True``); the input currents are added one by one in the module's order
      (the feed-forward one, then the recurrent one);
    * NIR ``CubaLIF`` as the NIR repository's forward-Euler reference computes it
      (``neurons.euler``; paper/03_rnn/extras/debug_CubaLIF/nir_reference_impl.py):
      ``I = I + k_syn*(-I + w_in*x)``, ``v = v + k_mem*(v_leak - v + r*I_last)``, spike
      ``v > thr``, then ``v -= z*thr`` (subtract) or ``v = v_reset`` (zero).
    """

    def __init__(self, layer: FloatSynapticLIF) -> None:
        self.layer = layer
        weight = np.asarray(layer.weight, dtype=np.float32)
        segments = layer.input_segments()
        biases = [np.asarray(layer.bias, dtype=np.float32)]
        if layer.extra_bias is not None:
            biases += [np.asarray(b, dtype=np.float32) for b in layer.extra_bias]
        biases += [np.zeros_like(biases[0])] * (len(segments) - len(biases))
        self.synapses = []
        start = 0
        for width, bias in zip(segments, biases):
            # A contiguous copy of each input's columns is the very tensor the source module
            # held, so the kernel (and its summation order) is the module's.
            w = torch.from_numpy(np.ascontiguousarray(weight[:, start:start + width]))
            # nn.Linear / nn.Conv2d with bias=False pass no bias to the kernel. An all-zero
            # bias adds exact zeros (only the sign of a zero could change, which no
            # comparison with a positive threshold sees), so dropping it cannot change a spike.
            b = torch.from_numpy(bias.copy()) if np.any(bias != 0) else None
            self.synapses.append((w, b))
            start += width
        neurons = layer.neurons

        def per_neuron(values, dtype=np.float32):
            return layer.per_neuron(torch.from_numpy(np.asarray(values, dtype=dtype)))

        self.beta, self.threshold = per_neuron(neurons.beta), per_neuron(neurons.threshold)
        self.alpha = None if neurons.alpha is None else per_neuron(neurons.alpha)
        self.v_reset = None if neurons.v_reset is None else per_neuron(neurons.v_reset)
        self.euler = None if neurons.euler is None else {k: per_neuron(v) for k, v in neurons.euler.items()}
        self.reset = neurons.reset

    @property
    def out_size(self) -> int:
        return int(np.prod(self.layer.output_shape))

    def currents(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Each input's synaptic current, in input order."""
        return [self.layer.float_current(x, w, b) for x, (w, b) in zip(xs, self.synapses)]

    def step(self, xs: list[torch.Tensor], state: FloatState | None) -> tuple[torch.Tensor, FloatState]:
        currents = self.currents(xs)
        state = state or FloatState()
        if self.euler is not None:
            return self._euler_step(currents, state)
        mem = state.mem
        if mem is None:  # snnTorch: zeros_like(input_) on the first step after a reset
            mem = torch.zeros_like(currents[0])
        reset = (mem - self.threshold > 0).to(torch.float32)
        if self.reset == "zero":
            mem = (1 - reset) * mem if self.v_reset is None else torch.where(reset > 0, self.v_reset, mem)
        syn = None
        if self.alpha is not None:  # Synaptic: syn = alpha*syn + input (+ recurrent)
            syn = self.alpha.clamp(0, 1) * (state.syn if state.syn is not None else torch.zeros_like(mem))
            for current in currents:
                syn = syn + current
            currents = [syn]
        mem = self.beta.clamp(0, 1) * mem
        for current in currents:
            mem = mem + current
        if self.reset == "subtract":
            mem = mem - reset * self.threshold
        elif self.reset == "zero_step":  # RLeaky / Synaptic: mem - reset * mem, i.e. 0
            mem = mem - reset * mem
        spk = (mem - self.threshold > 0).to(torch.float32)
        return spk, FloatState(mem, syn)

    def _euler_step(self, currents: list[torch.Tensor], state: FloatState) -> tuple[torch.Tensor, FloatState]:
        e = self.euler
        x = currents[0]
        for current in currents[1:]:  # NIR sums a node's inputs; in edge order here
            x = x + current
        i_last = state.syn if state.syn is not None else torch.zeros_like(x)
        v_last = state.mem if state.mem is not None else torch.zeros_like(x)
        syn = i_last + e["k_syn"] * (-i_last + e["w_in"] * x)
        mem = v_last + e["k_mem"] * (e["v_leak"] - v_last + e["r"] * i_last)
        z = mem > self.threshold
        if self.reset == "subtract":
            mem = mem - z.to(torch.float32) * self.threshold
        elif self.reset == "zero":
            mem = torch.where(z, self.v_reset if self.v_reset is not None else torch.zeros_like(mem), mem)
        return z.to(torch.float32), FloatState(mem, syn)


class FloatSynapticLIF(Node):
    """Float form: synapses (``weight``, ``bias``) followed by LIF neurons (``neurons``)."""

    has_neurons: ClassVar[bool] = True
    weight: np.ndarray
    bias: np.ndarray
    neurons: LIFNeurons
    #: Several inputs: each one's width (dense: features; conv: channels), in input order;
    #: ``weight`` is their concatenation. ``()``: one input.
    segments: tuple[int, ...]
    #: The bias of each input after the first (``[len(segments) - 1, N]``), or ``None``.
    extra_bias: np.ndarray | None

    # ---- asked of each synapse kind

    def per_neuron(self, values: torch.Tensor) -> torch.Tensor:
        """A per-neuron parameter broadcast against this layer's current."""
        raise NotImplementedError

    def float_input(self, x: torch.Tensor) -> torch.Tensor:
        """The layer's input as its synapses take it (dense: flattened)."""
        return x

    def input_segments(self) -> tuple[int, ...]:
        """Each input's width; one input spans the weight's whole input dimension."""
        return tuple(self.segments) or (int(self.weight.shape[1]),)

    def float_current(self, x: torch.Tensor, weight: torch.Tensor,
                      bias: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def quantized(self, **common) -> SynapticLIF:
        """The integer node with ``common`` (the fields every synapse kind has) and the
        kind's own (shapes, stride, ...)."""
        raise NotImplementedError

    # ---- shared

    def float_model(self) -> FloatLIF:
        return FloatLIF(self)

    def quantize(self, opts: QuantOptions, flow: Flow) -> tuple[SynapticLIF, Flow]:
        """Power-of-two scale, integer weights, bias and thresholds, integer leak; state and
        accumulator widths are provisional until the quantizer calibrates them."""
        check_finite(self)
        neurons = self.neurons
        weight_f, bias_f = self.integer_form()
        exps = scale_exponents(weight_f, opts.weight_bits, opts.per_channel)
        scale = np.exp2(exps.astype(np.float64))
        wmax_int = (1 << (opts.weight_bits - 1)) - 1
        wscale = scale.reshape(-1, *([1] * (weight_f.ndim - 1)))
        weight = np.clip(np.rint(weight_f * wscale), -wmax_int - 1, wmax_int).astype(np.int64)
        bias = integers(self, "bias", bias_f, scale, MAX_ACC_BITS, opts.weight_bits)
        # Below 1 a threshold would fire on any positive membrane: 1 is the smallest (reported).
        threshold = np.maximum(integers(self, "threshold", neurons.threshold, scale,
                                        MAX_STATE_BITS, opts.weight_bits), 1)
        beta, alpha = self.decays()
        leak = leak_for(self.name, beta, opts.leak_frac_bits)
        synapse = None
        if alpha is not None:
            e = neurons.euler
            mb = (integers(self, "v_leak", e["k_mem"].astype(np.float64) * e["v_leak"], scale,
                           MAX_STATE_BITS, opts.weight_bits) if e is not None else np.zeros(len(threshold)))
            synapse = Synapse(leak_for(self.name, alpha, opts.leak_frac_bits, "alpha"), UNCLAMPED_STATE_BITS,
                              delay=1 if e is not None else 0,
                              membrane_bias=() if not np.any(mb) else tuple(int(v) for v in mb))
        v_reset = None
        if neurons.v_reset is not None and np.any(neurons.v_reset != 0):
            v_reset = integers(self, "v_reset", neurons.v_reset, scale, MAX_STATE_BITS, opts.weight_bits)
        quantized = self.quantized(
            name=self.name, weight=weight, bias=bias, threshold=threshold, leak=leak,
            reset=neurons.reset, weight_bits=opts.weight_bits, state_bits=UNCLAMPED_STATE_BITS,
            acc_bits=accumulator_bits(rows(weight), bias, UNCLAMPED_STATE_BITS, input_max=flow.input_max),
            scale_exp=exps, input_max=flow.input_max)
        quantized.synapse = synapse
        quantized.v_reset = v_reset
        quantized.reset_before_leak = neurons.euler is not None
        quantized.segments = tuple(self.segments)
        return quantized, Flow(1, "spikes")

    def decays(self) -> tuple[np.ndarray, np.ndarray | None]:
        """``(beta, alpha)`` per neuron as the integer neuron applies them (``alpha`` is
        ``None`` without a synaptic current)."""
        e = self.neurons.euler
        if e is not None:
            return (1.0 - e["k_mem"].astype(np.float64)), (1.0 - e["k_syn"].astype(np.float64))
        return self.neurons.beta, self.neurons.alpha

    def integer_form(self) -> tuple[np.ndarray, np.ndarray]:
        """The weight and bias the integer neuron integrates (before scaling): the inputs'
        biases summed; for NIR's Euler form the input gains ``k_mem*r*k_syn*w_in`` folded in
        per neuron (docs/semantics.md, "CuBa")."""
        weight = np.asarray(self.weight, dtype=np.float64)
        bias = np.asarray(self.bias, dtype=np.float64)
        if self.extra_bias is not None:
            bias = bias + np.asarray(self.extra_bias, dtype=np.float64).sum(axis=0)
        e = self.neurons.euler
        if e is not None:
            f32 = {k: v.astype(np.float32) for k, v in e.items()}
            # float32 products of snnTorch's exports that should be 1 are 1 +- an ulp or two
            gain = (f32["k_mem"] * f32["r"]).astype(np.float64) * (f32["k_syn"] * f32["w_in"]).astype(np.float64)
            gain = np.where(np.abs(gain - 1.0) < 1e-6, 1.0, gain)
            weight = weight * gain.reshape(-1, *([1] * (weight.ndim - 1)))
            bias = bias * gain
        return weight, bias


class SynapticLIF(StateRails, Node):
    """Integer form: every number the hardware stores or computes with.

    Fields every synapse kind has (the dataclass subclasses declare them): ``name``,
    ``weight`` (int64, within ``weight_bits`` signed), ``bias``, ``threshold`` (>= 1) and
    ``scale_exp`` per output channel, ``leak``, ``reset``, ``weight_bits``, ``state_bits``
    (the membrane saturates to this signed width between timesteps), ``acc_bits`` (holds
    every partial sum within a timestep, never wraps) and ``input_max`` (the largest input
    value per address and timestep: 1 for spikes, k*k after a k x k sum pool,
    ``2**input_bits - 1`` for direct input; sizes ``acc_bits``).
    """

    has_neurons: ClassVar[bool] = True
    integers: ClassVar[bool] = True
    # The neuron beyond plain LIF (the dataclass subclasses declare them, default off):
    #: CuBa: the synaptic current (``ir.Synapse``), else ``None``
    synapse: Synapse | None
    #: "zero" resets to this per output channel (``None``: 0)
    v_reset: np.ndarray | None
    #: subtract: the threshold is subtracted before the leak (NIR's Euler reference), not after
    #: (snnTorch's ``reset_delay=True`` order)
    reset_before_leak: bool
    #: several inputs: each one's width (``FloatSynapticLIF.segments``)
    segments: tuple[int, ...]
    #: the kind's part of its engine's submodule name, and its report type
    unit_stem: ClassVar[str] = ""
    report_type: ClassVar[str] = ""
    #: LUTs of the engine's control (counters, FSM, queue, serializer), fitted to nextpnr
    #: (hwgen.devices.estimate_logic)
    control_lut: ClassVar[int] = 0

    # ---- asked of each synapse kind

    def per_neuron(self, values: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def golden_input(self, x: torch.Tensor) -> torch.Tensor:
        """The layer's input as its synapses take it (dense: flattened)."""
        return x

    def synaptic_input(self, x: torch.Tensor) -> torch.Tensor:
        """``Σ W·x`` for one timestep."""
        raise NotImplementedError

    def event_fanout(self, events: torch.Tensor) -> torch.Tensor:
        """Weight additions an event-driven engine spends on ``events``: events x in-range
        fan-out, per sample. A sum pool's count ``k`` arrives as ``k`` events; a direct
        multi-bit input as one event per non-zero value (the caller passes ``x != 0``)."""
        raise NotImplementedError

    def geometry(self, parallel: int) -> EngineGeometry:
        raise NotImplementedError

    @property
    def input_size(self) -> int:
        raise NotImplementedError

    def max_fanout(self) -> int:
        """Most outputs one input event can reach (a watchdog budget, not a cost model)."""
        raise NotImplementedError

    def weight_words(self, parallel: int) -> np.ndarray:
        """The engine's weight memory contents, ``[depth, P]`` signed weights."""
        raise NotImplementedError

    def weight_words_read(self, active: np.ndarray, parallel: int) -> np.ndarray:
        """Which of :meth:`weight_words`' words the engine reads, ``[depth]`` bool, when the
        input addresses ``active`` (``golden_input_shape`` bool) carry at least one event
        (``hwgen.simulate.coverage``: a word never read is not verified by a run)."""
        raise NotImplementedError

    def report_extra(self) -> dict:
        return {}

    # ---- shared: the neuron

    @property
    def output_size(self) -> int:
        return int(np.prod(self.output_shape))

    @property
    def integrated_bits(self) -> int:
        """The rails of what the input events add into: the current's for CuBa neurons,
        else the membrane's (sizes ``acc_bits``)."""
        return self.synapse.bits if self.synapse is not None else self.state_bits

    @property
    def membrane_bits(self) -> int:
        """Width of the membrane word: ``acc_bits`` where the events add into it (LIF);
        for CuBa neurons what ``u + membrane_bias + c`` can reach."""
        syn = self.synapse
        if syn is None:
            return self.acc_bits
        mb = np.asarray(syn.membrane_bias or [0], dtype=np.int64)
        return signed_bits(self.state_min + syn.current_min + min(int(mb.min()), 0),
                           self.state_max + syn.current_max + max(int(mb.max()), 0))

    @property
    def plain(self) -> bool:
        """A LIF neuron whose whole state is its membrane (docs/semantics.md's first form)."""
        return self.synapse is None and self.reset != "zero_step"

    def golden_state(self):
        """The state before the first timestep: 0 (broadcasts against any batch), or a
        ``NeuronState`` of zeros for neurons with more state than a membrane."""
        return 0 if self.plain else NeuronState()

    def fire(self, state, current: torch.Tensor) -> tuple[torch.Tensor, object, torch.Tensor]:
        """One timestep of docs/semantics.md for the sum ``current`` of the weighted inputs:
        returns (spikes, next state, unsaturated membrane sum ``a``)."""
        def channel(values) -> torch.Tensor:
            return self.per_neuron(torch.from_numpy(np.asarray(values, dtype=np.int64)))

        theta, bias = channel(self.threshold), channel(self.bias)
        u = state if self.plain else state.u
        syn = self.synapse
        if syn is None:
            a = u + bias + current
        else:
            j = state.i + bias + current  # the current integrates the input, exactly
            c = j.clamp(syn.current_min, syn.current_max)
            mb = channel(syn.membrane_bias) if syn.membrane_bias else 0
            # delay 1 adds no current now, but ``a`` still takes the batch shape of ``c`` (at
            # t = 0, ``u`` is a scalar 0 and ``mb`` per neuron only)
            a = u + mb + (c if syn.delay == 0 else torch.zeros_like(c))
        if self.reset == "zero_step":  # the step after a spike is held at zero, input and all
            a = torch.where(torch.as_tensor(state.hold), torch.zeros_like(a), a)
        v = a.clamp(self.state_min, self.state_max)
        s = v > theta
        if self.reset == "subtract":
            u_next = leak(v - s.long() * theta, self.leak) if self.reset_before_leak else \
                leak(v, self.leak) - s.long() * theta
        elif self.reset == "zero":
            target = channel(self.v_reset) if self.v_reset is not None else torch.zeros_like(v)
            u_next = leak(torch.where(s, target.expand_as(v), v), self.leak)
        else:  # none, zero_step
            u_next = leak(v, self.leak)
        if self.plain:
            return s, u_next, a
        i_next = 0
        if syn is not None:
            if syn.delay == 1:  # the membrane takes this step's current at the next step
                u_next = u_next + c
            i_next = leak(c, syn.leak)
        return s, NeuronState(u_next, i_next, s if self.reset == "zero_step" else False,
                              j if syn is not None else None), a

    def full_fanout(self) -> float:
        """Synaptic operations of one timestep in which every input is an event."""
        ones = torch.ones(1, *self.golden_input_shape, dtype=torch.int64)
        return float(self.event_fanout(ones)[0])

    @property
    def golden_input_shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    # ---- shared: the engine's memories and costs

    def logic_estimate(self, parallel: int, device_key: str, logic: dict) -> tuple[int, int, int]:
        """Rough ``(LUT4, FF, DSP)`` of the engine: control plus a datapath per lane and bit
        of membrane (add, saturate, compare, leak, reset, bias), and for a CuBa neuron per
        bit of current and of its membrane word (saturate, leak, add into the membrane);
        ``logic`` holds the fitted constants of ``hwgen.devices``."""
        g = self.geometry(parallel)
        bits = self.acc_bits + self.state_bits
        syn = self.synapse
        if syn is not None:
            bits += syn.bits + self.membrane_bits
        lut = self.control_lut + g.lanes * bits * logic["lane_lut_per_bit"]
        ff = logic["control_ff"] + g.lanes * bits // 2
        # A "mul" leak is a constant multiply per lane of the state (or current) it decays;
        # one multiplier block takes 16 bits a side on iCE40 (SB_MAC16), 18 elsewhere, so a
        # wider operand takes two (measured: the Braille RNN's 19-bit membranes on iCE40).
        port = 16 if device_key.startswith("ice40") else 18
        dsp = g.lanes * (self.leak.kind == "mul") * -(-self.state_bits // port)
        if syn is not None and syn.leak.kind == "mul":
            dsp += g.lanes * -(-syn.bits // port)
        # ECP5 synthesis builds a constant multiply of an address by G (not a power of
        # two) in a multiplier block
        if g.groups > 1 and g.groups & (g.groups - 1) and device_key.startswith("ecp5"):
            dsp += 1
        return lut, ff, dsp

    def report_entry(self, parallel: int) -> dict:
        g = self.geometry(parallel)
        leak = self.leak
        entry = {
            "name": self.name,
            "type": self.report_type,
            "in": list(self.golden_input_shape),
            "out": list(self.output_shape),
            "parallel": g.lanes,
            "groups": g.groups,
            "weight_bits": self.weight_bits,
            "state_bits": self.state_bits,
            "acc_bits": self.acc_bits,
            "input_max": self.input_max,
            "reset": self.reset,
            "leak": {"kind": leak.kind, "shift": leak.shift, "mul": leak.mul,
                     "frac_bits": leak.frac_bits, "beta": leak.beta},
            "threshold_min": int(self.threshold.min()),
            "threshold_max": int(self.threshold.max()),
            "weight_memory_bits": int(self.weight.size) * self.weight_bits,
            # every bit of neuron state: the membrane, and the current and hold bits of the
            # neurons that have them (hwgen.hardware.lanes.NeuronMemories)
            "membrane_memory_bits": g.fire_words * g.lanes * sum(bits for _, bits in NeuronMemories.words(self)),
        }
        if not self.plain:
            syn = self.synapse
            if syn is not None:
                entry["current"] = {"bits": syn.bits, "delay": syn.delay, "leak": syn.leak.kind,
                                    "membrane_bits": self.membrane_bits}
            entry.update({f"{role.replace(' ', '_')}_memory_bits": g.fire_words * g.lanes * bits
                          for role, bits in NeuronMemories.words(self) if role != "membranes"})
        entry.update(self.report_extra())
        return entry

    def unit_latency(self, unit) -> int:
        return 0

