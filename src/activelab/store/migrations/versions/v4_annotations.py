"""Schema version 4: label events carry an annotation payload (a multi-label event's sorted class names).

Existing events keep ``annotation`` NULL: a single-label event is still read from ``class_id``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.add_column("label_events", sa.Column("annotation", sa.JSON(none_as_null=True), nullable=True))
