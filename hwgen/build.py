"""``hwgen build OUT --board NAME``: a bitstream for a real board with the open toolchain.

Steps (each a line of progress):

1. load ``OUT`` (``hwgen generate``'s folder) and the board (``boards/``);
2. fit check from the IR and the board's capacities (``hwgen.devices.board_fit``): a design
   that cannot fit stops here with the resource, what is needed, what the board has and
   what would help, before any tool runs;
3. elaborate the board top: the host-link UART board top (``hwgen.accelerator.board_top``,
   docs/host_link.md) on the board's UART pins and LEDs, with the weight memories that
   ``hwgen generate --board`` planned into SPRAM (``rtl_templates/ice40_spram.v``);
4. Amaranth's platform build plan (amaranth-boards), run command by command with the YoWASP
   tools (Yosys, nextpnr with a fixed ``--seed``, icepack / ecppack / gowin_pack), each
   tool's output in ``OUT/build/<board>/<tool>.log`` besides Yosys' ``.rpt`` and nextpnr's
   ``.tim`` logs;
5. ``OUT/build/<board>/build_report.json``: utilisation and Fmax from nextpnr's own
   ``--report`` JSON, cell counts from Yosys' ``stat -json``, the memory placement Yosys
   chose, and the fit estimate next to each number.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from amaranth.hdl import Elaboratable, Module

from .devices import DEVICES, board_fit
from .errors import HwgenError
from .protocol import BOARD_TOP_NAME
from .accelerator.board_top import DEFAULT_BAUD, BoardTop, board_top_memories
from .design import load_design, write_atomic

Progress = Callable[[str], None]

NAME = BOARD_TOP_NAME  # the toplevel of the build: OUT/build/<board>/hwgen_board.{bin,bit,fs}
SEED = 1  # nextpnr placement seed: the same inputs give the same bitstream
STEPS = {"yosys": "synthesis", "nextpnr-ice40": "place and route", "nextpnr-ecp5": "place and route",
         "nextpnr-himbaechel": "place and route", "icepack": "bitstream", "ecppack": "bitstream",
         "gowin_pack": "bitstream"}


def _quiet(_: str) -> None:
    pass


def build_dir(out: Path, board: str) -> Path:
    return Path(out) / "build" / board


def bitstream_path(out: Path, board_cls) -> Path:
    return build_dir(out, board_cls.facts.name) / f"{NAME}.{board_cls.facts.bitstream}"


def yowasp_env() -> dict[str, str]:
    """The environment of the tools: YoWASP keeps its compiled WebAssembly in one known
    folder (the first call of each tool compiles for about a minute, later ones take
    seconds)."""
    env = dict(os.environ)
    env.setdefault("YOWASP_CACHE_DIR", str(Path.home() / ".cache" / "yowasp"))
    return env


def _pins(m: Module, platform, leds: int):
    """The board's UART rx and tx pins and its first ``leds`` LEDs, each with ``.i`` / ``.o``.

    Requested the Amaranth 0.4 way (with buffers), whose deprecation warning is silenced
    here: with ``dir="-"`` and ``io.Buffer`` components instead, Yosys 0.70 (YoWASP) stops
    on the digits conv model for ECP5 with an internal assertion in
    ``abc9_ops -reintegrate`` (``GetSize(conn.first) == GetSize(conn.second)``), while this
    netlist builds. Revisit with the next Yosys pin.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Using platform.request without", DeprecationWarning)
        uart = platform.request(platform.facts.uart, 0)
        buffers = [platform.request(platform.facts.leds, i) for i in range(min(leds, platform.led_count()))]
    return uart.rx, uart.tx, buffers


class PlatformTop(Elaboratable):
    """``hwgen.accelerator.board_top.BoardTop`` (the accelerator behind the host-link UART) on the
    board's pins: its UART resource and its LEDs."""

    def __init__(self, core, leds: int):
        self.core = core
        self.leds = leds

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.board = core = self.core
        rx, tx, leds = _pins(m, platform, self.leds)
        m.d.comb += [core.uart_rx.eq(rx.i), tx.o.eq(core.uart_tx)]
        for i, led in enumerate(leds):
            m.d.comb += led.o.eq(core.leds[i])
        return m


def board_top(platform, qnet, parallel: int, weight_memories=None) -> tuple[Elaboratable, str]:
    """The toplevel for ``platform`` and what it is, for the report: the host-link board top
    (with ``weight_memories`` loaded over it at run time)."""
    leds = platform.led_count()
    core = BoardTop(qnet, parallel, platform.clock_hz, leds=leds, weight_memories=weight_memories)
    return PlatformTop(core, leds), f"host-link board top (UART {DEFAULT_BAUD} baud, {leds} LEDs)"


def fit_error(verdict, board_cls, others: dict[str, object], lower_p: dict[int, object]) -> str:
    """One message: every resource that does not fit (needed vs available) and the options."""
    facts = board_cls.facts
    dev = DEVICES[facts.device]
    parts = [f"{s['what']}: needs {'about ' if s.get('estimate') else ''}{s['needed']}"
             f"{' (estimate)' if s.get('estimate') else ''}, {facts.title} has {s['available']}"
             for s in verdict.shortfalls]
    text = f"the design does not fit {facts.name}: " + "; ".join(parts)
    if verdict.spram_would_help:
        text += (f". With the weights in its {dev.spram} SPRAM blocks, loaded over the host link at run "
                 f"time, it would fit: generate the folder with `--board {facts.name}`")
    options = ["fewer bits (`hwgen generate --weight-bits 4`, or --state-bits)"]
    fitting_p = [p for p, v in sorted(lower_p.items(), reverse=True) if v.fits]
    if fitting_p:
        options.append(f"lower P (`--parallel {fitting_p[0]}` fits)")
    else:
        options.append("lower P (`--parallel`; fewer lanes need fewer LUTs, memory stays about the same)")
    bigger = [name for name, v in others.items() if v.fits]
    options.append(f"a bigger board ({', '.join(bigger)} {'fits' if len(bigger) == 1 else 'fit'})" if bigger
                   else "a bigger board (none of hwgen's boards fits this design as it is)")
    return text + ". Options: " + "; ".join(options)


def check_fit(design, board_cls, extra: list = ()):
    from hwgen.boards import BOARDS

    device = DEVICES[board_cls.facts.device]
    if "ice40_spram" in design.weight_memories.values() and not device.spram:
        raise HwgenError(f"{design.out} was generated for {design.board} with weights in iCE40 SPRAM, "
                         f"which the {device.name} of {board_cls.facts.name} does not have: generate "
                         f"it again with --board {board_cls.facts.name}")
    verdict = board_fit(design.qnet, design.parallel, board_cls.facts.device, extra,
                        design.weight_memories or None)  # None: would a plan help?
    if not verdict.fits:
        others = {name: board_fit(design.qnet, design.parallel, cls.facts.device, extra)
                  for name, cls in BOARDS.items() if name != board_cls.facts.name}
        lower_p = {p: board_fit(design.qnet, p, board_cls.facts.device, extra)
                   for p in (1, 2, 4, 8, 16) if p < design.parallel}
        raise HwgenError(fit_error(verdict, board_cls, others, lower_p))
    return verdict


TOOL_LOGS = {"yosys": f"{NAME}.rpt", "nextpnr-ice40": f"{NAME}.tim", "nextpnr-ecp5": f"{NAME}.tim",
             "nextpnr-himbaechel": f"{NAME}.tim"}


def _run(tool: str, argv: list[str], cwd: Path, env: dict, log: Path) -> float:
    """Run one step; a failure is a ``HwgenError`` naming the step and the tool's own error
    lines (from its console output, or its log file when it ran quiet)."""
    start = time.monotonic()
    with open(log, "wb") as sink:
        code = subprocess.run(argv, cwd=cwd, env=env, stdout=sink, stderr=subprocess.STDOUT).returncode
    if code:
        lines = []
        for path in (log, cwd / TOOL_LOGS.get(tool, log.name)):
            if path.is_file():
                lines += [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
        errors = [line for line in lines if line.upper().startswith("ERROR")][-3:] or lines[-2:]
        logs = ", ".join(str(p) for p in dict.fromkeys((log, cwd / TOOL_LOGS.get(tool, log.name))) if p.is_file())
        raise HwgenError(f"{tool} ({STEPS.get(tool, 'build step')}) failed with exit status {code}: "
                         f"{' | '.join(errors) or 'no output'} (logs: {logs})")
    return time.monotonic() - start


def build(out: Path, board: str, progress: Progress = _quiet, seed: int = SEED) -> dict:
    """Build the bitstream of ``out`` for ``board``; returns (and writes) the build report."""
    from hwgen.boards import get_board

    start = time.monotonic()
    board_cls = get_board(board)
    out = Path(out)
    design = load_design(out)
    progress(f"fit check: {board_cls.facts.title}")
    platform = board_cls()
    verdict = check_fit(design, board_cls, board_top_memories(design.qnet))
    tools = board_cls.tool_paths()
    where = build_dir(out, board)
    if where.exists():
        shutil.rmtree(where)
    where.mkdir(parents=True)

    progress("elaborate: board top -> RTLIL")
    try:
        top, top_kind = board_top(platform, design.qnet, design.parallel, design.weight_memories)
    except ValueError as exc:  # e.g. a board clock the UART cannot divide to its baud rate
        raise HwgenError(f"board top for {board}: {exc}") from None
    facts = board_cls.facts
    nextpnr_opts = ["--seed", str(seed), "--report", f"{NAME}.report.json", "--timing-allow-fail",
                    *facts.nextpnr_opts]
    plan = platform.prepare(top, name=NAME, nextpnr_opts=nextpnr_opts, synth_opts=list(facts.synth_opts),
                            script_after_synth=f"tee -q -o {NAME}.stat.json stat -json")
    plan.extract(where)
    commands = json.loads((where / f"build_{NAME}.json").read_text())["commands"]
    env = yowasp_env()
    seconds = {}
    for argv in commands:
        tool = argv[0]
        if tool not in tools:
            raise HwgenError(f"board {board}: the build plan calls {tool}, which the board does not map "
                             "to an installed tool")
        progress(f"{tool}: {STEPS.get(tool, 'build step')}")
        seconds[tool] = round(_run(tool, [tools[tool], *argv[1:]], where, env, where / f"{tool}.log"), 1)

    bitstream = bitstream_path(out, board_cls)
    if not bitstream.is_file():
        raise HwgenError(f"the build finished without writing {bitstream}; see the logs in {where}")
    report = {
        "board": facts.name,
        "title": facts.title,
        "device": DEVICES[facts.device].name,
        "top": top_kind,
        "seed": seed,
        "target_mhz": platform.clock_hz / 1e6,
        **parse_reports(where, facts.device),
        "bitstream": str(bitstream.relative_to(out)),
        "bitstream_bytes": bitstream.stat().st_size,
        # Same OUT, board and seed give the same bitstream (tests/test_reproducible.py): this
        # is what to compare, across runs and machines.
        "bitstream_sha256": hashlib.sha256(bitstream.read_bytes()).hexdigest(),
        "seconds": round(time.monotonic() - start, 1),
        "tool_seconds": seconds,
        "logs": sorted(p.name for p in where.iterdir() if p.suffix in (".log", ".rpt", ".tim")),
    }
    report["timing_met"] = bool(report["fmax_mhz"] is not None and report["fmax_mhz"] >= report["target_mhz"])
    report["estimate"] = verdict.to_dict()
    report["estimate_vs_actual"] = compare(verdict, report)
    report["memories"] = memory_mapping(where / f"{NAME}.rpt")
    report["warnings"] = misplaced_memories(design.qnet, verdict, report["memories"])
    write_atomic(where / "build_report.json", json.dumps(report, indent=1) + "\n")
    return report


# ---- reading the tools' reports

# nextpnr's utilisation keys per family: (LUT, FF, block RAM, SPRAM, DSP)
NEXTPNR_CELLS = {
    "ice40up5k": ("ICESTORM_LC", None, "ICESTORM_RAM", "ICESTORM_SPRAM", "ICESTORM_DSP"),
    "ecp5-25f": ("TRELLIS_COMB", "TRELLIS_FF", "DP16KD", None, "MULT18X18D"),
    "ecp5-85f": ("TRELLIS_COMB", "TRELLIS_FF", "DP16KD", None, "MULT18X18D"),
    "gw1nr-9": ("LUT4", "DFF", "BSRAM", None, "MULT18X18"),
}


def parse_reports(where: Path, device: str) -> dict:
    """Numbers from nextpnr's ``--report`` JSON and Yosys' ``stat -json``."""
    nextpnr = json.loads((where / f"{NAME}.report.json").read_text())
    used = {cell: value["used"] for cell, value in nextpnr.get("utilization", {}).items()}
    available = {cell: value["available"] for cell, value in nextpnr.get("utilization", {}).items()}
    lut_key, ff_key, bram_key, spram_key, dsp_key = NEXTPNR_CELLS[device]
    stat = _yosys_cells(where / f"{NAME}.stat.json")
    ffs = (used.get(ff_key) if ff_key else None)
    if ffs is None:  # iCE40: a logic cell is a LUT and a flip-flop; Yosys counts the flip-flops
        ffs = sum(n for cell, n in stat.items() if cell.startswith(("SB_DFF", "DFF")))
    if device == "gw1nr-9":  # himbaechel names cells by kind: LUT sites hold LUT4s and ALUs
        lut = used.get("LUT4", 0) + used.get("ALU", 0)
        ffs = used.get("DFF", ffs)
        bram = sum(n for cell, n in used.items() if cell in ("BSRAM", "SDPB", "DPB", "DPX9B", "SDPX9B", "pROM", "pROMX9"))
        dsp = sum(n for cell, n in used.items() if cell.startswith(("MULT", "PADD", "ALU54")))
    else:
        lut, bram, dsp = used.get(lut_key, 0), used.get(bram_key, 0), used.get(dsp_key, 0)
    fmax = nextpnr.get("fmax", {})
    clocks = {name: {"achieved_mhz": round(v["achieved"], 2), "constraint_mhz": round(v["constraint"], 2)}
              for name, v in fmax.items()}
    return {
        "lut": lut,
        "ff": ffs,
        "bram": bram,
        "spram": used.get(spram_key, 0) if spram_key else 0,
        "dsp": dsp,
        "lutram": used.get("TRELLIS_RAMW", 0),
        "available": {"lut": available.get(lut_key), "bram": available.get(bram_key),
                      "dsp": available.get(dsp_key)},
        "fmax_mhz": round(min(v["achieved"] for v in fmax.values()), 2) if fmax else None,
        "clocks": clocks,
        "nextpnr_utilization": used,
        "yosys_cells": stat,
    }


def _yosys_cells(path: Path) -> dict[str, int]:
    if not path.is_file():
        return {}
    text = path.read_text()
    stat = json.loads(text[text.index("{"):])
    design = stat.get("design", {})
    cells = design.get("cells_by_type") or design.get("num_cells_by_type") or {}
    return {name: int(n) for name, n in cells.items()}


def compare(verdict, report: dict) -> dict:
    """Estimate against nextpnr, per resource: both numbers and actual / estimate."""
    rows = {}
    for key, estimate in (("lut", verdict.lut), ("ff", verdict.ff), ("bram", verdict.blocks_needed),
                          ("dsp", verdict.dsp)):
        actual = report[key]
        rows[key] = {"estimate": estimate, "actual": actual,
                     "ratio": round(actual / estimate, 2) if estimate else None}
    return rows


def memory_mapping(yosys_log: Path) -> list[dict]:
    """Where Yosys put each memory, from its log: ``memory_libmap``'s "mapping memory X via
    CELL" (block RAM, LUT RAM) and ``memory_map``'s "Mapping memory X" (logic: flip-flops
    and multiplexers)."""
    mapped = []
    if not yosys_log.is_file():
        return mapped
    for line in yosys_log.read_text(errors="replace").splitlines():
        words = line.strip().split()
        if line.startswith("mapping memory ") and "via" in words:
            mapped.append({"memory": words[2], "via": words[-1]})
        elif line.startswith("Mapping memory ") and "module" in words:
            # "Mapping memory \network.layer1.membrane in module \hwgen_board:"
            module = words[-1].lstrip("\\").rstrip(":")
            mapped.append({"memory": f"{module}.{words[2].lstrip(chr(92))}", "via": "logic"})
    return mapped


def misplaced_memories(qnet, verdict, mapped: list[dict]) -> list[str]:
    """Nothing silently lands in LUTs: every weight or membrane memory that the fit check
    put in block RAM and that Yosys built from LUT RAM or logic instead, as a warning.
    Engine ``K`` (the K-th spiking layer) is ``layerK`` in the design's hierarchy."""
    spiking = [layer.name for layer in qnet.spiking_layers]
    role_names = {"weights": "weights", "membranes": "membrane"}
    via = {tuple(m["memory"].rsplit(".", 2)[-2:]): m["via"] for m in mapped}
    warnings = []
    for place in verdict.placement:
        if place["blocks"] and place["role"] in role_names and place["layer"] in spiking:
            cell = via.get((f"layer{spiking.index(place['layer'])}", role_names[place["role"]]))
            if cell is not None and ("LUTRAM" in cell or cell == "logic"):
                warnings.append(f"the {place['role']} of layer {place['layer']} ({place['depth']} x "
                                f"{place['width']} bits) went to {cell}, not block RAM as estimated")
    return warnings
