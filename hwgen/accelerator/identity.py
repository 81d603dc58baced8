"""The identity of a generated design: the hash that the Verilog header, the board's INFO
reply and the host link compare, so that a board running another design is named."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping

from ..ir import QuantNetwork
from ..kinds import to_json


def model_hash(qnet: QuantNetwork, parallel: int,
               weight_memories: Mapping[int, str] | None = None) -> str:
    """Identifies the generated design: same integers and options, same hash.

    Where the model came from (``qnet.source``, a path) does not enter: the same network
    generated from another folder is the same design. Run-time-loaded weight memories
    (``weight_memories``) make another design (other ports, a load step), so they enter
    when there are any.
    """
    anonymous = dataclasses.replace(qnet, source="")
    text = f"{to_json(anonymous)}|P={parallel}"
    if weight_memories:
        text += "|W=" + ",".join(f"{k}:{t}" for k, t in sorted(weight_memories.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
