"""Run Alembic from code, so ``claude-signal db upgrade`` needs no alembic.ini in the working directory."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InterfaceError, OperationalError

from claude_signal.config import ConfigError

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema at ``url`` up to ``revision``; safe to run again and from several machines.

    Alembic's INFO lines are kept out of the console, and a database that cannot be reached is one line
    naming the setting (:class:`ConfigError`), not a traceback.
    """
    quiet = logging.getLogger("alembic")
    level = quiet.level
    quiet.setLevel(max(level, logging.WARNING))
    try:
        command.upgrade(alembic_config(url), revision)
    except (OperationalError, InterfaceError) as error:
        reason = str(error.orig or error).strip().splitlines()[0][:200]
        shown = make_url(url).render_as_string(hide_password=True)
        raise ConfigError(f"CLAUDE_SIGNAL_DATABASE_URL: cannot use the database at {shown}: {reason}") from None
    finally:
        quiet.setLevel(level)


def is_current(engine: Engine) -> bool:
    """True when the schema exists; workers refuse to start on an empty database with a clear line."""
    return inspect(engine).has_table("alembic_version")
