"""``simulated_board``: the board top's Verilog under cocotb, as a serial device on a TCP port.

The testbench ``sim/tb_board.py`` bit-bangs the bytes a client sends into ``uart_rx`` and
returns what it decodes from ``uart_tx``; ``hwgen.host.HostLink`` and ``hwgen run --port``
open the ``socket://`` URL like a serial port (tests/test_host_link.py).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import HwgenError
from ..protocol import BOARD_TOP_NAME
from .runner import REPO_ROOT, SIMULATORS, TIMESCALE, compile_verilog, log_tail

__all__ = ["BOARD_TOPLEVEL", "BoardSim", "simulated_board"]

BOARD_TOPLEVEL = BOARD_TOP_NAME
BOARD_TEST_MODULE = "hwgen.sim.tb_board"
BOARD_SIM_ENV = "HWGEN_BOARD_SIM"
# cocotb compiles with `iverilog -g2012`, under which declaration initialisers raise no event
# at time 0, so an `always @*` block of Amaranth's Verilog whose inputs keep their initial
# values stays X (Amaranth's `dump_module` register relies on that event); on the board top
# that leaves the reply path's handshakes X until the first byte goes out (an extra END on
# the wire). A later -g2005 restores Verilog-2005 semantics for that Verilog-2005 file.
BOARD_ICARUS_ARGS = ("-g2005",)


@dataclass
class BoardSim:
    """A running simulation of the board top (``simulated_board``): ``url`` is a pyserial
    URL (``socket://127.0.0.1:PORT``) that ``hwgen.host.HostLink`` and ``hwgen run --port``
    open like a serial port. ``stats`` (bytes each way, UART framing errors seen on
    ``uart_tx``, connections, simulated cycles) is filled in when the simulation ends."""

    url: str
    build_dir: Path
    compile_seconds: float
    stats: dict = field(default_factory=dict)


@contextlib.contextmanager
def simulated_board(verilog: Path, divisor: int, simulator: str = "verilator",
                    build_dir: Path = Path("build/board_sim"), start_timeout: float = 60.0,
                    idle_timeout: float = 600.0, libraries: dict[str, str] | None = None):
    """Simulate ``verilog`` (a ``hwgen_board``, see ``hwgen.accelerator.board_top``) under
    cocotb (``sim/tb_board.py``) as a serial device on a local TCP port; yields a
    ``BoardSim``.

    ``divisor`` is the board's clock cycles per UART bit. The testbench bit-bangs every byte
    a client sends into ``uart_rx`` and returns every byte it decodes from ``uart_tx``; it
    serves one connection after another until the ``with`` block ends (or nothing happened
    for ``idle_timeout`` seconds). Raises ``HwgenError`` when the simulation cannot be built
    or started, or failed. ``libraries``: further sources, as for :func:`run_rtl`.
    """
    if simulator not in SIMULATORS:
        raise HwgenError(f"unknown simulator {simulator!r}: choose one of {', '.join(SIMULATORS)}")
    import threading

    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    verilog = Path(verilog)
    work = (Path(build_dir) / simulator).resolve()
    work.mkdir(parents=True, exist_ok=True)
    runner = get_runner(simulator)
    runner.log = logging.getLogger("hwgen.simulate.cocotb")
    compile_seconds = compile_verilog(runner, simulator, verilog, work, False, toplevel=BOARD_TOPLEVEL,
                             extra_args=BOARD_ICARUS_ARGS if simulator == "icarus" else (),
                             libraries=libraries)

    port_file, stop_file, stats_file, xml, log = (
        work / n for n in ("port", "stop", "stats.json", "results.xml", "sim.log"))
    for stale in (port_file, stop_file, stats_file, xml):
        stale.unlink(missing_ok=True)
    config = {"divisor": int(divisor), "port_file": str(port_file), "stop_file": str(stop_file),
              "stats_file": str(stats_file), "idle_timeout": float(idle_timeout)}
    failure: list[BaseException] = []

    def serve() -> None:
        try:
            # Only variables absent from os.environ pass through extra_env (the runner lets
            # os.environ override it), and os.environ is not touched: the caller's thread
            # goes on running meanwhile.
            runner.test(test_module=BOARD_TEST_MODULE, hdl_toplevel=BOARD_TOPLEVEL,
                        hdl_toplevel_lang="verilog", build_dir=work, test_dir=work,
                        results_xml=str(xml), timescale=TIMESCALE, log_file=log,
                        extra_env={BOARD_SIM_ENV: json.dumps(config), "COCOTB_ANSI_OUTPUT": "0"})
        except BaseException as e:  # noqa: BLE001 - SystemExit too: reported by the caller
            failure.append(e)

    added_path = str(REPO_ROOT) not in sys.path  # so the simulator's Python finds `sim`
    if added_path:
        sys.path.insert(0, str(REPO_ROOT))
    thread = threading.Thread(target=serve, name="hwgen-board-sim", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + start_timeout
        while not port_file.exists():
            if not thread.is_alive() or time.monotonic() > deadline:
                stop_file.touch()
                why = f" ({failure[0]})" if failure else ""
                raise HwgenError(f"{simulator} simulation of {verilog} did not start serving"
                                 f"{why}; {log} ends:\n{log_tail(log)}")
            time.sleep(0.02)
        sim = BoardSim(f"socket://127.0.0.1:{int(port_file.read_text())}", work, compile_seconds)
        yield sim
    finally:
        stop_file.touch()
        thread.join(timeout=60)
        if added_path and str(REPO_ROOT) in sys.path:
            sys.path.remove(str(REPO_ROOT))
    if thread.is_alive():
        raise HwgenError(f"{simulator} simulation of {verilog} did not stop; {log} ends:\n"
                         f"{log_tail(log)}")
    try:
        sim.stats = json.loads(stats_file.read_text())
        _, failed = get_results(xml)
    except (OSError, ValueError, RuntimeError) as e:
        raise HwgenError(f"{simulator} simulation of {verilog} left no results ({e}); {log} "
                         f"ends:\n{log_tail(log)}") from None
    if failed or failure:
        raise HwgenError(f"{simulator} simulation of {verilog} failed; {log} ends:\n"
                         f"{log_tail(log)}")
