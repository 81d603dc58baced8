"""Golden model == RTL, spike for spike, on Icarus Verilog and Verilator (hwgen.simulate).

Every network here is small (a few samples, T <= 8, < 40 neurons) so that the default run
takes a few minutes on two cores; larger ones are marked ``slow``. Verilator compiles each
design once (~10-15 s); Icarus compiles in well under a second but simulates ~4x slower.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from hwgen import golden
from hwgen.errors import HwgenError
from hwgen.ir import Leak
from hwgen.simulate import compare_traces, run_rtl, spikes_compared
from hwgen.testing import random_quant_network, random_spikes

SIMULATORS = ["icarus", "verilator"]

# name -> (sizes, P, network options, input rate, samples)
CASES = {
    "p1_subtract": ([12, 10, 5], 1, {"reset": "subtract"}, 0.3, 3),
    "p2_zero": ([16, 12, 6], 2, {"reset": "zero", "per_neuron_threshold": True}, 0.25, 3),
    "p4_subtract": ([20, 16, 8], 4, {"reset": "subtract", "with_bias": False}, 0.2, 3),
    # P = 3 divides neither 14 nor 7: the last group of each layer has idle lanes.
    "p3_ragged_zero": ([10, 14, 7], 3, {"reset": "zero", "leak": Leak("mul", mul=45,
                                                                      frac_bits=6)}, 0.3, 3),
    # One timestep (its tick is the last), one output neuron, P capped at the layer width,
    # and samples without a single input spike (a lone `last` tick).
    "t1_one_output": ([6, 1], 2, {"timesteps": 1, "with_bias": False}, 0.15, 6),
}
SLOW_CASES = {
    "three_layers_if_p5": ([40, 36, 24, 10], 5, {"reset": "subtract", "leak": Leak("none"),
                                                 "timesteps": 8}, 0.2, 6),
    "wide_p8_zero": ([64, 48, 10], 8, {"reset": "zero", "per_neuron_threshold": True}, 0.15, 8),
    "no_reset_p1": ([30, 20, 10], 1, {"reset": "none", "leak": Leak("shift", shift=2),
                                      "state_bits": 8}, 0.2, 6),
}


def make_verilog(qnet, parallel: int, path: Path) -> Path:
    from amaranth.back import verilog

    from hwgen.accelerator.top import build_top

    path.write_text(verilog.convert(build_top(qnet, parallel), name="hwgen_top", emit_src=False))
    return path


class Design:
    """One generated design with its inputs, golden trace and a build dir per simulator."""

    def __init__(self, root: Path, name: str, sizes, parallel, options, rate, samples, seed=7):
        options = dict(options)
        timesteps = options.pop("timesteps", 6)
        self.qnet = random_quant_network(sizes, seed=seed, timesteps=timesteps, **options)
        self.inputs = random_spikes((samples, timesteps, sizes[0]), rate, seed=seed + 1)
        self.golden = golden.run(self.qnet, self.inputs)
        root.mkdir(parents=True, exist_ok=True)
        self.verilog = make_verilog(self.qnet, parallel, root / "hwgen_top.v")
        self.build_dir = root / "build"

    def run(self, simulator: str, golden_trace=None, **kwargs):
        return run_rtl(self.verilog, self.qnet, self.inputs, golden_trace or self.golden,
                       simulator=simulator, build_dir=self.build_dir, **kwargs)


@pytest.fixture(scope="module")
def designs(tmp_path_factory):
    """Designs are generated once per module and shared, so each simulator compiles once."""
    cache: dict[str, Design] = {}

    def get(name: str) -> Design:
        if name not in cache:
            spec = CASES.get(name) or SLOW_CASES[name]
            cache[name] = Design(tmp_path_factory.mktemp(name), name, *spec)
        return cache[name]

    return get


def assert_bit_exact(result, design: Design) -> None:
    assert result.mismatches == 0, f"first mismatch: {result.first_mismatch}"
    assert result.first_mismatch is None
    assert result.samples == design.golden.batch
    assert result.counts == design.golden.counts.tolist()
    assert result.predictions == design.golden.prediction.tolist()
    assert result.spikes_compared == spikes_compared(design.qnet, result.samples,
                                                     result.timesteps)
    # The `cycles` port (docs/hardware.md) agrees with the testbench's own count.
    assert result.cycles == result.testbench_cycles
    assert all(c > 0 for c in result.cycles)
    assert result.cycles_per_inference_max == max(result.cycles)


# ----------------------------------------------------------------------------- golden == RTL

@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("case", list(CASES))
def test_golden_equals_rtl(designs, case, simulator):
    design = designs(case)
    assert any(s.sum() for s in design.golden.spikes), "the case should exercise spikes"
    assert not all(s.all() for s in design.golden.spikes), "... and silences"
    assert_bit_exact(design.run(simulator), design)


@pytest.mark.slow
@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("case", list(SLOW_CASES))
def test_golden_equals_rtl_larger(designs, case, simulator):
    design = designs(case)
    assert_bit_exact(design.run(simulator), design)


@pytest.mark.parametrize("simulator", ["icarus", pytest.param("verilator", marks=pytest.mark.slow)])
def test_random_input_stalls_change_nothing_but_time(designs, simulator):
    design = designs("p3_ragged_zero")
    plain = design.run(simulator)
    stalled = design.run(simulator, stall=True, stall_seed=3)
    assert_bit_exact(stalled, design)
    assert stalled.counts == plain.counts and stalled.predictions == plain.predictions
    # The stalls really happened: the inferences took longer.
    assert sum(stalled.cycles) > sum(plain.cycles)


# ----------------------------------------------------------------------------- the checker can fail

def test_corrupted_expectation_is_reported_exactly(designs):
    design = designs("p1_subtract")
    first = design.run("icarus")
    assert first.mismatches == 0

    wrong = copy.deepcopy(design.golden)
    layer0 = wrong.spikes[0]
    sample, timestep = 1, 3
    neuron = int(np.flatnonzero(layer0[sample, timestep].numpy())[0])  # a spike the RTL makes
    layer0[sample, timestep, neuron] = 0
    silent = np.flatnonzero(wrong.spikes[1][2, 4].numpy() == 0)
    assert silent.size, "the case needs a silent output neuron to corrupt"
    wrong.spikes[1][2, 4, int(silent[0])] = 1  # a spike the RTL does not make
    wrong.counts[0, 2] += 1

    result = design.run("icarus", golden_trace=wrong)
    assert result.compile_seconds == 0.0, "the second run reuses the build"
    assert result.mismatches == 3
    assert result.mismatch_records == [
        {"sample": 0, "layer": "readout", "timestep": None, "neuron": 2,
         "expected": int(design.golden.counts[0, 2]) + 1,
         "got": int(design.golden.counts[0, 2]), "what": "count"},
        {"sample": sample, "layer": 0, "timestep": timestep, "neuron": neuron,
         "expected": 0, "got": 1, "what": "spike"},
        {"sample": 2, "layer": 1, "timestep": 4, "neuron": int(silent[0]),
         "expected": 1, "got": 0, "what": "spike"},
    ]
    assert result.first_mismatch == result.mismatch_records[0]
    assert not result.passed


def test_compare_traces_finds_each_difference(designs):
    design = designs("p1_subtract")
    assert compare_traces(design.golden, design.golden) == []
    other = copy.deepcopy(design.golden)
    other.spikes[1][0, 2, 3] ^= 1
    other.prediction[1] += 1
    found = compare_traces(design.golden, other)
    assert [(m["sample"], m["layer"], m["timestep"], m["neuron"]) for m in found] == [
        (0, 1, 2, 3), (1, "readout", None, None)]


def test_stream_checker_catches_protocol_errors():
    from hwgen.sim.tb_top import Stream, StreamRecord, check_stream

    stream = Stream({"shape": [6], "fields": [3], "value_bits": 0})
    expected = np.zeros((2, 6), dtype=np.uint8)
    expected[0, [1, 2, 5]] = 1
    good = StreamRecord(stream)
    for payload in [5, 1, 2, stream.tick(False), stream.tick(True)]:  # any order within a timestep
        good.push(payload)
    assert check_stream(0, 0, expected, good) == []

    bad = StreamRecord(stream)  # 5 twice, 2 missing, a stray 4 after the end
    for payload in [1, 5, 5, stream.tick(False), stream.tick(True), 4]:
        bad.push(payload)
    assert [(m["timestep"], m["neuron"], m["expected"], m["got"], m["what"])
            for m in check_stream(0, 0, expected, bad)] == [
        (0, 2, 1, 0, "spike"), (0, 5, 1, 2, "spike"), (2, 4, 0, 1, "spike after last tick")]

    short = StreamRecord(stream)  # one tick, flagged last: the second timestep never comes
    for payload in [1, 2, 5, stream.tick(True)]:
        short.push(payload)
    expected[1, 3] = 1
    assert [(m["timestep"], m["neuron"], m["expected"], m["got"], m["what"])
            for m in check_stream(0, 0, expected, short)] == [
        (1, 3, 1, 0, "spike"), (None, None, 2, 1, "tick count"), (0, None, 0, 1, "last flag")]


def test_map_addresses_round_trip_through_their_fields():
    from hwgen.sim.tb_top import Stream

    stream = Stream({"shape": [3, 5, 6], "fields": [3, 3, 2], "value_bits": 0})
    for index in range(3 * 5 * 6):
        assert stream.decode(stream.encode(index)) == index
    c, y, x = 2, 4, 5
    assert stream.encode(c * 30 + y * 6 + x) == (c << 6) | (y << 3) | x
    assert stream.decode((1 << 6) | (5 << 3) | 0) < 0  # y = 5 is outside the map: never a neuron


# A hwgen_top with the right ports for a 4 -> 3 network at T = 2 that accepts every token and
# never finishes: the testbench's watchdog must stop it with a clear message.
HANGING_TOP = """
module hwgen_top(input clk, input rst,
  input spikes_in__valid, output spikes_in__ready, input [3:0] spikes_in__payload,
  output tap_0__valid, output tap_0__ready, output [3:0] tap_0__payload,
  output done, output [1:0] prediction, output [5:0] counts, output [31:0] cycles);
  assign spikes_in__ready = 1'b1;
  assign tap_0__valid = 1'b0;
  assign tap_0__ready = 1'b1;
  assign tap_0__payload = 4'b0;
  assign done = 1'b0;
  assign prediction = 2'b0;
  assign counts = 6'b0;
  assign cycles = 32'b0;
endmodule
"""


@pytest.mark.parametrize("harness, simulator, message", [
    ("cocotb", "icarus", r"watchdog: sample 0 got no `done`.*timestep 2 of 2"),
    ("capture", "icarus", r"watchdog: sample 0 did not finish .* within its budget; ticks seen per tap: tap_0 0"),
    # the harness's watchdog, in the C++ main loop's free-running stretch
    ("capture", "verilator", r"watchdog: sample 0 did not finish .* within its budget; ticks seen per tap: tap_0 0"),
])
def test_hang_is_caught_by_the_watchdog(tmp_path, harness, simulator, message):
    qnet = random_quant_network([4, 3], timesteps=2)
    inputs = random_spikes((2, 2, 4), 0.5, seed=1)
    verilog = tmp_path / "hang.v"
    verilog.write_text(HANGING_TOP)
    with pytest.raises(HwgenError, match=message):
        run_rtl(verilog, qnet, inputs, golden.run(qnet, inputs), simulator=simulator,
                build_dir=tmp_path / "build", harness=harness)


@pytest.mark.parametrize("harness", ["cocotb", "capture"])
def test_ports_not_matching_the_network_are_an_error(tmp_path, harness):
    qnet = random_quant_network([8, 3], timesteps=2)  # needs a 5-bit spikes_in payload
    inputs = random_spikes((1, 2, 8), 0.5, seed=1)
    verilog = tmp_path / "hang.v"
    verilog.write_text(HANGING_TOP)
    with pytest.raises(HwgenError, match="spikes_in__payload is 4 bits wide, expected 5"):
        run_rtl(verilog, qnet, inputs, golden.run(qnet, inputs), simulator="icarus",
                build_dir=tmp_path / "build", harness=harness)


@pytest.mark.parametrize("verilog, message", [
    (HANGING_TOP.replace("output [5:0] counts, ", ""), "hwgen_top has no port 'counts'"),
    ("module other(input clk);\nendmodule\n", "no module hwgen_top in the Verilog"),
])
def test_the_capture_harness_names_what_the_verilog_lacks(tmp_path, verilog, message):
    qnet = random_quant_network([4, 3], timesteps=2)
    inputs = random_spikes((1, 2, 4), 0.5, seed=1)
    (tmp_path / "top.v").write_text(verilog)
    with pytest.raises(HwgenError, match=message):
        run_rtl(tmp_path / "top.v", qnet, inputs, golden.run(qnet, inputs), simulator="icarus",
                build_dir=tmp_path / "build", harness="capture")


def test_the_capture_harness_refuses_run_time_weights(tmp_path):
    qnet = random_quant_network([4, 3], timesteps=2)
    inputs = random_spikes((1, 2, 4), 0.5, seed=1)
    verilog = tmp_path / "weights.v"
    verilog.write_text(HANGING_TOP.replace("output [31:0] cycles);",
                                           "output [31:0] cycles, input weights_0__en);"))
    with pytest.raises(HwgenError, match=r"does not load run-time weights \(weights_K ports\)"):
        run_rtl(verilog, qnet, inputs, golden.run(qnet, inputs), simulator="icarus",
                build_dir=tmp_path / "build", harness="capture")


def test_verilog_that_does_not_compile_is_an_error(tmp_path):
    qnet = random_quant_network([4, 3], timesteps=2)
    inputs = random_spikes((1, 2, 4), 0.5, seed=1)
    verilog = tmp_path / "broken.v"
    verilog.write_text("module hwgen_top(input clk; endmodule\n")
    with pytest.raises(HwgenError, match="could not compile"):
        run_rtl(verilog, qnet, inputs, golden.run(qnet, inputs), simulator="icarus",
                build_dir=tmp_path / "build")


def test_inputs_must_match_the_network(tmp_path):
    qnet = random_quant_network([4, 3], timesteps=2)
    verilog = tmp_path / "hang.v"
    verilog.write_text(HANGING_TOP)
    inputs = random_spikes((1, 3, 4), 0.5, seed=1)  # 3 timesteps, the hardware counts 2
    with pytest.raises(HwgenError, match="timesteps"):
        run_rtl(verilog, qnet, inputs, golden.run(qnet, inputs), simulator="icarus",
                build_dir=tmp_path / "build")
