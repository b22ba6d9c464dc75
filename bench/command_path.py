"""How much the command path costs on top of Celery itself.

Runs a real worker against a private Redis and a SQLite (or ``--database-url``) database, then pushes N
messages through it twice: malformed ones the worker drops after validation (the Celery floor: publish,
deliver, ack) and ``/hosts`` commands (inbox insert, parse, queries, outbox row, commit, outbox wake-up).
Prints both rates and their ratio. Replies go nowhere (no Signal server), which keeps the send out of the
figure.

    .venv/bin/python bench/command_path.py --messages 300
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from claude_signal.db.engine import make_engine, unit_of_work
from claude_signal.db.migrate import upgrade
from claude_signal.db.models import Inbox
from tests.harness import Publisher, RedisServer, WorkerProcess, wait_until

KEY = secrets.token_hex(32)  # this run's installation key: workers act only on messages signed with it


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        url = args.database_url or f"sqlite:///{tmp / 'bench.db'}"
        upgrade(url)
        redis = RedisServer(tmp / "redis", appendonly=False).start()
        (tmp / "home").mkdir()
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp / "home"), "CLAUDE_SIGNAL_HOME": str(tmp / "home"),
               "CLAUDE_SIGNAL_DATABASE_URL": url, "CLAUDE_SIGNAL_BROKER_URL": redis.url,
               "CLAUDE_SIGNAL_SIGNAL_API": "http://127.0.0.1:9", "CLAUDE_SIGNAL_ACCOUNT": "",
               "CLAUDE_SIGNAL_LOG_LEVEL": "warning", "CLAUDE_SIGNAL_SECRET_KEY": KEY}
        worker = WorkerProcess(env, "bench", "benchhost", tmp, concurrency=2).start()
        publisher = Publisher(redis.url, KEY.encode())
        engine = make_engine(url)
        try:
            floor = measure_floor(publisher, redis, args.messages)
            commands = measure_commands(publisher, engine, args.messages)
        finally:
            worker.stop()
            redis.stop()
    print(f"celery floor (validated and dropped): {floor:8.1f} msg/s")
    print(f"/hosts commands (inbox, parse, reply):  {commands:8.1f} msg/s")
    print(f"ratio commands/floor: {commands / floor:.2f}  (per command: {1000 / commands:.2f} ms)")


def measure_floor(publisher: Publisher, redis: RedisServer, n: int) -> float:
    client = redis.client()
    started = time.perf_counter()
    for _ in range(n):
        publisher.app.send_task("command.handle", args=[{"bad": True}], queue="shared", routing_key="shared")
    wait_until(lambda: client.llen("shared") == 0 and client.hlen("unacked") == 0, timeout=300, interval=0.01)
    return n / (time.perf_counter() - started)


def measure_commands(publisher: Publisher, engine, n: int) -> float:  # type: ignore[no-untyped-def]
    def handled() -> int:
        with unit_of_work(engine) as db:
            return db.execute(select(func.count()).select_from(Inbox).where(Inbox.status == "HANDLED")).scalar_one()

    started = time.perf_counter()
    for _ in range(n):
        publisher.send("/hosts")
    wait_until(lambda: handled() >= n, timeout=300, interval=0.01)
    return n / (time.perf_counter() - started)


if __name__ == "__main__":
    main()
