"""Does a generated design's memory fit a device? An estimate from the IR, before synthesis.

Each memory of the layer engines (docs/hardware.md) is mapped to the device's block RAM
in the aspect ratio that needs the fewest blocks, as Yosys does. Memories of 1 kbit or less
are counted as logic: synthesis builds those from LUTs and flip-flops. On the iCE40UP5K the
largest memories go to SPRAM first; SPRAM is single-ported and not initialised by the
bitstream, so weights placed there must be loaded at start-up.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from .ir import MaxPool2d, QuantConv2d, QuantDense, QuantNetwork

SMALL_MEMORY_BITS = 1024


@dataclass(frozen=True)
class BlockKind:
    name: str
    shapes: tuple[tuple[int, int], ...]  # (depth, width) configurations of one block

    def blocks(self, depth: int, width: int) -> int:
        return min(math.ceil(width / w) * math.ceil(depth / d) for d, w in self.shapes)


EBR = BlockKind("EBR", ((256, 16), (512, 8), (1024, 4), (2048, 2)))
SPRAM = BlockKind("SPRAM", ((16384, 16),))
DP16KD = BlockKind("DP16KD", ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1)))


@dataclass(frozen=True)
class Device:
    name: str
    block: BlockKind
    blocks: int
    spram: int = 0  # iCE40UP only


DEVICES = {
    "ice40up5k": Device("iCE40UP5K", EBR, 30, spram=4),
    "ecp5-25f": Device("ECP5-25F", DP16KD, 56),
    "ecp5-85f": Device("ECP5-85F", DP16KD, 208),
}


@dataclass
class Memory:
    layer: str
    role: str  # "weights", "membranes", "window bitmap"
    depth: int
    width: int

    @property
    def bits(self) -> int:
        return self.depth * self.width


def memories(qnet: QuantNetwork, parallel: int) -> list[Memory]:
    """The block memories the hardware instantiates, with their shapes."""
    out = []
    for layer in qnet.layers:
        if isinstance(layer, QuantDense):
            lanes = max(1, min(parallel, layer.out_features))
            groups = math.ceil(layer.out_features / lanes)
            out.append(Memory(layer.name, "weights", layer.in_features * groups, lanes * layer.weight_bits))
            out.append(Memory(layer.name, "membranes", groups, lanes * layer.acc_bits))
        elif isinstance(layer, QuantConv2d):
            c_out, h, w = layer.output_shape
            per_group = c_out // layer.groups
            lanes = max(1, min(parallel, per_group))
            groups = math.ceil(per_group / lanes)
            kh, kw = layer.kernel
            out.append(Memory(layer.name, "weights", layer.input_shape[0] * kh * kw * groups,
                              lanes * layer.weight_bits))
            out.append(Memory(layer.name, "membranes", h * w * layer.groups * groups, lanes * layer.acc_bits))
        elif isinstance(layer, MaxPool2d):
            c, h, w = layer.output_shape
            out.append(Memory(layer.name, "window bitmap", c * h * w, 2))
    return out


@dataclass
class Fit:
    device: str
    fits: bool
    blocks_needed: int
    blocks_available: int
    spram_needed: int
    spram_available: int
    logic_memory_bits: int
    placement: list[dict]

    def to_dict(self) -> dict:
        return asdict(self)


def fit(qnet: QuantNetwork, parallel: int, device_key: str) -> Fit:
    device = DEVICES[device_key]
    placement = []
    blocks = spram = logic_bits = 0
    for mem in sorted(memories(qnet, parallel), key=lambda m: -m.bits):
        if mem.bits <= SMALL_MEMORY_BITS:
            logic_bits += mem.bits
            where, count = "logic", 0
        elif device.spram and spram + SPRAM.blocks(mem.depth, mem.width) <= device.spram:
            count = SPRAM.blocks(mem.depth, mem.width)
            spram += count
            where = SPRAM.name
        else:
            count = device.block.blocks(mem.depth, mem.width)
            blocks += count
            where = device.block.name
        placement.append({"layer": mem.layer, "role": mem.role, "depth": mem.depth, "width": mem.width,
                          "bits": mem.bits, "placed_in": where, "blocks": count})
    return Fit(device.name, blocks <= device.blocks and spram <= device.spram, blocks, device.blocks,
               spram, device.spram, logic_bits, placement)
