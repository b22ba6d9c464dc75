"""A scripted Anthropic Messages API on loopback, so the real ``claude`` CLI runs whole turns offline.

The CLI sends the whole conversation with every request (``shared/reference/claude-cli-offline.md``), so the
answer is computed from it, exactly as ``tests/fakes/claude`` computes its own from its transcript:

- a prompt is answered ``Echo: <prompt> (turn N; earlier: <earlier prompts joined by ' | '>)``, which proves
  that ``--resume`` carried the conversation;
- ``run: <command>`` first asks for the Bash tool with that command, and answers once the tool result comes;
- ``ask: <question>`` asks the person through ``AskUserQuestion`` (options ``yes`` and ``no``);
- ``plan: <text>`` calls ``ExitPlanMode`` with that plan;
- ``read: <absolute path>`` asks for the Read tool on that file (a picture comes back as an image block);
- an image block is part of the prompt as ``[image <media type> <decoded size> bytes]``;
- after a tool, the answer gets a second line ``Tool said: <tool results>``;
- ``wait: <text>`` is answered after ``delay`` seconds, as the ``slow`` scenario does for every prompt.

Scenarios, set on the server by the test (``api.scenario = "slow"``): ``slow`` holds the answer for
``delay`` seconds (an interrupt aborts the request), ``overloaded`` answers 529, ``long`` answers with an
overlong text. Every request is recorded (:attr:`requests`).

Run it standalone, then point a real CLI at it::

    python -m tests.fakes.messages_api --port 8091
    ANTHROPIC_BASE_URL=http://127.0.0.1:8091 ANTHROPIC_API_KEY=test claude -p hello
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes.loop_server import LoopServer

REMINDER = re.compile(r"<system-reminder>.*?</system-reminder>", re.S)
INTERRUPTED = "[Request interrupted"


@dataclass(frozen=True)
class Conversation:
    """What a request's ``messages`` say, reduced to what the script answers from."""

    prompts: list[str]  # the person's prompts, oldest first
    tool_results: list[str]  # tool results in the last user message (empty unless Claude used a tool)

    @property
    def prompt(self) -> str:
        return self.prompts[-1] if self.prompts else ""


def _text_of(block: Any) -> str:
    if isinstance(block, str):
        return block
    if isinstance(block, dict) and block.get("type") == "text":
        return str(block.get("text", ""))
    return ""


def describe_image(block: dict[str, Any]) -> str:
    """An image block as the echo shows it: what arrived, checkable by a test."""
    source = block.get("source") or {}
    return f"[image {source.get('media_type')} {len(base64.b64decode(source.get('data', '')))} bytes]"


def read_conversation(messages: list[dict[str, Any]]) -> Conversation:
    prompts: list[str] = []
    results: list[str] = []
    for message in messages:
        if message.get("role") != "user":
            continue
        content = message.get("content")
        blocks = content if isinstance(content, list) else [content]
        results = []
        images: list[str] = []
        for block in blocks:
            if isinstance(block, dict) and block.get("type") == "image":
                images.append(describe_image(block))
                continue
            if isinstance(block, dict) and block.get("type") == "tool_result":
                inner = block.get("content")
                results.append(inner if isinstance(inner, str) else " ".join(_text_of(b) for b in inner or []))
                continue
            text = REMINDER.sub("", _text_of(block)).strip()
            if text and not text.startswith(INTERRUPTED):
                prompts.append(" ".join([*images, text]))
                images = []
    return Conversation(prompts, results)


def script(conversation: Conversation, *, long: bool = False) -> list[dict[str, Any]]:
    """The content blocks of the answer."""
    prompt = conversation.prompt
    run = re.match(r"^run: (.*)$", prompt, re.S)
    ask = re.match(r"^ask: (.*)$", prompt, re.S)
    plan = re.match(r"^plan: (.*)$", prompt, re.S)
    read = re.match(r"^read: (.*)$", prompt, re.S)
    if not conversation.tool_results and run:
        return [{"type": "tool_use", "id": "toolu_" + uuid.uuid4().hex[:20], "name": "Bash",
                 "input": {"command": run[1], "description": f"Run {run[1]}"}}]
    if not conversation.tool_results and ask:
        question = {"question": ask[1], "header": "Question", "multiSelect": False,
                    "options": [{"label": "yes", "description": "Go ahead"},
                                {"label": "no", "description": "Do not"}]}
        return [{"type": "tool_use", "id": "toolu_" + uuid.uuid4().hex[:20], "name": "AskUserQuestion",
                 "input": {"questions": [question]}}]
    if not conversation.tool_results and read:
        return [{"type": "tool_use", "id": "toolu_" + uuid.uuid4().hex[:20], "name": "Read",
                 "input": {"file_path": read[1].strip()}}]
    if not conversation.tool_results and plan:
        return [{"type": "tool_use", "id": "toolu_" + uuid.uuid4().hex[:20], "name": "ExitPlanMode",
                 "input": {"plan": plan[1]}}]
    earlier = conversation.prompts[:-1]
    text = f"Echo: {prompt} (turn {len(conversation.prompts)}; earlier: {' | '.join(earlier) or 'nothing'})"
    if conversation.tool_results:
        text += "\nTool said: " + " ".join(conversation.tool_results)
    if long:
        text += "\n\n" + "\n\n".join(f"Paragraph {i}: " + "lorem ipsum " * 40 for i in range(40))
    return [{"type": "text", "text": text}]


def _events(message_id: str, model: str, blocks: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    usage = {"input_tokens": 25, "output_tokens": 1, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    events: list[tuple[str, dict[str, Any]]] = [("message_start", {"type": "message_start", "message": {
        "id": message_id, "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": usage}})]
    for index, block in enumerate(blocks):
        if block["type"] == "text":
            events.append(("content_block_start", {"type": "content_block_start", "index": index,
                                                   "content_block": {"type": "text", "text": ""}}))
            delta = {"type": "text_delta", "text": block["text"]}
        else:
            events.append(("content_block_start", {"type": "content_block_start", "index": index, "content_block": {
                "type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}}))
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        events.append(("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    stop = "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"
    events.append(("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                                     "usage": {"output_tokens": 40}}))
    events.append(("message_stop", {"type": "message_stop"}))
    return events


class ScriptedMessagesAPI(LoopServer):
    """``POST /v1/messages`` answered from the conversation it is sent; every request kept for assertions."""

    thread_name = "fake-anthropic"

    def __init__(self) -> None:
        super().__init__()
        self.scenario = ""
        self.delay = 30.0
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def conversations(self) -> list[Conversation]:
        """The conversation of every streaming request, in arrival order."""
        with self._lock:
            return [read_conversation(r.get("messages", [])) for r in self.requests if r.get("stream")]

    def _routes(self) -> list[web.RouteDef]:
        return [web.get("/", self._head), web.post("/v1/messages", self._messages),
                web.post("/v1/messages/count_tokens", self._count_tokens)]

    async def _head(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _count_tokens(self, request: web.Request) -> web.Response:
        return web.json_response({"input_tokens": 100})

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        with self._lock:
            self.requests.append(body)
        if self.scenario == "overloaded":
            return web.json_response({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
                                     status=529)
        conversation = read_conversation(body.get("messages", []))
        blocks = script(conversation, long=self.scenario == "long")
        model = body.get("model", "claude-test")
        message_id = "msg_" + uuid.uuid4().hex[:24]
        if not body.get("stream"):
            return web.json_response({"id": message_id, "type": "message", "role": "assistant", "model": model,
                                      "content": blocks, "stop_reason": "end_turn", "stop_sequence": None,
                                      "usage": {"input_tokens": 25, "output_tokens": 40}})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        events = _events(message_id, model, blocks)
        await self._write(response, *events[0])
        slow = self.scenario == "slow" or conversation.prompt.startswith("wait: ")
        if slow and conversation.prompt and not conversation.tool_results:
            deadline = time.monotonic() + self.delay
            while time.monotonic() < deadline:  # a ping now and then, as the real API sends while it thinks
                await asyncio.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
                with contextlib.suppress(ConnectionError):
                    await self._write(response, "ping", {"type": "ping"})
                if request.transport is None or request.transport.is_closing():
                    return response  # the CLI gave up on this request (an interrupt)
        for event, data in events[1:]:
            await self._write(response, event, data)
        with contextlib.suppress(ConnectionError):
            await response.write_eof()
        return response

    @staticmethod
    async def _write(response: web.StreamResponse, event: str, data: dict[str, Any]) -> None:
        await response.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8091)
    parser.add_argument("--scenario", default="")
    args = parser.parse_args()
    api = ScriptedMessagesAPI()
    api.scenario = args.scenario
    api.start(args.port)
    print(f"scripted Messages API on {api.url}; Ctrl-C stops it")
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()
    api.stop()


if __name__ == "__main__":
    main()
