"""``hwgen bench``: measured cycles, bounds, efficiency, builds and tool speed (docs/benchmarks.md).

``runner`` measures and writes the results JSON, ``render`` turns it into ``bench/RESULTS.md``
and plots; ``bounds`` holds the definitions of the lower bound and the dense baseline.
"""

from .runner import PLANS, run_bench

__all__ = ["PLANS", "run_bench"]
