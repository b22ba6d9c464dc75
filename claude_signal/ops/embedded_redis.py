"""The Redis that ``claude-signal up`` runs for one machine: loopback TCP, a password, append-only files.

A unix socket looked tidier, but kombu cannot restore unacknowledged messages over ``redis+socket://``
after a reconnect (``AttributeError: 'NoneType' object has no attribute 'hostname'``), so a restart of the
embedded Redis killed the worker. Over TCP the worker reconnects and lives. The port is chosen once (a
free one unless ``EMBEDDED_BROKER_PORT`` names it) and kept, with a generated password, in a config file
and a URL file in ``HOME/redis`` that only the owner can read: a restarted Redis comes back at the same
URL the worker and listener already hold, and other local users cannot command it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

from claude_signal.ops.supervisor import Child

DEFAULT_PORT = 6379


def url_file(home: Path) -> Path:
    return home / "redis" / "url"


def recorded_url(home: Path, port: int = 0) -> str:
    """The embedded broker's URL as ``up`` recorded it; before any ``up``, where it would listen."""
    with contextlib.suppress(OSError):
        return url_file(home).read_text().strip()
    return f"redis://127.0.0.1:{port or DEFAULT_PORT}/0"


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _any_free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def prepare(home: Path, port: int = 0) -> str:
    """Choose (or keep) the port and password, write the config, record and return the URL."""
    data = home / "redis"
    data.mkdir(parents=True, exist_ok=True)
    previous = urlsplit(recorded_url(home)) if url_file(home).exists() else None
    password = (previous.password if previous else None) or secrets.token_urlsafe(24)
    if not port:
        kept = previous.port if previous else None
        port = kept if kept and _free(kept) else _any_free_port()
    config = (f"bind 127.0.0.1\nport {port}\nprotected-mode yes\nrequirepass {password}\n"
              f'dir "{data}"\nappendonly yes\nappendfsync everysec\nsave ""\ndaemonize no\n'
              f'logfile "{home / "redis.log"}"\n')
    _write_private(data / "redis.conf", config)
    url = f"redis://:{password}@127.0.0.1:{port}/0"
    _write_private(url_file(home), url + "\n")
    return url


def embedded_redis(home: Path, binary: str) -> Child:
    """The Redis child for the config :func:`prepare` wrote; restarts come back on the same port."""
    return Child("redis", [binary, str(home / "redis" / "redis.conf")])


def wait_for_redis(child: Child, url: str, timeout: float = 15.0) -> bool:
    """True once the Redis ``child`` answers at ``url``; False if it exits or stays silent."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=1)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and child.alive():
            try:
                if client.ping():
                    return True
            except redis.RedisError:
                time.sleep(0.1)
        return False
    finally:
        client.close()
