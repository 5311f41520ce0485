"""The project store: the one source of truth for images, classes, labels and rounds."""

from activelab.store.engine import open_store, sqlite_url
from activelab.store.migrations import SCHEMA_VERSION
from activelab.store.store import (
    BatchOutcome,
    CurrentLabel,
    Image,
    ImageRecord,
    ImageRef,
    LabelEvent,
    Round,
    Store,
)

__all__ = [
    "SCHEMA_VERSION",
    "BatchOutcome",
    "CurrentLabel",
    "Image",
    "ImageRecord",
    "ImageRef",
    "LabelEvent",
    "Round",
    "Store",
    "open_store",
    "sqlite_url",
]
