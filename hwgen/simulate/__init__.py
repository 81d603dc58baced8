"""Run the generated Verilog under cocotb: ``hwgen_top`` against the golden model, the board
top as a serial device.

One job per module; the names below are the public API:

* ``hwgen.simulate.runner``: the simulators (Icarus Verilog, Verilator): compile a design once
  per build directory (``compile_verilog``), run a cocotb testbench of ``sim/`` on it
  (``run_testbench``), the extra sources of run-time-loaded weight memories
  (``weight_memory_sources``, ``spram_model``).
* ``hwgen.simulate.vectors``: what a testbench is given: the stimulus and the golden model's
  expectations (``write_vectors``), how each token stream packs its addresses
  (``stream_spec``).
* ``hwgen.simulate.rtl``: ``run_rtl``, spike for spike against the golden model
  (``SimResult``, ``compare_traces``, ``spikes_compared``).
* ``hwgen.simulate.board``: ``simulated_board``, the board top on a ``socket://`` URL
  (``BoardSim``).
* ``hwgen.simulate.coverage``: ``measure_coverage``, what a batch exercised (weight words
  read, neurons fired, rails hit), flagged below ``LOW_COVERAGE``.
"""

from .board import BoardSim, simulated_board
from .coverage import LOW_COVERAGE, measure_coverage
from .rtl import SimResult, compare_traces, run_rtl, spikes_compared
from .runner import SIMULATORS, compile_verilog, run_testbench, spram_model, weight_memory_sources
from .vectors import count_bits, stream_spec, write_vectors

__all__ = ["LOW_COVERAGE", "SIMULATORS", "BoardSim", "SimResult", "compare_traces", "compile_verilog", "count_bits",
           "measure_coverage", "run_rtl", "run_testbench", "simulated_board", "spikes_compared", "spram_model",
           "stream_spec", "weight_memory_sources", "write_vectors"]
