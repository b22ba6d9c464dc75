"""Outbound calls to signal-cli-rest-api: send a message, show or hide the typing indicator.

Errors are sorted into those worth retrying (429, 5xx, connection trouble, per-recipient network or rate
limit failures) and final ones (400: bad recipient, untrusted keys, …). A 429 is the rate-limit challenge:
its message tells the operator what to do, since only a person can solve the captcha.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

import httpx

from claude_signal.edge.rest_post import Answer, JsonPoster, PostFailed

log = logging.getLogger(__name__)

RETRYABLE_RECIPIENT_FAILURES = {"NETWORK_FAILURE", "RATE_LIMIT_FAILURE"}


class SendError(Exception):
    def __init__(self, message: str, *, retryable: bool, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True)
class SentReceipt:
    timestamp: int | None


def _error_text(response: Answer) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict) and "error" in body:
        return str(body["error"])
    return response.text[:300]


def _rate_limit_hint(account: str, response: Answer) -> str:
    try:
        tokens = response.json().get("challenge_tokens") or []
    except (ValueError, AttributeError):
        tokens = []
    token = tokens[0] if tokens else "<token>"
    return (f"Signal rate-limited account {account}. To lift it, solve a captcha at "
            "https://signalcaptchas.org/challenge/generate.html and POST "
            f'{{"challenge_token": "{token}", "captcha": "signalcaptcha://…"}} to '
            f"/v1/accounts/{account}/rate-limit-challenge on signal-cli-rest-api.")


def parse_send_response(body: Any) -> SentReceipt:
    """REST 0.101+ answers with a list (one entry per recipient class), older ones with an object."""
    entries = body if isinstance(body, list) else [body]
    timestamp: int | None = None
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        if timestamp is None and entry.get("timestamp") is not None:
            timestamp = int(entry["timestamp"])
        failures = ((entry.get("errors") or {}).get("recipients")) or []
        reasons = {str(f.get("reason")) for f in failures if isinstance(f, dict)}
        if reasons:
            retryable = bool(reasons & RETRYABLE_RECIPIENT_FAILURES)
            raise SendError(f"recipient failure: {', '.join(sorted(reasons))}", retryable=retryable, status=201)
    return SentReceipt(timestamp)


class _Senders:
    """A few daemon threads that run calls handed to them, started as needed and kept: a thread per call
    costs more than a short reply's own bookkeeping, and a call stuck past its caller's wait must neither
    hold up the process's exit nor the next call (it waits for a free thread, within its own bound)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._calls: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = (
            queue.SimpleQueue())
        self._threads = 0
        self._idle = 0
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future[Any]:
        answer: Future[Any] = Future()
        self._calls.put((answer, fn, args, kwargs))
        with self._lock:
            if self._idle == 0 and self._threads < self.size:
                self._threads += 1
                threading.Thread(target=self._serve, name="signal-send", daemon=True).start()
        return answer

    def _serve(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            answer, fn, args, kwargs = self._calls.get()
            with self._lock:
                self._idle -= 1
            try:
                answer.set_result(fn(*args, **kwargs))
            except BaseException as error:  # noqa: BLE001 - handed to the waiting caller
                answer.set_exception(error)


class SignalClient:
    """A small synchronous client; one per process, reusing its connections.

    ``timeout`` bounds a whole send, not each phase of it: socket timeouts apply per connect, write and
    read, so a server that trickles its answer could hold one POST far longer, past the lane and the claim
    a sender holds for it. Each phase gets a third of the bound, so the request is written (or abandoned)
    well within it, and the caller stops waiting when the bound is up. Sends go through
    :class:`~claude_signal.edge.rest_post.JsonPoster`; the typing indicator through httpx.
    """

    def __init__(self, base_url: str, account: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.account = account
        self.timeout = timeout
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout / 3)
        self._poster = JsonPoster(self.base_url, timeout / 3)
        # POSTs run on these threads, so the caller can stop waiting when the bound is up; reused, since
        # starting a thread per reply costs more than the reply's own bookkeeping.
        self._senders = _Senders(4)

    def close(self) -> None:
        self._http.close()
        self._poster.close()

    def send(self, recipient: str, text: str, *, text_mode: str = "normal",
             base64_attachments: list[str] | None = None, timeout: float | None = None) -> SentReceipt:
        """``timeout`` overrides the client's bound for this send (files take longer to upload)."""
        body: dict[str, Any] = {"number": self.account, "recipients": [recipient], "message": text,
                                "text_mode": text_mode}
        if base64_attachments:
            body["base64_attachments"] = base64_attachments
        response = self._post("/v2/send", body, timeout or self.timeout)
        if response.status_code == 429:
            hint = _rate_limit_hint(self.account, response)
            log.warning("%s", hint)
            raise SendError(f"429 rate limited: {hint}", retryable=True, status=429,
                            retry_after=_retry_after(response))
        if response.status_code >= 500:
            raise SendError(f"{response.status_code}: {_error_text(response)}", retryable=True,
                            status=response.status_code)
        if response.status_code >= 400:
            raise SendError(f"{response.status_code}: {_error_text(response)}", retryable=False,
                            status=response.status_code)
        try:
            return parse_send_response(response.json())
        except ValueError:
            return SentReceipt(None)

    def set_typing(self, recipient: str, typing: bool) -> None:
        """Best effort: a missing typing indicator is never worth failing or retrying work for."""
        method = "PUT" if typing else "DELETE"
        try:
            self._http.request(method, f"/v1/typing-indicator/{self.account}", json={"recipient": recipient})
        except httpx.HTTPError as error:
            log.info("typing indicator for %s failed: %s", recipient, error)

    def _post(self, path: str, body: dict[str, Any], timeout: float) -> Answer:
        """POST within ``timeout`` overall; an answer that comes later is abandoned (its thread ends on the
        per-phase timeouts) and the send counts as failed, to be retried."""
        answer: Future[Answer] = self._senders.submit(self._poster.post, path, body, timeout / 3)
        try:
            return answer.result(timeout=timeout)
        except FutureTimeout:
            raise SendError(f"signal-cli-rest-api at {self.base_url} did not answer within {timeout:g}s",
                            retryable=True) from None
        except PostFailed as error:
            raise SendError(f"cannot reach signal-cli-rest-api at {self.base_url}: {error or type(error).__name__}",
                            retryable=True) from None


def _retry_after(response: Answer) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return float(value) if value else None
    except ValueError:
        return None


_clients: dict[tuple[int, str, str], SignalClient] = {}


def client_for(base_url: str, account: str, timeout: float) -> SignalClient:
    """The process's client for this server and account (a forked child makes its own)."""
    key = (os.getpid(), base_url, account)
    client = _clients.get(key)
    if client is None:
        client = _clients[key] = SignalClient(base_url, account, timeout=timeout)
    return client


MIN_REST_VERSION = (0, 101)


def probe(base_url: str, timeout: float = 3.0) -> str | None:
    """What is wrong with the signal-cli-rest-api at ``base_url``, in one line, or None when it will do.

    signalbot 2.x needs json-rpc mode and version 0.101 or newer; with anything else it retries forever
    without saying why, so ``up`` and ``check`` ask first.
    """
    try:
        about = httpx.get(f"{base_url.rstrip('/')}/v1/about", timeout=timeout).json()
    except (httpx.HTTPError, ValueError) as error:
        return f"signal-cli-rest-api is not reachable at {base_url} ({type(error).__name__}); is it running?"
    mode = str(about.get("mode", ""))
    if not mode.startswith("json-rpc"):
        return (f"signal-cli-rest-api at {base_url} runs in {mode or 'an unknown'} mode; the listener needs "
                "MODE=json-rpc (set it on the container and restart it)")
    version = str(about.get("version", ""))
    try:
        numbers = tuple(int(p) for p in version.split(".")[:2])
    except ValueError:
        return None  # "unset" or a development build: signalbot accepts those too
    if numbers < MIN_REST_VERSION:
        return (f"signal-cli-rest-api at {base_url} is version {version}; the listener needs 0.101 or newer "
                "(pull bbernhard/signal-cli-rest-api:latest)")
    return None
