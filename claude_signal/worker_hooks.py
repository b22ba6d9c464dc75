"""What a worker does around its tasks: learn who it is, beat its heart, and start recovery when ready.

- ``celeryd_after_setup`` (main process, before the pool forks): node name, host and a fresh incarnation.
- A consumer bootstep beats every ``heartbeat_interval`` on the worker's own timer: it registers the
  worker once, then renews its row and its sessions' leases, and every few beats asks for a sweep. As a
  bootstep it restarts with the consumer after a broker reconnect (timer entries do not survive that).
- ``worker_ready`` only publishes ``recovery.run`` and returns: a slow handler would stall heartbeats.
"""

from __future__ import annotations

import logging
import threading
from typing import ClassVar

from celery import Celery, bootsteps
from celery.signals import celeryd_after_setup, worker_process_init, worker_ready, worker_shutdown

from claude_signal import runtime
from claude_signal.wakeups import RECOVERY_RUN, host_queue

log = logging.getLogger(__name__)

SWEEP_EVERY_BEATS = 6


class Heartbeat(bootsteps.StartStopStep):
    """Keeps this worker's row and leases fresh from the main process.

    The timer only hands the beat to one background thread: a slow or locked database must never stall
    the worker's event loop (it would stop fetching messages and sending Celery's own heartbeats).
    """

    requires: ClassVar[set[str]] = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, parent, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(parent, **kwargs)
        self.tref = None
        self.registered = False
        self.beats = 0
        self.busy = threading.Lock()

    def start(self, consumer):  # type: ignore[no-untyped-def]
        if not self.registered:
            self.beat(consumer)  # inline once, so the worker is known before it reports ready
        self.tref = consumer.timer.call_repeatedly(runtime.settings().heartbeat_interval, self.tick,
                                                   (consumer,), priority=10)

    def stop(self, consumer):  # type: ignore[no-untyped-def]
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None

    def tick(self, consumer):  # type: ignore[no-untyped-def]
        if not self.busy.acquire(blocking=False):
            log.warning("previous heartbeat still running; the database is slow")
            return
        threading.Thread(target=self._beat_then_release, args=(consumer,), name="claude-signal-heartbeat",
                         daemon=True).start()

    def _beat_then_release(self, consumer):  # type: ignore[no-untyped-def]
        try:
            self.beat(consumer)
        finally:
            self.busy.release()

    def beat(self, consumer):  # type: ignore[no-untyped-def]
        from claude_signal import workers

        me = runtime.identity(consumer.hostname)
        settings = runtime.settings()
        try:
            with runtime.transaction() as db:
                if not self.registered:
                    workers.register(db, me)
                else:
                    workers.heartbeat(db, me, settings.lease_ttl)
            self.registered = True
        except Exception as error:  # noqa: BLE001 - a beat must never take the worker down
            log.warning("heartbeat failed (will retry): %s", error)
            return
        self.beats += 1
        if self.beats % SWEEP_EVERY_BEATS == 0:
            request_recovery(consumer.app, me.host, "sweep")


def request_recovery(app: Celery, host: str, reason: str) -> None:
    try:
        app.send_task(RECOVERY_RUN, args=[reason], queue=host_queue(host), routing_key=host_queue(host))
    except Exception as error:  # noqa: BLE001 - logged; must not propagate
        log.warning("could not request recovery: %s", error)


def _on_after_setup(sender, instance, conf, **_):  # type: ignore[no-untyped-def]
    from claude_signal.ids import new_incarnation
    from claude_signal.workers import Identity

    settings = runtime.settings()
    runtime.set_identity(Identity(node=str(sender), host=settings.host, incarnation=new_incarnation()))
    log.info("worker %s serving host %s (queues: %s)", sender, settings.host,
             ", ".join(q.name for q in conf.task_queues or ()))


def _on_process_init(**_):  # type: ignore[no-untyped-def]
    from claude_signal.db.engine import get_engine

    get_engine(runtime.settings().sqlalchemy_url)  # a fresh pool for this child; the parent's is left alone


def _on_ready(sender, **_):  # type: ignore[no-untyped-def]
    request_recovery(sender.app, runtime.settings().host, "worker_ready")


def _on_shutdown(**_):  # type: ignore[no-untyped-def]
    from claude_signal import workers

    try:
        with runtime.transaction() as db:
            workers.mark_stopped(db, runtime.identity())
    except Exception as error:  # noqa: BLE001 - logged; must not propagate
        log.warning("could not record shutdown: %s", error)


def install(app: Celery) -> None:
    app.steps["consumer"].add(Heartbeat)
    celeryd_after_setup.connect(_on_after_setup, weak=False)
    worker_process_init.connect(_on_process_init, weak=False)
    worker_ready.connect(_on_ready, weak=False)
    worker_shutdown.connect(_on_shutdown, weak=False)
