"""Run Alembic from code, so ``claude-signal db upgrade`` needs no alembic.ini in the working directory."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, inspect

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema at ``url`` up to ``revision``; safe to run again and from several machines."""
    command.upgrade(alembic_config(url), revision)


def is_current(engine: Engine) -> bool:
    """True when the schema exists; workers refuse to start on an empty database with a clear line."""
    return inspect(engine).has_table("alembic_version")
