"""Boards that ``hwgen build`` and ``hwgen flash`` know, by name.

Each board is a small declarative class in its own file: an amaranth-boards platform (pins,
clock, I/O standards, the toolchain's templates) plus :class:`Board`'s facts for hwgen (the
FPGA's capacities, the UART and LED resources, the openFPGALoader board name, the YoWASP tools).
``boards/README.md`` says how to add one.
"""

from __future__ import annotations

from .board import Board, BoardFacts
from .icebreaker import ICEBreaker
from .orangecrab import OrangeCrab25F
from .tangnano9k import TangNano9K
from .ulx3s import ULX3S85F

__all__ = ["BOARDS", "Board", "BoardFacts", "board_names", "get_board"]

BOARDS: dict[str, type[Board]] = {
    cls.facts.name: cls for cls in (ICEBreaker, ULX3S85F, OrangeCrab25F, TangNano9K)
}


def board_names() -> list[str]:
    return sorted(BOARDS)


def get_board(name: str) -> type[Board]:
    """The board class called ``name``; an unknown name is a ``HwgenError`` listing the known."""
    try:
        return BOARDS[name]
    except KeyError:
        from hwgen.errors import HwgenError

        raise HwgenError(f"unknown board {name!r}; known boards: {', '.join(board_names())} "
                         "(a new board is one small file in boards/, see boards/README.md)") from None
