"""Files that go to the phone with a reply (``/get``, ``/export``, pictures Claude's tools return). Pure.

The bytes travel in the outbox row itself (its ``attachments`` column, base64), not as a path: the row may
be written on the session's host and sent from another machine, the one next to signal-cli-rest-api, and a
reply must survive the file being changed or deleted after it was asked for. ``/v2/send`` takes each file
as a ``data:`` URI with its name (``shared/reference/signal-cli-rest-api.md`` §2.3).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Any

# Signal's CDN refuses uploads over about 100 MB (signal-cli-rest-api sets no limit of its own).
SIGNAL_MAX_BYTES = 100 * 1024 * 1024
# signal-cli answers a send only once its upload is done: allow a slow uplink this many bytes a second.
UPLOAD_BYTES_PER_SECOND = 512 * 1024


@dataclass(frozen=True)
class OutFile:
    """One file to send: its name on the phone, its type, and its content in base64."""

    filename: str
    content_type: str
    data: str  # base64

    @classmethod
    def of(cls, filename: str, content_type: str, raw: bytes) -> OutFile:
        return cls(safe_filename(filename), content_type, base64.b64encode(raw).decode())

    @property
    def size(self) -> int:
        return len(self.data) * 3 // 4 - self.data[-2:].count("=")

    def data_uri(self) -> str:
        return f"data:{self.content_type};filename={self.filename};base64,{self.data}"


def safe_filename(name: str) -> str:
    """A name that cannot break the ``data:`` URI (no ``;`` or ``,``) and is never empty."""
    cleaned = re.sub(r"[;,\s/\\]+", "_", name.rsplit("/", 1)[-1]).strip("._") or "file"
    return cleaned[:120]


PICTURE_TYPES = {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp"}


def picture(media_type: str, data: str, number: int) -> OutFile | None:
    """A tool's image block (base64) as ``picture-<number>.<ext>``; None when it is no picture or no base64."""
    extension = PICTURE_TYPES.get(media_type.lower())
    if extension is None:
        return None
    try:
        raw = base64.b64decode(data, validate=True)
    except ValueError:
        return None
    return OutFile.of(f"picture-{number}.{extension}", media_type.lower(), raw)


def pack(files: list[OutFile]) -> dict[str, Any] | None:
    """The outbox column's value for ``files`` (None for none)."""
    if not files:
        return None
    return {"files": [{"filename": f.filename, "content_type": f.content_type, "data": f.data} for f in files]}


def unpack(column: dict[str, Any] | None) -> list[OutFile]:
    """The files of an outbox row; a malformed entry is skipped rather than blocking the reply."""
    out = []
    for entry in (column or {}).get("files") or []:
        if isinstance(entry, dict) and isinstance(entry.get("data"), str):
            out.append(OutFile(safe_filename(str(entry.get("filename") or "file")),
                               str(entry.get("content_type") or "application/octet-stream"), entry["data"]))
    return out


def upload_allowance(files: list[OutFile]) -> float:
    """Seconds a send with ``files`` may take beyond a text message's bound."""
    return sum(f.size for f in files) / UPLOAD_BYTES_PER_SECOND


def human_size(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / 1048576:.1f} MB"
