"""Moving bytes to and from a ``claude`` child over pipes, and ending it without leaving anything behind.

Pipes, not a pty: under a pty ``claude`` never reads stdin (reference §7), so pexpect's ``PopenSpawn``.
The child leads its own session and process group, so the tools it starts (a Bash command's children,
MCP servers) can be ended with it, and a worker crash cannot take our signal handling with it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Mapping, Sequence

import pexpect
from pexpect.popen_spawn import PopenSpawn

READ_SIZE = 65536


class Transport:
    def __init__(self, argv: Sequence[str], *, cwd: str, env: Mapping[str, str]) -> None:
        self.argv = list(argv)
        self.cwd = cwd
        self.env = dict(env)
        self.child: PopenSpawn | None = None
        self.exit_code: int | None = None
        self.eof = False

    def start(self) -> None:
        self.child = PopenSpawn(self.argv, cwd=self.cwd, env=self.env, timeout=None, maxread=READ_SIZE,
                                preexec_fn=os.setsid)

    @property
    def pid(self) -> int:
        assert self.child is not None
        return self.child.pid

    @property
    def pgid(self) -> int:
        return self.pid  # setsid made it the leader of a new group

    def write_line(self, line: str) -> bool:
        """Send one protocol line; False if the child no longer reads (it exited)."""
        assert self.child is not None
        try:
            self.child.send((line + "\n").encode("utf-8"))
        except (BrokenPipeError, OSError, ValueError):
            return False
        return True

    def read_chunk(self, timeout: float) -> bytes | None:
        """The next complete line (with its newline), waiting at most ``timeout``; None on timeout, b"" once
        the output has ended. At the end, a last unterminated fragment comes back before b"".

        PopenSpawn's ``read_nonblocking`` does not wait at all, so this uses ``expect`` on the newline, as
        pexpect recommends for line protocols.
        """
        assert self.child is not None
        if self.eof:
            return b""
        try:
            index = self.child.expect([b"\n", pexpect.EOF], timeout=timeout)
        except pexpect.TIMEOUT:
            return None
        before = self.child.before or b""
        if index == 0:
            return before + b"\n"
        self.eof = True
        return before if before else b""

    def close_stdin(self) -> None:
        if self.child is not None:
            with contextlib.suppress(OSError, ValueError):
                self.child.sendeof()

    def reap(self, *, grace: float = 5.0, term_grace: float = 3.0) -> int | None:
        """Close stdin, wait, SIGTERM the group, wait, SIGKILL the group; always collect the exit status."""
        if self.child is None:
            return None
        proc = self.child.proc
        self.close_stdin()
        if not _wait(proc, grace):
            _signal_group(self.pgid, signal.SIGTERM)
            if not _wait(proc, term_grace):
                _signal_group(self.pgid, signal.SIGKILL)
                _wait(proc, 10)
        # The leader is gone; members it left in the group (background tools) go too.
        _signal_group(self.pgid, signal.SIGKILL)
        self.exit_code = proc.returncode
        return self.exit_code


def _wait(proc, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
