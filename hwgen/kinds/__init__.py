"""The layer kinds: one module each, owning everything hwgen knows about the kind.

=============  =====================  ===========================================
module         nodes                  hardware
=============  =====================  ===========================================
``dense``      Dense, QuantDense      ``hardware.dense.DenseLIFEngine``
``conv``       Conv2d, QuantConv2d    ``hardware.conv.ConvLIFEngine``
``pool``       SumPool2d, MaxPool2d   ``hardware.pool.SumPoolRemap``, ``MaxPoolDedup``
``flatten``    Flatten                ``hardware.pool.FlattenRemap``
``merge``      SpikeSum               ``hardware.merge.StreamMerge`` (offsets 0)
               StreamJoin             ``hardware.merge.StreamMerge``: a node's several or
                                      delayed inputs (hardware-only, planned by the top)
               StreamFanout           ``hardware.fork.StreamFork``: a node's several consumers
=============  =====================  ===========================================

``base`` says what a kind is asked; ``lif`` holds what the neuron kinds share. Importing
this package registers every node type, which reading a model's JSON needs
(:func:`from_json`). docs/hardware.md, "Adding a layer kind", lists what a new kind touches.
"""

from __future__ import annotations

from ..ir import NODE_TYPES, Network, QuantNetwork, from_json, to_json
from .base import EngineGeometry, Flow, Stream, Unit
from .conv import Conv2d, QuantConv2d
from .dense import Dense, QuantDense
from .flatten import Flatten
from .lif import FloatSynapticLIF, SynapticLIF
from .merge import SpikeSum
from .pool import MaxPool2d, SumPool2d

__all__ = [
    "NODE_TYPES", "Conv2d", "Dense", "EngineGeometry", "Flatten", "FloatSynapticLIF", "Flow", "MaxPool2d",
    "Network", "QuantConv2d", "QuantDense", "QuantNetwork", "SpikeSum", "Stream", "SumPool2d", "SynapticLIF", "Unit",
    "from_json", "to_json",
]
