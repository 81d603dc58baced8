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
