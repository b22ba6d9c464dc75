"""The kombu patches against a real Redis: a worker's event loop never waits on a pub/sub socket that has
nothing to read, and a pub/sub connection that went away is subscribed again and delivers broadcasts."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from kombu import Connection, Exchange, Queue

from claude_signal.wire.kombu_patches import never_block_on_a_gone_subscription

pytestmark = pytest.mark.timeout(60)

BROADCAST = Exchange("claude-signal-test-broadcast", type="fanout")




class Listener:
    """A fanout consumer as a worker's remote control is one: kombu's pub/sub (LISTEN) mode."""

    def __init__(self, url: str) -> None:
        never_block_on_a_gone_subscription()
        self.received: list[Any] = []
        self.connection = Connection(url)
        self.consumer = self.connection.Consumer(Queue("", BROADCAST, exclusive=True, auto_delete=True),
                                                 callbacks=[lambda body, message: self.received.append(body)],
                                                 accept=["json"])
        self.consumer.consume()
        self.drain()  # the first drain subscribes

    @property
    def channel(self) -> Any:
        return self.consumer.channel

    @property
    def cycle(self) -> Any:
        return self.connection.transport.cycle

    def drain(self) -> None:
        with contextlib.suppress(TimeoutError):
            self.connection.drain_events(timeout=0.5)

    def broadcast_arrives(self, body: dict[str, int]) -> bool:
        with self.connection.Producer() as producer:
            producer.publish(body, exchange=BROADCAST, serializer="json")
        for _ in range(6):
            self.drain()
            if body in self.received:
                return True
        return False

    def readiness_report_returns(self, fileno: int) -> bool:
        """Whether the poller's handling of "``fileno`` is readable" returns (a blocked call never does)."""
        errors: list[BaseException] = []

        def report() -> None:
            try:
                self.cycle.on_readable(fileno)
            except BaseException as error:  # noqa: BLE001 - shown by the assertion
                errors.append(error)

        thread = threading.Thread(target=report, daemon=True)
        thread.start()
        thread.join(5)
        assert not errors, errors
        return not thread.is_alive()

    def close(self) -> None:
        self.connection.release()


@pytest.fixture
def listener(redis_url: str) -> Iterator[Listener]:
    listening = Listener(redis_url)
    yield listening
    listening.close()


def test_a_report_with_nothing_to_read_does_not_block_the_loop(listener: Listener) -> None:
    fileno = listener.channel.subclient.connection._sock.fileno()
    assert listener.readiness_report_returns(fileno), "the event loop blocked reading an idle pub/sub socket"
    assert listener.broadcast_arrives({"n": 1})


def test_a_gone_subscription_is_forgotten_then_subscribed_again(listener: Listener) -> None:
    assert listener.broadcast_arrives({"n": 1})
    connection = listener.channel.subclient.connection
    fileno = connection._sock.fileno()
    connection.disconnect()  # as a Redis restart leaves it
    assert listener.readiness_report_returns(fileno), "the event loop blocked on a pub/sub connection that is gone"
    assert fileno not in listener.cycle._fd_to_chan
    listener.drain()  # the loop's next tick connects and subscribes again
    assert listener.broadcast_arrives({"n": 2}), "no broadcast after the pub/sub connection came back"
