"""Workers' acknowledgements to the listener, against a real redis-server: gathered into batches, every one
of them delivered, and a Redis that is away costs a log line, never the task."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from claude_signal.wire import inbox_acks
from tests.harness import RedisServer, wait_until


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", appendonly=False).start()
    try:
        yield server
    finally:
        server.stop()


def test_acknowledgements_arrive_in_batches(redis: RedisServer) -> None:
    gatherer = inbox_acks.Gatherer(redis.url)
    pipelines: list[int] = []
    send = gatherer._send
    gatherer._send = lambda keys: (pipelines.append(len(keys)), send(keys))  # type: ignore[method-assign]
    keys = [f"alice:{n}" for n in range(40)]
    for key in keys:
        gatherer.add(key)
    broker = redis.client()
    wait_until(lambda: inbox_acks.acknowledged_and_broker_run(broker, keys)[0] == set(keys), timeout=10)
    assert sum(pipelines) == 40 and len(pipelines) < 40  # handed over at once: fewer round trips than keys
    gatherer.add("alice:late")  # the thread waits for more after a batch
    wait_until(lambda: inbox_acks.acknowledged_and_broker_run(broker, ["alice:late"])[0] == {"alice:late"},
               timeout=10)
    assert broker.ttl(inbox_acks.PREFIX + "alice:late") > 0  # they expire


def test_a_redis_that_is_away_costs_a_log_line(redis: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    gatherer = inbox_acks.Gatherer(redis.url)
    redis.stop()
    with caplog.at_level(logging.WARNING, logger=inbox_acks.__name__):
        gatherer.add("alice:1")
        wait_until(lambda: "could not acknowledge 1 message(s)" in caplog.text, timeout=30)
