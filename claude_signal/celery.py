"""The Celery app: ``celery -A claude_signal worker`` finds it here.

The app reads its settings from the top-level ``celeryconfig`` module and its tasks from the ``tasks``
package, by module name, so this package never imports ``tasks``. Worker lifecycle hooks (identity,
heartbeat, recovery) live in :mod:`claude_signal.worker.signals`; every task checks, and every message a
worker publishes carries, the installation's signature (:mod:`claude_signal.wire.signing`).
"""

from __future__ import annotations

from celery import Celery

TASK_MODULES = ["tasks.commands", "tasks.sessions", "tasks.outbox", "tasks.recovery", "tasks.turns",
                "tasks.schedules"]

app = Celery("claude_signal", include=TASK_MODULES, task_cls="claude_signal.wire.signing:SignedTask")
app.config_from_object("celeryconfig")

from claude_signal.wire import inbox_acks, signing  # noqa: E402
from claude_signal.wire.kombu_patches import (  # noqa: E402
    never_block_on_a_gone_subscription,
    reuse_redis_clients,
    survive_broker_restart,
)
from claude_signal.worker import context  # noqa: E402
from claude_signal.worker import signals as worker_hooks  # noqa: E402  (connect the worker signals)

context.bind(app)
worker_hooks.install(app)
inbox_acks.install(app)
signing.sign_everything_published()
survive_broker_restart()
never_block_on_a_gone_subscription()
reuse_redis_clients()
