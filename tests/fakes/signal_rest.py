"""A fake signal-cli-rest-api (json-rpc mode) that the real signalbot 2.x client and our sender talk to.

It speaks the contract of ``shared/reference/signal-cli-rest-api.md`` §2: the endpoints signalbot calls at
start-up and while running, the websocket ``/v1/receive/{number}`` with schema-complete frames, and
``/v2/send`` answering with the 0.101+ array. Around it sits a control surface, as a Python API (tests) and
as ``/_test/*`` routes (a person driving the system by hand): inject envelopes, read what was sent, inject
faults.

Delivery modes: ``faithful`` drops a frame when no socket is attached, as the real server does;
``buffered`` keeps frames until a socket attaches, so tests that drop the socket stay deterministic.

Run it standalone::

    python -m tests.fakes.signal_rest --account +15550000001 --port 8080
    curl -XPOST localhost:8080/_test/direct -d '{"sender": "+15550000002", "text": "/session help"}'
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.loop_server import LoopServer

VERSION = "0.101"
Predicate = Callable[[dict[str, Any]], bool]


@dataclass
class Contact:
    number: str
    uuid: str
    name: str


@dataclass
class Group:
    internal_id: str
    name: str
    members: list[str]
    revision: int = 1

    @property
    def id(self) -> str:
        return "group." + base64.b64encode(self.internal_id.encode()).decode()

    def entry(self) -> dict[str, Any]:
        """A group as ``GET /v1/groups/{n}`` lists it: every field signalbot 2.x requires."""
        return {"name": self.name, "description": "", "id": self.id, "internal_id": self.internal_id,
                "members": list(self.members), "blocked": False, "member": True, "pending_invites": [],
                "pending_requests": [], "invite_link": "", "admins": list(self.members[:1]),
                "permissions": {"add_members": "every-member", "edit_group": "every-member",
                                "send_messages": "every-member"}}


@dataclass(frozen=True)
class SentFile:
    """An attachment the bot sent, as the phone would get it."""

    content_type: str | None
    filename: str | None
    data: bytes

    @classmethod
    def parse(cls, value: str) -> SentFile:
        if not value.startswith("data:"):
            return cls(None, None, base64.b64decode(value, validate=True))
        head, _, payload = value.partition(",")
        fields = head.removeprefix("data:").split(";")
        if fields[-1] != "base64":
            raise ValueError(f"not a base64 data URI: {head}")
        name = next((f.removeprefix("filename=") for f in fields[1:-1] if f.startswith("filename=")), None)
        return cls(fields[0] or None, name, base64.b64decode(payload, validate=True))


def new_internal_id() -> str:
    """32 random bytes in base64 with no ``+`` or ``/`` (signalbot's group-id check expects neither)."""
    while True:
        value = base64.b64encode(secrets.token_bytes(32)).decode()
        if "+" not in value and "/" not in value:
            return value


@dataclass
class Faults:
    down: bool = False
    send_failures: list[int] = field(default_factory=list)
    planned: dict[int, int] = field(default_factory=dict)  # send attempt number -> status
    partial_failures: list[str] = field(default_factory=list)


class FakeSignalServer(LoopServer):
    """One account's signal-cli-rest-api, served from a background thread with its own event loop."""

    thread_name = "fake-signal"

    def __init__(self, account: str = "+15550000001", *, mode: str = "buffered") -> None:
        if mode not in ("buffered", "faithful"):
            raise ValueError("mode is 'buffered' or 'faithful'")
        self.account = account
        self.mode = mode
        self.contacts: dict[str, Contact] = {}
        self.groups: dict[str, Group] = {}
        self.faults = Faults()
        self.echo_own_sends_to_self = False
        self.about_mode = "json-rpc"  # what /v1/about reports; "normal" is the wrong-mode setup
        self.about_version = VERSION
        self._sent: list[dict[str, Any]] = []
        self._requests: list[tuple[str, str, Any]] = []
        self._backlog: list[str] = []
        self._sockets: set[web.WebSocketResponse] = set()
        self._connections = 0
        self._clock = int(time.time() * 1000)
        self._send_attempts = 0
        self._attachments: dict[str, tuple[bytes, str]] = {}  # id -> (bytes, content type)
        self._intercept: Callable[[dict[str, Any]], int | None] | None = None
        self._cond = threading.Condition()
        super().__init__()

    # ---------------------------------------------------------------- lifecycle

    @property
    def service(self) -> str:
        """``host:port`` as signalbot's ``signal_service`` takes it (no scheme)."""
        return f"127.0.0.1:{self.port}"

    async def _on_shutdown(self) -> None:
        for ws in list(self._sockets):
            await ws.close()

    # ---------------------------------------------------------------- directory

    def contact(self, number: str, uuid_: str | None = None, name: str = "") -> Contact:
        found = self.contacts.get(number)
        if found is None:
            found = self.contacts[number] = Contact(number, uuid_ or str(uuid.uuid4()), name or number)
        return found

    def add_group(self, name: str, members: list[str] | None = None) -> Group:
        group = Group(new_internal_id(), name, [self.account, *(members or [])])
        self.groups[group.internal_id] = group
        return group

    def next_timestamp(self) -> int:
        """Milliseconds, unique and increasing, like Signal's."""
        with self._cond:
            self._clock = max(self._clock + 1, int(time.time() * 1000))
            return self._clock

    # ---------------------------------------------------------------- envelopes

    def _envelope(self, sender: str, timestamp: int, body: dict[str, Any]) -> dict[str, Any]:
        person = self.contact(sender)
        return {"account": self.account, "envelope": {
            "source": person.number, "sourceNumber": person.number, "sourceUuid": person.uuid,
            "sourceName": person.name, "sourceDevice": 1, "timestamp": timestamp,
            "serverReceivedTimestamp": timestamp + 4, "serverDeliveredTimestamp": timestamp + 8, **body}}

    @staticmethod
    def _data(timestamp: int, text: str, *, group: Group | None = None, quote: dict[str, Any] | None = None,
              attachments: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {"timestamp": timestamp, "message": text, "expiresInSeconds": 0, "viewOnce": False}
        if group is not None:
            data["groupInfo"] = {"groupId": group.internal_id, "groupName": group.name,
                                 "revision": group.revision, "type": "DELIVER"}
        if quote is not None:
            data["quote"] = quote
        if attachments:
            data["attachments"] = attachments
        return data

    def _quote(self, timestamp: int | None) -> dict[str, Any] | None:
        if timestamp is None:
            return None
        me = self.contact(self.account)
        return {"id": timestamp, "author": me.number, "authorNumber": me.number, "authorUuid": me.uuid,
                "text": "", "attachments": []}

    def attachment(self, data: bytes, content_type: str, filename: str | None = None) -> dict[str, Any]:
        """Store a received attachment as signal-cli does (served by ``GET /v1/attachments/{id}``) and return
        the entry a received frame lists for it."""
        extension = {"image/png": ".png", "image/jpeg": ".jpg"}.get(content_type, "")
        ident = secrets.token_urlsafe(12) + extension
        self._attachments[ident] = (data, content_type)
        return {"contentType": content_type, "filename": filename, "id": ident, "size": len(data),
                "width": 0, "height": 0, "caption": None, "uploadTimestamp": self.next_timestamp(),
                "isVoiceNote": False}

    def direct(self, sender: str, text: str, *, timestamp: int | None = None,
               quote_timestamp: int | None = None, attachments: list[dict[str, Any]] | None = None) -> int:
        """A 1:1 data message from ``sender`` (a number) to the bot; returns its timestamp."""
        ts = timestamp or self.next_timestamp()
        self.inject(self._envelope(sender, ts, {"dataMessage": self._data(
            ts, text, quote=self._quote(quote_timestamp), attachments=attachments)}))
        return ts

    def group_message(self, sender: str, group: Group, text: str, *, timestamp: int | None = None) -> int:
        ts = timestamp or self.next_timestamp()
        self.inject(self._envelope(sender, ts, {"dataMessage": self._data(ts, text, group=group)}))
        return ts

    def note_to_self(self, text: str, *, timestamp: int | None = None) -> int:
        """What a linked bot sees when its owner writes in Note to Self on the phone: a sync transcript."""
        return self.sync_sent(self.account, text, timestamp=timestamp)

    def sync_sent(self, destination: str | Group, text: str, *, timestamp: int | None = None,
                  source_device: int = 1, sender: str | None = None) -> int:
        """A message the account's owner sent from another device to ``destination`` (a number or a group);
        ``sender`` puts it in someone else's envelope, as a forger would."""
        ts = timestamp or self.next_timestamp()
        if isinstance(destination, Group):
            sent = self._data(ts, text, group=destination)
        else:
            dest = self.contact(destination)
            sent = {"destination": dest.number, "destinationNumber": dest.number, "destinationUuid": dest.uuid,
                    "timestamp": ts, "message": text, "expiresInSeconds": 0, "viewOnce": False}
        frame = self._envelope(sender or self.account, ts, {"syncMessage": {"sentMessage": sent}})
        frame["envelope"]["sourceDevice"] = source_device
        self.inject(frame)
        return ts

    def edit(self, sender: str, target_timestamp: int, text: str, *, timestamp: int | None = None) -> int:
        ts = timestamp or self.next_timestamp()
        self.inject(self._envelope(sender, ts, {"editMessage": {
            "targetSentTimestamp": target_timestamp, "dataMessage": self._data(ts, text)}}))
        return ts

    def reaction(self, sender: str, emoji: str, target_timestamp: int, *, target_author: str | None = None,
                 remove: bool = False, timestamp: int | None = None) -> int:
        ts = timestamp or self.next_timestamp()
        author = self.contact(target_author or self.account)
        data = {"timestamp": ts, "expiresInSeconds": 0, "viewOnce": False, "reaction": {
            "emoji": emoji, "targetAuthor": author.number, "targetAuthorNumber": author.number,
            "targetAuthorUuid": author.uuid, "targetSentTimestamp": target_timestamp, "isRemove": remove}}
        self.inject(self._envelope(sender, ts, {"dataMessage": data}))
        return ts

    def typing(self, sender: str, action: str = "STARTED") -> None:
        ts = self.next_timestamp()
        self.inject(self._envelope(sender, ts, {"typingMessage": {"action": action, "timestamp": ts}}))

    def receipt(self, sender: str, timestamps: list[int]) -> None:
        ts = self.next_timestamp()
        self.inject(self._envelope(sender, ts, {"receiptMessage": {
            "when": ts, "isDelivery": True, "isRead": False, "isViewed": False, "timestamps": timestamps}}))

    def error_frame(self, text: str = "org.asamk.signal.manager.api.UntrustedIdentityException") -> None:
        """signal-cli errors reach the socket as ``{"error": …}`` frames."""
        self.inject({"error": text})

    def inject(self, frame: dict[str, Any]) -> None:
        """Hand a frame to every attached socket; without one, buffer it (buffered) or drop it (faithful)."""
        self.inject_raw(json.dumps(frame))

    def inject_raw(self, payload: str) -> None:
        """Any text as one websocket frame, JSON or not (what a broken or hostile server might send)."""
        if self._call(lambda: self._broadcast(payload)) is None:  # not serving
            self._keep(payload)

    def take_backlog(self) -> list[dict[str, Any]]:
        """The frames waiting for a socket, removed: lets unit tests parse exactly what would be sent."""
        with self._cond:
            backlog, self._backlog = self._backlog, []
        return [json.loads(p) for p in backlog]

    def _keep(self, payload: str) -> None:
        with self._cond:
            if self.mode == "buffered":
                self._backlog.append(payload)

    async def _broadcast(self, payload: str) -> int:
        delivered = 0
        for ws in list(self._sockets):
            if ws.closed:
                continue
            try:
                await ws.send_str(payload)
                delivered += 1
            except ConnectionError:
                continue
        if not delivered:
            self._keep(payload)
        return delivered

    # ---------------------------------------------------------------- faults and observations

    def set_down(self, down: bool) -> None:
        """While down, every REST call answers 503 and sockets are refused, as while the container restarts."""
        self.faults.down = down
        if down:
            self.drop_websockets()

    def fail_next_sends(self, count: int, status: int = 500) -> None:
        """The next ``count`` sends fail: 429 with challenge tokens, 400, 500, … ."""
        with self._cond:
            self.faults.send_failures.extend([status] * count)

    def fail_send_after(self, successes: int, status: int = 500) -> None:
        """Let ``successes`` more sends through, then fail one (e.g. in the middle of a multi-part reply)."""
        with self._cond:
            self.faults.planned[self._send_attempts + successes + 1] = status

    def intercept_next_send(self, hook: Callable[[dict[str, Any]], int | None]) -> None:
        """Call ``hook`` with the body of the next send before it is taken; a status it returns fails the send
        (nothing is delivered), None lets it through. Tests kill a worker there, mid-POST."""
        with self._cond:
            self._intercept = hook

    def fail_next_send_for_recipients(self, reason: str = "NETWORK_FAILURE") -> None:
        """The next send is accepted (201) with a per-recipient failure, as group sends often are."""
        with self._cond:
            self.faults.partial_failures.append(reason)

    def drop_websockets(self) -> None:
        """Close every attached socket from the server side; signalbot reconnects with backoff."""
        async def close_all() -> None:
            for ws in list(self._sockets):
                await ws.close(code=1011, message=b"dropped by test")
        self._call(close_all)

    @property
    def connections(self) -> int:
        """How many websocket connections have been accepted so far."""
        return self._connections

    def connected(self) -> bool:
        with self._cond:
            return bool(self._sockets)

    def wait_connected(self, timeout: float = 20.0, after: int = 0) -> None:
        """Block until a socket is attached (and, with ``after``, until more than that many were accepted)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not (self._sockets and self._connections > after):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no websocket attached to the fake signal server")
                self._cond.wait(left)

    def sent(self) -> list[dict[str, Any]]:
        """Bodies of the ``/v2/send`` calls that succeeded, oldest first."""
        with self._cond:
            return list(self._sent)

    @staticmethod
    def files_of(sent: dict[str, Any]) -> list[SentFile]:
        """The attachments of one ``/v2/send`` body, decoded: ``<b64>``, ``data:<mime>;base64,<b64>`` or
        ``data:<mime>;filename=<name>;base64,<b64>`` (signal-cli-rest-api.md §2.3)."""
        return [SentFile.parse(str(a)) for a in sent.get("base64_attachments") or []]

    def sent_since(self, index: int, timeout: float = 20.0) -> tuple[list[dict[str, Any]], int]:
        """The sends after the first ``index`` ones, waiting up to ``timeout`` for one; and the new index
        (a cheap poll for benchmarks that count replies by the thousand)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._sent) <= index:
                left = deadline - time.monotonic()
                if left <= 0:
                    return [], index
                self._cond.wait(left)
            return self._sent[index:], len(self._sent)

    def requests(self, path_prefix: str = "") -> list[tuple[str, str, Any]]:
        """Every request received: (method, path, JSON body or None)."""
        with self._cond:
            return [r for r in self._requests if r[1].startswith(path_prefix)]

    def wait_for_sent(self, predicate: Predicate, count: int = 1, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Block until ``count`` successful sends match; returns them."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                matched = [m for m in self._sent if predicate(m)]
                if len(matched) >= count:
                    return matched
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(matched)} of {count} expected sends after {timeout}s; "
                                       f"sent: {[m.get('message', '')[:80] for m in self._sent]}")
                self._cond.wait(left)

    # ---------------------------------------------------------------- HTTP

    def _routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v1/health", self._health),
            web.get("/v1/about", self._about),
            web.get("/v1/groups/{number}", self._groups),
            web.get("/v1/groups/{number}/{group_id}", self._group),
            web.put("/v1/groups/{number}/{group_id}", self._no_content),
            web.get("/v1/receive/{number}", self._receive),
            web.get("/v1/attachments", self._attachment_ids),
            web.get("/v1/attachments/{id}", self._attachment),
            web.post("/v2/send", self._send),
            web.put("/v1/typing-indicator/{number}", self._recipient_call),
            web.delete("/v1/typing-indicator/{number}", self._recipient_call),
            web.post("/v1/reactions/{number}", self._reaction),
            web.delete("/v1/reactions/{number}", self._reaction),
            web.post("/v1/receipts/{number}", self._recipient_call),
            web.delete("/v1/remote-delete/{number}", self._timestamped),
            web.post("/v1/accounts/{number}/rate-limit-challenge", self._no_content),
            web.put("/v1/contacts/{number}", self._no_content),
            web.post("/_test/direct", self._t_direct),
            web.post("/_test/group", self._t_group),
            web.post("/_test/note-to-self", self._t_note_to_self),
            web.post("/_test/reaction", self._t_reaction),
            web.post("/_test/fail-sends", self._t_fail_sends),
            web.post("/_test/drop-websockets", self._t_drop),
            web.get("/_test/sent", self._t_sent),
        ]

    async def _body(self, request: web.Request) -> Any:
        """Bodies are JSON whatever the Content-Type (signalbot sends text/plain), as gin's BindJSON reads."""
        raw = await request.text()
        body = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = ValueError
        with self._cond:
            self._requests.append((request.method, request.path, None if body is ValueError else body))
        return body

    @staticmethod
    def _error(status: int, text: str, **extra: Any) -> web.Response:
        return web.json_response({"error": text, **extra}, status=status)

    def _wrong_number(self, request: web.Request) -> web.Response | None:
        number = request.match_info.get("number")
        if number is not None and number != self.account:
            return self._error(400, "User " + number + " is not registered.")
        return None

    def _unavailable(self) -> web.Response | None:
        return self._error(503, "signal-cli is restarting") if self.faults.down else None

    async def _attachment_ids(self, request: web.Request) -> web.Response:
        return web.json_response(sorted(self._attachments))

    async def _attachment(self, request: web.Request) -> web.Response:
        self._requests.append(("GET", request.path, None))
        found = self._attachments.get(request.match_info["id"])
        if found is None:
            return self._error(404, "Couldn't find attachment")
        return web.Response(body=found[0], content_type=found[1])

    async def _health(self, request: web.Request) -> web.Response:
        await self._body(request)
        return self._unavailable() or web.Response(status=204)

    async def _about(self, request: web.Request) -> web.Response:
        await self._body(request)
        return self._unavailable() or web.json_response({
            "versions": ["v1", "v2"], "build": 2, "mode": self.about_mode, "version": self.about_version,
            "capabilities": {"v2/send": ["quotes", "mentions"]}})

    async def _groups(self, request: web.Request) -> web.Response:
        await self._body(request)
        return (self._unavailable() or self._wrong_number(request)
                or web.json_response([g.entry() for g in self.groups.values()]))

    async def _group(self, request: web.Request) -> web.Response:
        await self._body(request)
        wanted = request.match_info["group_id"]
        for group in self.groups.values():
            if wanted in (group.id, group.internal_id):
                return web.json_response(group.entry())
        return self._error(404, "No group with that id found")

    async def _no_content(self, request: web.Request) -> web.Response:
        await self._body(request)
        return self._unavailable() or web.Response(status=204)

    async def _recipient_call(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if body is ValueError or not isinstance(body, dict):
            return self._error(400, "Couldn't process request - invalid request")
        if not body.get("recipient"):
            return self._error(400, "Couldn't process request - recipient missing")
        return self._unavailable() or self._wrong_number(request) or web.Response(status=204)

    async def _reaction(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if not isinstance(body, dict):
            return self._error(400, "Couldn't process request - invalid request")
        for key in ("recipient", "reaction", "target_author", "timestamp"):
            if not body.get(key):
                return self._error(400, f"Couldn't process request - {key} missing")
        return self._unavailable() or web.Response(status=204)

    async def _timestamped(self, request: web.Request) -> web.Response:
        await self._body(request)
        return self._unavailable() or web.json_response({"timestamp": str(self.next_timestamp())}, status=201)

    async def _receive(self, request: web.Request) -> web.StreamResponse:
        await self._body(request)
        if self.faults.down:
            return self._error(503, "signal-cli is restarting")
        if request.match_info["number"] != self.account:
            return self._error(400, "Invalid account")
        ws = web.WebSocketResponse(heartbeat=54, max_msg_size=512)
        if not ws.can_prepare(request).ok:
            return self._error(400, "websocket: the client is not using the websocket protocol: "
                                    "'upgrade' token not found in 'Connection' header")
        await ws.prepare(request)
        with self._cond:
            backlog, self._backlog = self._backlog, []
            self._sockets.add(ws)
            self._connections += 1
            self._cond.notify_all()
        try:
            for payload in backlog:
                await ws.send_str(payload)
            async for message in ws:  # client frames are ignored, as by the real server
                if message.type == WSMsgType.ERROR:
                    break
        finally:
            with self._cond:
                self._sockets.discard(ws)
                self._cond.notify_all()
        return ws

    def _check_recipients(self, recipients: list[Any]) -> str | None:
        groups = [r for r in recipients if isinstance(r, str) and r.startswith("group.")]
        if groups and len(recipients) > 1:
            return "Groups cannot be mixed with other recipients"
        for r in groups:
            try:
                internal = base64.b64decode(r.removeprefix("group."), validate=True).decode()
                if len(base64.b64decode(internal, validate=True)) != 32:
                    raise ValueError
            except ValueError:
                return f"Invalid identifier {r}"
            if internal not in self.groups:
                return f"Invalid identifier {r}"
        for r in recipients:
            if not isinstance(r, str) or not r:
                return "Couldn't process request - invalid request"
        return None

    async def _send(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if body is ValueError or not isinstance(body, dict):
            return self._error(400, "Couldn't process request - invalid request")
        if (down := self._unavailable()) is not None:
            return down
        if body.get("number") != self.account:
            return self._error(400, "Couldn't process request - number missing" if not body.get("number")
                               else f"User {body.get('number')} is not registered.")
        recipients = body.get("recipients") or ([body["recipient"]] if body.get("recipient") else [])
        if not recipients:
            return self._error(400, "Couldn't process request - please provide at least one recipient")
        if (problem := self._check_recipients(recipients)) is not None:
            return self._error(400, problem)
        if body.get("text_mode", "normal") not in ("normal", "styled"):
            return self._error(400, "Invalid text mode")
        for attachment in body.get("base64_attachments") or []:
            try:
                SentFile.parse(str(attachment))
            except ValueError:
                return self._error(400, "Couldn't decode base64 attachment")
        with self._cond:
            hook, self._intercept = self._intercept, None
        if hook is not None and (status := hook(body)) is not None:
            return self._error(status, "Failed to send message")
        with self._cond:
            self._send_attempts += 1
            failure = self.faults.send_failures.pop(0) if self.faults.send_failures else None
            failure = self.faults.planned.pop(self._send_attempts, failure)
            partial = self.faults.partial_failures.pop(0) if self.faults.partial_failures else None
        if failure == 429:
            return self._error(429, "Failed to send message due to rate limiting. Use the attached challenge "
                                    "tokens to lift the rate limit. Send a POST request to "
                                    f"'/v1/accounts/{self.account}/rate-limit-challenge' with the challenge "
                                    "token and a captcha",
                               challenge_tokens=[str(uuid.uuid4())], account=self.account)
        if failure is not None:
            return self._error(failure, "Failed to send message")
        timestamp = self.next_timestamp()
        entry: dict[str, Any] = {"timestamp": str(timestamp)}
        if partial is not None:
            entry["errors"] = {"recipients": [{"number": r, "uuid": "", "reason": partial} for r in recipients]}
            return web.json_response([entry], status=201)
        with self._cond:
            self._sent.append({**body, "recipients": list(recipients), "_timestamp": timestamp})
            self._cond.notify_all()
        if self.echo_own_sends_to_self and self.account in recipients:
            # A second signal-cli of the same account would see this send as a sync transcript.
            frame = self._envelope(self.account, timestamp, {"syncMessage": {"sentMessage": {
                "destination": self.account, "destinationNumber": self.account,
                "destinationUuid": self.contact(self.account).uuid, "timestamp": timestamp,
                "message": body.get("message", ""), "expiresInSeconds": 0, "viewOnce": False}}})
            asyncio.get_running_loop().call_later(0.05, lambda: asyncio.ensure_future(
                self._broadcast(json.dumps(frame))))
        return web.json_response([entry], status=201)

    # ---------------------------------------------------------------- /_test routes (manual driving)

    async def _t_direct(self, request: web.Request) -> web.Response:
        body = await request.json()
        ts = await asyncio.to_thread(self.direct, body["sender"], body.get("text", ""))
        return web.json_response({"timestamp": ts})

    async def _t_group(self, request: web.Request) -> web.Response:
        body = await request.json()
        group = next((g for g in self.groups.values() if g.name == body["group"]), None)
        if group is None:
            group = self.add_group(body["group"], [body["sender"]])
        ts = await asyncio.to_thread(self.group_message, body["sender"], group, body.get("text", ""))
        return web.json_response({"timestamp": ts, "group": group.id})

    async def _t_note_to_self(self, request: web.Request) -> web.Response:
        body = await request.json()
        ts = await asyncio.to_thread(self.note_to_self, body.get("text", ""))
        return web.json_response({"timestamp": ts})

    async def _t_reaction(self, request: web.Request) -> web.Response:
        body = await request.json()
        ts = await asyncio.to_thread(self.reaction, body["sender"], body["emoji"], int(body["target_timestamp"]))
        return web.json_response({"timestamp": ts})

    async def _t_fail_sends(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.fail_next_sends(int(body.get("count", 1)), int(body.get("status", 500)))
        return web.Response(status=204)

    async def _t_drop(self, request: web.Request) -> web.Response:
        for ws in list(self._sockets):
            await ws.close(code=1011, message=b"dropped by test")
        return web.Response(status=204)

    async def _t_sent(self, request: web.Request) -> web.Response:
        return web.json_response(self.sent())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--account", default=os.environ.get("CLAUDE_SIGNAL_ACCOUNT", "+15550000001"))
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--mode", choices=["buffered", "faithful"], default="buffered")
    args = parser.parse_args()
    server = FakeSignalServer(args.account, mode=args.mode).start(args.port)
    print(f"fake signal-cli-rest-api for {args.account} on {server.url} ({args.mode})", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()
    server.stop()


if __name__ == "__main__":
    main()
