"""Publishing inbound messages to the workers, by task name: the listener's only link to Celery.

A small Celery app of its own (no task modules, no database): one ``command.handle`` per message on the
shared queue, with a task id derived from the idempotency key so Flower shows one entry per message and a
re-publish is recognisably the same message. It also reads the workers' acknowledgements
(:mod:`claude_signal.wire.inbox_acks`) from the same Redis, so the listener learns what the inbox holds without
touching the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
from celery import Celery
from kombu.exceptions import OperationalError

from claude_signal.wire import inbox_acks
from claude_signal.wire.broker_redis import client
from claude_signal.wire.inbound import COMMAND_TASK, InboundMessage, task_id_for
from claude_signal.wire.kombu_patches import reuse_redis_clients
from claude_signal.wire.queues import SHARED_QUEUE
from claude_signal.wire.signing import HEADER, digest


class BrokerUnavailable(Exception):
    """The broker did not take the message; it stays in the spool."""


class InboundPublisher:
    def __init__(self, broker_url: str, *, key: bytes | None = None, connect_timeout: float = 3.0,
                 events: bool = True) -> None:
        self.key = key  # the installation key that signs each message; workers drop unsigned ones
        self.events = events
        self.broker_url = broker_url
        self.connect_timeout = connect_timeout
        reuse_redis_clients()
        self.app = Celery("claude-signal-listener", broker=broker_url, set_as_current=False)
        self.app.conf.update(
            task_send_sent_event=events,  # Flower shows a message from the moment it is queued
            broker_connection_timeout=connect_timeout,
            broker_connection_retry_on_startup=False,
            # One connection attempt per publish: kombu's own retries (2 s, then 4 s) would hold the forwarder's
            # loop for 6 s per try during an outage, and that loop retries on a shorter, bounded back-off.
            broker_transport_options={"socket_connect_timeout": connect_timeout, "socket_timeout": 10,
                                      "max_retries": 0},
        )

        self._event_dispatcher = self.app.events.Dispatcher(enabled=False)  # publishes through the batch's producer

    def publish(self, message: InboundMessage | dict[str, Any]) -> None:
        self.publish_many([message.model_dump(mode="json") if isinstance(message, InboundMessage) else message])

    def publish_many(self, records: Sequence[dict[str, Any]]) -> None:
        """Publish ``records`` in order, in one round trip to Redis: each message and its ``task-sent``
        event go out in one pipeline (kombu's publish batch) instead of two round trips per message. All
        or none: a failure raises before any record counts as published (a partial flush only means copies,
        which the inbox makes harmless)."""
        if not records:
            return
        try:
            with self.app.producer_or_acquire() as producer, producer.batch():
                for record in records:
                    self._send(producer, record)
        except (OperationalError, ConnectionError, OSError, redis.RedisError) as error:
            raise BrokerUnavailable(str(error)) from error

    def _send(self, producer: Any, record: dict[str, Any]) -> None:
        """One ``command.handle`` message and, with events on, its ``task-sent`` event: Celery's own message
        (built by its protocol-2 builder) published by kombu straight onto the shared queue's list. Celery's
        ``send_task`` would also route, merge options, run publish signals nobody here listens to and build a
        result handle nobody reads: about a sixth of what a publish cost the listener."""
        task_id = task_id_for(record["key"])
        args = [record]
        # Flower shows the message by its key and kind: the text stays out of task events.
        headers, properties, body, sent_event = self.app.amqp.as_task_v2(
            task_id, COMMAND_TASK, args=args, kwargs={}, create_sent_event=self.events,
            argsrepr=f"[{record['key']!r}, {record.get('kind', 'message')!r}]", kwargsrepr="{}")
        if self.key:
            headers[HEADER] = digest(self.key, COMMAND_TASK, task_id, args, {})
        # A direct queue is published to through Redis's anonymous exchange, straight onto its list: nothing
        # to declare (a declaration per message would copy the queue and bind it to the channel each time).
        producer.publish(body, exchange="", routing_key=SHARED_QUEUE, serializer="json", headers=headers,
                         delivery_mode=2, retry=False, declare=[], **properties)
        if sent_event is not None:
            sent_event.update(queue=SHARED_QUEUE, exchange="", routing_key=SHARED_QUEUE)
            self._event_dispatcher.publish("task-sent", sent_event, producer, retry=False)

    def acknowledged_and_broker_run(self, keys: Sequence[str]) -> tuple[set[str], str | None]:
        """Which of ``keys`` the workers have recorded in the inbox, and the broker's run id."""
        try:
            return inbox_acks.acknowledged_and_broker_run(client(self.broker_url, timeout=self.connect_timeout), keys)
        except (redis.RedisError, OSError) as error:
            raise BrokerUnavailable(str(error)) from error

    def close(self) -> None:
        self.app.close()
