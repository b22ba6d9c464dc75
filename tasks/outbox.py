"""``outbox.send`` and ``signal.typing``: outbound Signal traffic, consumed only where signal-cli-rest-api
is reachable. The policy (lanes, order, backoff, parts) is :mod:`claude_signal.core.delivery`."""

from __future__ import annotations

from claude_signal.celery import app
from claude_signal.core import delivery
from claude_signal.wire.queues import OUTBOX_SEND, SIGNAL_TYPING
from claude_signal.worker import context as runtime


@app.task(name=OUTBOX_SEND)
def send(outbox_id: int) -> str:  # type: ignore[no-untyped-def]
    return delivery.send_due(runtime.context(), outbox_id)


@app.task(name=SIGNAL_TYPING, expires=30)
def typing(recipient: str, on: bool, turn_id: int | None = None) -> str:  # type: ignore[no-untyped-def]
    """Best effort: a late indicator is worthless, so it expires instead of waiting in a queue."""
    return delivery.show_typing(runtime.context(), recipient, on, turn_id)
