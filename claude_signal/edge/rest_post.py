"""JSON POSTs to signal-cli-rest-api over kept-alive HTTP/1.1 connections from the standard library.

A reply is the one outbound call every command makes, and httpx spent about 0.6 ms of CPU on each (its
URL and header models, hooks and transport layers) against about 0.15 ms for ``http.client`` doing the
same request: a sixth of a command's whole cost. So replies go through here; the rare calls (typing, the
probe, attachments) keep httpx.

A POST is never sent twice by this module: a kept connection the server has closed (or written to
unasked) is noticed before it is reused and replaced, and any failure after the request started is the
caller's to retry, as the outbox does.
"""

from __future__ import annotations

import http.client
import json
import select
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

PostFailed = (OSError, http.client.HTTPException)
"""What a POST that did not complete raises: refused, reset, timed out, or a malformed answer."""


@dataclass(frozen=True)
class Answer:
    """The server's answer: status, headers (names in lower case) and body."""

    status_code: int
    headers: dict[str, str]
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body as JSON; ``ValueError`` when it is not."""
        return json.loads(self.content)


class JsonPoster:
    """POSTs JSON to one server, reusing idle connections (one per concurrent caller, kept while healthy).

    ``timeout`` bounds each phase (connect, each write, each read), as a socket timeout does; the caller
    bounds the whole request (see ``SignalClient``)."""

    def __init__(self, base_url: str, timeout: float) -> None:
        parts = urlsplit(base_url)
        self._connection_class = (http.client.HTTPSConnection if parts.scheme == "https"
                                  else http.client.HTTPConnection)
        self._netloc = parts.netloc
        self._prefix = parts.path.rstrip("/")
        self.timeout = timeout
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def post(self, path: str, body: Any, timeout: float | None = None) -> Answer:
        data = json.dumps(body).encode()  # ASCII: a lone surrogate from Claude travels escaped
        conn = self._take(timeout or self.timeout)
        try:
            conn.request("POST", self._prefix + path, body=data, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            answer = Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        except BaseException:
            conn.close()
            raise
        if response.will_close:
            conn.close()
        else:
            with self._lock:
                self._idle.append(conn)
        return answer

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _take(self, timeout: float) -> http.client.HTTPConnection:
        """An idle connection still fit to carry a request, or a new one."""
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return self._connection_class(self._netloc, timeout=timeout)
            if conn.sock is not None and not _readable(conn.sock):
                conn.sock.settimeout(timeout)
                conn.timeout = timeout
                return conn
            conn.close()  # closed by the server (or it wrote unasked): never send a POST into it


def _readable(sock: Any) -> bool:
    """An idle HTTP/1.1 connection has nothing to read; something readable is the server's close."""
    try:
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True
