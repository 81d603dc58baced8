"""Human-readable tables of the JSON reports (the JSON files stay the source of truth)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def print_sim(report: dict, console: Console, title: str = "RTL vs golden model") -> None:
    table = Table(title=title)
    for column in ("samples", "timesteps", "spikes compared", "mismatches", "cycles/inference (mean / max)",
                   "accuracy float", "accuracy int", "accuracy RTL"):
        table.add_column(column, justify="right")
    table.add_row(str(report["samples"]), str(report["timesteps"]), f"{report['spikes_compared']:,}",
                  str(report["mismatches"]),
                  f"{report['cycles_per_inference_mean']:.0f} / {report['cycles_per_inference_max']}",
                  _pct(report["accuracy_float"]), _pct(report["accuracy_int"]), _pct(report["accuracy_rtl"]))
    console.print(table)
    console.print(f"simulator {report['simulator']}; inputs: {report['inputs']}")
    if report.get("coverage"):
        print_coverage(report["coverage"], console)


def print_coverage(cov: dict, console: Console) -> None:
    """Per spiking layer what the samples exercised (``hwgen.simulate.coverage``), with the
    layers whose weight words read fall below the report's threshold flagged: a clean run
    verifies only the weights it read."""
    n = cov["samples"]
    table = Table(title=f"coverage: what the {n} sample{'' if n == 1 else 's'} exercised")
    for column in ("layer", "weight words read", "neurons fired", "membrane rails hit", "current rails hit"):
        table.add_column(column, justify="left" if column == "layer" else "right")
    for layer in cov["layers"]:
        if layer["weight_coverage"] is None:
            words = "not measured"
        else:
            words = f"{layer['weight_words_read']:,}/{layer['weight_words']:,} ({layer['weight_coverage']:.1%})"
            if layer["low_coverage"]:
                words = f"[yellow]{words} low coverage[/yellow]"
        rails = layer["rails"]
        table.add_row(layer["name"], words, f"{layer['neurons_fired']:,}/{layer['neurons']:,}",
                      _rails(rails["membrane"]), _rails(rails["current"]))
    console.print(table)
    if cov["low"]:
        console.print(f"[yellow]low coverage[/yellow] in {', '.join(cov['low'])}: under {cov['threshold']:.0%} of "
                      "the weight words were read; weights never read are not verified by this run "
                      "(more or other samples would read them)")
    unmeasured = [f"{layer['name']} ({layer['weights_not_measured']})" for layer in cov["layers"]
                  if layer["weights_not_measured"]]
    if unmeasured:
        console.print(f"weight coverage not measured: {'; '.join(unmeasured)}")


def _rails(rails: dict | None) -> str:
    if rails is None:
        return "-"
    hit = [side for side in ("low", "high") if rails[side]]
    return ", ".join(hit) if hit else "none"
