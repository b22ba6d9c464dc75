"""The Redis that ``claude-signal up`` embeds, restarted under a real worker that holds a message."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import redis as redis_py

from claude_signal.ops.embedded_redis import embedded_redis, prepare, wait_for_redis
from claude_signal.ops.supervisor import redis_server_binary
from tests.harness import Publisher, wait_until
from tests.integration.conftest import System
from tests.integration.helpers import database_write_lock, unacked_task_ids

# About processes and the wire, not the database: one backend (SQLite) suffices; the database tests run on both.
pytestmark = [pytest.mark.transport, pytest.mark.integration]


def test_worker_survives_a_restart_of_the_embedded_redis(system: System) -> None:
    binary = redis_server_binary()
    if binary is None:
        pytest.skip("no redis-server")
    home = Path(system.env["CLAUDE_SIGNAL_HOME"])
    url = prepare(home)
    broker = embedded_redis(home, binary)
    broker.start()
    try:
        assert wait_for_redis(broker, url)
        assert url.startswith("redis://:") and "@127.0.0.1:" in url  # loopback TCP with a password
        assert stat.S_IMODE(os.stat(home / "redis" / "redis.conf").st_mode) == 0o600
        with pytest.raises(redis_py.AuthenticationError):
            redis_py.Redis(port=redis_py.Redis.from_url(url).connection_pool.connection_kwargs["port"]).ping()
        system.env["CLAUDE_SIGNAL_BROKER_URL"] = url
        worker = system.worker()
        publisher = Publisher(url, system.publisher.key)
        publisher.send(f"/session start {system.projects / 'shop'}")
        system.wait_reply(lambda t: t.startswith("Started session"))
        client = redis_py.Redis.from_url(url)
        with database_write_lock(system.engine):  # the worker takes a command and holds it, unacknowledged
            publisher.send("/status")
            wait_until(lambda: len(unacked_task_ids(client)) > 0, message="a message held by the worker")
            publisher.close()
            broker.stop()
            broker.start()  # what the supervisor does after a crash: same config, same port
            assert wait_for_redis(broker, url)
        publisher = Publisher(url, system.publisher.key)
        publisher.send("/hosts")
        system.wait_reply(lambda t: t.startswith("Hosts:"), timeout=60)
        system.wait_reply(lambda t: t.startswith("Session "), timeout=60)  # the held command is answered too
        assert all(p.proc is not None and p.proc.poll() is None for p in worker.planes), worker.log()[-3000:]
        assert "Unrecoverable error" not in worker.log()
        publisher.close()
    finally:
        broker.stop()


def test_the_embedded_broker_keeps_its_port_and_password(tmp_path: Path) -> None:
    first = prepare(tmp_path)
    assert prepare(tmp_path) == first  # `up` again: the URL the workers and the listener hold
    assert stat.S_IMODE(os.stat(tmp_path / "redis" / "url").st_mode) == 0o600
