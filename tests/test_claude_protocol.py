"""The stream-json parser and line framer, on lines shaped like the real CLI's."""

from __future__ import annotations

import json

from claude_signal.claude import protocol as p


def test_assistant_line_yields_one_event_per_block() -> None:
    line = json.dumps({"type": "assistant", "message": {"id": "msg_1", "content": [
        {"type": "thinking", "thinking": "hmm", "signature": "s"},
        {"type": "text", "text": "Two files."},
        {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}}]},
        "session_id": "s", "unexpected": {"field": 1}})
    assert p.parse_line(line) == [p.AssistantThinking("hmm"), p.AssistantText("Two files.", "msg_1"),
                                  p.ToolUse("toolu_1", "Bash", {"command": "ls"})]


def test_result_control_and_unknown_types() -> None:
    result = p.parse_line(json.dumps({"type": "result", "subtype": "success", "is_error": True,
                                      "result": "Not logged in · Please run /login", "total_cost_usd": 0,
                                      "terminal_reason": "api_error", "uuid": "u"}))[0]
    assert isinstance(result, p.Result) and result.is_error and result.terminal_reason == "api_error"
    ask = p.parse_line(json.dumps({"type": "control_request", "request_id": "r1", "request": {
        "subtype": "can_use_tool", "tool_name": "Bash", "input": {"command": "git status"}, "tool_use_id": "t"}}))
    assert ask == [p.CanUseTool("r1", "Bash", {"command": "git status"}, "t")]
    assert p.parse_line('{"type":"control_cancel_request","request_id":"r1"}') == [p.ControlCancel("r1")]
    assert p.parse_line('{"type":"rate_limit_event","rate_limit_info":{}}') == [p.Unknown("rate_limit_event")]
    assert p.parse_line('{"type":"system","subtype":"hook_started"}') == [p.Unknown("system/hook_started")]


def test_noise_and_blank_lines() -> None:
    assert p.parse_line("[SandboxDebug] starting") == [p.Noise("[SandboxDebug] starting")]
    assert p.parse_line("{not json") == [p.Noise("{not json")]
    assert p.parse_line("   ") == []


def test_framer_joins_utf8_split_at_any_byte() -> None:
    line = json.dumps({"type": "assistant", "message": {"content": [{"type": "text", "text": "héllo 🙂 wörld"}]}},
                      ensure_ascii=False).encode() + b"\r\n"
    framer = p.LineFramer()
    lines: list = []
    for i in range(len(line)):
        lines += framer.feed(line[i:i + 1])
    assert len(lines) == 1
    assert p.parse_line(lines[0]) == [p.AssistantText("héllo 🙂 wörld")]


def test_framer_handles_big_lines_and_recovers_from_oversized_ones() -> None:
    big = json.dumps({"type": "assistant", "message": {"content": [{"type": "text", "text": "x" * 3_000_000}]}})
    framer = p.LineFramer(max_line=8 * 1024 * 1024)
    out = framer.feed(big.encode()[:1000]) + framer.feed(big.encode()[1000:] + b"\n")
    assert len(out) == 1 and len(out[0]) == len(big)
    small = p.LineFramer(max_line=1000)
    out = small.feed(b"{" + b"y" * 5000 + b"}\n" + b'{"type":"keep_alive"}\n')
    assert isinstance(out[0], p.Oversized) and out[1] == '{"type":"keep_alive"}'


def test_stdin_lines() -> None:
    assert json.loads(p.user_message("hi")) == {"type": "user", "message": {"role": "user", "content": "hi"},
                                                "parent_tool_use_id": None, "session_id": "default"}
    allow = json.loads(p.allow_response("r1", {"command": "ls"}))
    assert allow["response"]["response"] == {"behavior": "allow", "updatedInput": {"command": "ls"}}


def test_tool_result_images_are_kept_apart_from_its_text() -> None:
    line = json.dumps({"type": "user", "message": {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": [
            {"type": "text", "text": "a chart"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0K"}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}]},
        {"type": "tool_result", "tool_use_id": "toolu_2", "content": "plain"}]}})
    first, second = p.parse_line(line)
    assert first == p.ToolResult("toolu_1", "a chart", False, (p.Image("image/png", "iVBORw0K"),))
    assert second == p.ToolResult("toolu_2", "plain", False, ())


def test_the_clis_own_error_notice_is_not_a_reply() -> None:
    """2.1.x writes an API failure as an assistant message of model ``<synthetic>`` before the result;
    the result's plain-language text is what reaches the phone, not the raw notice with its gateway address."""
    notice = json.dumps({"type": "assistant", "message": {"id": "m", "model": "<synthetic>", "content": [
        {"type": "text", "text": "API Error: 529 Overloaded. If it persists, check your inference gateway "
                                 "(127.0.0.1:42947)."}]}, "error": "overloaded"})
    assert p.parse_line(notice) == []
