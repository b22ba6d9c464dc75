"""index a recipient's unsent replies

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29

Every reply asks whether another to the same recipient is still unsent, and marking one sent asks which is
next. Through ``ix_outbox_recipient_status`` both read every row ever sent to that recipient (PostgreSQL's
plans filtered the statuses rather than seek them), so a reply cost more the longer the bot had run. A
partial index holds only the unsent rows: a handful, however long the history.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_UNSENT = "status IN ('PENDING', 'SENDING')"  # as the model states it, frozen here with this revision


def upgrade() -> None:
    op.create_index("ix_outbox_unsent", "outbox", ["recipient", "id"], unique=False,
                    sqlite_where=sa.text(_UNSENT), postgresql_where=sa.text(_UNSENT))


def downgrade() -> None:
    op.drop_index("ix_outbox_unsent", table_name="outbox")
