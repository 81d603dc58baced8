"""What a cocotb testbench is given: the stimulus and the golden model's expectations.

``write_vectors`` writes them to the ``.npz`` that ``sim/tb_top.py`` (and, per network,
``sim/tb_fuzz.py``) reads; ``stream_spec`` describes how each token stream packs its
addresses, from which the testbench decodes the streams on its own.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..golden import GoldenTrace
from ..ir import QuantNetwork
from ..protocol import address_fields

__all__ = ["count_bits", "fanout_bound", "stream_spec", "write_vectors"]


def count_bits(timesteps: int) -> int:
    """Width of one readout counter: ``ceil(log2(T + 1))`` (docs/hardware.md)."""
    return max(1, math.ceil(math.log2(timesteps + 1)))


def stream_spec(shape: tuple[int, ...], value_bits: int = 0) -> dict:
    """How a token stream of docs/hardware.md packs an address of a map or vector ``shape``.

    A ``(C, H, W)`` map has the address fields ``x, y, c`` (LSB first), a vector one field
    (``hwgen.protocol.address_fields``). The testbench packs and unpacks tokens from this
    description on its own.
    """
    dims = [int(d) for d in shape]
    return {"shape": dims, "fields": address_fields(dims), "value_bits": value_bits}


def fanout_bound(layer) -> int:
    """Most outputs one input event can reach (a watchdog budget, not a cost model)."""
    return layer.max_fanout()


def write_vectors(path: Path, qnet: QuantNetwork, inputs: np.ndarray, golden: GoldenTrace,
                  weights: dict[int, np.ndarray] | None = None) -> None:
    """The ``.npz`` a testbench reads (``HWGEN_SIM_VECTORS``, sim/tb_top.py): ``inputs``
    ``[B, T, N_in]``, the golden model's spikes of every spiking layer, counts and
    predictions, every stream's ``stream_spec``, the watchdog's fan-out bounds and, for a
    design with run-time-loaded weights, the words to load."""
    layers = qnet.spiking_layers
    arrays = {f"spikes_{k}": np.asarray(s, dtype=np.uint8) for k, s in enumerate(golden.spikes)}
    value_bits = qnet.input_bits if qnet.input_bits > 1 else 0
    streams = [stream_spec(qnet.input_shape, value_bits)]
    streams += [stream_spec(layer.output_shape) for layer in layers]
    np.savez(path, inputs=inputs, layers=len(layers), **arrays,
             counts=np.asarray(golden.counts, dtype=np.int64),
             prediction=np.asarray(golden.prediction, dtype=np.int64),
             streams=np.array(json.dumps(streams)),
             fanout=np.array([fanout_bound(layer) for layer in layers]),
             # the counters are as wide as the hardware's T; the samples may be shorter
             count_bits=count_bits(qnet.timesteps), timesteps=inputs.shape[1],
             **{f"weights_{k}": w for k, w in (weights or {}).items()},
             weight_addr_bits=np.array(json.dumps(
                 {k: max(0, (len(w) - 1).bit_length()) for k, w in (weights or {}).items()})))
