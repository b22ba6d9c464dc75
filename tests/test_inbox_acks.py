"""Workers' acknowledgements to the listener, against a real redis-server: gathered into batches, every one
of them delivered, and a Redis that is away costs a log line, never the task."""

from __future__ import annotations

import logging

import pytest

from claude_signal.wire import inbox_acks
from tests.harness import RedisServer, wait_until


def test_acknowledgements_arrive_in_batches(redis_server: RedisServer) -> None:
    gatherer = inbox_acks.Gatherer(redis_server.url)
    pipelines: list[int] = []
    send = gatherer._send
    gatherer._send = lambda keys: (pipelines.append(len(keys)), send(keys))  # type: ignore[method-assign]
    keys = [f"alice:{n}" for n in range(40)]
    for key in keys:
        gatherer.add(key)
    broker = redis_server.client()
    wait_until(lambda: inbox_acks.acknowledged_and_broker_run(broker, keys)[0] == set(keys), timeout=10)
    assert sum(pipelines) == 40 and len(pipelines) < 40  # handed over at once: fewer round trips than keys
    gatherer.add("alice:late")  # the thread waits for more after a batch
    wait_until(lambda: inbox_acks.acknowledged_and_broker_run(broker, ["alice:late"])[0] == {"alice:late"},
               timeout=10)
    assert broker.ttl(inbox_acks.PREFIX + "alice:late") > 0  # they expire


def test_a_redis_that_is_away_costs_a_log_line(redis_server: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    gatherer = inbox_acks.Gatherer(redis_server.url)
    redis_server.stop()
    with caplog.at_level(logging.WARNING, logger=inbox_acks.__name__):
        gatherer.add("alice:1")
        wait_until(lambda: "could not acknowledge 1 message(s)" in caplog.text, timeout=30)
