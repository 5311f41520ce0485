"""Schema version 4: label events and predictions carry an annotation payload (sorted class names, multi-label).

Existing rows keep ``annotation`` NULL: a single-label event or prediction is still read
from ``class_id``, which a prediction may now leave NULL (a predicted set has no one class).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.add_column("label_events", sa.Column("annotation", sa.JSON(none_as_null=True), nullable=True))
    with op.batch_alter_table("predictions") as batch:  # SQLite cannot drop NOT NULL in place: a copy
        batch.alter_column("class_id", existing_type=sa.Integer, nullable=True)
        batch.add_column(sa.Column("annotation", sa.JSON(none_as_null=True), nullable=True))
