"""``hwgen run OUT --port PORT --inputs FILE.npy``: inferences on a board, checked against the
golden model.

The board runs the board top of OUT's design (``hwgen.accelerator.board_top``) and is reached
through ``hwgen.host.HostLink`` (the protocol: ``hwgen.protocol``); before any sample is
sent, the design hash the board reports (INFO) must be OUT's (``hwgen.accelerator.identity.model_hash``). A
design whose weights are loaded at run time (``hwgen generate --board``, weights in SPRAM)
gets them next, from ``OUT/weights_K.npy`` (WEIGHTS; every time, since the board forgets them
when it is configured again). Every sample's prediction and spike counts are compared with
``hwgen.golden.run``; the board's cycle counts are reported.
Results go to ``OUT/run_report.json``.

Without a board, ``hwgen.simulate.simulated_board`` serves the board top's Verilog on a
``socket://`` URL that ``--port`` accepts (tests/test_host_link.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .errors import HwgenError
from .host import DEFAULT_TIMEOUT, HostLink
from .protocol import DEFAULT_BAUD, BoardInfo, Result

__all__ = ["check_board", "compare_readouts", "run_on_board", "run_samples"]

RECORD_CAP = 200  # mismatch records kept in the report (all are counted)


def _quiet(_: str) -> None:
    pass


def check_board(info: BoardInfo, design_hash: str, qnet, port: str, out: Path) -> None:
    """Refuse a board that runs another design than OUT's, naming both hashes."""
    if info.design_hash != design_hash:
        raise HwgenError(f"the board on {port} runs design {info.design_hash}, but {out} is "
                         f"design {design_hash}: build and flash {out} first "
                         f"(`hwgen build`, `hwgen flash`)")
    wrong = [f"{name} {got} (expected {want})" for name, got, want in (
        ("timesteps", info.timesteps, qnet.timesteps),
        ("input size", info.input_size, qnet.input_size),
        ("output size", info.output_size, qnet.output_size),
        ("input bits", info.input_bits, qnet.input_bits)) if got != want]
    if wrong:
        raise HwgenError(f"the board on {port} reports design {design_hash} but "
                         f"{', '.join(wrong)}: its board top does not match its hash")


def run_samples(link: HostLink, x: np.ndarray,
                progress: Callable[[str], None] = _quiet) -> list[Result]:
    """One inference per sample of ``x`` ``[samples, T, *input_shape]`` on the board."""
    results = []
    for i in range(len(x)):
        progress(f"board: sample {i + 1} of {len(x)}")
        results.append(link.infer(x[i]))
    return results


def compare_readouts(results: list[Result], counts: np.ndarray,
                     prediction: np.ndarray) -> list[dict]:
    """Every disagreement between the board's readouts and the golden model's, as records
    ``{sample, what, neuron, expected, got}`` (``what``: ``"count"`` or ``"prediction"``)."""
    out = []
    for s, result in enumerate(results):
        for n, (want, got) in enumerate(zip(counts[s].tolist(), result.counts)):
            if want != got:
                out.append({"sample": s, "what": "count", "neuron": n, "expected": int(want),
                            "got": int(got)})
        if len(result.counts) != counts.shape[1]:
            out.append({"sample": s, "what": "count", "neuron": None,
                        "expected": int(counts.shape[1]), "got": len(result.counts)})
        if int(prediction[s]) != result.prediction:
            out.append({"sample": s, "what": "prediction", "neuron": None,
                        "expected": int(prediction[s]), "got": int(result.prediction)})
    return out


def run_on_board(out: Path, port: str, inputs: str, baud: int = DEFAULT_BAUD,
                 timeout: float = DEFAULT_TIMEOUT,
                 progress: Callable[[str], None] = _quiet) -> dict:
    """Run every sample of ``inputs`` (``.npy``) on the board at ``port``; compare with the
    golden model; write ``OUT/run_report.json`` and return the report."""
    from . import golden
    from .accelerator.identity import model_hash
    from .design import load_design, write_atomic
    from .pipeline import sim_inputs

    out = Path(out)
    design = load_design(out)
    x, _, source = sim_inputs(design, None, inputs)
    if len(x) == 0:
        raise HwgenError(f"{inputs}: no samples")
    design_hash = model_hash(design.qnet, design.parallel, design.weight_memories)
    words = design.packed_weights()

    progress(f"board: connecting to {port}")
    with HostLink(port, baud=baud, timeout=timeout) as link:
        info = link.info()
        check_board(info, design_hash, design.qnet, port, out)
        weight_seconds = 0.0
        if info.weight_memories:
            total = sum(int(w.size) for w in words.values())
            progress(f"board: loading {total} weight bytes (WEIGHTS)")
            started = time.perf_counter()
            link.load_weights(words)
            weight_seconds = time.perf_counter() - started
        progress("golden: integer reference readouts")
        trace = golden.run(design.qnet, x)
        started = time.perf_counter()
        results = run_samples(link, x, progress)
        seconds = time.perf_counter() - started

    counts = np.asarray(trace.counts)
    expected = np.asarray(trace.prediction)
    records = compare_readouts(results, counts, expected)
    cycles = [r.cycles for r in results]
    report = {
        "port": port,
        "design_hash": design_hash,
        "board": info.to_dict(),
        "inputs": source,
        "samples": len(results),
        "readouts_compared": len(results) * (counts.shape[1] + 1),
        "mismatches": len(records),
        "first_mismatch": records[0] if records else None,
        "mismatch_records": records[:RECORD_CAP],
        "predictions": [r.prediction for r in results],
        "expected_predictions": expected.tolist(),
        "counts": [list(r.counts) for r in results],
        "cycles": cycles,
        "cycles_per_inference_mean": float(np.mean(cycles)),
        "cycles_per_inference_max": int(max(cycles)),
        "accelerator_seconds_per_inference_mean": float(np.mean(cycles)) / info.clk_freq_hz,
        "wall_seconds": seconds,
        "weight_load_seconds": weight_seconds,
        "inferences_per_second": len(results) / seconds if seconds else 0.0,
    }
    write_atomic(out / "run_report.json", json.dumps(report, indent=1) + "\n")
    return report
