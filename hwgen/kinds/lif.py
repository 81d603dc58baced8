"""What every synapse-plus-LIF-neuron kind shares (dense and convolution today).

The LIF neuron itself (docs/semantics.md: integrate, saturate, fire, leak, reset) is the
same for every synapse kind, and so is the quantization rule of its parameters (a
power-of-two weight scale with integer thresholds, ``hwgen.quant_rules``). A synapse kind
subclasses :class:`FloatSynapticLIF` and :class:`SynapticLIF` and adds what is its own:
the synaptic current, the event fan-out, the folding onto lanes and its hardware unit.

The neuron state is one tensor per layer here (the membrane ``u``); ``golden_state`` and
``fire`` are where a kind with more state variables (a synaptic current beside the
membrane) would differ.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch

from ..ir import Leak, LIFNeurons, Node, StateRails
from ..quant_rules import (MAX_ACC_BITS, MAX_STATE_BITS, UNCLAMPED_STATE_BITS, QuantOptions,  # noqa: F401
                           check_finite, integers, leak_for, rows, scale_exponents)
from ..widths import accumulator_bits
from .base import EngineGeometry, Flow


def leak(v: torch.Tensor, spec: Leak) -> torch.Tensor:
    """``leak(v)`` of docs/semantics.md on integer tensors (``>>`` floors)."""
    if spec.kind == "none":
        return v
    if spec.kind == "shift":
        return v - (v >> spec.shift)
    return (v * spec.mul) >> spec.frac_bits


class FloatLIF:
    """One spiking layer's float32 tensors, shaped like snnTorch's buffers, and its step.

    It repeats snnTorch 1.0.0's float32 operations in snnTorch's order (``Leaky.forward``
    with the default ``reset_delay=True``): see ``hwgen.ir_sim``.
    """

    def __init__(self, layer: FloatSynapticLIF) -> None:
        self.layer = layer
        self.weight = torch.from_numpy(np.ascontiguousarray(layer.weight, dtype=np.float32))
        bias = np.asarray(layer.bias, dtype=np.float32)
        # nn.Linear / nn.Conv2d with bias=False pass no bias to the kernel. An all-zero bias
        # adds exact zeros (only the sign of a zero could change, which no comparison with a
        # positive threshold sees), so dropping it cannot change a spike either way.
        self.bias = torch.from_numpy(bias.copy()) if np.any(bias != 0) else None
        beta = torch.from_numpy(layer.neurons.beta.astype(np.float32))
        threshold = torch.from_numpy(layer.neurons.threshold.astype(np.float32))
        self.beta, self.threshold = layer.per_neuron(beta), layer.per_neuron(threshold)
        self.reset = layer.neurons.reset

    @property
    def out_size(self) -> int:
        return int(np.prod(self.layer.output_shape))

    def step(self, x: torch.Tensor, mem: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        current = self.layer.float_current(x, self.weight, self.bias)
        if mem is None:  # snnTorch: zeros_like(input_) on the first step after a reset
            mem = torch.zeros_like(current)
        reset = (mem - self.threshold > 0).to(torch.float32)
        if self.reset == "zero":
            mem = (1 - reset) * mem
        mem = self.beta.clamp(0, 1) * mem + current
        if self.reset == "subtract":
            mem = mem - reset * self.threshold
        spk = (mem - self.threshold > 0).to(torch.float32)
        return spk, mem


class FloatSynapticLIF(Node):
    """Float form: synapses (``weight``, ``bias``) followed by LIF neurons (``neurons``)."""

    has_neurons: ClassVar[bool] = True
    weight: np.ndarray
    bias: np.ndarray
    neurons: LIFNeurons

    # ---- asked of each synapse kind

    def per_neuron(self, values: torch.Tensor) -> torch.Tensor:
        """A per-neuron parameter broadcast against this layer's current."""
        raise NotImplementedError

    def float_input(self, x: torch.Tensor) -> torch.Tensor:
        """The layer's input as its synapses take it (dense: flattened)."""
        return x

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
        exps = scale_exponents(self.weight, opts.weight_bits, opts.per_channel)
        scale = np.exp2(exps.astype(np.float64))
        wmax_int = (1 << (opts.weight_bits - 1)) - 1
        wscale = scale.reshape(-1, *([1] * (self.weight.ndim - 1)))
        weight = np.clip(np.rint(self.weight * wscale), -wmax_int - 1, wmax_int).astype(np.int64)
        bias = integers(self, "bias", self.bias, scale, MAX_ACC_BITS, opts.weight_bits)
        # Below 1 a threshold would fire on any positive membrane: 1 is the smallest (reported).
        threshold = np.maximum(integers(self, "threshold", self.neurons.threshold, scale,
                                        MAX_STATE_BITS, opts.weight_bits), 1)
        leak = leak_for(self.name, self.neurons.beta, opts.leak_frac_bits)
        quantized = self.quantized(
            name=self.name, weight=weight, bias=bias, threshold=threshold, leak=leak,
            reset=self.neurons.reset, weight_bits=opts.weight_bits, state_bits=UNCLAMPED_STATE_BITS,
            acc_bits=accumulator_bits(rows(weight), bias, UNCLAMPED_STATE_BITS, input_max=flow.input_max),
            scale_exp=exps, input_max=flow.input_max)
        return quantized, Flow(1, "spikes")


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

    def report_extra(self) -> dict:
        return {}

    # ---- shared: the neuron

    @property
    def output_size(self) -> int:
        return int(np.prod(self.output_shape))

    def golden_state(self) -> int:
        """The membrane before the first timestep: 0 (broadcasts against any batch)."""
        return 0

    def fire(self, u: torch.Tensor | int, current: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Integrate, saturate, fire, leak and reset: returns (spikes, next ``u``,
        unsaturated ``a``)."""
        theta = self.per_neuron(torch.from_numpy(np.asarray(self.threshold, dtype=np.int64)))
        bias = self.per_neuron(torch.from_numpy(np.asarray(self.bias, dtype=np.int64)))
        a = u + bias + current
        v = a.clamp(self.state_min, self.state_max)
        s = v > theta
        lv = leak(v, self.leak)
        if self.reset == "subtract":
            u_next = lv - s.long() * theta
        elif self.reset == "zero":
            u_next = torch.where(s, torch.zeros_like(lv), lv)
        else:
            u_next = lv
        return s, u_next, a

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
        of membrane (add, saturate, compare, leak, reset, bias); ``logic`` holds the fitted
        constants of ``hwgen.devices``."""
        g = self.geometry(parallel)
        bits = self.acc_bits + self.state_bits
        lut = self.control_lut + g.lanes * bits * logic["lane_lut_per_bit"]
        ff = logic["control_ff"] + g.lanes * bits // 2
        dsp = g.lanes if self.leak.kind == "mul" else 0
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
            "membrane_memory_bits": g.fire_words * g.lanes * self.acc_bits,
        }
        entry.update(self.report_extra())
        return entry

    def unit_latency(self, unit) -> int:
        return 0

