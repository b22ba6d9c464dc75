"""The listener's journal: every message read from Signal is written here before anything else happens.

signal-cli-rest-api in json-rpc mode keeps nothing, so once the listener has read a message it alone holds
it. Each record is one JSON line, written at once and fsynced before it is published (the forwarder
syncs whatever arrived since its last pass with one fsync, not one per message); a cursor file says up
to where the inbox holds them (the forwarder learns that from the workers' acknowledgements). After a
restart publishing starts again at the cursor, so a broker outage, a lost hand-off or a listener restart
only delays messages; a record published twice collapses on its idempotency key.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class Spool:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.cursor_path = path.with_name(path.name + ".cursor")
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "ab")  # noqa: SIM115 - held for the listener's life
        self._synced = -1  # the journal's length at the last fsync
        self._end_torn_record()

    def _end_torn_record(self) -> None:
        """A crash mid-write leaves a record without its newline; end it, or the next record is glued to it."""
        size = self.path.stat().st_size
        if size:
            with open(self.path, "rb") as journal:
                journal.seek(size - 1)
                if journal.read(1) != b"\n":
                    self._file.write(b"\n")
                    self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()

    @staticmethod
    def encode(record: dict[str, Any]) -> bytes:
        """One journal line; raises ``ValueError`` for a record that cannot be written (before anything is)."""
        return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"

    def append(self, record: dict[str, Any] | bytes) -> None:
        """Add one record or encoded line; written through to the file at once, so it survives a crash of
        the listener, and a crash of the machine once :meth:`sync` has run."""
        line = record if isinstance(record, bytes) else self.encode(record)
        with self._lock:
            self._file.write(line)
            self._file.flush()

    def sync(self) -> int:
        """Make everything appended so far durable; the journal's length then (what is safe to publish)."""
        with self._lock:
            self._file.flush()
            size = os.fstat(self._file.fileno()).st_size
            if size != self._synced:  # nothing appended since the last sync: nothing to wait for
                os.fsync(self._file.fileno())
                self._synced = size
            return size

    def _cursor(self, size: int) -> int:
        try:
            cursor = int(self.cursor_path.read_text() or 0)
        except (FileNotFoundError, ValueError):
            return 0
        return cursor if cursor <= size else 0  # a compacted journal starts again at 0

    def cursor(self) -> int:
        """Where the records not yet acknowledged begin."""
        with self._lock:
            return self._cursor(self.path.stat().st_size)

    def pending(self, start: int | None = None, until: int | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
        """Records from ``start`` (default: the cursor) that end by ``until`` (default: all), oldest first,
        each with the offset just past it."""
        with self._lock:
            size = self.path.stat().st_size
            start = self._cursor(size) if start is None else start
        size = size if until is None else min(size, until)
        if start >= size:
            return
        with open(self.path, "rb") as journal:
            journal.seek(start)
            offset = start
            for raw in journal:
                if offset + len(raw) > size:
                    break  # appended after we looked: the next pass takes it
                offset += len(raw)
                if not raw.endswith(b"\n"):
                    log.error("spool %s ends in a torn record (%d bytes); skipping it", self.path, len(raw))
                    yield offset, {}
                    continue
                try:
                    yield offset, json.loads(raw)
                except ValueError:
                    log.error("spool %s holds an unreadable record at %d; skipping it", self.path, offset)
                    yield offset, {}

    def commit(self, offset: int) -> int:
        """Everything before ``offset`` is in the inbox; when that is everything, start the file afresh.

        Returns the cursor as stored: 0 when the file was emptied, so readers start again at its head.
        """
        with self._lock:
            size = self.path.stat().st_size
            if offset >= size:
                self._file.truncate(0)
                self._synced = -1
                offset = 0
            tmp = self.cursor_path.with_name(self.cursor_path.name + ".tmp")
            tmp.write_text(str(offset))
            os.replace(tmp, self.cursor_path)
            return offset

    def size(self) -> int:
        """The journal's length in bytes: a cursor there means everything in it was acknowledged."""
        return self.path.stat().st_size

    def backlog(self) -> int:
        """How many records the inbox has not acknowledged yet."""
        return sum(1 for _ in self.pending())
