"""claude-signal's command path against bare Celery, every figure measured in the same run on this machine.

Baseline: bare Celery (``bench/bare_celery.py``: a private redis-server, prefork ``-c 2``, acks_late,
prefetch 1, json) running a task that POSTs to the same fake signal-cli-rest-api. claude-signal: the real
listener, both planes of one host and the fake Signal server, ``SEND_INTERVAL=0``.

- round trip: one ``/status`` at a time, from its injection into the fake Signal server (claude-signal) or
  its publication (bare) until the reply's POST arrives there; p50 and p99.
- sustained: 50 senders, each sending its next ``/status`` as soon as its reply arrives; commands per second
  and CPU per command (every process of the system under test: workers, listener, redis-server).
- recovery: 10,000 sessions whose running turn lost its worker, paused by one ``recovery.run`` on SQLite
  and PostgreSQL, with the largest gap between two heartbeats of the worker doing it.
- turn overhead: prompt in → first text out, less the fake ``claude``'s own time to its first text.

    .venv/bin/python bench/vs_celery.py            # everything (about two minutes)
    .venv/bin/python bench/vs_celery.py --quick    # fewer samples, 2,000 orphans
    .venv/bin/python bench/vs_celery.py --no-events  # task events off on both sides (what Flower costs)
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from celery import Celery  # noqa: E402
from sqlalchemy import func, insert, select, text, update  # noqa: E402

from claude_signal.db.engine import make_engine, unit_of_work  # noqa: E402
from claude_signal.db.migrate import upgrade  # noqa: E402
from claude_signal.db.models import Outbox, Session, Turn, Worker, utcnow  # noqa: E402
from claude_signal.rules.states import SessionStatus, TurnStatus  # noqa: E402
from tests.fakes.signal_rest import FakeSignalServer, Group  # noqa: E402
from tests.harness import (  # noqa: E402
    CELERY,
    FAKE_CLAUDE,
    HostWorkers,
    ListenerProcess,
    LoggedProcess,
    Publisher,
    RedisServer,
    WorkerProcess,
    kill_logged_claudes,
    wait_until,
)

ACCOUNT, ALICE = "+15550000001", "+15550000002"
PG_ADMIN_URL = os.environ.get("CLAUDE_SIGNAL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
SENDERS = 50


@dataclass
class Figures:
    round_trip: list[float] = field(default_factory=list)  # ms
    rate: float = 0.0  # commands per second
    cpu_ms: float = 0.0  # CPU per command


# ------------------------------------------------------------------------------------------ plumbing


class Replies:
    """Waits on the fake Signal server's record of sends, from one thread, without copying it each time."""

    def __init__(self, signal: FakeSignalServer) -> None:
        self.signal = signal
        self.seen = len(signal.sent())

    def next(self, timeout: float = 30.0) -> list[dict]:
        new, self.seen = self.signal.sent_since(self.seen, timeout)
        if not new:
            raise TimeoutError(f"no reply within {timeout}s")
        return new


def pct(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1] if len(values) > 1 else values[0]


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU of these processes and all their descendants, alive now."""
    total = 0.0
    seen: set[int] = set()
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            root = psutil.Process(pid)
            for proc in [root, *root.children(recursive=True)]:
                if proc.pid in seen:
                    continue
                seen.add(proc.pid)
                with contextlib.suppress(psutil.NoSuchProcess):
                    times = proc.cpu_times()
                    total += times.user + times.system
    return total


def round_trip(send: Callable[[int], str], replies: Replies, i: int) -> float:
    started = time.perf_counter()
    send(i)
    replies.next()
    return (time.perf_counter() - started) * 1000


def closed_loop(send: Callable[[int], str], replies: Replies, senders: int, seconds: float, warmup: float,
                pids: list[int]) -> tuple[int, float, float]:
    """``senders`` senders each send again as soon as their reply arrives: (commands answered, seconds, CPU
    seconds of ``pids``) over ``seconds`` after ``warmup``; then the last round is let finish."""
    recipients = {send(i): i for i in range(senders)}
    start = time.perf_counter()
    measured, cpu0, t0 = 0, 0.0, None
    while True:
        now = time.perf_counter()
        if t0 is None and now >= start + warmup:
            cpu0, t0, measured = cpu_seconds(pids), now, 0
        if t0 is not None and now - t0 >= seconds:
            cpu = cpu_seconds(pids) - cpu0
            elapsed = now - t0
            break
        for reply in replies.next(60):
            measured += 1
            send(recipients[reply["recipients"][0]])
    outstanding = senders
    while outstanding > 0:
        outstanding -= len(replies.next(30))
    return measured, elapsed, cpu


def paired(bare: Bare, send: Callable[[int], str], replies: Replies, pids: list[int],
           args: argparse.Namespace) -> tuple[Figures, Figures]:
    """The same figures for bare Celery and for us, taken in alternation: one round trip each in turn, then
    short sustained windows in turn."""
    theirs, ours = Figures(), Figures()
    for i in range(10):  # warm up both
        round_trip(bare.send, bare.replies, i)
        round_trip(send, replies, i)
    for i in range(args.samples):
        theirs.round_trip.append(round_trip(bare.send, bare.replies, i))
        ours.round_trip.append(round_trip(send, replies, i))
    totals = {"bare": [0, 0.0, 0.0], "ours": [0, 0.0, 0.0]}
    for _ in range(args.windows):
        for name, (s, r, p) in (("bare", (bare.send, bare.replies, bare.pids)), ("ours", (send, replies, pids))):
            done, elapsed, cpu = closed_loop(s, r, SENDERS, args.seconds / args.windows, 0.5, p)
            totals[name] = [totals[name][0] + done, totals[name][1] + elapsed, totals[name][2] + cpu]
    for figures, (done, elapsed, cpu) in ((theirs, totals["bare"]), (ours, totals["ours"])):
        figures.rate = done / elapsed
        figures.cpu_ms = cpu * 1000 / max(1, done)
    return theirs, ours


# ------------------------------------------------------------------------------------------ bare Celery


class BareWorker(LoggedProcess):
    def __init__(self, env: dict[str, str], logdir: Path, events: bool) -> None:
        super().__init__(env, logdir / "bare.log")
        self.events = events

    def start(self) -> BareWorker:
        self._spawn([CELERY, "-A", "bench.bare_celery", "worker", "-n", "bare@bench", "-P", "prefork", "-c", "2",
                     "-Q", "bare", "-l", "info", "--without-mingle", "--without-gossip",
                     *(["-E"] if self.events else [])])
        wait_until(lambda: " ready." in self.log(), timeout=30, message="the bare worker")
        return self


@dataclass
class Bare:
    """The bare Celery stack, kept up for the whole commands phase so each figure of ours is paired with one
    of its own taken moments apart (the machine is shared: its load drifts)."""

    send: Callable[[int], str]
    replies: Replies
    pids: list[int]


@contextlib.contextmanager
def bare_celery(tmp: Path, events: bool) -> Iterator[Bare]:
    redis = RedisServer(tmp / "bare-redis", appendonly=False).start()
    signal = FakeSignalServer(account=ACCOUNT)
    signal.contact(ALICE, "alice-uuid", "Alice")
    groups = [signal.add_group(f"g{i}", [ALICE]) for i in range(SENDERS)]
    signal.start()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp), "CLAUDE_SIGNAL_HOME": str(tmp),
           "PYTHONPATH": str(ROOT), "BARE_BROKER_URL": redis.url, "BARE_SIGNAL_API": signal.url,
           "BARE_ACCOUNT": ACCOUNT, "BARE_EVENTS": "1" if events else "0"}
    tmp.mkdir(parents=True, exist_ok=True)
    worker = BareWorker(env, tmp, events).start()
    app = Celery("bench", broker=redis.url)
    app.conf.update(task_serializer="json", task_send_sent_event=events)

    def send(i: int) -> str:
        recipient = groups[i % SENDERS].id
        app.send_task("bare.reply", args=[recipient, "Session 1234abcd is active"], queue="bare",
                      routing_key="bare")
        return recipient

    try:
        assert worker.proc and redis.proc
        yield Bare(send, Replies(signal), [worker.proc.pid, redis.proc.pid])
    finally:
        worker.discard()
        app.close()
        signal.stop()
        redis.stop()


# ------------------------------------------------------------------------------------------ claude-signal


@contextlib.contextmanager
def database(kind: str, tmp: Path) -> Iterator[str]:
    """A migrated, empty database of ``kind``, dropped afterwards."""
    if kind == "sqlite":
        url = f"sqlite:///{tmp / f'bench-{secrets.token_hex(3)}.db'}"
        upgrade(url)
        yield url
        return
    import psycopg
    from sqlalchemy.engine import make_url

    admin = make_url(PG_ADMIN_URL)
    name = f"cs_bench_{uuid.uuid4().hex[:10]}"
    plain = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin.set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        from claude_signal.db.engine import dispose_all

        dispose_all()
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Stack:
    tmp: Path
    env: dict[str, str]
    redis: RedisServer
    signal: FakeSignalServer
    publisher: Publisher
    groups: list[Group]
    projects: Path
    workers: HostWorkers | None = None
    listener: ListenerProcess | None = None

    def pids(self) -> list[int]:
        assert self.workers and self.listener and self.redis.proc and self.listener.proc
        return [p.pid for p in self.workers.planes] + [self.listener.proc.pid, self.redis.proc.pid]


def base_env(tmp: Path, url: str, redis: RedisServer, signal: FakeSignalServer, key: str, events: bool,
             **extra: str) -> dict[str, str]:
    home, projects = tmp / "home", tmp / "projects"
    home.mkdir(exist_ok=True)
    projects.mkdir(exist_ok=True)
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "CLAUDE_SIGNAL_HOME": str(home),
            "CLAUDE_CONFIG_DIR": str(tmp / "claude-config"), "PYTHONPATH": str(ROOT),
            "CLAUDE_SIGNAL_DATABASE_URL": url, "CLAUDE_SIGNAL_BROKER_URL": redis.url,
            "CLAUDE_SIGNAL_SIGNAL_API": signal.url, "CLAUDE_SIGNAL_ACCOUNT": ACCOUNT,
            "CLAUDE_SIGNAL_AUTHORIZED": "alice-uuid", "CLAUDE_SIGNAL_CLAUDE_BIN": str(FAKE_CLAUDE),
            "CLAUDE_SIGNAL_PROJECT_ROOTS": str(projects), "CLAUDE_SIGNAL_SEND_INTERVAL": "0",
            "CLAUDE_SIGNAL_LOG_LEVEL": "info", "CLAUDE_SIGNAL_SECRET_KEY": key,
            "CLAUDE_SIGNAL_DEFAULT_HOST": "benchhost", "CLAUDE_SIGNAL_TASK_EVENTS": "true" if events else "false",
            "CLAUDE_SIGNAL_CLAUDE_ENV": "FAKE_CLAUDE_LOG", "FAKE_CLAUDE_LOG": str(tmp / "claude-calls.jsonl"),
            **extra}


@contextlib.contextmanager
def stack(tmp: Path, url: str, events: bool) -> Iterator[Stack]:
    redis = RedisServer(tmp / "redis", appendonly=False).start()
    signal = FakeSignalServer(account=ACCOUNT)
    signal.contact(ALICE, "alice-uuid", "Alice")
    groups = [signal.add_group(f"g{i}", [ALICE]) for i in range(SENDERS)]
    signal.start()
    key = secrets.token_hex(32)
    env = base_env(tmp, url, redis, signal, key, events)
    (tmp / "logs").mkdir(exist_ok=True)
    s = Stack(tmp, env, redis, signal, Publisher(redis.url, key.encode()), groups, tmp / "projects")
    try:
        s.workers = HostWorkers(env, "bench", "benchhost", tmp / "logs", concurrency=2).start()
        s.listener = ListenerProcess(env, tmp / "logs").start()
        signal.wait_connected(timeout=30)
        yield s
    finally:
        if s.listener:
            s.listener.stop()
        if s.workers:
            s.workers.discard()
        kill_logged_claudes(tmp / "claude-calls.jsonl")
        s.publisher.close()
        signal.stop()
        redis.stop()


def open_sessions(s: Stack, count: int) -> None:
    replies = Replies(s.signal)
    for i in range(count):
        (s.projects / f"p{i}").mkdir(exist_ok=True)
        s.signal.group_message(ALICE, s.groups[i], f"/session start {s.projects / f'p{i}'}")
    started = 0
    while started < count:
        started += sum(1 for m in replies.next() if m["message"].startswith("Started"))


def claude_signal(tmp: Path, kind: str, bare: Bare, args: argparse.Namespace) -> tuple[Figures, Figures, float]:
    """(bare Celery's figures, ours, turn overhead) with our stack on a ``kind`` database."""
    with database(kind, tmp) as url, stack(tmp / kind, url, args.events) as s:
        open_sessions(s, SENDERS)
        replies = Replies(s.signal)

        def inject(i: int) -> str:
            group = s.groups[i % SENDERS]
            s.signal.group_message(ALICE, group, "/status")
            return group.id

        theirs, ours = paired(bare, inject, replies, s.pids(), args)
        overhead = turn_overhead(s, replies, args.turns)
    return theirs, ours, overhead


# ------------------------------------------------------------------------------------------ turns


def fake_claude_own_time(tmp: Path) -> float:
    """Ms from spawning the fake ``claude`` (as a turn does) to its first text, with no system around."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp), "CLAUDE_CONFIG_DIR": str(tmp / "claude-own")}
    line = json.dumps({"type": "user", "message": {"role": "user", "content": "hello"}}) + "\n"
    started = time.perf_counter()
    proc = subprocess.Popen([str(FAKE_CLAUDE), "-p", "--input-format", "stream-json", "--output-format",
                             "stream-json", "--verbose", "--session-id", str(uuid.uuid4())],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=tmp, text=True)
    assert proc.stdin and proc.stdout
    proc.stdin.write(line)
    proc.stdin.flush()
    for out in proc.stdout:
        if json.loads(out).get("type") == "assistant":
            break
    took = (time.perf_counter() - started) * 1000
    proc.kill()
    proc.wait()
    return took


def turn_overhead(s: Stack, replies: Replies, samples: int) -> float:
    """Median ms from a prompt's injection to its first text at the fake Signal server, less the fake
    ``claude``'s own time from spawn to first text (each turn spawns it), measured alternately with it."""
    own, times = [], []
    for i in range(samples):
        own.append(fake_claude_own_time(s.tmp))
        started = time.perf_counter()
        s.signal.group_message(ALICE, s.groups[0], f"hello {i}")
        while not any("Echo: hello" in m["message"] for m in replies.next()):
            pass
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times) - statistics.median(own)


# ------------------------------------------------------------------------------------------ recovery


RUN_LOG = re.compile(r"recovery\.run\[[^\]]+\] succeeded in ([0-9.]+)s: \{[^}]*'paused': (\d+)")


@dataclass
class Recovery:
    took: float  # from the leases' lapse to the recovery task's end, as the bench sees it
    task: float  # the recovery task's own run time, from the worker's log
    gap: float  # the largest gap between two heartbeats of the worker meanwhile
    interval: float


def recovery(tmp: Path, kind: str, orphans: int, events: bool) -> Recovery:
    """Pause ``orphans`` sessions whose turns lost their worker, with one ``recovery.run`` on ``kind``."""
    interval = 0.5
    with database(kind, tmp) as url:
        engine = make_engine(url)
        seed_orphans(engine, orphans)
        redis = RedisServer(tmp / f"redis-rec-{kind}", appendonly=False).start()
        signal = FakeSignalServer(account=ACCOUNT)
        signal.start()
        env = base_env(tmp, url, redis, signal, secrets.token_hex(32), events,
                       CLAUDE_SIGNAL_HEARTBEAT_INTERVAL=str(interval), CLAUDE_SIGNAL_LEASE_TTL="3",
                       CLAUDE_SIGNAL_SIGNAL_SENDER="false")  # the notices wait in the outbox: not measured here
        (tmp / "logs").mkdir(exist_ok=True)
        worker = WorkerProcess(env, f"rec-{kind}", "benchhost", tmp / "logs", concurrency=2)
        beats: list[float] = []
        stop = threading.Event()

        def watch() -> None:
            last = None
            while not stop.is_set():
                with unit_of_work(engine) as db:
                    value = db.execute(select(func.max(Worker.last_heartbeat))).scalar()
                if value != last:
                    beats.append(time.perf_counter())
                    last = value
                time.sleep(0.025)

        try:
            worker.start()
            wait_until(lambda: " ready." in worker.log(), timeout=30)
            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            time.sleep(3 * interval)
            started = time.perf_counter()
            with unit_of_work(engine) as db:  # every turn's worker stops renewing at once
                db.execute(update(Turn).values(lease_expires_at=utcnow() - timedelta(seconds=60)))
            Publisher(redis.url, env["CLAUDE_SIGNAL_SECRET_KEY"].encode()).send_task(
                "recovery.run", ["bench"], queue="host.benchhost", routing_key="host.benchhost")

            # Done when the worker logs it (reading the log loads the database less than polling it would).
            runs = wait_until(lambda: [float(m.group(1)) for m in RUN_LOG.finditer(worker.log())
                                       if int(m.group(2)) > 0], timeout=300, interval=0.02,
                              message="the recovery's log line")
            took = time.perf_counter() - started
            with unit_of_work(engine) as db:
                paused = db.execute(select(func.count()).select_from(Session)
                                    .where(Session.status == SessionStatus.PAUSED)).scalar_one()
            assert paused == orphans and sum(int(m.group(2)) for m in RUN_LOG.finditer(worker.log())) == orphans
            time.sleep(3 * interval)
            stop.set()
            watcher.join()
            with unit_of_work(engine) as db:
                notices = db.execute(select(func.count()).select_from(Outbox)).scalar_one()
            assert notices > 0, "recovery paused the sessions but wrote no notice"
        finally:
            stop.set()
            worker.discard()
            signal.stop()
            redis.stop()
            engine.dispose()
    window = [b for b in beats if b >= started - 2 * interval]
    if os.environ.get("BENCH_DEBUG"):
        print("beats", [round(b - started, 2) for b in window], "took", round(took, 2))
    gaps = [b - a for a, b in itertools.pairwise(window)]
    return Recovery(took, sum(runs), max(gaps, default=float("nan")), interval)


def seed_orphans(engine, orphans: int) -> None:  # type: ignore[no-untyped-def]
    """``orphans`` ACTIVE sessions in 100 conversations, each running a turn (its lease still valid)."""
    now = utcnow()
    sessions = [{"id": f"{i:08x}", "owner": "alice-uuid", "conversation": f"conv-{i % 100}",
                 "project_path": f"/p/{i}", "host": "benchhost", "status": SessionStatus.ACTIVE,
                 "claude_session_id": str(uuid.UUID(int=i)), "version": 1, "permission_mode": "default",
                 "approve_all": False, "turn_count": 1, "cost_usd": 0.0, "created_at": now, "updated_at": now}
                for i in range(orphans)]
    turns = [{"session_id": f"{i:08x}", "prompt": f"task {i}", "status": TurnStatus.RUNNING,
              "lease_expires_at": now + timedelta(hours=1), "created_at": now} for i in range(orphans)]
    with unit_of_work(engine) as db:
        for start in range(0, orphans, 2000):
            db.execute(insert(Session), sessions[start:start + 2000])
            db.execute(insert(Turn), turns[start:start + 2000])
        if engine.dialect.name == "postgresql":
            db.execute(text("ANALYZE"))


# ------------------------------------------------------------------------------------------ report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer samples and orphans (about a minute)")
    parser.add_argument("--no-events", dest="events", action="store_false", help="task events off on both sides")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--skip", default="", help="comma-separated: commands, recovery")
    args = parser.parse_args()
    args.samples, args.seconds, args.windows, args.turns = (100, 4.0, 2, 5) if args.quick else (300, 12.0, 4, 15)
    orphans = 2000 if args.quick else 10000
    kinds = [k for k in args.databases.split(",") if k]
    skip = set(args.skip.split(","))
    load = os.getloadavg()[0]
    rows: list[tuple[str, str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if "commands" not in skip:
            with bare_celery(tmp / "bare", args.events) as bare:
                for kind in kinds:
                    theirs, ours, overhead = claude_signal(tmp / f"cs-{kind}", kind, bare, args)
                    b50, b99 = pct(theirs.round_trip, 50), pct(theirs.round_trip, 99)
                    o50, o99 = pct(ours.round_trip, 50), pct(ours.round_trip, 99)
                    rows.append((f"round trip p50 / p99 ({kind})", f"{b50:.1f} / {b99:.1f} ms",
                                 f"{o50:.1f} / {o99:.1f} ms", f"{o50 / b50:.2f}× / {o99 / b99:.2f}×"))
                    rows.append((f"sustained, 50 senders ({kind})", f"{theirs.rate:.0f} /s", f"{ours.rate:.0f} /s",
                                 f"{ours.rate / theirs.rate:.2f}"))
                    rows.append((f"CPU per command ({kind})", f"{theirs.cpu_ms:.1f} ms", f"{ours.cpu_ms:.1f} ms",
                                 f"{ours.cpu_ms / theirs.cpu_ms:.2f}×"))
                    rows.append((f"prompt → first text, over fake claude ({kind})", "", f"{overhead:.0f} ms", ""))
        if "recovery" not in skip:
            for kind in kinds:
                r = recovery(tmp / f"rec-{kind}", kind, orphans, args.events)
                rows.append((f"recovery of {orphans:,} orphans ({kind})", "",
                             f"{r.took:.2f} s (task {r.task:.2f} s)",
                             f"largest heartbeat gap {r.gap:.2f} s = {r.gap / r.interval:.1f} intervals"))
    print(f"\nclaude-signal vs bare Celery, task events {'on' if args.events else 'off'}, "
          f"load average {load:.1f} at start on {os.cpu_count()} cores\n")
    print("| figure | bare Celery | claude-signal | ratio |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
