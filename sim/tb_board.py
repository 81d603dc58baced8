"""cocotb testbench: the board top (``hwgen_board``) as a serial device on a local TCP port.

``hwgen.simulate.simulated_board`` runs this module. The testbench listens on
``127.0.0.1`` (a free port, written to ``port_file``) and acts as the board's USB serial
bridge: every byte a client sends is bit-banged into ``uart_rx`` (8N1, ``divisor`` clock
cycles per bit, bytes back to back), and every byte decoded from ``uart_tx`` is sent back.
A client is anything that speaks TCP, in practice pyserial's ``socket://`` URL opened by
``hwgen.host.HostLink`` (``hwgen run OUT --port socket://127.0.0.1:PORT``): the host code
that talks to a real board is the code under test, byte for byte.

Configuration: the JSON in ``HWGEN_BOARD_SIM`` with ``divisor``, ``port_file``,
``stop_file`` (the testbench ends once it exists), ``stats_file`` (written at the end:
bytes each way, framing errors, connections, cycles) and ``idle_timeout`` (seconds without
a byte either way after which it ends by itself, so an abandoned simulation cannot run on).

Connections are served one after another. While the board is idle (no byte pending either
way, nothing on ``uart_tx`` lately, and, when the top has ``leds``, bit 0 "running" low)
the testbench waits for the host in ``select`` (up to 2 ms of wall time per bit time)
instead of simulating idle cycles as fast as it can.
"""

from __future__ import annotations

import collections
import json
import os
import select
import socket
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge

CONFIG_ENV = "HWGEN_BOARD_SIM"
CLOCK_PERIOD_NS = 10
RESET_CYCLES = 8
STOP_CHECK_EVERY = 64  # idle polls between looks at the stop file
IDLE_WAIT_S = 0.002
BUSY_BITS = 40  # bit times after a byte moved during which the board counts as busy


class Bridge:
    """The TCP side: one client at a time, bytes to the board queued, bytes from it sent."""

    def __init__(self, server: socket.socket):
        self.server = server
        self.conn: socket.socket | None = None
        self.to_board: collections.deque[int] = collections.deque()
        self.stats = {"bytes_to_board": 0, "bytes_from_board": 0, "framing_errors": 0,
                      "connections": 0, "dropped_from_board": 0}
        self.last_activity = time.monotonic()
        self.busy_until = 0  # the board counts as busy until this cycle (bytes just moved)

    def poll(self, wait: float = 0.0) -> None:
        """Accept a client / receive its bytes, waiting up to ``wait`` seconds for either."""
        sock = self.conn or self.server
        readable, _, _ = select.select([sock], [], [], wait)
        if not readable:
            return
        if self.conn is None:
            self.conn, _ = self.server.accept()
            self.conn.setblocking(True)
            self.conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.stats["connections"] += 1
            self.last_activity = time.monotonic()
            return
        try:
            data = self.conn.recv(65536)
        except OSError:
            data = b""
        if not data:  # the client closed: serve the next one
            self.conn.close()
            self.conn = None
            self.to_board.clear()
            return
        self.to_board.extend(data)
        self.stats["bytes_to_board"] += len(data)
        self.last_activity = time.monotonic()

    def send(self, byte: int) -> None:
        self.last_activity = time.monotonic()
        if self.conn is None:
            self.stats["dropped_from_board"] += 1
            return
        try:
            self.conn.sendall(bytes([byte]))
            self.stats["bytes_from_board"] += 1
        except OSError:
            self.stats["dropped_from_board"] += 1

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.server.close()


async def receive_from_board(dut, divisor: int, bridge: Bridge, cycle: list[int]) -> None:
    """Decode ``uart_tx``: each falling edge starts a byte, sampled in the middle of its bits.
    Without a client the byte is counted as dropped (``stats``)."""
    tx = dut.uart_tx
    while True:
        await FallingEdge(tx)
        bridge.busy_until = cycle[0] + BUSY_BITS * divisor
        await ClockCycles(dut.clk, divisor // 2)
        if int(tx.value) != 0:
            continue  # not a start bit
        value = 0
        for i in range(8):
            await ClockCycles(dut.clk, divisor)
            value |= int(tx.value) << i
        await ClockCycles(dut.clk, divisor)
        bridge.busy_until = cycle[0] + BUSY_BITS * divisor
        if int(tx.value) != 1:
            bridge.stats["framing_errors"] += 1
            continue
        bridge.send(value)


@cocotb.test()
async def serve(dut):
    """Serve TCP clients as the board's serial port until the stop file appears."""
    config = json.loads(os.environ[CONFIG_ENV])
    divisor = int(config["divisor"])
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    bridge = Bridge(server)
    stop_file = config["stop_file"]
    idle_timeout = float(config["idle_timeout"])

    rx = dut.uart_rx
    rx.value = 1
    dut.rst.value = 1
    cycle = [0]  # cycles since reset, in steps of bit times
    cocotb.start_soon(receive_from_board(dut, divisor, bridge, cycle))
    Clock(dut.clk, CLOCK_PERIOD_NS, unit="ns").start()
    await ClockCycles(dut.clk, RESET_CYCLES)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)
    try:
        running = dut.leds  # bit 0: an inference is running
    except AttributeError:
        running = None

    tmp = config["port_file"] + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.getsockname()[1]))
    os.replace(tmp, config["port_file"])

    polls = 0
    try:
        while True:
            if bridge.to_board:
                byte = bridge.to_board.popleft()
                for level in [0, *((byte >> i) & 1 for i in range(8)), 1]:
                    rx.value = level
                    await ClockCycles(dut.clk, divisor)
                    cycle[0] += divisor
                bridge.busy_until = cycle[0] + BUSY_BITS * divisor
                bridge.poll()
                continue
            quiet = (cycle[0] > bridge.busy_until
                     and (running is None or not (int(running.value) & 1)))
            bridge.poll(IDLE_WAIT_S if quiet else 0.0)
            if not bridge.to_board:
                await ClockCycles(dut.clk, divisor)
                cycle[0] += divisor
            polls += 1
            if polls % STOP_CHECK_EVERY == 0:
                if os.path.exists(stop_file):
                    break
                if time.monotonic() - bridge.last_activity > idle_timeout:
                    dut._log.warning("no client activity for %.0f s: stopping", idle_timeout)
                    break
    finally:
        bridge.close()
        bridge.stats["cycles"] = cycle[0]
        with open(config["stats_file"], "w") as f:
            json.dump(bridge.stats, f)
