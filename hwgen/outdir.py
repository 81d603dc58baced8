"""All-or-nothing output: a failed command never leaves a half-written OUT behind."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import HwgenError

# What marks a folder as an earlier ``hwgen generate`` result, which may be replaced whole.
MARKERS = ("hwgen_top.v", "model.json")


def check_replaceable(out: Path) -> None:
    """Refuse an ``out`` that replacing would destroy something that is not hwgen's: a file,
    or a folder with other content (``-o .`` or ``-o ~`` must never wipe a user's files)."""
    out = Path(out)
    if not out.exists():
        return
    if not out.is_dir():
        raise HwgenError(f"output folder {out} is an existing file; hwgen writes a folder there "
                         "and would replace the file: choose another -o")
    if any(out.iterdir()) and not all((out / marker).is_file() for marker in MARKERS):
        raise HwgenError(f"output folder {out} exists and is not an hwgen output folder (no "
                         f"{' / '.join(MARKERS)}); hwgen replaces its output folder as a whole, "
                         "so it only replaces an earlier result or an empty folder: choose a new -o")


@contextlib.contextmanager
def staged_directory(out: Path) -> Iterator[Path]:
    """Yield an empty staging folder beside ``out``; on success it replaces ``out`` whole.

    On any exception the staging folder is removed and ``out`` is left as it was (absent,
    or the previous complete result). An ``out`` that is not an earlier result (a file, a
    folder with other content) is refused before anything is written.
    """
    check_replaceable(out)
    out = Path(out).resolve()  # `-o .` has no name to stage beside; its resolved form has
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    # mkdtemp makes the folder private (0700); OUT gets the permissions any new folder gets.
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)
    try:
        yield staging
        check_replaceable(out)  # it may have changed while we worked
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    previous = None
    if out.exists():
        previous = out.with_name(f".{out.name}.previous")
        shutil.rmtree(previous, ignore_errors=True)
        out.rename(previous)
    staging.rename(out)
    if previous is not None:
        shutil.rmtree(previous, ignore_errors=True)


def write_atomic(path: Path, text: str) -> None:
    """Write a file so that readers see either the old or the complete new content."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(text)
    os.replace(tmp, path)
