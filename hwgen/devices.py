"""Does a generated design fit a device? An estimate from the IR, before synthesis.

Each memory of the layer engines (docs/hardware.md) is mapped to the device's block RAM
in the aspect ratio that needs the fewest blocks, as Yosys does. Memories of 1 kbit or less
are counted as logic: synthesis builds those from LUTs and flip-flops (LUT RAM on ECP5).

Two verdicts:

* :func:`fit` (the generate report): on the iCE40UP5K the largest memories go to SPRAM
  first. SPRAM is single-ported and not initialised by the bitstream, so weights placed there
  would have to be loaded at start-up: it is the verdict *if* they were.
* :func:`board_fit` (``hwgen build``, before synthesis): what the bitstream can hold today.
  Every memory of the engines either needs its contents from the bitstream (weight ROMs,
  membranes that start at the biases, threshold and bias tables) or is read and written in
  the same cycle (membranes, max-pool bitmaps), which single-ported SPRAM cannot do, so
  nothing goes to SPRAM: block RAM (EBR, DP16KD, BSRAM) only. Also rough LUT, flip-flop and
  DSP estimates (:func:`estimate_logic`), stated as estimates.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np

from .accelerator.top import network_memories
from .hardware.memories import MemorySpec, spram_blocks
from .ir import QuantNetwork

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
BSRAM = BlockKind("BSRAM", ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1)))


@dataclass(frozen=True)
class Device:
    name: str
    block: BlockKind
    blocks: int
    spram: int = 0  # iCE40UP only
    lut: int = 0  # LUT4s (iCE40: logic cells, each a LUT4 and a flip-flop)
    ff: int = 0
    dsp: int = 0  # multipliers: SB_MAC16 (iCE40UP), MULT18X18D (ECP5), MULT18X18 (Gowin)
    block_kbit: int = 0

    def memory_text(self) -> str:
        text = f"{self.blocks} {self.block.name} x {self.block_kbit} kbit"
        return text + (f", {self.spram} SPRAM x 256 kbit" if self.spram else "")


DEVICES = {
    "ice40up5k": Device("iCE40UP5K", EBR, 30, spram=4, lut=5280, ff=5280, dsp=8, block_kbit=4),
    "ecp5-25f": Device("ECP5-25F", DP16KD, 56, lut=24288, ff=24288, dsp=28, block_kbit=18),
    "ecp5-85f": Device("ECP5-85F", DP16KD, 208, lut=83640, ff=83640, dsp=156, block_kbit=18),
    "gw1nr-9": Device("GW1NR-9", BSRAM, 26, lut=8640, ff=6480, dsp=20, block_kbit=18),
}


def memories(qnet: QuantNetwork, parallel: int,
             weight_memories: Mapping[int, str] | None = None) -> list[MemorySpec]:
    """The memories the hardware instantiates, with their shapes, as the network top lists
    them (``NetworkTop.memories``); the weights of the spiking layers in ``weight_memories``
    are loaded at run time (``"ice40_spram"``: into SPRAM)."""
    return network_memories(qnet, parallel, weight_memories)


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
        if mem.logic_only:  # listed, but its cost is in the control estimate
            where, count = "logic", 0
        elif mem.bits <= SMALL_MEMORY_BITS:
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


# ---- the build's fit check: block RAM only, plus rough logic estimates


@dataclass
class BoardFit:
    device: str
    fits: bool
    blocks_needed: int
    blocks_available: int
    spram_needed: int
    spram_available: int
    lut: int  # estimates, see estimate_logic
    lut_available: int
    ff: int
    ff_available: int
    dsp: int
    dsp_available: int
    logic_memory_bits: int
    placement: list[dict]
    shortfalls: list[dict] = field(default_factory=list)
    spram_would_help: bool = False  # fits with SPRAM, which the engines cannot use (see module doc)

    def to_dict(self) -> dict:
        return asdict(self)


def board_fit(qnet: QuantNetwork, parallel: int, device_key: str, extra: list[MemorySpec] = (),
              weight_memories: Mapping[int, str] | None = None) -> BoardFit:
    """What the bitstream of ``qnet`` needs on ``device_key``, before synthesis.

    Memories over 1 kbit go to block RAM, except the weights of the layers that
    ``weight_memories`` loads at run time into SPRAM (:func:`weight_plan`; every other engine
    memory is initialised from the bitstream or read and written in the same cycle, which
    SPRAM cannot do); LUTs, flip-flops and DSPs are :func:`estimate_logic`'s rough estimates.
    ``shortfalls`` lists each resource that does not fit: what, needed, available. ``extra``
    are the board top's memories (sample buffer, FIFO).
    """
    device = DEVICES[device_key]
    placement = []
    blocks = spram = 0
    small = {"rom": 0, "ram": 0, "lutram": 0}  # bits of memories built from logic
    for mem in sorted([*memories(qnet, parallel, weight_memories), *extra], key=lambda m: -m.bits):
        if mem.spram:
            where, count = "SPRAM", spram_blocks(mem.depth, mem.width)
            spram += count
        else:
            where, count = place_like_yosys(mem, device)
        if where == device.block.name:
            blocks += count
        elif mem.logic_only:  # its cost is in the control estimate
            pass
        elif where != "SPRAM":
            small["lutram" if where == "LUT RAM" else ("ram" if mem.read_write else "rom")] += mem.bits
        placement.append({"layer": mem.layer, "role": mem.role, "depth": mem.depth, "width": mem.width,
                          "bits": mem.bits, "placed_in": where, "blocks": count,
                          "initialised": mem.initialised, "read_write": mem.read_write})
    logic_bits = sum(small.values())
    lut, ff, dsp = estimate_logic(qnet, parallel, device_key, small, board_top=bool(extra),
                                  loaded_layers=len(weight_memories or {}))
    shortfalls = []
    if blocks > device.blocks:
        shortfalls.append({"what": f"block RAM ({device.block.name}, {device.block_kbit} kbit each)",
                           "needed": blocks, "available": device.blocks})
    if spram > device.spram:
        shortfalls.append({"what": "SPRAM (256 kbit each)", "needed": spram, "available": device.spram})
    # Logic is an estimate: refuse only what is clearly out of reach (a 10 % margin).
    if lut > device.lut * 1.1:
        shortfalls.append({"what": "LUT4s", "needed": lut, "available": device.lut, "estimate": True})
    if ff > device.ff * 1.1:
        shortfalls.append({"what": "flip-flops", "needed": ff, "available": device.ff, "estimate": True})
    if dsp > device.dsp:
        shortfalls.append({"what": "DSP multipliers", "needed": dsp, "available": device.dsp, "estimate": True})
    # Only asked when no plan was given (None): would loading weights into SPRAM make it fit?
    spram_would_help = bool(device.spram and blocks > device.blocks and weight_memories is None
                            and weight_plan(qnet, parallel, device_key, extra))
    return BoardFit(device.name, not shortfalls, blocks, device.blocks, spram, device.spram, lut,
                    device.lut, ff, device.ff, dsp, device.dsp, logic_bits, placement, shortfalls,
                    spram_would_help)


def weight_plan(qnet: QuantNetwork, parallel: int, device_key: str,
                extra: list[MemorySpec] = ()) -> dict[int, str]:
    """Which layers' weights to load at run time into SPRAM on ``device_key``: none when the
    design fits the block RAM as it is (loading costs the host a WEIGHTS upload after every
    configuration); otherwise the largest weight memories first, while they fit the SPRAM
    blocks, until the block RAM suffices. ``{}`` on a device without SPRAM, or when moving
    weights does not make the block RAM fit."""
    device = DEVICES[device_key]
    if not device.spram or _blocks_fit(board_fit(qnet, parallel, device_key, extra, {}), device):
        return {}
    names = [layer.name for layer in qnet.spiking_layers]
    weights = {mem.layer: mem for mem in memories(qnet, parallel) if mem.role == "weights"}
    plan: dict[int, str] = {}
    used = 0
    for k in sorted(range(len(names)), key=lambda k: -weights[names[k]].bits):
        need = spram_blocks(weights[names[k]].depth, weights[names[k]].width)
        if used + need > device.spram:
            continue
        plan[k] = "ice40_spram"
        used += need
        if _blocks_fit(board_fit(qnet, parallel, device_key, extra, plan), device):
            return dict(sorted(plan.items()))
    return {}


def _blocks_fit(verdict: BoardFit, device: Device) -> bool:
    return verdict.blocks_needed <= device.blocks and verdict.spram_needed <= device.spram


# Yosys' memory_libmap: the cost of a block (its techlibs' brams.txt), 4 per 16x4 LUT RAM
# (ECP5, Gowin; not for ROMs), and 1 per bit of RAM or 1/16 per bit of ROM built from logic.
# The cheapest wins, so small memories stay in logic and wide shallow ones may take blocks.
BLOCK_COST = {"EBR": 64, "DP16KD": 128, "BSRAM": 128}
HAS_LUT_RAM = {"EBR": False, "DP16KD": True, "BSRAM": True}


def place_like_yosys(mem: MemorySpec, device: Device) -> tuple[str, int]:
    """Where Yosys will put ``mem`` on ``device``: (block kind name, blocks), ``("LUT RAM", 0)``
    or ``("logic", 0)``. A memory read combinationally (``logic_only``) cannot use a block."""
    if mem.logic_only:
        lut_ram = HAS_LUT_RAM[device.block.name] and mem.read_write
        return ("LUT RAM" if lut_ram else "logic"), 0
    count = device.block.blocks(mem.depth, mem.width)
    options = [(count * BLOCK_COST[device.block.name], device.block.name, count),
               (mem.bits * (1.0 if mem.read_write else 1 / 16), "logic", 0)]
    if HAS_LUT_RAM[device.block.name] and mem.read_write:
        options.append((math.ceil(mem.depth / 16) * math.ceil(mem.width / 4) * 4, "LUT RAM", 0))
    _, where, count = min(options)
    return where, count


def estimate_logic(qnet: QuantNetwork, parallel: int, device_key: str,
                   small: dict[str, int] | None = None, board_top: bool = False,
                   loaded_layers: int = 0) -> tuple[int, int, int]:
    """Rough LUT4, flip-flop and DSP counts: a control cost per unit, a datapath cost per
    lane and bit of membrane (add, saturate, compare, leak, reset, bias), the readout, the
    small memories built from logic, and the host-link board top. The constants
    (``LOGIC``) are fitted to nextpnr's counts of the digits MLP and conv and the NIR CNN
    on iCE40UP5K and ECP5 (docs/boards.md gives estimate and actual per build); expect
    +-25 %, which is why the build refuses on logic only with a margin."""
    lut = ff = dsp = 0
    for layer in qnet.layers:
        unit_lut, unit_ff, unit_dsp = layer.logic_estimate(parallel, device_key, LOGIC)
        lut, ff, dsp = lut + unit_lut, ff + unit_ff, dsp + unit_dsp
    if qnet.input_bits > 1:  # the first layer's lanes multiply by the input value
        dsp += qnet.spiking_layers[0].geometry(parallel).lanes
    n_out = int(np.prod(qnet.output_layer.output_shape))
    count_bits = max(1, int(qnet.timesteps).bit_length())
    lut += LOGIC["readout"] + n_out * count_bits * LOGIC["readout_per_bit"]
    ff += LOGIC["readout"] // 2 + n_out * count_bits + 64
    # Small memories: a RAM in logic is a flip-flop and about a LUT per bit, a ROM a LUT per
    # 16 bits or fewer; LUT RAM (ECP5, Gowin) about a LUT per 32 bits.
    small = small or {}
    ff += small.get("ram", 0)
    lut += small.get("ram", 0) * LOGIC["ram_bit"] + small.get("rom", 0) // 16 + small.get("lutram", 0) // 32
    if board_top:
        lut += LOGIC["board_top_lut"]
        ff += LOGIC["board_top_ff"]
    if loaded_layers:  # the WEIGHTS command: header, chunk checks, word assembly, address muxes
        lut += LOGIC["weight_loader_lut"] + LOGIC["weight_loader_per_layer"] * loaded_layers
        ff += LOGIC["weight_loader_ff"]
    return int(lut), int(ff), int(dsp)


# The per-unit control costs are the kinds' own (``control_lut``); these are the shared ones.
LOGIC = {
    "control_ff": 100,
    "lane_lut_per_bit": 3,
    "readout": 150,
    "readout_per_bit": 3,
    "ram_bit": 1,
    "board_top_lut": 700,  # UART, SLIP, CRC, command engine, result bytes
    "board_top_ff": 130,
    "weight_loader_lut": 300,
    "weight_loader_per_layer": 60,
    "weight_loader_ff": 200,
}
