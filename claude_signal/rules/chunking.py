"""Fitting a reply to a phone: Signal's 2000-byte bodies, code in monospace, long text as an attachment.

Pure functions. A long reply is split where a reader would pause (a blank line, the edge of a code block,
then a line end, then a space) and every part stays under the limit in UTF-8 bytes. A code block cut in
two is closed at the end of one part and reopened at the start of the next, so both render as code.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

SIGNAL_MAX_BYTES = 2000
FENCE = re.compile(r"^```")
PART_MARK_RESERVE = 12  # room for " (12/34)"


@dataclass(frozen=True)
class Part:
    text: str
    text_mode: str = "normal"


@dataclass(frozen=True)
class Delivery:
    """What to post for one outbox row: text parts in order, plus at most one attachment."""

    parts: list[Part]
    attached_text: str | None = None

    @property
    def attachment(self) -> str | None:
        """The attached text as a data: URI, as /v2/send takes it (built only when sending)."""
        if self.attached_text is None:
            return None
        data = base64.b64encode(self.attached_text.encode("utf-8")).decode()
        return f"data:text/plain;filename=reply.txt;base64,{data}"

    def count(self) -> int:
        return len(self.parts)


def size(text: str) -> int:
    return len(text.encode("utf-8"))


def _cut_bytes(text: str, limit: int) -> tuple[str, str]:
    """Cut ``text`` so the head fits ``limit`` bytes, never inside a character, preferring a space."""
    encoded = text.encode("utf-8")
    if len(encoded) <= limit:
        return text, ""
    head = encoded[:limit].decode("utf-8", errors="ignore")
    space = head.rfind(" ")
    if space > len(head) // 2:
        head = head[: space + 1]
    return head, text[len(head):]


def _pack(pieces: list[str], sep: str, limit: int) -> list[str]:
    """Join consecutive pieces with ``sep`` while the result fits ``limit`` bytes."""
    parts: list[str] = []
    current = ""
    for piece in pieces:
        candidate = f"{current}{sep}{piece}" if current else piece
        if current and size(candidate) > limit:
            parts.append(current)
            current = piece
        else:
            current = candidate
    if current:
        parts.append(current)
    return parts


def _lines_within(text: str, limit: int) -> list[str]:
    """Split one oversized block at line ends, and oversized lines at spaces or characters."""
    out: list[str] = []
    run: list[str] = []
    for line in text.split("\n"):
        if size(line) > limit:
            out += _pack(run, "\n", limit)
            run = []
            while size(line) > limit:
                head, line = _cut_bytes(line, limit)
                out.append(head)
        run.append(line)
    return out + _pack(run, "\n", limit)


def _blocks(text: str) -> list[tuple[str, str | None]]:
    """Paragraphs and code blocks, in order: (text, fence opener when it is code)."""
    blocks: list[tuple[str, str | None]] = []
    lines = text.split("\n")
    i = 0
    paragraph: list[str] = []

    def end_paragraph() -> None:
        if paragraph and any(p.strip() for p in paragraph):
            blocks.append(("\n".join(paragraph).strip("\n"), None))
        paragraph.clear()

    while i < len(lines):
        line = lines[i]
        if FENCE.match(line.strip()):
            end_paragraph()
            opener = line.strip()
            body: list[str] = []
            i += 1
            while i < len(lines) and not FENCE.match(lines[i].strip()):
                body.append(lines[i])
                i += 1
            i += 1  # the closing fence (or the end of an unclosed block)
            blocks.append(("\n".join(body), opener))
            continue
        if not line.strip():
            end_paragraph()
        else:
            paragraph.append(line)
        i += 1
    end_paragraph()
    return blocks


def split_text(text: str, limit: int = SIGNAL_MAX_BYTES) -> list[str]:
    """Split ``text`` into parts of at most ``limit`` UTF-8 bytes at natural boundaries."""
    if size(text) <= limit:
        return [text]
    pieces: list[str] = []
    for body, opener in _blocks(text):
        if opener is None:
            pieces.extend(_lines_within(body, limit))
            continue
        wrap = size(opener) + size("\n\n```")
        for chunk in _lines_within(body, max(64, limit - wrap)):
            pieces.append(f"{opener}\n{chunk}\n```")
    return _pack(pieces, "\n\n", limit)


def to_styled(text: str) -> str:
    """signal-cli's styled mode knows `mono`, not fences: a code block becomes one monospace span."""
    out: list[str] = []
    for body, opener in _blocks(text) if "```" in text else [(text, None)]:
        if opener is None:
            out.append(body)
        elif body.strip():
            out.append("`" + body.replace("`", "'") + "`")
    return "\n\n".join(out)


def plan(text: str, *, styled: bool = False, attachment_over: int = 8000,
         limit: int = SIGNAL_MAX_BYTES) -> Delivery:
    """Decide how to post ``text``: one message, numbered parts, or a preview plus a text attachment."""
    mode = "styled" if styled and ("`" in text) else "normal"
    if size(text) > attachment_over:
        preview = split_text(text, limit - 200)[0]
        note = f"{preview}\n\n… {size(text) // 1024 + 1} KB in all; the full text is attached."
        return Delivery([_render(note, mode)], attached_text=text)
    raw_parts = split_text(text, limit - PART_MARK_RESERVE)
    if len(raw_parts) == 1:
        return Delivery([_render(text, mode)])
    total = len(raw_parts)
    return Delivery([_render(f"{p}\n({n}/{total})", mode) for n, p in enumerate(raw_parts, 1)])


def _render(text: str, mode: str) -> Part:
    if mode == "styled":
        styled = to_styled(text)
        if size(styled) <= SIGNAL_MAX_BYTES:
            return Part(styled, "styled")
    return Part(text, "normal")
