"""drop approval.message_timestamp, which nothing wrote or read

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29

Answers by reply or reaction find their approval through the outbox row that asked (its Signal timestamp),
so the approval's own copy of that timestamp was never filled in.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("approval", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_approval_message_timestamp"))
        batch_op.drop_column("message_timestamp")


def downgrade() -> None:
    with op.batch_alter_table("approval", schema=None) as batch_op:
        batch_op.add_column(sa.Column("message_timestamp", sa.BigInteger(), nullable=True))
        batch_op.create_index(batch_op.f("ix_approval_message_timestamp"), ["message_timestamp"], unique=False)
