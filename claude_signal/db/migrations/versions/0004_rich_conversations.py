"""rich conversations: model and quiet per session, held pictures, recorded answers

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

A session remembers the model ``/model`` chose and whether ``/quiet`` folds tool lines. A picture sent alone
is a queued turn held until ``hold_until`` for its caption (the next text message). Each turn keeps what
Claude answered, so ``/export`` can write the conversation.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import claude_signal.db.models

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("session", schema=None) as batch_op:
        batch_op.add_column(sa.Column("model", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("quiet", sa.Boolean(), server_default=sa.false(), nullable=False))
    with op.batch_alter_table("turn", schema=None) as batch_op:
        batch_op.add_column(sa.Column("hold_until", claude_signal.db.models.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("answer", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("turn", schema=None) as batch_op:
        batch_op.drop_column("answer")
        batch_op.drop_column("hold_until")
    with op.batch_alter_table("session", schema=None) as batch_op:
        batch_op.drop_column("quiet")
        batch_op.drop_column("model")
