"""The spike-sum kind: several spike streams of one shape merged into one (SEW residual).

``x + f(x)`` on spikes (SEW-ResNet's ADD connection, a NIR sum junction of spike
streams): the output at an address is the sum of the inputs there, an integer count. As a
sum pool's, a count of ``n`` reaches the next layer as ``n`` events, so in hardware the
merge passes every input's events into one stream (docs/semantics.md, "Graphs").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ..ir import Node
from ..quant_rules import QuantOptions
from .base import Flow


@dataclass
class SpikeSum(Node):
    """The element-wise sum of its inputs (two or more spike streams of ``shape``)."""

    type_name: ClassVar[str] = "spike_sum"
    unit_stem: ClassVar[str] = "sum"
    joins: ClassVar[bool] = True

    name: str
    shape: tuple[int, ...]

    @property
    def output_shape(self) -> tuple[int, ...]:
        return tuple(self.shape)

    def float_step(self, xs: list[torch.Tensor]) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:  # left to right, as ``x + f(x)`` adds
            out = out + x
        return out

    def golden_step(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return self.float_step([x.reshape(x.shape[0], *self.shape) for x in xs])

    def quantize(self, opts: QuantOptions, flows: list[Flow]) -> tuple[Node, Flow]:
        return self, Flow(sum(f.input_max for f in flows), f"the sums of '{self.name}'")
