"""What a batch of samples exercised: the coverage section of ``hwgen sim``'s report.

A run that compares every spike and finds no mismatch proves the design bit-exact on those
samples only. A weight word the engine never reads is not verified by them: flipping one of
its bits changes nothing they produce (the weights of a corner pixel of the digits, which
never spikes). Likewise a neuron that never fires never exercised its spike path, and a
saturation that never took effect was not checked. This module says, per spiking layer,
how much of the design the batch reached, so that a clean run can be read for what it is.

It is computed from the integer golden model's trace of the batch, not from the RTL: the
RTL is checked bit-exact against that trace, and the golden model's events are the tokens
the engines receive, so the words it implies were read are the words the hardware read.
Which words an event reads is the layer kind's to say (``weight_words_read``, next to the
layout of its weight memory); a kind that does not say is reported as not measured.
"""

from __future__ import annotations

import numpy as np

from ..errors import HwgenError
from ..golden import GoldenTrace
from ..ir import QuantNetwork

__all__ = ["LOW_COVERAGE", "measure_coverage"]

#: A layer whose fraction of weight words read is below this is flagged in the console:
#: weights never read are not verified by this run (more or other samples would read them).
LOW_COVERAGE = 0.95


def measure_coverage(qnet: QuantNetwork, trace: GoldenTrace, parallel: int) -> dict:
    """The coverage of the batch ``trace`` describes (``golden.run(qnet, x)``) on the design
    of ``qnet`` at ``parallel`` lanes, as the ``coverage`` entry of ``sim_report.json``.

    Per spiking layer, in ``qnet.spiking_layers`` order:

    * ``weight_words_read`` of ``weight_words``: words of the layer's weight memory (``P``
      lane weights each, the engine's layout) that at least one input event read, and
      ``weight_coverage``, their fraction (``None`` with ``weights_not_measured`` giving the
      reason, for a kind that cannot say which words an event reads);
    * ``neurons_fired`` of ``neurons``: neurons that spiked at least once;
    * ``rails``: per saturated quantity (``membrane``; ``current`` for CuBa neurons, else
      ``None``), ``low`` / ``high``: the saturation to that rail took effect at least once
      (the unsaturated sum went past it);
    * ``low_coverage``: ``weight_coverage`` is below ``threshold`` (:data:`LOW_COVERAGE`).
    """
    layers = qnet.spiking_layers
    _check(qnet, trace, parallel)
    entries = [_layer(layer, n, trace, parallel) for n, layer in enumerate(layers)]
    return {"samples": trace.batch, "threshold": LOW_COVERAGE,
            "low": [e["name"] for e in entries if e["low_coverage"]], "layers": entries}


def _check(qnet: QuantNetwork, trace: GoldenTrace, parallel: int) -> None:
    """Refuse a trace that is not of ``qnet`` (another design's, or of no sample)."""
    if isinstance(parallel, bool) or not isinstance(parallel, (int, np.integer)) or parallel < 1:
        raise HwgenError(f"coverage: parallel must be a whole number of at least 1, got {parallel!r}")
    layers = qnet.spiking_layers
    if len(trace.layer_inputs) != len(layers) or len(trace.spikes) != len(layers):
        raise HwgenError(f"coverage: the golden trace has {len(trace.spikes)} spiking layers but the "
                         f"network has {len(layers)}; run golden.run on this network's inputs")
    if trace.batch < 1:
        raise HwgenError("coverage: the golden trace holds no sample; there is nothing to measure")
    for layer, inputs, spikes in zip(layers, trace.layer_inputs, trace.spikes):
        if tuple(inputs.shape[1:]) != tuple(layer.golden_input_shape) or spikes.shape[-1] != layer.output_size:
            raise HwgenError(f"coverage: layer {layer.name!r} takes {list(layer.golden_input_shape)} inputs "
                             f"and has {layer.output_size} neurons, but the trace holds "
                             f"{list(inputs.shape[1:])} inputs and {spikes.shape[-1]} neurons: it is "
                             "another network's trace")


def _layer(layer, n: int, trace: GoldenTrace, parallel: int) -> dict:
    entry: dict = {"name": layer.name, "weight_words": None, "weight_words_read": None,
                   "weight_coverage": None, "weights_not_measured": None}
    active = trace.layer_inputs[n].any(dim=0).numpy()
    try:
        read = np.asarray(layer.weight_words_read(active, parallel), dtype=bool)
    except NotImplementedError:
        entry["weights_not_measured"] = (f"the {type(layer).__name__} kind does not say which weight "
                                         "words an input event reads")
    else:
        words, used = int(read.size), int(read.sum())
        entry.update(weight_words=words, weight_words_read=used, weight_coverage=used / words if words else None)
    fired = trace.spikes[n].reshape(trace.batch, -1, layer.output_size).amax(dim=(0, 1))
    entry["neurons"] = layer.output_size
    entry["neurons_fired"] = int((fired != 0).sum())
    syn = layer.synapse
    entry["rails"] = {
        "membrane": _rails(trace.membrane_extremes[n], layer.state_min, layer.state_max),
        "current": None if syn is None else _rails(trace.current_extremes[n], syn.current_min, syn.current_max),
    }
    coverage = entry["weight_coverage"]
    entry["low_coverage"] = coverage is not None and coverage < LOW_COVERAGE
    return entry


def _rails(extremes, lo: int, hi: int) -> dict:
    """Whether the saturation to ``lo`` / ``hi`` took effect: ``extremes`` ([B, 2], per sample
    min and max of the unsaturated sum) went past the rail."""
    if extremes is None:  # a CuBa layer whose current no timestep computed
        return {"low": False, "high": False}
    return {"low": bool((extremes[:, 0] < lo).any()), "high": bool((extremes[:, 1] > hi).any())}
