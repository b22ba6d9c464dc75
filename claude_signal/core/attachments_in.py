"""Pictures and files from the phone: checked when the message arrives (a clear reply instead of a turn that
cannot work), fetched from signal-cli-rest-api by id when the turn runs on the session's host.

Images Claude's API accepts go in as image content blocks of the stream-json user message; anything else is
saved inside the project (``.claude-signal/files/``) and Claude is told its path, since its Read tool
handles PDFs, other images and text itself (``shared/reference/claude-cli-interactive.md`` §c).
"""

from __future__ import annotations

import base64
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from claude_signal.wire.inbound import FileRef, InboundMessage

IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
MAX_IMAGE = 5 * 1024 * 1024 * 3 // 4  # the API's 5 MB counts the base64 text
MAX_FILE = 25 * 1024 * 1024
FOLDER = ".claude-signal/files"


def is_image(ref: FileRef) -> bool:
    return ref.content_type.lower() in IMAGE_TYPES


def refusal(msg: InboundMessage) -> str | None:
    """Why the attachments of ``msg`` cannot go to Claude, in words for the phone; None when they can."""
    if msg.attachments and not msg.files:
        return "That attachment did not come through in a form I can fetch; send it again."
    for ref in msg.files:
        name = ref.filename or ref.content_type
        if ref.size is not None and is_image(ref) and ref.size > MAX_IMAGE:
            return (f"The picture {name} is {ref.size / 1048576:.1f} MB; Claude takes pictures up to "
                    f"{MAX_IMAGE / 1048576:.1f} MB. Send it smaller (Signal's standard quality).")
        if ref.size is not None and ref.size > MAX_FILE:
            return f"{name} is {ref.size / 1048576:.1f} MB; files up to {MAX_FILE // 1048576} MB can be passed on."
    return None


def safe_name(ref: FileRef) -> str:
    """A file name that stays inside the folder whatever the sender called it."""
    raw = Path(ref.filename or ref.id).name
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", raw).lstrip(".") or "file"
    return f"{int(time.time())}-{cleaned[:80]}"


@dataclass
class Prepared:
    """What the turn sends: content blocks before the text, lines added to the prompt, notes for the phone."""

    blocks: list[dict[str, Any]] = field(default_factory=list)
    prompt_lines: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class FetchFailed(Exception):
    """signal-cli-rest-api did not hand the attachment over; ``str()`` is the reply."""


def files_of(payload: dict[str, Any] | None) -> list[FileRef]:
    """The attachments recorded with the inbound message (its inbox payload)."""
    return [FileRef.model_validate(f) for f in (payload or {}).get("files") or []]


def fetch(signal_api: str, ident: str, timeout: float) -> bytes:
    try:
        response = httpx.get(f"{signal_api.rstrip('/')}/v1/attachments/{ident}", timeout=timeout)
        response.raise_for_status()
    except httpx.HTTPError as error:
        raise FetchFailed(f"Could not fetch your attachment from Signal ({error.__class__.__name__}); "
                          "send it again.") from None
    return response.content


def prepare(files: list[FileRef], project: str, signal_api: str, timeout: float = 30.0) -> Prepared:
    """Fetch each file once: images become blocks, the rest is saved in the project."""
    out = Prepared()
    for ref in files:
        data = fetch(signal_api, ref.id, timeout)
        if is_image(ref) and len(data) <= MAX_IMAGE:
            out.blocks.append({"type": "image", "source": {"type": "base64", "media_type": ref.content_type.lower(),
                                                           "data": base64.b64encode(data).decode()}})
            continue
        folder = Path(project) / FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / safe_name(ref)
        target.write_bytes(data)
        relative = target.relative_to(project)
        out.prompt_lines.append(f"[The user sent a file ({ref.content_type}); it is saved at {relative}]")
        out.notes.append(f"Saved {ref.filename or 'your file'} as {relative} (add .claude-signal/ to .gitignore).")
    return out


def prompt_with(prompt: str, prepared: Prepared) -> str:
    """The text part of the message: the caption, the saved files' paths, or a nudge for a lone picture."""
    lines = [*prepared.prompt_lines, prompt] if prompt.strip() else prepared.prompt_lines
    if not lines and prepared.blocks:
        return "(The user sent this picture without a caption.)"
    return "\n".join(lines) if lines else prompt
