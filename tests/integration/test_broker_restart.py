"""A worker's two planes after Redis restarts under them: each goes on taking its work (a prompt is
answered in its session) and answering Flower's remote control (a ping reaches both). The turn plane once
stopped consuming for good after a restart (``never_block_on_a_gone_subscription``)."""

from __future__ import annotations

import pytest
import redis
from kombu.exceptions import OperationalError

from claude_signal.edge.publisher import BrokerUnavailable
from tests.harness import wait_until
from tests.integration.conftest import System

# About processes and the wire, not the database: one backend (SQLite) suffices.
pytestmark = [pytest.mark.transport, pytest.mark.integration]


def restart_redis(system: System) -> None:
    redis = system.redis
    assert redis.proc is not None
    redis.proc.kill()
    redis.proc.wait(10)
    redis.proc = None
    redis.start()


def send(system: System, text: str) -> None:
    def sent() -> bool:
        try:
            system.publisher.send(text)
        except BrokerUnavailable:  # its connection died with the old Redis: the next try opens one
            return False
        return True

    wait_until(sent, timeout=20, message=f"{text!r} to be published")


def pinged(system: System) -> set[str]:
    """The nodes that answered a ping (none while the test's own connection is still the dead one)."""
    try:
        replies = system.publisher.app.control.ping(timeout=2.0)
    except (redis.RedisError, OperationalError, OSError):
        return set()
    return {node for reply in replies for node in reply}


def test_both_planes_take_work_and_answer_remote_control_after_redis_restarts(system: System) -> None:
    workers = system.worker()
    nodes = {plane.node for plane in workers.planes}
    send(system, f"/session start {system.projects / 'shop'}")
    system.wait_reply(lambda t: t.startswith("Started session"))
    wait_until(lambda: pinged(system) >= nodes, timeout=20, message="both planes to answer a ping")
    for round_ in range(2):
        restart_redis(system)
        send(system, f"round {round_}")
        system.wait_reply(lambda t, r=round_: t.startswith(f"Echo: round {r}"), timeout=40)
        wait_until(lambda: pinged(system) >= nodes, timeout=30, message=f"both planes to answer after restart {round_}")
