"""Weight memories written at run time (docs/hardware.md, "Loaded weights").

A layer's weights normally sit in a ROM that the bitstream initialises. When they do not fit
the device's block RAM (the 784-128-10 MNIST-scale network on an iCE40UP5K: 802,816 weight
bits against 30 x 4 kbit of EBR), they go into a memory that is written after configuration
instead, through the ``weights_K`` stream of ``NetworkTop`` (the host link's WEIGHTS command
on a board, the testbench in simulation). On the iCE40UP that memory is the SPRAM, which
the bitstream cannot initialise and which has one port; every target here is therefore used
as a single-port RAM, so that what the simulation of the generic target shows is what the
SPRAM does:

* ``addr`` / ``en`` / ``data`` is the engine's read port, exactly like the ROM's: ``data``
  shows the word at ``addr`` one cycle after a cycle with ``en`` high and holds while ``en``
  is low;
* a ``load`` beat writes ``data`` at ``addr`` (``ready`` is always high); reads and writes
  share the port, so weights are loaded only while no inference runs (the board top refuses
  WEIGHTS during an inference, and START until every word is loaded).

Targets: ``"ram"``, an Amaranth ``Memory`` (block RAM or logic, whatever synthesis picks; it
is what the testbench and the Amaranth simulator see), and ``"ice40_spram"``, the hand-written
tiling of ``SB_SPRAM256KA`` blocks in ``rtl_templates/ice40_spram.v``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np
from amaranth.hdl import ClockSignal, Instance, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["SPRAM_SHIM", "TARGETS", "LoadedWeights", "MemorySpec", "load_signature", "pack_words",
           "spram_blocks"]

TARGETS = ("ram", "ice40_spram")
# rtl_templates/ in the checkout, installed as the package hwgen.rtl_templates (pyproject.toml)
SPRAM_SHIM = Path(str(files("hwgen.rtl_templates") / "ice40_spram.v"))
SPRAM_MODULE = "hwgen_ice40_spram"
SPRAM_WORDS, SPRAM_BITS = 16384, 16  # one SB_SPRAM256KA


@dataclass(frozen=True)
class MemorySpec:
    """One memory a unit builds, as the fit check and the reports count it.

    ``layer`` and ``role`` name it ("weights", "membranes", "thresholds", "biases",
    "spike queue", "window bitmap 0", ...); ``initialised``: its contents come from the
    bitstream; ``read_write``: read and written in the same cycle (a RAM, not a ROM);
    ``spram``: loaded at run time into iCE40UP SPRAM (:class:`LoadedWeights`). The
    components that build memories list them in a ``memories()`` method, next to where
    they build them; tests/test_memories.py checks each list against the elaborated design.
    """

    layer: str
    role: str
    depth: int
    width: int
    initialised: bool = True
    read_write: bool = False
    spram: bool = False
    #: read combinationally (a first-word fall-through FIFO of the control): synthesis builds
    #: it from logic or LUT RAM, never block RAM, and its cost is part of the unit's fitted
    #: control estimate (hwgen.devices), so the fit check lists it without counting it again
    logic_only: bool = False

    @property
    def bits(self) -> int:
        return self.depth * self.width


def spram_blocks(depth: int, width: int) -> int:
    """SB_SPRAM256KA blocks of ``rtl_templates/ice40_spram.v`` for a ``width x depth`` RAM."""
    return math.ceil(width / SPRAM_BITS) * math.ceil(depth / SPRAM_WORDS)


def load_signature(depth: int, word_bits: int) -> stream.Signature:
    """One write beat: ``addr`` (below ``depth``) and the packed word ``data``."""
    return stream.Signature(data.StructLayout({"addr": range(depth), "data": word_bits}))


def pack_words(words: np.ndarray, weight_bits: int) -> np.ndarray:
    """``[depth, P]`` signed weights as the bytes of the packed words, ``[depth, ceil(P*b/8)]``
    uint8, little-endian: lane ``l`` in bits ``l*b .. l*b+b-1`` (two's complement), as the
    ``data`` of a ``load`` beat and the WEIGHTS payload of the host link carry them."""
    words = np.asarray(words, dtype=np.int64)
    depth, lanes = words.shape
    nbytes = -(-lanes * weight_bits // 8)
    out = np.zeros((depth, nbytes), dtype=np.uint8)
    bits = (words & ((1 << weight_bits) - 1)).astype(np.uint64)
    # Bit by bit: clear enough for the sizes involved (a second per million weights).
    for lane in range(lanes):
        for b in range(weight_bits):
            pos = lane * weight_bits + b
            out[:, pos // 8] |= (((bits[:, lane] >> np.uint64(b)) & np.uint64(1)) << np.uint64(pos % 8)).astype(np.uint8)
    return out


class LoadedWeights(wiring.Component):
    """A single-port weight RAM of ``depth`` words of ``lanes`` signed ``weight_bits`` weights,
    written through ``load`` (see the module docstring).

    Members
    -------
    addr : ``In(range(depth))``, the read address
    en : ``In(1)``, read enable (``data`` holds while low)
    data : ``Out(ArrayLayout(signed(weight_bits), lanes))``, the word read
    load : ``In(load_signature(depth, lanes * weight_bits))``, writes
    """

    def __init__(self, lanes: int, weight_bits: int, depth: int, target: str = "ram"):
        if target not in TARGETS:
            raise ValueError(f"unknown weight memory target {target!r} (one of {', '.join(TARGETS)})")
        self.lanes, self.weight_bits, self.depth, self.target = lanes, weight_bits, depth, target
        self.word_bits = lanes * weight_bits
        super().__init__({
            "addr": In(range(depth)),
            "en": In(1),
            "data": Out(data.ArrayLayout(signed(weight_bits), lanes)),
            "load": In(load_signature(depth, self.word_bits)),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        m.d.comb += self.load.ready.eq(1)
        write = self.load.valid
        if self.target == "ram":
            m.submodules.ram = ram = Memory(shape=self.word_bits, depth=self.depth, init=[])
            w_port = ram.write_port()
            r_port = ram.read_port()
            m.d.comb += [
                w_port.addr.eq(self.load.payload.addr),
                w_port.data.eq(self.load.payload.data),
                w_port.en.eq(write),
                r_port.addr.eq(self.addr),
                r_port.en.eq(self.en & ~write),
                self.data.eq(r_port.data),
            ]
            return m

        if platform is not None and hasattr(platform, "add_file"):
            platform.add_file(SPRAM_SHIM.name, SPRAM_SHIM.read_text())
        addr_bits = max(1, (self.depth - 1).bit_length())
        rdata = Signal(self.word_bits)
        m.submodules.spram = Instance(
            SPRAM_MODULE,
            p_WIDTH=self.word_bits, p_DEPTH=self.depth, p_ADDR_BITS=addr_bits,
            i_clk=ClockSignal(),
            i_addr=Mux(write, self.load.payload.addr, self.addr),
            i_wdata=self.load.payload.data,
            i_we=write,
            i_re=self.en & ~write,
            o_rdata=rdata,
        )
        m.d.comb += self.data.eq(rdata)
        return m
