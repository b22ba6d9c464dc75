"""The stream-json protocol of ``claude -p``, as typed events. Pure: bytes and dicts in, events out.

Tolerant by design: unknown fields are ignored, unknown message types become :class:`Unknown`, lines that
are not JSON (merged stderr, debug noise) become :class:`Noise`, and one ``assistant`` line yields one
event per content block. Reference: ``shared/reference/claude-cli.md`` §2-§4.
"""

from __future__ import annotations

import codecs
import json
from dataclasses import dataclass, field
from typing import Any

DEFAULT_MAX_LINE = 8 * 1024 * 1024
SYNTHETIC_MODEL = "<synthetic>"  # marks an assistant message the CLI wrote itself, not the model


@dataclass(frozen=True)
class SystemInit:
    session_id: str
    cwd: str | None
    model: str | None
    permission_mode: str | None


@dataclass(frozen=True)
class AssistantText:
    text: str
    message_id: str | None = None


@dataclass(frozen=True)
class AssistantThinking:
    text: str


@dataclass(frozen=True)
class ToolUse:
    id: str
    name: str
    input: dict[str, Any]


@dataclass(frozen=True)
class Image:
    """A picture a tool returned (a Read of a PNG, an MCP screenshot): base64, as the API carries it."""

    media_type: str
    data: str


@dataclass(frozen=True)
class ToolResult:
    tool_use_id: str
    content_text: str
    is_error: bool
    images: tuple[Image, ...] = ()


@dataclass(frozen=True)
class Result:
    subtype: str
    is_error: bool
    result_text: str | None
    session_id: str | None
    total_cost_usd: float | None
    duration_ms: int | None
    num_turns: int | None
    errors: list[str] = field(default_factory=list)
    terminal_reason: str | None = None
    api_error_status: int | None = None
    permission_denials: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class ApiRetry:
    attempt: int | None
    max_retries: int | None
    retry_delay_ms: int | None
    error_status: int | None


@dataclass(frozen=True)
class CanUseTool:
    request_id: str
    tool_name: str
    input: dict[str, Any]
    tool_use_id: str | None


@dataclass(frozen=True)
class ControlRequest:
    """A request from the CLI we do not handle (hooks, MCP): answered with an error by the driver."""

    request_id: str
    subtype: str


@dataclass(frozen=True)
class ControlResponse:
    request_id: str
    ok: bool
    response: dict[str, Any]
    error: str | None


@dataclass(frozen=True)
class ControlCancel:
    request_id: str


@dataclass(frozen=True)
class Unknown:
    type: str


@dataclass(frozen=True)
class Noise:
    line: str


@dataclass(frozen=True)
class Oversized:
    size: int


Event = (SystemInit | AssistantText | AssistantThinking | ToolUse | ToolResult | Result | ApiRetry | CanUseTool
         | ControlRequest | ControlResponse | ControlCancel | Unknown | Noise | Oversized)


class LineFramer:
    """Bytes in, complete text lines out: UTF-8 decoded incrementally, split on ``\\n`` only.

    A line longer than ``max_line`` bytes is dropped (reported once as its size) and framing resumes at
    the next newline, so one runaway line never takes the turn down.
    """

    def __init__(self, max_line: int = DEFAULT_MAX_LINE) -> None:
        self.max_line = max_line
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._buf: list[str] = []
        self._size = 0
        self._skipping = False

    def feed(self, chunk: bytes) -> list[str | Oversized]:
        out: list[str | Oversized] = []
        text = self._decoder.decode(chunk)
        while text:
            newline = text.find("\n")
            piece, text = (text, "") if newline < 0 else (text[:newline], text[newline + 1:])
            if not self._skipping:
                self._buf.append(piece)
                self._size += len(piece)
                if self._size > self.max_line:
                    out.append(Oversized(self._size))
                    self._buf, self._skipping = [], True
            if newline >= 0:
                if not self._skipping:
                    out.append("".join(self._buf).rstrip("\r"))
                self._buf, self._size, self._skipping = [], 0, False
        return out

    def close(self) -> list[str]:
        rest = "".join(self._buf) + self._decoder.decode(b"", final=True)
        self._buf, self._size = [], 0
        return [rest.rstrip("\r")] if rest.strip() and not self._skipping else []


def parse_line(line: str) -> list[Event]:
    """One stdout line to zero or more events."""
    stripped = line.strip()
    if not stripped:
        return []
    if not stripped.startswith("{"):
        return [Noise(stripped)]
    try:
        obj = json.loads(stripped)
    except ValueError:
        return [Noise(stripped[:500])]
    if not isinstance(obj, dict):
        return [Noise(stripped[:500])]
    return parse_message(obj)


def parse_message(obj: dict[str, Any]) -> list[Event]:
    kind = obj.get("type")
    if kind == "system":
        if obj.get("subtype") == "init":
            return [SystemInit(str(obj.get("session_id", "")), obj.get("cwd"), obj.get("model"),
                               obj.get("permissionMode"))]
        if obj.get("subtype") == "api_retry":
            return [ApiRetry(obj.get("attempt"), obj.get("max_retries"), obj.get("retry_delay_ms"),
                             obj.get("error_status"))]
        return [Unknown(f"system/{obj.get('subtype')}")]
    if kind == "assistant":
        return _assistant(obj)
    if kind == "user":
        return _tool_results(obj)
    if kind == "result":
        return [_result(obj)]
    if kind == "control_request":
        return [_control_request(obj)]
    if kind == "control_response":
        resp = obj.get("response") or {}
        return [ControlResponse(str(resp.get("request_id", "")), resp.get("subtype") == "success",
                                resp.get("response") or {}, resp.get("error"))]
    if kind == "control_cancel_request":
        return [ControlCancel(str(obj.get("request_id", "")))]
    return [Unknown(str(kind))]


def _assistant(obj: dict[str, Any]) -> list[Event]:
    message = obj.get("message") or {}
    if message.get("model") == SYNTHETIC_MODEL:
        return []  # the CLI's own notice of an API error: the ``result`` that follows says it in plain words
    events: list[Event] = []
    for block in message.get("content") or []:
        if not isinstance(block, dict):
            continue
        btype = block.get("type")
        if btype == "text":
            events.append(AssistantText(str(block.get("text", "")), message.get("id")))
        elif btype == "thinking":
            events.append(AssistantThinking(str(block.get("thinking", ""))))
        elif btype in ("tool_use", "server_tool_use"):
            events.append(ToolUse(str(block.get("id", "")), str(block.get("name", "?")),
                                  block.get("input") if isinstance(block.get("input"), dict) else {}))
    return events


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(c.get("text", "")) for c in content if isinstance(c, dict) and c.get("type") != "image")
    return ""


def _tool_results(obj: dict[str, Any]) -> list[Event]:
    content = (obj.get("message") or {}).get("content")
    if not isinstance(content, list):
        return []
    return [ToolResult(str(b.get("tool_use_id", "")), _content_text(b.get("content")), bool(b.get("is_error")),
                       _images(b.get("content")))
            for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]


def _images(content: Any) -> tuple[Image, ...]:
    """The base64 image blocks of a tool result's content (``claude-cli-interactive.md`` §d)."""
    if not isinstance(content, list):
        return ()
    found = []
    for block in content:
        source = block.get("source") if isinstance(block, dict) and block.get("type") == "image" else None
        if isinstance(source, dict) and source.get("type") == "base64" and isinstance(source.get("data"), str):
            found.append(Image(str(source.get("media_type") or "image/png"), source["data"]))
    return tuple(found)


def _result(obj: dict[str, Any]) -> Result:
    return Result(
        subtype=str(obj.get("subtype", "")), is_error=bool(obj.get("is_error")),
        result_text=obj.get("result") if isinstance(obj.get("result"), str) else None,
        session_id=obj.get("session_id"), total_cost_usd=obj.get("total_cost_usd"),
        duration_ms=obj.get("duration_ms"), num_turns=obj.get("num_turns"),
        errors=[str(e) for e in obj.get("errors") or []], terminal_reason=obj.get("terminal_reason"),
        api_error_status=obj.get("api_error_status"), permission_denials=list(obj.get("permission_denials") or []),
    )


def _control_request(obj: dict[str, Any]) -> Event:
    request = obj.get("request") or {}
    request_id = str(obj.get("request_id", ""))
    if request.get("subtype") == "can_use_tool":
        return CanUseTool(request_id, str(request.get("tool_name", "?")),
                          request.get("input") if isinstance(request.get("input"), dict) else {},
                          request.get("tool_use_id"))
    return ControlRequest(request_id, str(request.get("subtype")))


# ----------------------------------------------------------------------------------------- stdin side


def _line(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def user_message(text: str, blocks: list[dict[str, Any]] | None = None) -> str:
    """A prompt; with ``blocks`` (images) the content is a block array, images before the text."""
    content: str | list[dict[str, Any]] = [*blocks, {"type": "text", "text": text}] if blocks else text
    return _line({"type": "user", "message": {"role": "user", "content": content}, "parent_tool_use_id": None,
                  "session_id": "default"})


def control_request(request_id: str, subtype: str, **fields: Any) -> str:
    return _line({"type": "control_request", "request_id": request_id, "request": {"subtype": subtype, **fields}})


def allow_response(request_id: str, updated_input: dict[str, Any],
                   updated_permissions: list[dict[str, Any]] | None = None) -> str:
    """``updatedInput`` is required on allow; echoing the original input is what the SDK does.
    ``updatedPermissions`` changes the live process's rules (e.g. ``setMode`` after a plan is approved)."""
    body: dict[str, Any] = {"behavior": "allow", "updatedInput": updated_input}
    if updated_permissions:
        body["updatedPermissions"] = updated_permissions
    return _line({"type": "control_response", "response": {"subtype": "success", "request_id": request_id,
                                                            "response": body}})


def deny_response(request_id: str, message: str, *, interrupt: bool = False) -> str:
    return _line({"type": "control_response", "response": {"subtype": "success", "request_id": request_id,
                                                            "response": {"behavior": "deny", "message": message,
                                                                         "interrupt": interrupt}}})


def error_response(request_id: str, error: str) -> str:
    return _line({"type": "control_response", "response": {"subtype": "error", "request_id": request_id,
                                                            "error": error}})
