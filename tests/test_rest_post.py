"""The reply path's HTTP client: kept-alive connections, never a POST sent twice, errors the outbox can retry.

A small socket server stands in for signal-cli-rest-api so each test controls what the connection does
(keep it, close it while idle, reset it mid-answer) and counts connections and requests exactly.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from claude_signal.edge.rest_post import JsonPoster, PostFailed
from claude_signal.edge.signal_client import SendError, SignalClient


@dataclass
class Behaviour:
    close_after_answer: bool = False  # close the socket after answering, without saying so (idle timeout)
    reset_before_answer: bool = False  # read the request, then drop the connection without answering
    status: int = 201
    body: bytes = b'[{"timestamp": "1700000000000"}]'
    extra_headers: bytes = b""


@dataclass
class CountingServer:
    url: str
    behaviour: Behaviour
    connections: int = 0
    closed: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))
    requests: list[dict] = field(default_factory=list)


def _read_request(conn: socket.socket) -> dict | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length"))
    while len(rest) < length:
        rest += conn.recv(65536)
    return json.loads(rest)


@pytest.fixture
def server() -> Iterator[CountingServer]:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    state = CountingServer(f"http://127.0.0.1:{listener.getsockname()[1]}", Behaviour())
    stop = threading.Event()

    def handle(conn: socket.socket) -> None:
        try:
            answer(conn)
        finally:
            conn.close()
            state.closed.release()

    def answer(conn: socket.socket) -> None:
        while not stop.is_set():
            request = _read_request(conn)
            if request is None:
                return
            state.requests.append(request)
            b = state.behaviour
            if b.reset_before_answer:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                return
            conn.sendall(b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s"
                         % (b.status, len(b.body), b.extra_headers, b.body))
            if b.close_after_answer:
                return

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            state.connections += 1
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield state
    stop.set()
    thread.join(timeout=5)
    listener.close()


def test_posts_share_one_kept_alive_connection(server: CountingServer) -> None:
    poster = JsonPoster(server.url, timeout=3)
    answers = [poster.post("/v2/send", {"message": f"m{i}"}) for i in range(5)]
    assert [a.json() for a in answers] == [[{"timestamp": "1700000000000"}]] * 5
    assert [r["message"] for r in server.requests] == [f"m{i}" for i in range(5)]
    assert server.connections == 1
    poster.close()


def test_a_connection_the_server_closed_while_idle_is_replaced_and_the_post_goes_once(
        server: CountingServer) -> None:
    """Servers close idle keep-alive connections; writing a POST into one would fail after the fact (or be
    read twice on a retry): it is seen closed before reuse, and the POST goes out once on a new one."""
    server.behaviour.close_after_answer = True
    poster = JsonPoster(server.url, timeout=3)
    poster.post("/v2/send", {"message": "first"})
    assert server.closed.acquire(timeout=5)  # the server has closed its end of the idle connection
    answer = poster.post("/v2/send", {"message": "second"})
    assert answer.status_code == 201
    assert [r["message"] for r in server.requests] == ["first", "second"]
    assert server.connections == 2


def test_a_connection_dropped_mid_answer_is_an_error_to_retry_and_is_not_reused(server: CountingServer) -> None:
    client = SignalClient(server.url, "+15550000001", timeout=3)
    server.behaviour.reset_before_answer = True
    with pytest.raises(SendError) as failed:
        client.send("alice", "hello")
    assert failed.value.retryable and "cannot reach signal-cli-rest-api" in str(failed.value)
    assert len(server.requests) == 1  # sent once, not retried behind the outbox's back
    server.behaviour.reset_before_answer = False
    assert client.send("alice", "again").timestamp == 1700000000000
    assert server.connections == 2
    client.close()


def test_refused_connection_is_retryable() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    with pytest.raises(PostFailed):
        JsonPoster(f"http://127.0.0.1:{port}", timeout=1).post("/v2/send", {})
    client = SignalClient(f"http://127.0.0.1:{port}", "+15550000001", timeout=1)
    with pytest.raises(SendError) as failed:
        client.send("alice", "hello")
    assert failed.value.retryable


def test_answers_keep_their_status_headers_and_body(server: CountingServer) -> None:
    server.behaviour.status = 429
    server.behaviour.body = b'{"error": "rate", "challenge_tokens": ["tok"]}'
    server.behaviour.extra_headers = b"Retry-After: 17\r\n"
    client = SignalClient(server.url, "+15550000001", timeout=3)
    with pytest.raises(SendError) as failed:
        client.send("alice", "hello")
    assert failed.value.status == 429 and failed.value.retry_after == 17.0 and "tok" in str(failed.value)
    server.behaviour.status, server.behaviour.body = 400, b"not json"
    with pytest.raises(SendError) as refused:
        client.send("alice", "hello")
    assert not refused.value.retryable and "not json" in str(refused.value)
    assert server.connections == 1  # error answers leave the connection fit for reuse


def test_a_lone_surrogate_travels_escaped(server: CountingServer) -> None:
    """Claude's output can hold a lone UTF-16 surrogate; the body stays encodable and the server gets it
    escaped (Go's JSON decoder makes it U+FFFD) instead of the send failing for good."""
    poster = JsonPoster(server.url, timeout=3)
    poster.post("/v2/send", {"message": "odd \ud800 text"})
    assert server.requests[0]["message"] == "odd \ud800 text"
