"""The baseline the command path is measured against: bare Celery doing the least a reply needs.

A worker started with ``celery -A bench.bare_celery worker -P prefork -c 2 -Q bare`` runs one task that
POSTs a text to the fake signal-cli-rest-api, with the settings claude-signal uses for its own control
plane (Redis broker, acks_late, prefetch 1, json) and nothing else: no database, no signing, no outbox.
"""

from __future__ import annotations

import os

import httpx
from celery import Celery

app = Celery("bare", broker=os.environ.get("BARE_BROKER_URL", "redis://127.0.0.1:6379/0"))
app.conf.update(task_acks_late=True, worker_prefetch_multiplier=1, task_serializer="json", accept_content=["json"],
                task_ignore_result=True, task_default_queue="bare", worker_hijack_root_logger=False,
                broker_connection_retry_on_startup=True,
                worker_send_task_events=os.environ.get("BARE_EVENTS", "1") == "1",
                task_send_sent_event=os.environ.get("BARE_EVENTS", "1") == "1")

_client: httpx.Client | None = None


def _http() -> httpx.Client:
    global _client
    if _client is None:  # one per pool process, created after the fork
        _client = httpx.Client(base_url=os.environ["BARE_SIGNAL_API"], timeout=10)
    return _client


@app.task(name="bare.reply")
def reply(recipient: str, text: str) -> None:
    response = _http().post("/v2/send", json={"number": os.environ["BARE_ACCOUNT"], "recipients": [recipient],
                                              "message": text})
    response.raise_for_status()
