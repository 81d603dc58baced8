"""What every layer kind is asked, and the small records the stages pass it.

A layer kind is a pair of node classes (``hwgen.ir.Node``) in one module of this package:
a float node, which the frontends produce, and an integer node, which the quantizer makes
from it (kinds without parameters, such as pools, are one class serving both forms). The
stages never switch on the kind: they iterate over a network's nodes and call the methods
below, which each kind implements in its own module.

Float node: ``float_step`` (``hwgen.ir_sim``), ``quantize`` (``hwgen.quantize``).
Integer node: ``golden_step`` (``hwgen.golden``), ``plan_hardware`` and ``build_unit``
(``hwgen.accelerator.top``), ``unit_memories`` and ``logic_estimate`` (``hwgen.devices``),
``report_entry`` (``hwgen.report``). Nodes that hold neurons (``has_neurons``) add the
synapse and neuron methods of ``hwgen.kinds.lif.SynapticLIF``: their state, their
``geometry`` (folding onto lanes, the cost model's input), the weight words a run read
(``weight_words_read``, ``hwgen.simulate.coverage``); every kind gives the cost model
its ``cost_stages`` (``hwgen.accelerator.cycles``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..cost import EngineGeometry  # noqa: F401 - what ``geometry`` returns
from ..hardware.memories import MemorySpec
from ..hardware.tokens import StreamShape

if TYPE_CHECKING:
    from amaranth.lib import wiring

    from ..ir import Node


@dataclass(frozen=True)
class Flow:
    """What the quantizer knows about the values entering a node.

    ``input_max`` is the largest value an input address carries in one timestep (1 for
    spikes, ``k*k`` per sum pool, ``2**input_bits - 1`` for direct input); ``carries``
    names it for error messages.
    """

    input_max: int
    carries: str


@dataclass(frozen=True)
class Stream:
    """A token stream between hardware units, as the network top plans it.

    ``shape`` is a map ``(C, H, W)`` or a vector size (``hardware.tokens``); ``value_bits``
    is non-zero for direct multi-bit input (a ``value`` field per token); ``input_max`` is
    the largest value one address carries per timestep; ``spiking`` counts the spiking
    layers before it (the index the next one gets); ``input_bits`` is the network's.
    """

    shape: StreamShape
    value_bits: int = 0
    input_max: int = 1
    spiking: int = 0
    input_bits: int = 1

    def to(self, **changes) -> Stream:
        return replace(self, **changes)


@dataclass
class Unit:
    """One hardware unit of the chain: the node it realises and what flows in and out.

    ``node`` is the IR node (a ``Flatten`` made for the purpose where a dense layer or the
    readout flattens a map implicitly); ``spiking`` the index of a spiking layer (its
    ``tap_K``), else ``None``; ``value_bits`` and ``input_max`` describe its input stream.
    ``ports_in`` / ``ports_out``: a join's inputs, a fork's outputs (graphs; docs/hardware.md,
    "Graphs"); their members are ``spikes_in_k`` / ``spikes_out_k``, a single one's
    ``spikes_in`` / ``spikes_out``.
    """

    node: Node
    in_shape: StreamShape
    out_shape: StreamShape
    value_bits: int = 0
    input_max: int = 1
    spiking: int | None = None
    ports_in: int = 1
    ports_out: int = 1

    def in_port(self, k: int) -> str:
        """The member of the unit's component that takes its input ``k``."""
        return "spikes_in" if self.ports_in == 1 else f"spikes_in_{k}"

    def out_port(self, k: int) -> str:
        """The member of the unit's component that sends its output ``k``."""
        return "spikes_out" if self.ports_out == 1 else f"spikes_out_{k}"

    def build(self, parallel: int, weight_target: str | None = None) -> wiring.Component:
        """The unit's component; ``weight_target`` (engines only) loads its weights at run
        time instead of from the bitstream (``hardware.memories.LoadedWeights``)."""
        return self.node.build_unit(self, parallel, weight_target)

    def memories(self, parallel: int, weight_target: str | None = None) -> list[MemorySpec]:
        """The memories :meth:`build`'s component builds (for the fit check and reports)."""
        return self.node.unit_memories(self, parallel, weight_target)

    @property
    def latency(self) -> int:
        """Cycles a remap unit adds between its input and its output (0 for engines, whose
        latency is their own)."""
        return self.node.unit_latency(self)

    @property
    def stem(self) -> str:
        """The kind's part of the unit's submodule name (``unit3_max_pool``)."""
        return self.node.unit_stem
