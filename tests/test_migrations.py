"""The Alembic history builds exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

from claude_signal.db.migrate import is_current, upgrade
from claude_signal.db.models import Base


def test_models_match_migrations(engine: Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_upgrade_is_repeatable(database_url: str, engine: Engine) -> None:
    upgrade(database_url)
    assert is_current(engine)
    assert {"session", "turn", "inbox", "outbox", "approval", "transition", "worker", "conversation"} <= set(
        inspect(engine).get_table_names())


def test_cli_db_upgrade_on_a_fresh_data_dir(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "CLAUDE_SIGNAL_HOME": str(tmp_path / "data")}
    done = subprocess.run([sys.executable, "-m", "claude_signal.ops.cli", "db", "upgrade"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "data" / "claude-signal.db").exists()
    assert "database is up to date" in done.stdout
