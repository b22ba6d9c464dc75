"""Celery settings for claude-signal, and nothing else. Values that vary per machine come from
``CLAUDE_SIGNAL_*`` (see :mod:`claude_signal.config`); the reasons for each are in
``../shared/reference/celery-reliability.md``.
"""

from kombu import Exchange, Queue

from claude_signal.config import get_settings
from claude_signal.wire.queues import SESSION_PROMPT, SHARED_QUEUE, SIGNAL_QUEUE, host_queue, turn_queue

_settings = get_settings()
_visibility = _settings.visibility_timeout
_transport = {
    # A message taken by a worker that dies is handed out again after this long. Only short tasks hold their
    # message (a turn's is acknowledged when it starts: the database knows which turns ran), so minutes.
    "visibility_timeout": _visibility,
    # kombu scans for such messages every interval × throttle seconds (default 10 × 10); make the scan cheap
    # and frequent so recovery is bounded by the timeout, not by the scan.
    "unacked_restore_interval": _settings.unacked_restore_interval,
    "unacked_restore_throttle": 1,
    # A free pool process takes from the first non-empty queue in the order the worker lists them
    # (``claude-signal worker``: signal, host, shared), so replies never queue behind a burst of commands.
    "queue_order_strategy": "priority",
    "socket_keepalive": True,
    "socket_timeout": 30,
    "socket_connect_timeout": 5,
    "retry_on_timeout": True,
}

broker_url = _settings.resolved_broker_url
broker_transport_options = _transport
broker_connection_retry_on_startup = True
broker_connection_max_retries = None
visibility_timeout = _visibility

# No result backend: the database holds every outcome, Flower shows task states from events.
task_ignore_result = True
result_backend = None

# At least once: a task's message is acknowledged only after it returns, and requeued if its pool process
# dies. Every task is idempotent against the database, so a second delivery does nothing twice.
task_acks_late = True
task_reject_on_worker_lost = True
task_acks_on_failure = True
worker_prefetch_multiplier = 1
task_serializer = "json"
accept_content = ["json"]
timezone = "UTC"
enable_utc = True

# Flower: task events from workers, and "sent" events from publishers (the listener) so a message waiting
# in a queue is visible too. CLAUDE_SIGNAL_TASK_EVENTS=false turns both off (the README says what they cost).
worker_send_task_events = _settings.task_events
task_send_sent_event = _settings.task_events
task_track_started = True

# Short tasks end in bounded time: a stuck one is killed and its message handed out again.
task_soft_time_limit = 120
task_time_limit = 150
# A turn is long and its truth is in the database: its message is acknowledged when it starts, has no time
# limit here (the turn has its own watchdogs), and a lost one is re-sent by the sweep.
task_annotations = {SESSION_PROMPT: {"acks_late": False, "time_limit": None, "soft_time_limit": None}}

# Routing: commands on the shared queue; replies and typing on the signal queue, consumed only next to
# signal-cli-rest-api; short work that needs a machine on its host queue;
# turns on the host's turn queue, consumed by its turn worker (``claude-signal worker`` starts both planes).
_default_exchange = Exchange("claude-signal", type="direct")
task_default_queue = SHARED_QUEUE
task_default_exchange = _default_exchange.name
task_default_routing_key = SHARED_QUEUE
task_create_missing_queues = True
task_queues = (
    Queue(SHARED_QUEUE, _default_exchange, routing_key=SHARED_QUEUE),
    Queue(SIGNAL_QUEUE, _default_exchange, routing_key=SIGNAL_QUEUE),
    Queue(host_queue(_settings.host), _default_exchange, routing_key=host_queue(_settings.host)),
    Queue(turn_queue(_settings.host), _default_exchange, routing_key=turn_queue(_settings.host)),
)
task_routes = {
    "command.*": {"queue": SHARED_QUEUE},
    "outbox.*": {"queue": SIGNAL_QUEUE},
    "signal.*": {"queue": SIGNAL_QUEUE},
    "schedules.*": {"queue": SHARED_QUEUE},
}

# Beat (``claude-signal beat``) only ticks: the schedules themselves live in the database, so several beats
# are harmless and a tick that waited out an outage in the queue expires rather than piling up.
beat_schedule = {
    "schedules.tick": {"task": "schedules.tick", "schedule": _settings.schedule_tick,
                       "options": {"queue": SHARED_QUEUE, "expires": _settings.schedule_tick * 2}},
}

worker_hijack_root_logger = False
worker_cancel_long_running_tasks_on_connection_loss = False
