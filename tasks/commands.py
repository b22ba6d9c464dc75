"""``command.handle``: every inbound Signal message enters the system here (:mod:`claude_signal.core.intake`).

A database that is out of reach retries the message with backoff (up to a minute between tries); everything
else the message can meet ends in a reply or a log line.
"""

from __future__ import annotations

from claude_signal.celery import app
from claude_signal.core import intake
from claude_signal.wire.inbound import COMMAND_TASK
from claude_signal.worker import context as runtime


@app.task(name=COMMAND_TASK, bind=True, max_retries=None, autoretry_for=(intake.RetryLater,), retry_backoff=1,
          retry_backoff_max=60, retry_jitter=False)
def handle(self, message: dict) -> str:  # type: ignore[no-untyped-def]
    return intake.take(runtime.context(), message, self.request.id)
