"""Batching what Claude does into a few phone messages. Pure: the caller supplies the clock.

A busy turn produces hundreds of events; the phone should get a handful of messages. Text and one-line
tool summaries accumulate and are released when the batch is big enough, old enough, or the turn needs
the user's attention (an approval request) or ends. A batch that grew big enough still waits a moment
(:data:`FULL_GRACE`) for what comes next: a long final answer then goes out with the turn's cost line in
its last message, instead of the cost line buzzing the phone on its own. A quiet batcher (``/quiet on``)
keeps tool lines out of the stream and folds them into one line at the end of the answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_MAX_CHARS = 1800
DEFAULT_MAX_AGE = 4.0
FULL_GRACE = 0.5  # seconds a full batch waits for the next event or the turn's end


@dataclass
class Batcher:
    max_chars: int = DEFAULT_MAX_CHARS
    max_age: float = DEFAULT_MAX_AGE
    parts: list[str] = field(default_factory=list)
    first_at: float | None = None
    size: int = 0
    quiet: bool = False
    folded: list[str] = field(default_factory=list)  # quiet: the tool lines held for the answer's end
    full_at: float = 0.0  # when the batch grew big enough

    def add_text(self, text: str, now: float) -> list[str]:
        """Assistant prose: its own paragraph."""
        text = text.strip()
        return self._add(text, now) if text else []

    def add_tool(self, summary: str, now: float) -> list[str]:
        """A tool use, shown as one line with a marker so it reads apart from prose (quiet: held back)."""
        if self.quiet:
            self.folded.append(summary)
            return []
        return self._add(f"› {summary}", now)

    def withdraw(self, summary: str) -> bool:
        """Take a tool line back out of the batch (its approval request shows it instead); False if it
        was already sent."""
        if self.quiet:
            if summary not in self.folded:
                return False
            del self.folded[len(self.folded) - 1 - self.folded[::-1].index(summary)]
            return True
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
        if self.first_at is None:
            return []
        full = self.size >= self.max_chars and now - self.full_at >= FULL_GRACE
        return self.flush() if full or now - self.first_at >= self.max_age else []

    def finish(self) -> list[str]:
        """The rest of the batch when the turn ends; quiet, the tool lines come folded at its end."""
        if self.folded:
            self.parts.append(fold(self.folded))
            self.folded = []
        return self.flush()

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
            self.full_at = now  # released by the next part, the next tick after FULL_GRACE, or the end
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


def fold(summaries: list[str]) -> str:
    """Tool lines as one line, ``› 3 tools: Bash ×2, Edit``; a tool that did not run keeps its own line."""
    ran = [t for t in summaries if not t.startswith("✗ ")]
    counts: dict[str, int] = {}
    for summary in ran:
        name = summary.split(":", 1)[0].split(" ", 1)[0]
        counts[name] = counts.get(name, 0) + 1
    names = ", ".join(f"{name} ×{n}" if n > 1 else name for name, n in counts.items())
    lines = [f"› {len(ran)} tool{'' if len(ran) == 1 else 's'}: {names}"] if ran else []
    return "\n".join([*lines, *(f"› {t}" for t in summaries if t.startswith("✗ "))])
