"""The hardware stage: a QuantNetwork as Amaranth components (docs/hardware.md)."""

from __future__ import annotations

from ..ir import QuantNetwork
from .dense import DenseLIFEngine, SpikeSerializer, lanes_and_groups
from .readout import Readout
from .tokens import pack_token, token_layout, token_signature, unpack_token
from .top import NetworkTop, estimate_cycles, tap_signature

__all__ = [
    "DenseLIFEngine",
    "NetworkTop",
    "Readout",
    "SpikeSerializer",
    "build_top",
    "estimate_cycles",
    "lanes_and_groups",
    "pack_token",
    "tap_signature",
    "token_layout",
    "token_signature",
    "unpack_token",
]


def build_top(qnet: QuantNetwork, parallel: int) -> NetworkTop:
    """The top-level component for ``qnet`` with ``parallel`` lanes per layer (capped per layer)."""
    return NetworkTop(qnet, parallel)
