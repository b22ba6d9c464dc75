"""Task messages carry proof of the installation's key, so access to the broker alone commands nothing.

Every message our processes publish gets an HMAC-SHA256 over its task name, id, args and kwargs, in the
``claude_signal_sig`` header: the listener signs explicitly (:class:`~claude_signal.edge.publisher.InboundPublisher`),
and a worker signs everything it publishes (wake-ups, retries, recovery) through ``before_task_publish``.
:class:`SignedTask`, the base of every task, checks it before the body runs; a message without a valid
signature is logged and acknowledged with no effect. Redelivering a captured message is harmless: the task
id and the inbox key make a second delivery a no-op.

The key is ``CLAUDE_SIGNAL_SECRET_KEY`` (the same on every machine of an installation) or, when unset, a
random key kept in ``HOME/secret.key`` (mode 0600), made on first use.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import secrets
import stat
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from celery import Task
from celery.signals import before_task_publish
from kombu.utils.json import dumps

from claude_signal.config import ConfigError, Settings, get_settings

log = logging.getLogger(__name__)

HEADER = "claude_signal_sig"
KEY_FILE = "secret.key"
MIN_KEY_CHARS = 32


def digest(key: bytes, task: str, task_id: str, args: Sequence[Any] | None, kwargs: dict[str, Any] | None) -> str:
    """The signature of one task message; JSON so publisher and worker see the same bytes."""
    payload = dumps([task, task_id, list(args or ()), kwargs or {}], sort_keys=True, separators=(",", ":"))
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()


def valid(key: bytes, signature: object, task: str, task_id: str, args: Sequence[Any] | None,
          kwargs: dict[str, Any] | None) -> bool:
    return isinstance(signature, str) and hmac.compare_digest(signature, digest(key, task, task_id, args, kwargs))


def load_key(settings: Settings) -> bytes:
    """The installation key: the setting, else ``HOME/secret.key`` (created 0600 when missing)."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().encode()
    path = settings.home / KEY_FILE
    try:
        return _read_key(path) if path.exists() else _create_key(path)
    except OSError as error:
        raise ConfigError(f"CLAUDE_SIGNAL_SECRET_KEY: not set, and {path} cannot be used "
                          f"({error.strerror or error})") from None


def _read_key(path: Path) -> bytes:
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"CLAUDE_SIGNAL_SECRET_KEY: {path} is readable by others; run chmod 600 {path}")
    key = path.read_text().strip()
    if len(key) < MIN_KEY_CHARS:
        raise ConfigError(f"CLAUDE_SIGNAL_SECRET_KEY: {path} holds no usable key; delete it to make a new one")
    return key.encode()


def _create_key(path: Path) -> bytes:
    """Write a fresh key atomically; when another process won the race, use its key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return _read_key(path)


@lru_cache(maxsize=1)
def process_key() -> bytes:
    """This process's key, from its settings, read once."""
    return load_key(get_settings())


def _sign_outgoing(sender: str | None = None, body: Any = None, headers: dict[str, Any] | None = None,
                   **_: Any) -> None:
    if headers is None or not isinstance(body, list | tuple) or len(body) < 2:
        return  # not a protocol-2 task message: nothing we publish
    headers[HEADER] = digest(process_key(), headers.get("task") or sender or "", headers.get("id") or "",
                             body[0], body[1])


def sign_everything_published() -> None:
    """Sign each task message this process publishes, whichever Celery app sends it."""
    before_task_publish.connect(_sign_outgoing, weak=False, dispatch_uid="claude-signal-sign")


class SignedTask(Task):
    """Runs the body only for a message signed with this installation's key; others are logged and dropped."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        request = self.request
        if not (request.called_directly or request.is_eager):
            signature = getattr(request, HEADER, None) or (request.headers or {}).get(HEADER)
            if not valid(process_key(), signature, self.name, request.id or "", request.args, request.kwargs):
                log.warning("rejected task %s[%s]: %s; it was not published by this installation (a forged "
                            "message, or a machine with another CLAUDE_SIGNAL_SECRET_KEY)", self.name,
                            request.id, "invalid signature" if signature else "no signature")
                return "rejected"
        return super().__call__(*args, **kwargs)
