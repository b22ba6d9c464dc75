"""Libraries whose INFO lines are noise in our logs: alembic prints seven per migration run, and httpx one
per reply sent. Quieted to WARNING unless the operator asked for DEBUG, however the process was started
(``claude-signal``, or ``celery -A claude_signal worker`` directly)."""

from __future__ import annotations

import logging

QUIET_LOGGERS = ("alembic", "httpx", "httpcore")


def quiet_libraries(level: int) -> None:
    if level > logging.DEBUG:
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
