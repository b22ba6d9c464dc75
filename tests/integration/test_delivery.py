"""At-least-once delivery with effects applied once: real Redis, real `celery worker` processes."""

from __future__ import annotations

import json
import os
import re
import signal

import pytest
from sqlalchemy import select

from claude_signal.db.engine import unit_of_work
from claude_signal.db.models import Outbox, Session, Transition
from claude_signal.rules.states import OutboxStatus
from claude_signal.wire.inbound import task_id_for
from tests.harness import wait_until
from tests.integration.conftest import System
from tests.integration.helpers import count, database_write_lock, one_session, transitions, unacked_task_ids


def outbox_rows(system: System, inbox_key: str) -> list[str]:
    with unit_of_work(system.engine) as db:
        return list(db.execute(select(Outbox.status).where(Outbox.inbox_key == inbox_key)).scalars())


def test_command_round_trip(system: System) -> None:
    system.worker()
    system.publisher.send(f"/session start {system.projects / 'shop'}")
    (text,) = system.wait_reply(lambda t: t.startswith("Started session"))
    session = one_session(system.engine)
    assert session.status == "ACTIVE"
    assert text.startswith(f"Started session {session.id} on hosta in {system.projects.resolve() / 'shop'}")


@pytest.mark.both_databases
def test_same_message_published_twice_has_one_effect(system: System) -> None:
    system.worker()
    msg = system.publisher.message(f"/session start {system.projects / 'shop'}")
    system.publisher.publish(msg)
    system.publisher.publish(msg)
    system.wait_reply(lambda t: t.startswith("Started session"))
    system.publisher.send("/session list")  # a later message: by the time it is answered, both copies are done
    system.wait_reply(lambda t: t.startswith("Sessions:"))
    wait_until(lambda: count(system.engine, Outbox) == 2, message="two replies in the outbox")
    assert count(system.engine, Session) == 1
    assert count(system.engine, Transition) == 1
    assert len([t for t in system.replies() if t.startswith("Started session")]) == 1


@pytest.mark.both_databases
def test_worker_killed_while_holding_a_command(system: System) -> None:
    """SIGKILL of the main process mid-command: a restarted worker runs it; one transition, one reply."""
    first = system.worker(concurrency=4)  # spare slots: periodic sweeps also wait on the lock
    unacked = system.redis.client()
    with database_write_lock(system.engine):
        msg = system.publisher.send(f"/session start {system.projects / 'shop'}")
        wait_until(lambda: task_id_for(msg.key) in unacked_task_ids(unacked), message="the worker to take it")
        first.kill9()
    assert task_id_for(msg.key) in unacked_task_ids(unacked)  # nobody acknowledged it
    system.worker("w2")
    system.wait_reply(lambda t: t.startswith("Started session"), timeout=40)
    session = one_session(system.engine)
    assert transitions(system.engine, session.id) == [("CREATED", "ACTIVE")]
    wait_until(lambda: task_id_for(msg.key) not in unacked_task_ids(unacked), message="the redelivery acked")
    assert len([t for t in system.replies() if t.startswith("Started session")]) == 1


def test_replies_wait_out_a_signal_outage(system: System) -> None:
    system.worker()
    system.signal.set_down(True)
    system.publisher.send("/session help")
    system.publisher.send("/hosts")
    wait_until(lambda: count(system.engine, Outbox) == 2, message="replies queued")
    wait_until(lambda: "not sent (attempt 2" in system.workers[0].log(), message="a retried send")
    assert system.replies() == []
    system.signal.set_down(False)
    texts = system.wait_reply(lambda t: True, count=2, timeout=30)
    assert any(t.startswith("claude-signal commands:") for t in texts)
    assert any(t.startswith("Hosts:") for t in texts)


def test_rate_limit_is_retried_and_explained(system: System) -> None:
    system.worker()
    system.signal.fail_next_sends(1, status=429)
    system.publisher.send("/session help")
    system.wait_reply(lambda t: t.startswith("claude-signal commands:"))
    log = system.workers[0].log()
    assert "rate-limit-challenge" in log and "signalcaptcha://" in log


def test_malformed_task_is_logged_not_crashed(system: System) -> None:
    worker = system.worker()
    system.publisher.send_task("command.handle", [{"text": "no key"}], queue="shared", routing_key="shared")
    system.publisher.send("/session help")
    system.wait_reply(lambda t: t.startswith("claude-signal commands:"))
    assert "dropped malformed inbound message" in worker.log()


@pytest.mark.transport
def test_copies_of_a_handled_message_wake_the_one_behind_it_once(system: System) -> None:
    """Every copy of a handled message woke the message waiting behind it again, and each woken copy woke
    the next one's: under kills and restarts, copies multiplied down every conversation with a queue. Here
    the one behind is a start that stays pending on a host that takes nothing, so each wake hands the host
    one more start task, and they can be counted."""
    system.worker("w1", "hosta", concurrency=1)  # one at a time: what is answered last ran last
    hostb = system.worker("w2", "hostb", extra_env={"CLAUDE_SIGNAL_SIGNAL_SENDER": "false"})
    hostb.control.kill9()  # hostb stays online (its turn plane beats), but nobody takes its starts
    first = system.publisher.message("/hosts")
    behind = system.publisher.message(f"/session start hostb:{system.projects / 'blog'}", after=first.key)
    system.publisher.publish(behind)  # arrives first: it waits for the one before it
    control = system.workers[0].control
    wait_until(lambda: "succeeded" in control.log() and "'waiting'" in control.log(), message="the second to wait")
    system.publisher.publish(first)
    system.wait_reply(lambda t: t.startswith("Hosts:"))
    broker = system.redis.client()

    def starts() -> int:  # session.start tasks waiting on hostb's queue (its recovery requests wait there too)
        return sum(json.loads(m)["headers"]["task"] == "session.start" for m in broker.lrange("host.hostb", 0, -1))

    wait_until(lambda: starts() == 1, message="the start handed to hostb")
    handled = re.compile(rf"command\.handle\[in:{re.escape(first.key)}\] succeeded")
    for _ in range(3):
        system.publisher.publish(first)  # copies, as a listener restart or a re-publish sends them
    wait_until(lambda: len(handled.findall(control.log())) == 4, message="the copies handled")
    system.publisher.send("/session help")  # queued behind whatever the copies woke
    system.wait_reply(lambda t: t.startswith("claude-signal commands:"))
    assert starts() == 1
    assert sum(t.startswith("Hosts:") for t in system.replies()) == 1


def test_a_reply_posted_by_its_handler_arrives_once_whenever_the_worker_dies(system: System) -> None:
    """The handler claims a short reply with its commit and posts it itself. SIGKILLed after the commit,
    before the POST got through: the claim lapses and the sweep sends it. SIGKILLed after the POST and its
    mark, before the message was acknowledged (the main process, which acknowledges, is stopped at the
    POST): the redelivered command finds it sent. Once each way."""
    workers = system.worker()
    unacked = system.redis.client()
    system.signal.intercept_next_send(lambda body: (workers.discard(), 503)[1])  # the POST never lands
    msg = system.publisher.send("/hosts")
    wait_until(lambda: workers.control.proc and workers.control.proc.poll() is not None, message="the kill")
    assert outbox_rows(system, msg.key) == [OutboxStatus.SENDING]  # claimed by its handler, not outbox.send
    workers = system.worker("w2")
    system.wait_reply(lambda t: t.startswith("Hosts:"), timeout=40)
    wait_until(lambda: outbox_rows(system, msg.key) == [OutboxStatus.SENT], message="its sender done with it")

    # The POST lands, and the worker's main process (which acknowledges messages to the broker) stops: the
    # pool process posts and marks the reply, and the command's message stays unacknowledged.
    main_pid = workers.control.proc.pid  # type: ignore[union-attr]
    system.signal.intercept_next_send(lambda body: os.kill(main_pid, signal.SIGSTOP))
    msg = system.publisher.send("/session list")
    try:
        wait_until(lambda: outbox_rows(system, msg.key) == [OutboxStatus.SENT], message="the reply marked sent")
    finally:
        workers.discard()
    assert task_id_for(msg.key) in unacked_task_ids(unacked)
    system.worker("w3")
    wait_until(lambda: task_id_for(msg.key) not in unacked_task_ids(unacked), timeout=40,
               message="the redelivered command handled")
    assert [t.split()[0] for t in system.replies()] == ["Hosts:", "No"]  # "No sessions (…)", once
