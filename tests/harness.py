"""Real processes for integration tests: a private redis-server, celery worker subprocesses, a publisher.

Nothing here replaces our own code: workers are the real ``celery -A claude_signal worker`` command with
the real configuration, talking to a real Redis and a real database.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import redis

from claude_signal.edge.publisher import InboundPublisher
from claude_signal.wire.inbound import InboundMessage

ROOT = Path(__file__).resolve().parents[1]
FAKE_CLAUDE = Path(os.environ.get("CLAUDE_SIGNAL_TEST_CLAUDE", ROOT / "tests" / "fakes" / "claude"))
SKEWED_CLOCK = ROOT / "tests" / "fakes" / "skewed_clock"  # on PYTHONPATH: a wall clock off by SKEWED_CLOCK_SECONDS
RECORDED_CLAUDE = ROOT / "tests" / "fakes" / "claude-recorded"  # the real CLI, its calls logged like the fake's
CELERY = str(Path(sys.executable).with_name("celery"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05,
               message: str = "condition") -> Any:
    """Poll until ``predicate`` returns something truthy; fail the test with ``message`` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


@contextlib.contextmanager
def statements_run(engine: Any) -> Iterator[list[str]]:
    """The SQL statements ``engine`` runs inside the block, each with its whitespace collapsed."""
    from sqlalchemy import event

    statements: list[str] = []

    def seen(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        statements.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", seen)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", seen)


class RedisServer:
    """A throwaway redis-server on a free loopback port; it can be stopped and started again."""

    def __init__(self, workdir: Path, *, appendonly: bool = True) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.appendonly = appendonly
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not on PATH; .ci/run installs it (apt-get install redis-server)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir),
             "--appendonly", "yes" if self.appendonly else "no", "--save", "", "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        wait_until(lambda: _ping(client), timeout=10, message="redis-server to start")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)


def _ping(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


class LoggedProcess:
    """A subprocess of ours in its own process group, its output appended to a log file."""

    def __init__(self, env: dict[str, str], logfile: Path) -> None:
        self.env = env
        self.logfile = logfile
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    def _spawn(self, argv: list[str]) -> None:
        self._log_offset = self.logfile.stat().st_size if self.logfile.exists() else 0
        # This checkout's code, whichever one the environment has installed (a worktree tests its own).
        path = [str(ROOT), *filter(None, [self.env.get("PYTHONPATH")])]
        env = {**self.env, "PYTHONPATH": os.pathsep.join(path)}
        with self.logfile.open("ab") as log:
            self.proc = subprocess.Popen(argv, env=env, cwd=self.env["CLAUDE_SIGNAL_HOME"], stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def log(self) -> str:
        """What this run (since the last start) wrote."""
        return self.logfile.read_text(errors="replace")[self._log_offset:] if self.logfile.exists() else ""

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM and wait, as an operator would; the group is killed if it does not stop in time."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.discard()
        self._kill_group()  # leftovers of a process that exited (a worker's pool children)
        return self.proc.returncode

    def discard(self) -> None:
        """End the process and its group at once (test teardown: a graceful stop costs seconds)."""
        self._kill_group()
        if self.proc is not None:
            self.proc.wait(10)

    def _kill_group(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)


class WorkerProcess(LoggedProcess):
    """One ``celery -A claude_signal worker`` subprocess serving one plane of a host, with the command line
    ``claude-signal worker`` gives that plane (control: prefork for shared + host queue; turns: threads)."""

    def __init__(self, env: dict[str, str], name: str, host: str, logdir: Path, concurrency: int = 2,
                 plane: str = "control", extra_env: dict[str, str] | None = None) -> None:
        super().__init__({**env, "CLAUDE_SIGNAL_HOST": host}, logdir / f"{name}-{plane}@{host}.log")
        self.extra_env = extra_env or {}  # this worker's own, e.g. a skewed clock
        self.base_env = env  # the test's environment, read again at each start (a restart sees changes)
        self.node = f"{name}-{plane}@{host}"
        self.host = host
        self.plane = plane
        self.concurrency = concurrency

    def start(self, *, wait: bool = True) -> WorkerProcess:
        self.env = {**self.base_env, **self.extra_env, "CLAUDE_SIGNAL_HOST": self.host}
        if self.plane == "turns":
            pool = ["-P", "threads", "-c", self.env.get("CLAUDE_SIGNAL_MAX_TURNS", "8"), "-Q", f"turns.{self.host}"]
        else:
            sender = self.env.get("CLAUDE_SIGNAL_SIGNAL_SENDER", "true").lower() not in ("false", "0", "no")
            queues = ("signal," if sender else "") + f"host.{self.host},shared"  # as `claude-signal worker` does
            pool = ["-P", "prefork", "-c", str(self.concurrency), "-Q", queues]
        self._spawn([CELERY, "-A", "claude_signal", "worker", "-n", self.node, *pool, "-l", "info",
                     "--without-mingle", "--without-gossip", *self._events()])
        if wait:
            self.wait_ready()
        return self

    def _events(self) -> list[str]:
        """``-E`` as ``claude-signal worker`` passes it, unless task events are turned off."""
        off = self.env.get("CLAUDE_SIGNAL_TASK_EVENTS", "true").lower() in ("false", "0", "no")
        return [] if off else ["-E"]

    def wait_ready(self, timeout: float = 30.0) -> None:
        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"worker {self.node} exited:\n{self.log()[-3000:]}")
            return " ready." in self.log()

        wait_until(ready, timeout=timeout, message=f"worker {self.node} to be ready")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill9(self) -> None:
        """SIGKILL the main process only, as a crash would: nothing in it runs afterwards."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


class HostWorkers:
    """Both planes of one host, as ``claude-signal worker`` runs them: a control worker and a turn worker."""

    def __init__(self, env: dict[str, str], name: str, host: str, logdir: Path, concurrency: int = 2,
                 extra_env: dict[str, str] | None = None) -> None:
        self.control = WorkerProcess(env, name, host, logdir, concurrency, "control", extra_env)
        self.turns = WorkerProcess(env, name, host, logdir, plane="turns", extra_env=extra_env)
        self.host = host

    @property
    def planes(self) -> list[WorkerProcess]:
        return [self.control, self.turns]

    @property
    def node(self) -> str:
        return self.control.node

    def start(self, *, wait: bool = True) -> HostWorkers:
        for plane in self.planes:
            plane.start(wait=False)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        for plane in self.planes:
            plane.wait_ready(timeout)

    def kill9(self) -> None:
        """The machine's workers crash: both main processes die at once."""
        for plane in self.planes:
            plane.kill9()

    def stop(self, timeout: float = 20.0) -> list[int | None]:
        """SIGTERM, turn plane first (as the supervisor does), so the control plane still sends the last
        words of the turns it interrupts."""
        return [plane.stop(timeout) for plane in reversed(self.planes)]

    def discard(self) -> None:
        for plane in self.planes:
            plane.discard()

    def log(self) -> str:
        return "\n".join(f"--- {p.node}\n{p.log()}" for p in self.planes)


class ListenerProcess(LoggedProcess):
    """The real ``claude-signal listen`` in a subprocess (signalbot against the fake signal server)."""

    def __init__(self, env: dict[str, str], logdir: Path) -> None:
        super().__init__(env, logdir / "listener.log")

    def start(self) -> ListenerProcess:
        self._spawn([sys.executable, "-m", "claude_signal.ops.cli", "listen"])
        return self


def kill_logged_claudes(log: Path) -> None:
    """SIGKILL every fake ``claude`` the log names that still runs (each leads its own process group)."""
    if not log.exists():
        return
    for line in log.read_text().splitlines():
        with contextlib.suppress(ValueError, KeyError, ProcessLookupError, PermissionError):
            pid = int(json.loads(line)["pid"])
            if os.getpgid(pid) == pid:
                os.killpg(pid, signal.SIGKILL)


class Publisher:
    """Sends inbound messages with the listener's own publisher, for tests that start behind the listener."""

    def __init__(self, broker_url: str, key: bytes | None) -> None:
        self.inbound = InboundPublisher(broker_url, key=key)
        self.key = key
        self.app = self.inbound.app
        self._ts = int(time.time() * 1000)

    def message(self, text: str, *, sender: str = "alice-uuid", conversation: str | None = None,
                timestamp: int | None = None, **extra: Any) -> InboundMessage:
        if timestamp is None:
            self._ts += 1
            timestamp = self._ts
        return InboundMessage.build(sender=sender, conversation=conversation or sender, timestamp=timestamp,
                                    text=text, **extra)

    def publish(self, msg: InboundMessage) -> InboundMessage:
        self.inbound.publish(msg)
        return msg

    def send(self, text: str, **kwargs: Any) -> InboundMessage:
        return self.publish(self.message(text, **kwargs))

    def send_task(self, name: str, args: list[Any], **options: Any) -> None:
        """Any task message, signed with the installation key as our own processes sign theirs."""
        from claude_signal.wire.signing import HEADER, digest

        task_id = options.pop("task_id", None) or str(uuid.uuid4())
        headers = {HEADER: digest(self.key, name, task_id, args, {})} if self.key else {}
        self.app.send_task(name, args=args, task_id=task_id, headers=headers, **options)

    def close(self) -> None:
        self.app.close()
