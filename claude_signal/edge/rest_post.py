"""JSON POSTs to signal-cli-rest-api over kept-alive HTTP/1.1 connections, each within an overall deadline.

A reply is the one outbound call every command makes. httpx spent about 0.6 ms of CPU on each (its URL and
header models, hooks and transport layers) and the standard library's ``http.client`` 0.17 ms; writing the
request and reading the answer straight off the socket takes 0.06 ms. So replies go through here; the rare
calls (typing, the probe, attachments) keep httpx.

Every blocking step (connect, each write, each read) is bounded by what is left of the POST's deadline, so
the caller needs no thread to stop waiting, and no byte of a request is written once its deadline has
passed: a sender whose claim may have lapsed never posts. A POST is never sent twice here: a kept
connection that the server has closed (or written to unasked) is noticed before reuse and replaced, and
any failure after the request started is the caller's to retry, as the outbox does.
"""

from __future__ import annotations

import base64
import json
import select
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

PostFailed = OSError
"""What a POST that did not complete raises: refused, reset, timed out (``TimeoutError``), or an answer
that is not HTTP (``ConnectionError``)."""

MAX_HEAD = 64 * 1024
MAX_BODY = 16 * 1024 * 1024


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
    """POSTs JSON to one server, reusing idle connections (one per concurrent caller, kept while healthy)."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self._tls = parts.scheme == "https"
        self._host = parts.hostname or "localhost"
        self._port = parts.port or (443 if self._tls else 80)
        self._prefix = parts.path.rstrip("/")
        host_header = parts.netloc.rpartition("@")[2]
        auth = ""
        if parts.username is not None:  # http://user:secret@host, as httpx would send it
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            auth = f"Authorization: Basic {base64.b64encode(pair).decode()}\r\n"
        self._head = (f"Host: {host_header}\r\n{auth}Content-Type: application/json\r\n"
                      "Accept: application/json\r\n")
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()

    def post(self, path: str, body: Any, *, timeout: float, phase_timeout: float) -> Answer:
        """POST ``body`` as JSON; done (answered, or failed) within ``timeout`` seconds, each step within
        ``phase_timeout``. ASCII JSON: a lone surrogate from Claude travels escaped."""
        deadline = time.monotonic() + timeout
        data = json.dumps(body).encode()
        request = (f"POST {self._prefix}{path} HTTP/1.1\r\n{self._head}Content-Length: {len(data)}\r\n\r\n"
                   ).encode() + data
        conn = self._take(deadline, phase_timeout)
        try:
            answer, keep = conn.exchange(request, deadline, phase_timeout)
        except BaseException:
            conn.close()
            raise
        if keep:
            with self._lock:
                self._idle.append(conn)
        else:
            conn.close()
        return answer

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _take(self, deadline: float, phase: float) -> _Connection:
        """An idle connection still fit to carry a request, or a new one."""
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return self._connect(deadline, phase)
            if conn.fit_for_reuse():
                return conn
            conn.close()  # closed by the server (or it wrote unasked): never send a POST into it

    def _connect(self, deadline: float, phase: float) -> _Connection:
        sock = socket.create_connection((self._host, self._port), timeout=_left(deadline, phase))
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls:
                sock.settimeout(_left(deadline, phase))
                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=self._host)
        except BaseException:
            sock.close()
            raise
        return _Connection(sock)


def _left(deadline: float, phase: float) -> float:
    """The bound of the next blocking step; ``TimeoutError`` when the deadline has passed."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the deadline passed")
    return min(phase, left)


class _Connection:
    """One socket and what was read from it past the last answer."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()

    def close(self) -> None:
        self.sock.close()

    def fit_for_reuse(self) -> bool:
        """An idle HTTP/1.1 connection has nothing to read: something readable is the server's close (or
        bytes nobody asked for). Over TLS it may be a session ticket, which is no reason to drop it."""
        if self.buffer:
            return False
        try:
            poller = select.poll()
            poller.register(self.sock, select.POLLIN)
            if not poller.poll(0):
                return True
            if not isinstance(self.sock, ssl.SSLSocket):
                return False
            self.sock.setblocking(False)
            try:
                self.sock.recv(1)
            except ssl.SSLWantReadError:
                return True  # only TLS's own records were waiting
            return False
        except (OSError, ValueError):
            return False

    def exchange(self, request: bytes, deadline: float, phase: float) -> tuple[Answer, bool]:
        """Write ``request`` and read its answer: (answer, whether the connection may carry another)."""
        self.sock.settimeout(_left(deadline, phase))
        view = memoryview(request)
        while view:  # each write bounded by what is left
            sent = self.sock.send(view)
            view = view[sent:]
            if view:
                self.sock.settimeout(_left(deadline, phase))
        while True:
            version, status, headers = self._head(deadline, phase)
            if not 100 <= status < 200:
                break  # an interim answer (100 Continue, unasked) is followed by the real one
        keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = self._chunked(deadline, phase)
        elif "content-length" in headers:
            try:
                length = int(headers["content-length"])
            except ValueError:
                raise ConnectionError(f"bad Content-Length {headers['content-length']!r}") from None
            body = self._exactly(length, deadline, phase)
        elif status in (204, 304):
            body = b""
        else:  # the body ends when the server closes
            body, keep = self._to_close(deadline, phase), False
        return Answer(status, headers, body), keep

    def _fill(self, deadline: float, phase: float, *, eof_ok: bool = False) -> bool:
        self.sock.settimeout(_left(deadline, phase))
        chunk = self.sock.recv(65536)
        if not chunk:
            if eof_ok:
                return False
            raise ConnectionError("the server closed the connection before it answered")
        self.buffer += chunk
        return True

    def _until(self, marker: bytes, limit: int, deadline: float, phase: float) -> bytes:
        while (end := self.buffer.find(marker)) < 0:
            if len(self.buffer) > limit:
                raise ConnectionError("an answer's head is too long")
            self._fill(deadline, phase)
        found = bytes(self.buffer[:end])
        del self.buffer[:end + len(marker)]
        return found

    def _exactly(self, length: int, deadline: float, phase: float) -> bytes:
        if length > MAX_BODY:
            raise ConnectionError(f"an answer of {length} bytes is too long")
        while len(self.buffer) < length:
            self._fill(deadline, phase)
        found = bytes(self.buffer[:length])
        del self.buffer[:length]
        return found

    def _head(self, deadline: float, phase: float) -> tuple[str, int, dict[str, str]]:
        lines = self._until(b"\r\n\r\n", MAX_HEAD, deadline, phase).decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise ConnectionError(f"not an HTTP answer: {lines[0][:80]!r}")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return parts[0], int(parts[1]), headers

    def _chunked(self, deadline: float, phase: float) -> bytes:
        body = bytearray()
        while True:
            size_line = self._until(b"\r\n", MAX_HEAD, deadline, phase)
            try:
                size = int(size_line.split(b";", 1)[0], 16)
            except ValueError:
                raise ConnectionError(f"bad chunk size {size_line[:40]!r}") from None
            if size == 0:
                while self._until(b"\r\n", MAX_HEAD, deadline, phase):  # trailers, up to the empty line
                    pass
                return bytes(body)
            if len(body) + size > MAX_BODY:
                raise ConnectionError("an answer is too long")
            body += self._exactly(size, deadline, phase)
            if self._exactly(2, deadline, phase) != b"\r\n":
                raise ConnectionError("a chunk does not end where its size says")

    def _to_close(self, deadline: float, phase: float) -> bytes:
        while self._fill(deadline, phase, eof_ok=True):
            if len(self.buffer) > MAX_BODY:
                raise ConnectionError("an answer is too long")
        body = bytes(self.buffer)
        self.buffer.clear()
        return body
