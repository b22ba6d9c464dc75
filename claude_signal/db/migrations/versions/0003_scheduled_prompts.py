"""scheduled prompts: /every and /at

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29

A schedule belongs to a session and owes its next occurrence (``next_run_at``); a run row per schedule and
occurrence, keyed by both, makes each occurrence run once however many beats or workers reach it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import claude_signal.db.models

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("schedule",
    sa.Column("id", sa.String(length=16), nullable=False),
    sa.Column("session_id", sa.String(length=16), nullable=False),
    sa.Column("owner", sa.String(length=128), nullable=False),
    sa.Column("conversation", sa.String(length=128), nullable=False),
    sa.Column("spec", sa.Text(), nullable=False),
    sa.Column("label", sa.Text(), nullable=False),
    sa.Column("prompt", sa.Text(), nullable=False),
    sa.Column("timezone", sa.String(length=64), nullable=False),
    sa.Column("status", sa.String(length=16), nullable=False),
    sa.Column("anchor_at", claude_signal.db.models.UTCDateTime(), nullable=False),
    sa.Column("next_run_at", claude_signal.db.models.UTCDateTime(), nullable=True),
    sa.Column("last_run_at", claude_signal.db.models.UTCDateTime(), nullable=True),
    sa.Column("blocked_status", sa.String(length=16), nullable=True),
    sa.Column("origin_key", sa.String(length=255), nullable=True),
    sa.Column("created_at", claude_signal.db.models.UTCDateTime(), nullable=False),
    sa.Column("updated_at", claude_signal.db.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(["session_id"], ["session.id"], name=op.f("fk_schedule_session_id_session")),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_schedule")),
    sa.UniqueConstraint("origin_key", name=op.f("uq_schedule_origin_key"))
    )
    with op.batch_alter_table("schedule", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_schedule_conversation"), ["conversation"], unique=False)
        batch_op.create_index(batch_op.f("ix_schedule_session_id"), ["session_id"], unique=False)
        batch_op.create_index("ix_schedule_status_next", ["status", "next_run_at"], unique=False)

    op.create_table("schedule_run",
    sa.Column("key", sa.String(length=255), nullable=False),
    sa.Column("schedule_id", sa.String(length=16), nullable=False),
    sa.Column("occurrence_at", claude_signal.db.models.UTCDateTime(), nullable=False),
    sa.Column("turn_id", sa.Integer(), nullable=True),
    sa.Column("missed", sa.Integer(), nullable=False),
    sa.Column("catch_up", sa.Boolean(), nullable=False),
    sa.Column("created_at", claude_signal.db.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(["schedule_id"], ["schedule.id"], name=op.f("fk_schedule_run_schedule_id_schedule")),
    sa.ForeignKeyConstraint(["turn_id"], ["turn.id"], name=op.f("fk_schedule_run_turn_id_turn")),
    sa.PrimaryKeyConstraint("key", name=op.f("pk_schedule_run"))
    )
    with op.batch_alter_table("schedule_run", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_schedule_run_schedule_id"), ["schedule_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_schedule_run_turn_id"), ["turn_id"], unique=False)



def downgrade() -> None:
    with op.batch_alter_table("schedule_run", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_schedule_run_turn_id"))
        batch_op.drop_index(batch_op.f("ix_schedule_run_schedule_id"))

    op.drop_table("schedule_run")
    with op.batch_alter_table("schedule", schema=None) as batch_op:
        batch_op.drop_index("ix_schedule_status_next")
        batch_op.drop_index(batch_op.f("ix_schedule_session_id"))
        batch_op.drop_index(batch_op.f("ix_schedule_conversation"))

    op.drop_table("schedule")
