"""The hardware stage: a QuantNetwork as Amaranth components (docs/hardware.md)."""

from __future__ import annotations

from collections.abc import Mapping

from ..ir import QuantNetwork
from .conv import ConvLIFEngine, conv_tap_counts
from .dense import DenseLIFEngine
from .lanes import lanes_and_groups
from .pool import FlattenRemap, MaxPoolDedup, SumPoolRemap
from .readout import Readout
from .spike_queue import SpikeQueue, SpikeSerializer
from .tokens import address_layout, is_map, pack_token, shape_size, token_layout, \
    token_signature, unpack_token
from .top import NetworkTop, Unit, estimate_cycles, network_activity, plan_units, tap_signature

__all__ = [
    "ConvLIFEngine",
    "DenseLIFEngine",
    "FlattenRemap",
    "MaxPoolDedup",
    "NetworkTop",
    "Readout",
    "SpikeQueue",
    "SpikeSerializer",
    "SumPoolRemap",
    "Unit",
    "address_layout",
    "build_top",
    "conv_tap_counts",
    "estimate_cycles",
    "is_map",
    "lanes_and_groups",
    "network_activity",
    "pack_token",
    "plan_units",
    "shape_size",
    "tap_signature",
    "token_layout",
    "token_signature",
    "unpack_token",
]


def build_top(qnet: QuantNetwork, parallel: int,
              weight_memories: Mapping[int, str] | None = None) -> NetworkTop:
    """The top-level component for ``qnet`` with ``parallel`` lanes per layer (capped per layer:
    at a dense layer's width, at a convolution's ``C_out / groups``); ``weight_memories``
    names the layers whose weights are loaded at run time (``NetworkTop``)."""
    plan_units(qnet)  # refuse an unrealisable network before any hardware object exists
    return NetworkTop(qnet, parallel, weight_memories=weight_memories)
