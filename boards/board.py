"""What hwgen adds to an amaranth-boards platform: :class:`BoardFacts` and :class:`Board`."""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from hwgen.devices import DEVICES, Device


@dataclass(frozen=True)
class BoardFacts:
    """The facts about a board that amaranth-boards does not state.

    ``device`` is a key of ``hwgen.devices.DEVICES`` (the FPGA's LUTs, flip-flops, block RAM,
    SPRAM and DSPs that the fit check counts against). ``uart`` and ``leds`` name platform
    resources (number 0 for the UART, all numbers for the LEDs). ``tools`` maps each tool the
    platform's build script invokes to the pip-installed executable that runs it.
    """

    name: str  # `hwgen build --board NAME`
    title: str
    device: str
    clock: str  # the platform resource of the board clock (the design runs on it, no PLL)
    openfpgaloader: str  # `openFPGALoader -b NAME`
    bitstream: str  # suffix of the build product that openFPGALoader takes
    tools: dict[str, str]
    uart: str = "uart"
    leds: str = "led"
    nextpnr_opts: tuple[str, ...] = ()
    synth_opts: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)


class Board:
    """Mixin of every hwgen board; comes first in the bases, the amaranth-boards platform after."""

    facts: BoardFacts

    @classmethod
    def fpga(cls) -> Device:
        return DEVICES[cls.facts.device]

    @property
    def clock_hz(self) -> float:
        return self.lookup(self.facts.clock).clock.frequency

    def pins(self, resource: str, number: int = 0) -> dict[str, str]:
        """Pin names of ``resource``'s subsignals (or of the resource itself), for reports."""
        res = self.lookup(resource, number)
        if res.ios and hasattr(res.ios[0], "names"):
            return {resource: " ".join(res.ios[0].names)}
        return {sub.name: " ".join(sub.ios[0].names) for sub in res.ios if hasattr(sub, "ios")}

    def led_count(self) -> int:
        return sum(1 for res in self.resources if res[0] == self.facts.leds)

    def describe(self) -> dict:
        dev = self.fpga()
        uart = self.pins(self.facts.uart, 0)
        return {
            "board": self.facts.name,
            "title": self.facts.title,
            "device": dev.name,
            "clock": f"{self.facts.clock} {self.clock_hz / 1e6:g} MHz",
            "uart": f"rx {uart.get('rx')}, tx {uart.get('tx')}",
            "leds": self.led_count(),
            "memory": dev.memory_text(),
            "lut": dev.lut,
            "ff": dev.ff,
            "dsp": dev.dsp,
            "openfpgaloader": self.facts.openfpgaloader,
        }

    @classmethod
    def tool_paths(cls) -> dict[str, str]:
        """Each tool of the build script as a path: the YoWASP executables next to this
        Python (the venv's ``bin``), else on ``PATH``. A missing one is a ``HwgenError``."""
        from hwgen.errors import HwgenError

        here = str(Path(sys.executable).parent)
        paths = {}
        for tool, exe in cls.facts.tools.items():
            found = shutil.which(exe, path=here) or shutil.which(exe)
            if not found:
                raise HwgenError(f"board {cls.facts.name}: tool {exe} (for {tool}) not found; "
                                 "install hwgen's pinned dependencies (pip install -e .)")
            paths[tool] = found
        return paths
