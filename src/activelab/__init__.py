"""activelab: active learning for computer vision.

The names most users need are importable from here; everything else lives in
its layer (``activelab.strategies``, ``activelab.store``, ``activelab.models``,
``activelab.loop``...).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "ActiveLearner": "activelab.loop.learner",
    "ActiveSession": "activelab.loop.session",
    "init_project": "activelab.loop.project",
    "open_project": "activelab.loop.project",
    "import_images": "activelab.loop.ingest",
    "export_labels": "activelab.loop.export",
    "open_store": "activelab.store",
}

if TYPE_CHECKING:
    from activelab.loop.export import export_labels
    from activelab.loop.ingest import import_images
    from activelab.loop.learner import ActiveLearner
    from activelab.loop.project import init_project, open_project
    from activelab.loop.session import ActiveSession
    from activelab.store import open_store


def __getattr__(name: str) -> Any:
    """Import heavy modules (torch) only when their names are used."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'activelab' has no attribute {name!r}")


__all__ = [
    "ActiveLearner",
    "ActiveSession",
    "export_labels",
    "import_images",
    "init_project",
    "open_project",
    "open_store",
]
