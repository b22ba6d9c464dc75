"""The running system for end-to-end tests: private Redis, fake Signal server, real worker processes."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import Engine

from claude_signal.db.engine import make_engine
from tests.claude_cli import PINNED, Unavailable, install
from tests.fakes.messages_api import ScriptedMessagesAPI
from tests.fakes.signal_rest import FakeSignalServer
from tests.harness import (
    FAKE_CLAUDE,
    RECORDED_CLAUDE,
    ROOT,
    HostWorkers,
    ListenerProcess,
    Publisher,
    RedisServer,
    kill_logged_claudes,
)

ACCOUNT = "+15550000001"
ALICE = "+15550000002"  # Signal knows her as alice-uuid; she is authorized by uuid and number

# The knobs of the fake (and recorded real) claude must pass the allowlist of the child's environment.
CLAUDE_TEST_ENV = "REAL_CLAUDE,FAKE_CLAUDE_LOG,FAKE_CLAUDE_SCENARIO,FAKE_CLAUDE_DELAY"

# Short clocks so crashes are noticed in seconds: a turn whose process stops renewing its lease is
# interrupted after 3 s, a message taken by a dead worker comes back after 10 s.
FAST = {
    "CLAUDE_SIGNAL_HEARTBEAT_INTERVAL": "0.5",
    "CLAUDE_SIGNAL_LEASE_TTL": "3",
    "CLAUDE_SIGNAL_TURN_TIMEOUT": "8",
    "CLAUDE_SIGNAL_VISIBILITY_TIMEOUT": "10",
    "CLAUDE_SIGNAL_UNACKED_RESTORE_INTERVAL": "1",
    "CLAUDE_SIGNAL_SIGNAL_TIMEOUT": "3",  # a killed sender holds its recipient's lane for 8 s at most
}


@dataclass
class System:
    tmp: Path
    env: dict[str, str]
    redis: RedisServer
    signal: FakeSignalServer
    publisher: Publisher
    engine: Engine
    projects: Path
    api: ScriptedMessagesAPI | None = None  # set when the real CLI runs: the Messages API it talks to
    workers: list[HostWorkers] = field(default_factory=list)
    listeners: list[ListenerProcess] = field(default_factory=list)

    @property
    def real_claude(self) -> bool:
        return self.api is not None

    def scenario(self, name: str, delay: float | None = None) -> None:
        """Make Claude behave a certain way from the next turn on (workers started after this, for the fake)."""
        self.env["FAKE_CLAUDE_SCENARIO"] = name
        if delay is not None:
            self.env["FAKE_CLAUDE_DELAY"] = str(delay)
        if self.api is not None:
            self.api.scenario = name
            if delay is not None:
                self.api.delay = delay

    def listener(self, **env: str) -> ListenerProcess:
        """Start the real listener and wait until signalbot has attached its websocket."""
        seen = self.signal.connections
        proc = ListenerProcess({**self.env, **env}, self.tmp / "logs").start()
        self.listeners.append(proc)
        try:
            self.signal.wait_connected(timeout=30, after=seen)
        except TimeoutError:
            raise AssertionError(f"listener never connected:\n{proc.log()[-3000:]}") from None
        return proc

    def worker(self, name: str = "w1", host: str = "hosta", *, start: bool = True, **kw) -> HostWorkers:  # type: ignore[no-untyped-def]
        """Both planes of ``host`` (a control worker and a turn worker), as ``claude-signal worker`` runs them."""
        workers = HostWorkers(self.env, name, host, self.tmp / "logs", **kw)
        self.workers.append(workers)
        return workers.start() if start else workers

    def replies(self, recipient: str = "alice-uuid") -> list[str]:
        return [m["message"] for m in self.signal.sent() if recipient in m.get("recipients", [])]

    def wait_reply(self, predicate: Callable[[str], bool], recipient: str = "alice-uuid", timeout: float = 30,
                   count: int = 1) -> list[str]:
        sent = self.signal.wait_for_sent(
            lambda m: recipient in m.get("recipients", []) and predicate(m.get("message", "")),
            count=count, timeout=timeout)
        return [m["message"] for m in sent]

    def logs(self) -> str:
        from sqlalchemy import text

        parts = [f"===== {p.node}\n{p.log()[-4000:]}" for w in self.workers for p in w.planes]
        parts += [f"===== listener\n{x.log()[-3000:]}" for x in self.listeners]
        with self.engine.connect() as conn:
            for table in ("session", "transition", "inbox", "outbox", "turn", "worker"):
                rows = conn.execute(text(f"SELECT * FROM {table}")).fetchall()
                parts.append(f"===== {table}\n" + "\n".join(repr(tuple(r)) for r in rows))
        return "\n".join(parts)


@pytest.fixture
def claude_cli(request: pytest.FixtureRequest) -> str:
    """Which ``claude`` the workers run: ``fake`` (tests/fakes/claude) unless a test asks for ``real``."""
    return getattr(request, "param", "fake")


def _real_claude_env(api: ScriptedMessagesAPI) -> dict[str, str]:
    """The pinned real CLI, talking to the scripted Messages API on loopback (claude-cli-offline.md)."""
    try:
        binary = install()
    except Unavailable as why:
        pytest.skip(f"real Claude Code CLI {PINNED}: {why}")
    return {"CLAUDE_SIGNAL_CLAUDE_BIN": str(RECORDED_CLAUDE), "REAL_CLAUDE": str(binary),
            "ANTHROPIC_BASE_URL": api.url, "ANTHROPIC_API_KEY": "sk-ant-test-offline",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1",
            "CLAUDE_CODE_MAX_RETRIES": "1"}


@pytest.fixture
def system(database_url: str, tmp_path: Path, claude_cli: str) -> Iterator[System]:
    from claude_signal.db.migrate import upgrade

    api = ScriptedMessagesAPI().start() if claude_cli == "real" else None
    upgrade(database_url)
    redis = RedisServer(tmp_path / "redis").start()
    signal = FakeSignalServer(account=ACCOUNT)
    signal.contact(ALICE, "alice-uuid", "Alice")
    signal.start()
    projects = tmp_path / "projects"
    (projects / "shop").mkdir(parents=True)
    (projects / "blog").mkdir()
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "logs").mkdir()
    secret_key = secrets.token_hex(32)  # the installation's: the test publisher signs like the listener
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),  # workers and the listener import this checkout, not wherever it is installed
        "HOME": str(home),
        "CLAUDE_CONFIG_DIR": str(tmp_path / "claude-config"),
        "CLAUDE_SIGNAL_HOME": str(home),
        "CLAUDE_SIGNAL_DATABASE_URL": database_url,
        "CLAUDE_SIGNAL_BROKER_URL": redis.url,
        "CLAUDE_SIGNAL_SIGNAL_API": signal.url,
        "CLAUDE_SIGNAL_ACCOUNT": ACCOUNT,
        "CLAUDE_SIGNAL_AUTHORIZED": "alice-uuid,+15550000002",
        "CLAUDE_SIGNAL_CLAUDE_BIN": str(FAKE_CLAUDE),
        "CLAUDE_SIGNAL_PROJECT_ROOTS": str(projects),
        "CLAUDE_SIGNAL_DEFAULT_HOST": "hosta",
        "CLAUDE_SIGNAL_IDLE_TIMEOUT": "6",
        "FAKE_CLAUDE_LOG": str(tmp_path / "claude-calls.jsonl"),
        "CLAUDE_SIGNAL_CLAUDE_ENV": CLAUDE_TEST_ENV,
        "CLAUDE_SIGNAL_SECRET_KEY": secret_key,
        **FAST,
        **(_real_claude_env(api) if api is not None else {}),
    }
    engine = make_engine(database_url)
    publisher = Publisher(redis.url, secret_key.encode())
    system = System(tmp_path, env, redis, signal, publisher, engine, projects, api)
    try:
        yield system
    finally:
        for listener in system.listeners:
            listener.stop()
        for worker in system.workers:
            worker.discard()  # the test is over; whatever it left running is killed, not awaited
        kill_logged_claudes(Path(system.env["FAKE_CLAUDE_LOG"]))
        publisher.close()
        engine.dispose()
        signal.stop()
        redis.stop()
        if api is not None:
            api.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # type: ignore[no-untyped-def]
    """On failure, attach the workers' logs: a crash test is unreadable without them."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and "system" in getattr(item, "funcargs", {}):
        report.sections.append(("worker logs", item.funcargs["system"].logs()))
