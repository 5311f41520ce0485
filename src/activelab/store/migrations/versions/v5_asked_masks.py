"""Schema version 5: a round's selection row names the pixels it asks for (region selection, segmentation).

``round_selections.asked_mask`` is the content address (sha256) of a mask in the project's
mask store whose pixels 1 are the ones the round asks to label; NULL (every existing row, and
every row of an image-level round) means the whole image is asked.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.add_column("round_selections", sa.Column("asked_mask", sa.String(64), nullable=True))
