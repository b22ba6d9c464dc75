"""Batching what Claude does into a few phone messages. Pure: the caller supplies the clock.

A busy turn produces hundreds of events; the phone should get a handful of messages. Text and one-line
tool summaries accumulate and are released when the batch is big enough, old enough, or the turn needs
the user's attention (an approval request) or ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_MAX_CHARS = 1800
DEFAULT_MAX_AGE = 4.0


@dataclass
class Batcher:
    max_chars: int = DEFAULT_MAX_CHARS
    max_age: float = DEFAULT_MAX_AGE
    parts: list[str] = field(default_factory=list)
    first_at: float | None = None
    size: int = 0

    def add_text(self, text: str, now: float) -> list[str]:
        """Assistant prose: its own paragraph."""
        text = text.strip()
        return self._add(text, now) if text else []

    def add_tool(self, summary: str, now: float) -> list[str]:
        """A tool use, shown as one line with a marker so it reads apart from prose."""
        return self._add(f"› {summary}", now)

    def withdraw(self, summary: str) -> bool:
        """Take a tool line back out of the batch (its approval request shows it instead); False if it
        was already sent."""
        part = f"› {summary}"
        if part not in self.parts:
            return False
        index = len(self.parts) - 1 - self.parts[::-1].index(part)
        del self.parts[index]
        self.size -= len(part) + 2
        if not self.parts:
            self.first_at, self.size = None, 0
        return True

    def due(self, now: float) -> list[str]:
        """Release the batch if it has waited long enough (call this on every idle tick)."""
        if self.first_at is not None and now - self.first_at >= self.max_age:
            return self.flush()
        return []

    def flush(self) -> list[str]:
        if not self.parts:
            return []
        text = "\n\n".join(_join_tools(self.parts))
        self.parts, self.first_at, self.size = [], None, 0
        return [text]

    def _add(self, part: str, now: float) -> list[str]:
        out: list[str] = []
        if self.parts and self.size + len(part) > self.max_chars:
            out = self.flush()
        if self.first_at is None:
            self.first_at = now
        self.parts.append(part)
        self.size += len(part) + 2
        if self.size >= self.max_chars:
            out += self.flush()
        return out


def _join_tools(parts: list[str]) -> list[str]:
    """Consecutive tool lines stay together as one block, one per line."""
    blocks: list[str] = []
    for part in parts:
        if part.startswith("› ") and blocks and blocks[-1].startswith("› "):
            blocks[-1] += "\n" + part
        else:
            blocks.append(part)
    return blocks
