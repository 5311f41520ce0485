"""The project store: the one source of truth for images, classes, labels and rounds."""

from activelab.store.engine import open_store, sqlite_url
from activelab.store.events import Payload
from activelab.store.migrations import SCHEMA_VERSION
from activelab.store.store import (
    BatchOutcome,
    CurrentAnnotation,
    CurrentLabel,
    Image,
    ImageRecord,
    ImageRef,
    LabelEvent,
    ReviewFlag,
    Round,
    Store,
    SubmitOutcome,
    UndoOutcome,
)

__all__ = [
    "SCHEMA_VERSION",
    "BatchOutcome",
    "CurrentAnnotation",
    "CurrentLabel",
    "Image",
    "ImageRecord",
    "ImageRef",
    "LabelEvent",
    "Payload",
    "ReviewFlag",
    "Round",
    "Store",
    "SubmitOutcome",
    "UndoOutcome",
    "open_store",
    "sqlite_url",
]
