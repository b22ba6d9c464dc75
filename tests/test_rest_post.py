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

BOUND = {"timeout": 3.0, "phase_timeout": 1.0}


@dataclass
class Behaviour:
    raw_answer: bytes | None = None  # written as it is instead of the usual answer
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
    heads: list[bytes] = field(default_factory=list)


def _read_request(conn: socket.socket, heads: list[bytes]) -> dict | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    heads.append(head)
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
            request = _read_request(conn, state.heads)
            if request is None:
                return
            state.requests.append(request)
            b = state.behaviour
            if b.raw_answer is not None:
                conn.sendall(b.raw_answer)
                if b.close_after_answer:
                    return
                continue
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
    poster = JsonPoster(server.url)
    answers = [poster.post("/v2/send", {"message": f"m{i}"}, **BOUND) for i in range(5)]
    assert [a.json() for a in answers] == [[{"timestamp": "1700000000000"}]] * 5
    assert [r["message"] for r in server.requests] == [f"m{i}" for i in range(5)]
    assert server.connections == 1
    poster.close()


def test_a_connection_the_server_closed_while_idle_is_replaced_and_the_post_goes_once(
        server: CountingServer) -> None:
    """Servers close idle keep-alive connections; writing a POST into one would fail after the fact (or be
    read twice on a retry): it is seen closed before reuse, and the POST goes out once on a new one."""
    server.behaviour.close_after_answer = True
    poster = JsonPoster(server.url)
    poster.post("/v2/send", {"message": "first"}, **BOUND)
    assert server.closed.acquire(timeout=5)  # the server has closed its end of the idle connection
    answer = poster.post("/v2/send", {"message": "second"}, **BOUND)
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
        JsonPoster(f"http://127.0.0.1:{port}").post("/v2/send", {}, **BOUND)
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
    poster = JsonPoster(server.url)
    poster.post("/v2/send", {"message": "odd \ud800 text"}, **BOUND)
    assert server.requests[0]["message"] == "odd \ud800 text"


@pytest.mark.parametrize(("raw", "keeps"), [
    (b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"7\r\n[{\"time\r\n11;ext=1\r\nstamp\": \"17000000\r\n8\r\n00000\"}]\r\n0\r\nTrailer: x\r\n\r\n", True),
    (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 32\r\n\r\n"
     b'[{"timestamp": "1700000000000"}]', True),
    (b"HTTP/1.1 201 Created\r\nConnection: close\r\nContent-Length: 32\r\n\r\n"
     b'[{"timestamp": "1700000000000"}]', False),
])
def test_chunked_interim_and_closing_answers_are_read_whole(server: CountingServer, raw: bytes, keeps: bool) -> None:
    server.behaviour.raw_answer = raw
    server.behaviour.close_after_answer = not keeps
    client = SignalClient(server.url, "+15550000001", timeout=3)
    assert client.send("alice", "one").timestamp == 1700000000000
    if not keeps:
        assert server.closed.acquire(timeout=5)
    assert client.send("alice", "two").timestamp == 1700000000000
    assert server.connections == (1 if keeps else 2)
    client.close()


def test_an_answer_that_ends_with_the_connection_is_read_to_its_end(server: CountingServer) -> None:
    server.behaviour.raw_answer = b'HTTP/1.0 201 Created\r\n\r\n[{"timestamp": "1700000000000"}]'
    server.behaviour.close_after_answer = True
    assert JsonPoster(server.url).post("/v2/send", {}, **BOUND).json() == [{"timestamp": "1700000000000"}]


@pytest.mark.parametrize("raw", [b"SSH-2.0-OpenSSH_9.2\r\n\r\n", b"HTTP/1.1 201 Created\r\nContent-Length: x\r\n\r\n",
                                 b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"])
def test_an_answer_that_is_not_http_is_a_retryable_failure(server: CountingServer, raw: bytes) -> None:
    server.behaviour.raw_answer = raw
    client = SignalClient(server.url, "+15550000001", timeout=3)
    with pytest.raises(SendError) as failed:
        client.send("alice", "hello")
    assert failed.value.retryable and "cannot reach" in str(failed.value)
    server.behaviour.raw_answer = None
    assert client.send("alice", "again").timestamp == 1700000000000  # on a new connection
    assert server.connections == 2


def test_the_request_names_the_host_and_credentials_of_the_url(server: CountingServer) -> None:
    url = server.url.replace("http://", "http://bot:s%40cret@")
    JsonPoster(url + "/api/").post("/v2/send", {"message": "x"}, **BOUND)
    head = server.heads[0].decode()
    assert head.startswith("POST /api/v2/send HTTP/1.1\r\n")
    assert f"Host: {server.url.removeprefix('http://')}\r\n" in head
    assert "Authorization: Basic Ym90OnNAY3JldA==\r\n" in head  # bot:s@cret
    assert "Content-Type: application/json" in head
