"""Two changes to how signalbot 2.x reads its websocket, so one odd frame never costs the frames behind it.

signal-cli-rest-api in json-rpc mode keeps nothing: whatever it had written to a socket that closes is gone.
signalbot closes its socket in two cases we must avoid: a frame over websockets' default ``max_size``
(1 MiB; long texts and quotes exceed it) ends the connection with code 1009, and any exception escaping
``parse`` ends its producer. Both are patched here, once per process, before the bot starts.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024


class _LimitedWebsockets:
    """Stands in for the ``websockets`` module inside signalbot's client: ``connect`` with our frame limit."""

    def __init__(self, module: Any, max_size: int | None) -> None:
        self._module = module
        self.max_size = max_size

    def connect(self, uri: str, **kwargs: Any) -> Any:
        kwargs.setdefault("max_size", self.max_size)
        return self._module.connect(uri, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


def accept_large_frames(max_size: int | None = DEFAULT_MAX_FRAME_BYTES) -> None:
    """Let signalbot's websocket take frames up to ``max_size`` bytes (None: no limit).

    signalbot opens its socket with ``websockets.connect(uri, additional_headers=…)`` and no ``max_size``.
    A bound stays by default: a frame is held in memory whole, twice while it is parsed.
    """
    from signalbot._client import messages

    current = messages.websockets
    module = current._module if isinstance(current, _LimitedWebsockets) else current
    messages.websockets = _LimitedWebsockets(module, max_size)  # type: ignore[assignment]


def tolerate_bad_frames() -> None:
    """Keep the websocket open when a frame does not parse.

    signalbot 2.x lets a frame that fails validation (signal-cli's ``{"error": …}`` frames among them)
    escape its producer, which then drops the socket and reconnects; frames the server had already written
    to the old socket are lost with it, and json-rpc mode keeps no copy. Any frame ``parse`` cannot read is
    logged and skipped instead, through the skip path signalbot already has for unknown formats; so is
    a frame that is not JSON at all, which signalbot skips without a word.
    """
    from signalbot import _pipeline
    from signalbot.messages.parser import UnknownMessageFormatError

    original = getattr(_pipeline, "parse", None)
    if original is None or getattr(original, "_claude_signal", False):
        return

    async def parse(signal: Any, raw: str) -> Any:
        try:
            return await original(signal, raw)
        except UnknownMessageFormatError as unknown:
            if isinstance(unknown.__cause__, ValueError):  # signalbot skips it silently: not JSON at all
                log.warning("skipped a frame that is not JSON: %.300r", raw)
            raise
        except Exception as error:  # noqa: BLE001 - one frame must never cost the socket
            log.warning("skipped a frame signalbot cannot read (%s: %.200s): %.300s", type(error).__name__,
                        error, raw)
            raise UnknownMessageFormatError(str(error)) from None

    parse._claude_signal = True  # type: ignore[attr-defined]
    _pipeline.parse = parse  # type: ignore[assignment]
