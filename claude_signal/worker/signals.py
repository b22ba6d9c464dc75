"""What a worker does around its tasks: learn who it is, beat its heart, and start recovery when ready.

- ``celeryd_after_setup`` (main process, before the pool forks): node name, host, plane (a worker that
  consumes the host's turn queue is on the turn plane, its concurrency its slots) and a fresh incarnation.
- A consumer bootstep registers the worker once, then a thread of its own renews the worker's row every
  ``heartbeat_interval`` and every few beats asks for a sweep. It keeps beating through broker reconnects.
  Turns renew their own leases (:class:`claude_signal.core.run_turn.TurnLease`): liveness belongs to the turn.
- ``worker_ready`` only publishes ``recovery.run`` and returns: a slow handler would stall heartbeats.
- ``worker_shutting_down`` tells this process's turns to interrupt themselves: a clean stop ends them with a
  message and leaves their sessions open.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, ClassVar

from celery import Celery, bootsteps
from celery.signals import (
    after_setup_logger,
    celeryd_after_setup,
    worker_process_init,
    worker_ready,
    worker_shutdown,
    worker_shutting_down,
)

from claude_signal.ops.quiet_logs import quiet_libraries
from claude_signal.wire.queues import RECOVERY_RUN, host_queue, turn_queue
from claude_signal.worker import context as runtime

log = logging.getLogger(__name__)

SWEEP_EVERY_BEATS = 6


class Heartbeat(bootsteps.StartStopStep):
    """Keeps this worker's row and leases fresh, from a thread of the main process.

    The beat runs beside Celery's event loop, not on its timer: a slow database must never stall message
    fetching, and a broker outage must not stop the beats, since the worker and its running turns live on
    (a stopped heartbeat would let other workers take a live session for an orphan).
    """

    requires: ClassVar[set[str]] = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, parent, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(parent, **kwargs)
        self.registered = False
        self.beats = 0
        self.thread: threading.Thread | None = None
        self.stopping = threading.Event()

    def start(self, consumer):  # type: ignore[no-untyped-def]
        if not self.registered:
            self.beat(consumer)  # inline once, so the worker is known before it reports ready
        if self.thread is None:  # once per worker: a consumer restart (broker reconnect) keeps it
            self.thread = threading.Thread(target=self._run, args=(consumer,), name="claude-signal-heartbeat",
                                           daemon=True)
            self.thread.start()

    def stop(self, consumer):  # type: ignore[no-untyped-def]
        return None  # the consumer restarts around broker reconnects; the heartbeat goes on

    def shutdown(self, consumer):  # type: ignore[no-untyped-def]
        self.stopping.set()

    def _run(self, consumer):  # type: ignore[no-untyped-def]
        interval = runtime.settings().heartbeat_interval
        while not self.stopping.wait(interval):
            self.beat(consumer)

    def beat(self, consumer):  # type: ignore[no-untyped-def]
        from claude_signal.core import liveness as workers

        me = runtime.identity(consumer.hostname)
        try:
            with runtime.transaction() as db:
                if not self.registered:
                    workers.register(db, me)
                else:
                    workers.heartbeat(db, me)
            self.registered = True
        except Exception as error:  # noqa: BLE001 - a beat must never take the worker down
            log.warning("heartbeat failed (will retry): %s", error)
            return
        self.beats += 1
        if me.plane == "control" and self.beats % SWEEP_EVERY_BEATS == 0:  # one sweeper per host, not two
            request_recovery(consumer.app, me.host, "sweep")


def request_recovery(app: Celery, host: str, reason: str) -> None:
    try:
        app.send_task(RECOVERY_RUN, args=[reason], queue=host_queue(host), routing_key=host_queue(host))
    except Exception as error:  # noqa: BLE001 - logged; must not propagate
        log.warning("could not request recovery: %s", error)


def _on_after_setup(sender, instance, conf, **_):  # type: ignore[no-untyped-def]
    from claude_signal.core.liveness import Identity
    from claude_signal.rules.ids import new_incarnation

    settings = runtime.settings()
    queues = sorted(instance.app.amqp.queues.consume_from or instance.app.amqp.queues)
    turns = turn_queue(settings.host) in queues
    me = Identity(node=str(sender), host=settings.host, incarnation=new_incarnation(),
                  plane="turns" if turns else "control", slots=int(instance.concurrency) if turns else 0)
    runtime.set_identity(me)
    log.info("worker %s serving host %s on the %s plane%s (queues: %s)", sender, settings.host, me.plane,
             f" with {me.slots} turn slots" if turns else "", ", ".join(queues))


def _on_process_init(**_):  # type: ignore[no-untyped-def]
    from claude_signal.db.engine import get_engine

    get_engine(runtime.settings().sqlalchemy_url)  # a fresh pool for this child; the parent's is left alone


def _on_ready(sender, **_):  # type: ignore[no-untyped-def]
    request_recovery(sender.app, runtime.settings().host, "worker_ready")


def _on_shutting_down(**_):  # type: ignore[no-untyped-def]
    from claude_signal.core.turn_hooks import STOPPING

    STOPPING.set()


def _on_shutdown(**_):  # type: ignore[no-untyped-def]
    from claude_signal.core import liveness as workers

    try:
        with runtime.transaction() as db:
            workers.mark_stopped(db, runtime.identity())
    except Exception as error:  # noqa: BLE001 - logged; must not propagate
        log.warning("could not record shutdown: %s", error)


def _on_logging_set_up(loglevel: int | None = None, **_: Any) -> None:
    """However the worker was started, the libraries' INFO noise stays out of its log."""
    quiet_libraries(loglevel or logging.INFO)


def install(app: Celery) -> None:
    app.steps["consumer"].add(Heartbeat)
    celeryd_after_setup.connect(_on_after_setup, weak=False)
    after_setup_logger.connect(_on_logging_set_up, weak=False)
    worker_process_init.connect(_on_process_init, weak=False)
    worker_ready.connect(_on_ready, weak=False)
    worker_shutting_down.connect(_on_shutting_down, weak=False)
    worker_shutdown.connect(_on_shutdown, weak=False)
