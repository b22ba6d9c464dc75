"""The listener's publisher against a real, empty redis-server: what lands in the shared queue is a Celery
message a worker accepts, signed and in order, although nothing ever declared the queue."""

from __future__ import annotations

import base64
import json

import redis

from claude_signal.edge.publisher import InboundPublisher
from claude_signal.wire.inbound import COMMAND_TASK, task_id_for
from claude_signal.wire.queues import SHARED_QUEUE
from claude_signal.wire.signing import HEADER, valid

KEY = b"k" * 32




def test_messages_reach_an_undeclared_queue_in_order_signed(redis_url: str) -> None:
    publisher = InboundPublisher(redis_url, key=KEY, events=True)
    records = [{"key": f"alice:{i}", "sender": "alice", "conversation": "alice", "timestamp": i, "text": "/status"}
               for i in range(3)]
    try:
        publisher.publish_many(records)
    finally:
        publisher.close()
    broker = redis.Redis.from_url(redis_url)
    assert broker.keys("_kombu.binding.*") == []  # nothing was declared
    queued = [json.loads(raw) for raw in reversed(broker.lrange(SHARED_QUEUE, 0, -1))]  # LPUSHed: oldest last
    assert [m["headers"]["id"] for m in queued] == [task_id_for(r["key"]) for r in records]
    for message, record in zip(queued, records, strict=True):
        headers = message["headers"]
        assert headers["task"] == COMMAND_TASK
        assert message["properties"]["delivery_info"]["routing_key"] == SHARED_QUEUE
        body = json.loads(base64.b64decode(message["body"]))
        assert body[0] == [record]
        assert valid(KEY, headers[HEADER], COMMAND_TASK, headers["id"], [record], {})


def test_each_message_has_its_task_sent_event_for_flower(redis_url: str) -> None:
    """Flower shows a message from the moment it is queued: one ``task-sent`` event per message, naming its
    task id, task, queue and key (the text stays out of events)."""
    broker = redis.Redis.from_url(redis_url)
    events = broker.pubsub()
    events.psubscribe("*celeryev*")
    assert events.get_message(timeout=5)["type"] == "psubscribe"
    publisher = InboundPublisher(redis_url, key=KEY, events=True)
    record = {"key": "alice:7", "sender": "alice", "conversation": "alice", "timestamp": 7, "text": "secret plan"}
    try:
        publisher.publish_many([record])
    finally:
        publisher.close()
    message = events.get_message(timeout=5)
    assert message is not None and message["channel"].endswith(b"task.sent")
    envelope = json.loads(message["data"])
    sent = json.loads(base64.b64decode(envelope["body"]))
    assert (sent["type"], sent["uuid"], sent["name"], sent["queue"]) == (
        "task-sent", task_id_for("alice:7"), COMMAND_TASK, SHARED_QUEUE)
    assert "alice:7" in sent["args"] and "secret plan" not in json.dumps(sent)
    events.close()
