"""Table definitions of the project store.

Label history is append-only: ``label_events`` rows are only ever inserted; the
current label of an image is the class (or, multi-label, the annotation) of its
latest event (neither when the latest event withdrew the label, e.g. "unsure /
remove from training").

The tables are created and upgraded by the Alembic revisions in
``activelab/store/migrations/versions``; these definitions are what the queries
use, and a test checks that the two agree.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

SPLITS = ("pool", "eval")
LABEL_SOURCES = ("import", "human", "oracle", "correction", "review")

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

images = Table(
    "images",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("sha256", String(64), nullable=False, unique=True),
    Column("path", Text, nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("n_bytes", BigInteger, nullable=False),
    Column("split", String(8), nullable=False, index=True),
    Column("added_at", DateTime(timezone=True), nullable=False),
    # version 3: the Pillow format detected at import ("PNG", "JPEG"); NULL for images imported before
    Column("format", String(16), nullable=True),
)

classes = Table(
    "classes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

rounds = Table(
    "rounds",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("number", Integer, nullable=False, unique=True),
    Column("strategy", String(200), nullable=False),
    Column("model", String(200), nullable=False),
    Column("config", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("n_labeled", Integer, nullable=False),
    Column("metrics", JSON, nullable=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
)

round_selections = Table(
    "round_selections",
    metadata,
    Column("round_id", Integer, ForeignKey("rounds.id"), primary_key=True),
    Column("image_id", Integer, ForeignKey("images.id"), primary_key=True),
    Column("rank", Integer, nullable=False),
    Column("score", Float, nullable=True),
    # version 5: the sha256 of the mask (in the project's mask store) of the pixels a region round asks for;
    # NULL: the whole image is asked
    Column("asked_mask", String(64), nullable=True),
)

label_events = Table(
    "label_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("image_id", Integer, ForeignKey("images.id"), nullable=False),
    Column("class_id", Integer, ForeignKey("classes.id"), nullable=True),
    Column("author", String(200), nullable=False),
    Column("source", String(16), nullable=False),
    Column("round_index", Integer, nullable=False),
    Column("note", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # version 4: a multi-label event's payload, the sorted list of class names (class_id NULL);
    # NULL for single-label events and withdrawals (none_as_null: Python None is SQL NULL, not JSON null)
    Column("annotation", JSON(none_as_null=True), nullable=True),
    Index("ix_label_events_image_id_id", "image_id", "id"),
)

# ---------------------------------------------------------------- version 2: the labeling app
# Leases: which labeler an image is currently shown to, until when (one live lease per image).
leases = Table(
    "leases",
    metadata,
    Column("image_id", Integer, ForeignKey("images.id"), primary_key=True),
    Column("holder", String(200), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
)

# Skips: a labeler said "not now" to an image; it is not shown to that labeler again.
skips = Table(
    "skips",
    metadata,
    Column("image_id", Integer, ForeignKey("images.id"), primary_key=True),
    Column("author", String(200), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Undos: label event ``event_id`` was undone by the (appended) event ``undo_event_id``.
label_undos = Table(
    "label_undos",
    metadata,
    Column("event_id", Integer, ForeignKey("label_events.id"), primary_key=True),
    Column("undo_event_id", Integer, ForeignKey("label_events.id"), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Review flags: images whose labels need a second look (e.g. two labelers disagreed).
review_flags = Table(
    "review_flags",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("image_id", Integer, ForeignKey("images.id"), nullable=False, index=True),
    Column("reason", String(32), nullable=False),
    Column("details", JSON, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("resolved_at", DateTime(timezone=True), nullable=True),
    Column("resolved_by", String(200), nullable=True),
)

# Model predictions of a finished round (the hint shown to labelers).
predictions = Table(
    "predictions",
    metadata,
    Column("round_number", Integer, primary_key=True),
    Column("image_id", Integer, ForeignKey("images.id"), primary_key=True),
    # version 4: a single-label prediction names its class; a multi-label one is the predicted set
    Column("class_id", Integer, ForeignKey("classes.id"), nullable=True),
    Column("confidence", Float, nullable=False),
    Column("annotation", JSON(none_as_null=True), nullable=True),
)

# Small persistent state of long-running services (the background trainer's status), as JSON.
service_state = Table(
    "service_state",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

V2_TABLES = (leases, skips, label_undos, review_flags, predictions, service_state)

# ---------------------------------------------------------------- version 3: class retirement
CLASS_ACTIONS = ("retire", "restore")

# Class events: a class is retired (leaves the keys and the model) or restored; append-only,
# the latest event of a class decides, and a class with no event is active.
class_events = Table(
    "class_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("class_id", Integer, ForeignKey("classes.id"), nullable=False, index=True),
    Column("action", String(8), nullable=False),
    Column("author", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

V3_TABLES = (class_events,)
