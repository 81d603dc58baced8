"""Independent work items, run here, over local processes, or over a Dask cluster.

``run_tasks(fn, items, jobs=..., scheduler=...)`` is how ``hwgen sim`` shards its samples, the
fuzzer its batches and ``hwgen bench`` its bitstream builds. With neither ``jobs`` nor a
scheduler the items run one after the other in this process. ``jobs = N`` runs them in N
local worker processes (``concurrent.futures``; spawned, not forked: torch's thread pools
do not survive a fork). ``scheduler = "tcp://HOST:PORT"`` sends them to a ``dask.distributed``
cluster: a well-kept engine with its own scheduling, retries and dashboard, rather than a job
server of ours. Every worker needs the same environment (README, "A cluster").

Results come back in item order whatever order the items finish in, so a caller that merges
them gets the same report from one process, N processes or a cluster. ``fn`` and the items
must pickle (a module-level function, plain data); a worker's exception is raised here as
it was raised there.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import multiprocessing
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from .errors import HwgenError

__all__ = ["run_tasks", "validate", "worker_folder"]

Item = TypeVar("Item")
Result = TypeVar("Result")
CONNECT_TIMEOUT_S = 10


def validate(jobs: int, scheduler: str | None) -> None:
    """Refuse a bad ``--jobs`` / ``--scheduler`` before any work starts."""
    if jobs < 1:
        raise HwgenError(f"--jobs must be at least 1, got {jobs}")
    if scheduler is not None and "://" not in scheduler:
        raise HwgenError(f"--scheduler {scheduler!r}: give the Dask scheduler's address, "
                         "e.g. tcp://10.0.0.5:8786 (printed by `dask scheduler`)")


def worker_folder(what: str, content: bytes = b"") -> Path:
    """A folder of this worker process's own for ``what`` (``sim``, ``build``, ``fuzz``), one per
    ``content`` (the design a task carries): a cluster worker has no output folder of the
    caller's, and reuses this one (its compiled simulator, its build) for the next task of the
    same design. Other worker processes on the same machine get theirs."""
    folder = Path(tempfile.gettempdir()) / f"hwgen-{what}-worker-{os.getpid()}"
    if content:
        folder = folder / hashlib.sha256(content).hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def run_tasks(fn: Callable[[Item], Result], items: Sequence[Item], *, jobs: int = 1,
              scheduler: str | None = None,
              done: Callable[[int, Result], None] | None = None) -> list[Result]:
    """``[fn(item) for item in items]``, run as the arguments say; ``done(index, result)`` is
    called here as each item finishes (progress bars)."""
    validate(jobs, scheduler)
    results: list = [None] * len(items)

    def finished(index: int, result) -> None:
        results[index] = result
        if done is not None:
            done(index, result)

    if scheduler is not None:
        _on_cluster(fn, items, scheduler, finished)
    elif jobs == 1 or len(items) <= 1:
        for index, item in enumerate(items):
            finished(index, fn(item))
    else:
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(min(jobs, len(items)), mp_context=context) as pool:
            futures = {pool.submit(fn, item): index for index, item in enumerate(items)}
            for future in concurrent.futures.as_completed(futures):
                finished(futures[future], future.result())
    return results


def _on_cluster(fn, items, scheduler: str, finished) -> None:
    from distributed import Client, as_completed

    try:
        client = Client(scheduler, timeout=f"{CONNECT_TIMEOUT_S}s")
    except (OSError, TimeoutError) as e:
        raise HwgenError(f"no Dask scheduler answered at {scheduler} within {CONNECT_TIMEOUT_S} s ({e}); "
                         "start one with `dask scheduler` and workers with `dask worker ADDRESS` "
                         "(README, \"A cluster\"), or leave out --scheduler") from None
    with client:
        # A simulation takes its settings from its process's environment (cocotb's runner
        # reads os.environ), so two tasks at once in one worker process would mix them up.
        threaded = {w.get("name", a): w["nthreads"] for a, w in client.scheduler_info()["workers"].items()
                    if w["nthreads"] > 1}
        if threaded:
            raise HwgenError(f"Dask workers at {scheduler} run several tasks per process ({threaded} threads); "
                             "hwgen's need one each: start them with `dask worker ADDRESS --nthreads 1` "
                             "(and --nworkers N for N at once; README, \"A cluster\")")
        # pure=False: two equal items (the same sample twice) are still two runs
        futures = client.map(fn, list(items), pure=False)
        index = {future.key: i for i, future in enumerate(futures)}
        for future in as_completed(futures):
            finished(index[future.key], future.result())
