"""The Celery app: ``celery -A claude_signal worker`` finds it here.

The app reads its settings from the top-level ``celeryconfig`` module and its tasks from the ``tasks``
package, by module name, so this package never imports ``tasks``. Worker lifecycle hooks (identity,
heartbeat, recovery) live in :mod:`claude_signal.worker_hooks`.
"""

from __future__ import annotations

from celery import Celery

TASK_MODULES = ["tasks.commands", "tasks.sessions", "tasks.outbox", "tasks.recovery", "tasks.turns"]

app = Celery("claude_signal", include=TASK_MODULES)
app.config_from_object("celeryconfig")

from claude_signal import inbox_acks, worker_hooks  # noqa: E402  (connect the worker signals to this app)
from claude_signal.kombu_fixes import survive_broker_restart  # noqa: E402

worker_hooks.install(app)
inbox_acks.install(app)
survive_broker_restart()
