"""Outbound calls to signal-cli-rest-api: send a message, show or hide the typing indicator.

Errors are sorted into those worth retrying (429, 5xx, connection trouble, per-recipient network or rate
limit failures) and final ones (400: bad recipient, untrusted keys, …). A 429 is the rate-limit challenge:
its message tells the operator what to do, since only a person can solve the captcha.
"""

from __future__ import annotations

import logging
import os
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


class SignalClient:
    """A small synchronous client; one per process, reusing its connections.

    ``timeout`` bounds a whole send, not each phase of it: a server that trickles its answer a byte at a
    time must not hold one POST past the lane and the claim a sender holds for it. Each step (connect,
    write, read) gets at most a third of the bound and never more than what is left of it. Sends go through
    :class:`~claude_signal.edge.rest_post.JsonPoster`; the typing indicator through httpx.
    """

    def __init__(self, base_url: str, account: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.account = account
        self.timeout = timeout
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout / 3)
        self._poster = JsonPoster(self.base_url)

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
        """POST within ``timeout`` overall; past it the send counts as failed, to be retried."""
        try:
            return self._poster.post(path, body, timeout=timeout, phase_timeout=timeout / 3)
        except TimeoutError:
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
