"""Reading the user's NumPy files (``--inputs`` .npy, ``--data`` / ``--calibration`` /
``--events`` .npz): every way such a file can be wrong becomes one ``HwgenError`` naming the
file and what would fix it, never a NumPy exception.

The files are read with ``allow_pickle=False``: an input file must not run code, and an
object array is no spike array anyway.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from .errors import HwgenError

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK"  # a local file header (PK\\3\\4) or, for an empty archive, the end record (PK\\5\\6)


def _opened(path: str, role: str) -> bytes:
    """The first bytes of an existing, non-empty regular file."""
    file = Path(path)
    if not file.exists():
        raise HwgenError(f"{path}: {role} file not found")
    if not file.is_file():
        raise HwgenError(f"{path}: {role} file is a folder, not a file")
    with open(file, "rb") as f:
        head = f.read(8)
    if not head:
        raise HwgenError(f"{path}: {role} file is empty")
    return head


def load_npy(path: str, role: str = "input") -> np.ndarray:
    """One array from a ``numpy.save`` file."""
    head = _opened(path, role)
    if head.startswith(ZIP_MAGIC):
        raise HwgenError(f"{path}: an .npz archive, but the {role} file is one .npy array: save the array "
                         "itself with numpy.save (e.g. np.save('x.npy', np.load(archive)['x']))")
    if not head.startswith(NPY_MAGIC):
        raise HwgenError(f"{path}: not a .npy file (no NumPy header; text, CSV and pickles are not read): "
                         "write the array with numpy.save")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise HwgenError(f"{path}: holds Python objects (dtype object), not numbers: save an integer "
                             "array (e.g. x.astype(np.uint8))") from None
        raise HwgenError(f"{path}: damaged .npy file ({exc}); write it again with numpy.save") from None
    except (OSError, EOFError) as exc:
        raise HwgenError(f"{path}: damaged or truncated .npy file ({exc}); write it again with "
                         "numpy.save") from None


def load_npz(path: str, role: str, example: str) -> dict[str, np.ndarray]:
    """Every array of a ``numpy.savez`` archive, by name. ``example`` shows how to write one."""
    head = _opened(path, role)
    if head.startswith(NPY_MAGIC):
        raise HwgenError(f"{path}: a single .npy array, but the {role} file is an .npz archive of named "
                         f"arrays: write it with {example}")
    if not head.startswith(ZIP_MAGIC):
        raise HwgenError(f"{path}: not an .npz archive (no zip header): write it with {example}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise HwgenError(f"{path}: an array in the archive holds Python objects (dtype object), not "
                             "numbers: save integer arrays") from None
        raise HwgenError(f"{path}: damaged .npz archive ({exc}); write it again with {example}") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise HwgenError(f"{path}: damaged or truncated .npz archive ({exc}); write it again with "
                         f"{example}") from None
