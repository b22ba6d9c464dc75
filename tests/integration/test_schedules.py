"""Scheduled prompts end to end: real workers, real ``celery beat`` processes, real Redis, the fake Signal
server and the fake ``claude``.

Periods here are seconds, not minutes: ``CLAUDE_SIGNAL_SCHEDULE_MIN_INTERVAL`` is a test-only setting that
lowers the one-minute floor (the floor itself is tested in tests/test_schedule_rules.py), and beat ticks every
second. An outage is simulated with the test-only ``CLAUDE_SIGNAL_SCHEDULE_CLOCK_OFFSET``.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from claude_signal.core.lifecycle import transition
from claude_signal.db.clock import db_now
from claude_signal.db.engine import unit_of_work
from claude_signal.db.models import Schedule
from claude_signal.ops import beat
from claude_signal.rules.states import SessionStatus
from tests.harness import LoggedProcess, wait_until
from tests.integration.conftest import System

pytestmark = pytest.mark.integration
# The tests marked ``transport`` are about processes (beat, workers, ``up``) and run on SQLite only; the races
# the database decides (two beats, a catch-up after an outage) run on both, as do tests/test_schedule_runs.py.

FAST_SCHEDULES = {"CLAUDE_SIGNAL_SCHEDULE_TICK": "1", "CLAUDE_SIGNAL_SCHEDULE_MIN_INTERVAL": "1",
                  "CLAUDE_SIGNAL_TIMEZONE": "UTC"}


class BeatProcess(LoggedProcess):
    """``celery beat`` with the command line ``claude-signal beat`` runs."""

    def start(self) -> BeatProcess:
        self._spawn(beat.argv())
        wait_until(lambda: "beat: Starting" in self.log() or self._exited(), timeout=30,
                   message="beat to start")
        assert not self._exited(), self.log()[-3000:]
        return self

    def _exited(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None


@pytest.fixture
def sched(system: System) -> Iterator[System]:
    system.env.update(FAST_SCHEDULES)
    yield system


@pytest.fixture
def beats(sched: System) -> Iterator[list[BeatProcess]]:
    started: list[BeatProcess] = []
    yield started
    for proc in started:
        proc.discard()


def start_beat(system: System, beats: list[BeatProcess], name: str = "beat") -> BeatProcess:
    proc = BeatProcess(dict(system.env), system.tmp / "logs" / f"{name}.log").start()
    beats.append(proc)
    return proc


def start_session(system: System) -> None:
    system.publisher.send(f"/session start {system.projects / 'shop'}")
    system.wait_reply(lambda t: t.startswith("Started session"))


def ask(system: System, command: str, prefix: str, timeout: float = 30) -> str:
    """Send a command and return its reply: the first message starting with ``prefix`` sent after it."""
    seen = sum(t.startswith(prefix) for t in system.replies())
    system.publisher.send(command)
    return system.wait_reply(lambda t: t.startswith(prefix), count=seen + 1, timeout=timeout)[seen]


def schedule(system: System, command: str) -> str:
    text = ask(system, command, "⏰ Scheduled ")
    match = re.match(r"⏰ Scheduled ([0-9a-f]+): .*, next at ", text)
    assert match, text
    return match[1]


def echoes(system: System, prompt: str) -> list[str]:
    return [t for t in system.replies() if t.startswith(f"Echo: {prompt} (turn ")]


def headers(system: System, schedule_id: str) -> list[str]:
    return [t for t in system.replies() if t.startswith(f"⏰ Scheduled {schedule_id} (")]


@pytest.mark.transport
def test_every_runs_is_listed_and_unschedule_stops_it(sched: System, beats: list[BeatProcess]) -> None:
    system = sched
    system.worker()
    start_beat(system, beats)
    start_session(system)
    ping = schedule(system, "/every 3s ping")
    system.wait_reply(lambda t: t.startswith("Echo: ping (turn 2;"), timeout=40)
    assert len(headers(system, ping)) >= 2  # each answer is marked as scheduled
    listing = ask(system, "/schedules", "Schedules (times in UTC):")
    assert f"{ping} · every 3s · next " in listing and "last: " in listing and '"ping"' in listing
    status = ask(system, "/status", "Session ")
    assert "Next scheduled run: " in status and ping in status
    system.publisher.send(f"/unschedule {ping}")
    system.wait_reply(lambda t: t.startswith(f"Removed schedule {ping}"))
    wait_until(lambda: len(echoes(system, "ping")) == len(headers(system, ping)), timeout=30,
               message="a run queued before /unschedule to finish")
    stopped_at = len(headers(system, ping))
    # A second schedule running twice is the clock: the removed one would have come due meanwhile.
    pong = schedule(system, "/every 3s pong")
    wait_until(lambda: len(echoes(system, "pong")) >= 2, timeout=40, message="pong to run twice")
    assert len(headers(system, ping)) == stopped_at
    listing = ask(system, "/schedules", "Schedules (")
    assert pong in listing and ping not in listing


@pytest.mark.transport
def test_at_runs_once(sched: System, beats: list[BeatProcess]) -> None:
    system = sched
    system.worker()
    start_beat(system, beats)
    start_session(system)
    once = schedule(system, "/at in 2s hello there")
    system.wait_reply(lambda t: t.startswith("Echo: hello there (turn 1;"), timeout=30)
    schedule(system, "/every 2s tick")
    wait_until(lambda: len(echoes(system, "tick")) >= 2, timeout=40, message="tick to run twice")
    assert len(echoes(system, "hello there")) == 1
    assert len(headers(system, once)) == 1
    listing = ask(system, "/schedules", "Schedules (")
    assert "tick" in listing and once not in listing


@pytest.mark.both_databases
def test_two_beats_make_one_run_per_occurrence(sched: System, beats: list[BeatProcess]) -> None:
    system = sched
    system.worker(concurrency=3)  # ticks from both beats are handled side by side
    start_session(system)
    sid = schedule(system, "/every 2s twin")
    start_beat(system, beats, "beat-1")
    start_beat(system, beats, "beat-2")
    wait_until(lambda: len(echoes(system, "twin")) >= 4, timeout=60, message="four runs")
    for proc in beats:
        proc.stop()
    with unit_of_work(system.engine) as db:
        row = db.get(Schedule, sid)
        assert row is not None
        due_so_far = (db_now(db) - row.anchor_at) // timedelta(seconds=2)
    wait_until(lambda: len(echoes(system, "twin")) == len(headers(system, sid)), timeout=30,
               message="queued runs to finish")
    runs = echoes(system, "twin")
    turn_numbers = [int(re.search(r"\(turn (\d+);", t)[1]) for t in runs]  # type: ignore[index]
    assert turn_numbers == list(range(1, len(runs) + 1))
    assert len(runs) <= due_so_far  # twice as many beats, not twice as many runs


@pytest.mark.both_databases
def test_a_missed_hour_makes_one_catch_up_run(sched: System, beats: list[BeatProcess]) -> None:
    system = sched
    workers = system.worker()
    start_session(system)
    sid = schedule(system, "/every 10s catch")  # no beat yet: nothing runs
    workers.stop()
    # An hour later, as far as the schedules can tell: the workers and beat come back after an outage.
    system.env["CLAUDE_SIGNAL_SCHEDULE_CLOCK_OFFSET"] = "3600"
    system.worker("w2")
    start_beat(system, beats)
    first = system.wait_reply(lambda t: t.startswith(f"⏰ Scheduled {sid} ("), timeout=30)[0]
    assert "Catch-up: " in first and "runs missed since" in first
    system.wait_reply(lambda t: t.startswith("Echo: catch (turn 1;"))
    system.wait_reply(lambda t: t.startswith("Echo: catch (turn 2;"), timeout=40)  # the normal rhythm
    marked = headers(system, sid)
    assert len(marked) >= 2 and sum("Catch-up" in t for t in marked) == 1, marked


@pytest.mark.transport
def test_a_paused_session_says_so_once_and_catches_up_on_resume(sched: System, beats: list[BeatProcess]) -> None:
    system = sched
    system.worker()
    start_session(system)
    sid = schedule(system, "/every 2s later")
    with unit_of_work(system.engine) as db:  # as recovery leaves it when its host goes away
        row = db.get(Schedule, sid)
        assert row is not None
        session_id = row.session_id
        transition(db, session_id, SessionStatus.PAUSED, reason="test: its host went away")
    start_beat(system, beats)
    system.wait_reply(lambda t: t.startswith(f"⏰ Schedule {sid} (every 2s) did not run"))
    # Several more occurrences come due while it waits; none of them says it again (checked at the end).
    with unit_of_work(system.engine) as db:
        noted = db_now(db)

    def later_on_the_database_clock() -> bool:
        with unit_of_work(system.engine) as db:
            return db_now(db) > noted + timedelta(seconds=6)

    wait_until(later_on_the_database_clock, timeout=30, interval=0.5, message="three more periods")
    system.publisher.send(f"/session resume {session_id}")
    system.wait_reply(lambda t: t.startswith(f"Resumed session {session_id}"))
    first = system.wait_reply(lambda t: t.startswith(f"⏰ Scheduled {sid} ("), timeout=30)[0]
    assert "Catch-up: " in first  # one run for the occurrences it waited through
    system.wait_reply(lambda t: t.startswith("Echo: later (turn 1;"))
    assert len([t for t in system.replies() if t.startswith(f"⏰ Schedule {sid} (every 2s) did not run")]) == 1


@pytest.mark.transport
def test_a_schedule_survives_a_restart_of_up(sched: System) -> None:
    system = sched
    env = {**system.env, "CLAUDE_SIGNAL_HOST": "hosta"}
    up = LoggedProcess(env, system.tmp / "logs" / "up.log")
    try:
        up._spawn([sys.executable, "-m", "claude_signal.ops.cli", "up", "--concurrency", "1"])
        start_session(system)
        sid = schedule(system, "/every 3s again")
        system.wait_reply(lambda t: t.startswith("Echo: again (turn 1;"), timeout=60)
        assert up.stop(timeout=90) == 0, up.log()[-3000:]
        before = len(echoes(system, "again"))
        up._spawn([sys.executable, "-m", "claude_signal.ops.cli", "up", "--concurrency", "1"])
        wait_until(lambda: len(echoes(system, "again")) >= before + 2, timeout=90,
                   message="the schedule to run again after the restart")
        assert sid in headers(system, sid)[-1]
    finally:
        up.stop(timeout=90)
    assert Path(env["CLAUDE_SIGNAL_HOME"], "logs", "beat.log").exists()
