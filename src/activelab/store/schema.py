"""Table definitions of the project store.

Label history is append-only: ``label_events`` rows are only ever inserted; the
current label of an image is the class of its latest event (``None`` when the
latest event withdrew the label, e.g. "unsure / remove from training").
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
    Index("ix_label_events_image_id_id", "image_id", "id"),
)
