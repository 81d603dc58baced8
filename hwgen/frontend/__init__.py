"""Frontends: framework models in, ``hwgen.ir.Network`` (float form) out.

Submodules are imported lazily so that using one frontend does not pay for importing the
framework of another (snnTorch alone takes a noticeable fraction of a second).
"""

from __future__ import annotations

from typing import Any

_TORCH_NAMES = ("load_torch_model", "import_torch")
_NIR_NAMES = ("import_nir",)

__all__ = list(_TORCH_NAMES) + list(_NIR_NAMES)


def __getattr__(name: str) -> Any:
    if name in _TORCH_NAMES:
        from . import torch_frontend

        return getattr(torch_frontend, name)
    if name in _NIR_NAMES:
        from . import nir_frontend

        return getattr(nir_frontend, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
