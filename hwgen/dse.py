"""Choosing the hardware for a board: parallelism ``P`` and where the weights live.

``hwgen generate --board B [--parallel auto --latency-us X]`` calls :func:`choose`. For each
candidate ``P`` (powers of two up to the widest layer, or the one ``P`` given) it takes the
memory plan of ``hwgen.devices.weight_plan`` (weights that do not fit the block RAM go to
SPRAM, loaded over the host link), the fit check of ``hwgen.devices.board_fit`` (the one
``hwgen build`` applies before synthesis) and the latency of the cost model
(``hwgen.accelerator.cycles``, exact on the benchmark's designs) on the representative inputs
(their first ``report.COST_SAMPLES``) at the board clock, the *largest* over those inputs, so
the target holds for every one of them. The cheapest
fitting candidate (fewest estimated LUTs) that meets the target wins. Every candidate is
reported, so that a refusal says what was close.

A candidate fits only with headroom: at most ``LOGIC_HEADROOM`` of the device's LUTs by the
estimate. The estimate is rough (+-25 %, ``hwgen.devices.estimate_logic``) and nextpnr packs
a LUT and a flip-flop per iCE40 logic cell only where they belong together: the 784-128-10
network at P = 8 was estimated at 4,195 LUTs and took 5,301 of the UP5K's 5,280 cells, so
placement failed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from .accelerator.board_top import board_top_memories
from .devices import board_fit, weight_plan
from .errors import HwgenError
from .golden import GoldenTrace
from .ir import QuantNetwork
from .accelerator.cycles import expected_cycles
from .report import representative

__all__ = ["Candidate", "Choice", "LOGIC_HEADROOM", "candidate_parallelism", "choose"]

LOGIC_HEADROOM = 0.8


@dataclass
class Candidate:
    parallel: int
    weight_memories: dict[int, str]
    fits: bool
    lut_estimate: int
    block_ram: int
    spram: int
    cycles_max: float
    latency_us_max: float
    meets_latency: bool
    shortfalls: list[dict] = field(default_factory=list)


@dataclass
class Choice:
    board: str
    clock_mhz: float
    parallel: int
    weight_memories: dict[int, str]
    latency_target_us: float | None
    candidates: list[Candidate]

    def to_dict(self) -> dict:
        return asdict(self)


def candidate_parallelism(qnet: QuantNetwork) -> list[int]:
    """1, 2, 4, ... up to the widest layer (output neurons, or channels per group)."""
    widest = max(layer.geometry(1).reach for layer in qnet.spiking_layers)
    out, p = [], 1
    while p < widest:
        out.append(p)
        p *= 2
    return out + [p]


def _latency_cycles(qnet: QuantNetwork, parallel: int, activity: GoldenTrace,
                    inputs: np.ndarray | None) -> float:
    return float(max(expected_cycles(qnet, parallel, *representative(activity, inputs))))


def choose(qnet: QuantNetwork, board: str, activity: GoldenTrace, parallel: int | str,
           latency_us: float | None = None, inputs: np.ndarray | None = None) -> Choice:
    """The hardware for ``board``: ``parallel`` as given, or ``"auto"`` for the cheapest
    candidate that fits and meets ``latency_us``. Raises ``HwgenError`` naming every
    candidate's problem when none does."""
    from hwgen.boards import get_board

    board_cls = get_board(board)
    device = board_cls.facts.device
    clock_hz = board_cls().clock_hz
    extra = board_top_memories(qnet)
    options = candidate_parallelism(qnet) if parallel == "auto" else [int(parallel)]
    candidates = []
    for p in options:
        plan = weight_plan(qnet, p, device, extra)
        verdict = board_fit(qnet, p, device, extra, plan)
        cycles = _latency_cycles(qnet, p, activity, inputs)
        latency = cycles / clock_hz * 1e6
        shortfalls = list(verdict.shortfalls)
        cap = int(LOGIC_HEADROOM * board_cls.fpga().lut)
        if verdict.lut > cap and not any(s["what"] == "LUT4s" for s in shortfalls):
            shortfalls.append({"what": f"LUT4s (with {1 - LOGIC_HEADROOM:.0%} headroom)",
                               "needed": verdict.lut, "available": cap, "estimate": True})
        candidates.append(Candidate(p, plan, not shortfalls, verdict.lut, verdict.blocks_needed,
                                    verdict.spram_needed, cycles, latency,
                                    latency_us is None or latency <= latency_us, shortfalls))
    good = [c for c in candidates if c.fits and c.meets_latency]
    if not good:
        def problem(c: Candidate) -> str:
            parts = [f"{s['what']} {s['needed']} > {s['available']}" for s in c.shortfalls]
            if not c.meets_latency:
                parts.append(f"{c.latency_us_max:.0f} us > {latency_us:g} us")
            return f"P={c.parallel}: " + ", ".join(parts)
        target = f" within {latency_us:g} us per inference" if latency_us is not None else ""
        raise HwgenError(f"no configuration of this network fits {board}{target} at "
                         f"{clock_hz / 1e6:g} MHz ({'; '.join(problem(c) for c in candidates)}); "
                         + ("relax --latency-us, " if latency_us is not None else "")
                         + "use fewer --weight-bits or a bigger board")
    best = min(good, key=lambda c: (c.lut_estimate, c.parallel))
    return Choice(board, clock_hz / 1e6, best.parallel, best.weight_memories, latency_us, candidates)
