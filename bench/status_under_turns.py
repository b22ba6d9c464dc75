"""Does a busy turn plane slow down commands? ``/status`` round trips while N Claude turns run, against idle.

One run, one machine: a private Redis, the fake Signal server, both planes of one host (control: prefork
``-c 2``; turns: threads, ``MAX_TURNS`` slots) and the fake ``claude``. N sessions each get a long turn
(``wait: …``, 120 s); meanwhile ``/status`` is sent K times, one at a time, and each round trip is timed from
publish to the reply's arrival at the fake Signal server. The same is measured first with nothing running.
Prints p50/p99 of both and their ratio (the goal: close to 1, whatever N).

    .venv/bin/python bench/status_under_turns.py --turns 8 --samples 40
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from claude_signal.db.engine import make_engine, unit_of_work
from claude_signal.db.migrate import upgrade
from claude_signal.db.models import Turn
from claude_signal.rules.states import TurnStatus
from tests.fakes.signal_rest import FakeSignalServer
from tests.harness import FAKE_CLAUDE, HostWorkers, Publisher, RedisServer, kill_logged_claudes, wait_until

ACCOUNT, ALICE = "+15550000001", "+15550000002"


KEY = secrets.token_hex(32)  # this run's installation key: workers act only on messages signed with it


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=8, help="long turns running during the busy phase")
    parser.add_argument("--samples", type=int, default=40, help="/status round trips per phase")
    parser.add_argument("--database-url")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        url = args.database_url or f"sqlite:///{tmp / 'bench.db'}"
        upgrade(url)
        redis = RedisServer(tmp / "redis", appendonly=False).start()
        signal = FakeSignalServer(account=ACCOUNT)
        signal.contact(ALICE, "alice-uuid", "Alice")
        signal.start()
        home, projects = tmp / "home", tmp / "projects"
        home.mkdir()
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "CLAUDE_SIGNAL_HOME": str(home),
               "CLAUDE_SIGNAL_DATABASE_URL": url, "CLAUDE_SIGNAL_BROKER_URL": redis.url,
               "CLAUDE_SIGNAL_SIGNAL_API": signal.url, "CLAUDE_SIGNAL_ACCOUNT": ACCOUNT,
               "CLAUDE_SIGNAL_AUTHORIZED": "alice-uuid", "CLAUDE_SIGNAL_CLAUDE_BIN": str(FAKE_CLAUDE),
               "CLAUDE_SIGNAL_PROJECT_ROOTS": str(projects), "CLAUDE_SIGNAL_SEND_INTERVAL": "0",
               "CLAUDE_SIGNAL_MAX_TURNS": str(max(8, args.turns)), "CLAUDE_SIGNAL_LOG_LEVEL": "warning",
               "CLAUDE_SIGNAL_SECRET_KEY": KEY,
               "CLAUDE_SIGNAL_CLAUDE_ENV": "FAKE_CLAUDE_DELAY,FAKE_CLAUDE_LOG",
               "FAKE_CLAUDE_DELAY": "120", "FAKE_CLAUDE_LOG": str(tmp / "claude-calls.jsonl")}
        workers = HostWorkers({**env}, "bench", "benchhost", tmp, concurrency=2).start()
        publisher = Publisher(redis.url, KEY.encode())
        engine = make_engine(url)
        try:
            groups = [open_session(signal, publisher, projects, i) for i in range(args.turns)]
            idle = round_trips(signal, publisher, groups[0], args.samples)
            for group in groups:
                publisher.send("wait: a long refactor", conversation=group)
            wait_until(lambda: running(engine) == args.turns, timeout=60, message="every turn to run")
            busy = round_trips(signal, publisher, groups[0], args.samples)
            still = running(engine)
        finally:
            workers.discard()
            kill_logged_claudes(tmp / "claude-calls.jsonl")
            signal.stop()
            redis.stop()
    print(f"/status round trip, idle:                 p50 {pct(idle, 50):6.1f} ms  p99 {pct(idle, 99):6.1f} ms")
    print(f"/status round trip, {args.turns:2d} turns running:     p50 {pct(busy, 50):6.1f} ms  "
          f"p99 {pct(busy, 99):6.1f} ms  ({still} still running at the end)")
    print(f"ratio busy/idle: p50 {pct(busy, 50) / pct(idle, 50):.2f}  p99 {pct(busy, 99) / pct(idle, 99):.2f}")


def open_session(signal: FakeSignalServer, publisher: Publisher, projects: Path, i: int) -> str:
    (projects / f"p{i}").mkdir(parents=True)
    group = signal.add_group(f"p{i}", [ALICE]).id
    publisher.send(f"/session start {projects / f'p{i}'}", conversation=group)
    signal.wait_for_sent(lambda m: group in m.get("recipients", []) and m["message"].startswith("Started"),
                         timeout=30)
    return group


def round_trips(signal: FakeSignalServer, publisher: Publisher, group: str, samples: int) -> list[float]:
    def answers() -> int:
        return sum(1 for m in signal.sent() if group in m.get("recipients", []) and m["message"].startswith("Session "))

    times = []
    for _ in range(samples):
        before = answers()
        started = time.perf_counter()
        publisher.send("/status", conversation=group)
        wait_until(lambda b=before: answers() > b, timeout=30, interval=0.002)
        times.append((time.perf_counter() - started) * 1000)
    return times


def running(engine) -> int:  # type: ignore[no-untyped-def]
    from sqlalchemy import func, select

    with unit_of_work(engine) as db:
        return db.execute(select(func.count()).select_from(Turn).where(Turn.status == TurnStatus.RUNNING)).scalar_one()


def pct(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1] if len(values) > 1 else values[0]


if __name__ == "__main__":
    main()
