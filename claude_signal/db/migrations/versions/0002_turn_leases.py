"""liveness belongs to the turn; one worker row per boot

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29

A RUNNING turn holds a lease renewed by the process that runs it; sessions own nothing, so their owner and
lease columns go. Worker rows are keyed by the boot (incarnation), so two processes that share a node name
never overwrite each other's row; each says which plane it serves and how many turn slots it has.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import claude_signal.db.models

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("turn", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lease_expires_at", claude_signal.db.models.UTCDateTime(), nullable=True))
        batch_op.create_index("ix_turn_status_lease", ["status", "lease_expires_at"], unique=False)
    with op.batch_alter_table("session", schema=None) as batch_op:
        batch_op.drop_index("ix_session_status_lease")
        batch_op.drop_column("lease_expires_at")
        batch_op.drop_column("owner_incarnation")
        batch_op.drop_column("owner_node")
    with op.batch_alter_table("worker", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_worker_host"))
    op.drop_table("worker")  # liveness only: every live worker registers again within one heartbeat
    op.create_table(
        "worker",
        sa.Column("incarnation", sa.String(length=36), nullable=False),
        sa.Column("node", sa.String(length=255), nullable=False),
        sa.Column("host", sa.String(length=128), nullable=False),
        sa.Column("plane", sa.String(length=16), nullable=False),
        sa.Column("slots", sa.Integer(), nullable=False),
        sa.Column("started_at", claude_signal.db.models.UTCDateTime(), nullable=False),
        sa.Column("last_heartbeat", claude_signal.db.models.UTCDateTime(), nullable=False),
        sa.Column("stopped_at", claude_signal.db.models.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("incarnation", name=op.f("pk_worker")),
    )
    with op.batch_alter_table("worker", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_worker_host"), ["host"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("worker", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_worker_host"))
    op.drop_table("worker")
    op.create_table(
        "worker",
        sa.Column("node", sa.String(length=255), nullable=False),
        sa.Column("host", sa.String(length=128), nullable=False),
        sa.Column("incarnation", sa.String(length=36), nullable=False),
        sa.Column("started_at", claude_signal.db.models.UTCDateTime(), nullable=False),
        sa.Column("last_heartbeat", claude_signal.db.models.UTCDateTime(), nullable=False),
        sa.Column("stopped_at", claude_signal.db.models.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("node", name=op.f("pk_worker")),
    )
    with op.batch_alter_table("worker", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_worker_host"), ["host"], unique=False)
    with op.batch_alter_table("session", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner_node", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("owner_incarnation", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("lease_expires_at", claude_signal.db.models.UTCDateTime(), nullable=True))
        batch_op.create_index("ix_session_status_lease", ["status", "lease_expires_at"], unique=False)
    with op.batch_alter_table("turn", schema=None) as batch_op:
        batch_op.drop_index("ix_turn_status_lease")
        batch_op.drop_column("lease_expires_at")
