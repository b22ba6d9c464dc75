"""An aiohttp application served from a background thread with its own event loop, for the fakes that
stand in for servers outside the machine (Signal, Anthropic's API). Tests drive them from their own thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from aiohttp import web


class LoopServer:
    """Subclasses provide ``_routes()``; ``start()`` binds 127.0.0.1 and ``stop()`` releases the port."""

    thread_name = "fake-server"

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _routes(self) -> list[web.RouteDef]:
        raise NotImplementedError

    def start(self, port: int | None = None) -> Any:
        """Serve on ``port`` (default: the previous one, so a restart keeps the address; else a free one)."""
        if self._thread is not None:
            return self
        ready = threading.Event()
        errors: list[BaseException] = []
        bind = port if port is not None else (self.port or 0)

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._serve(bind))
            except (OSError, RuntimeError) as error:  # reported to the starting thread
                errors.append(error)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._shutdown())
            loop.close()

        self._thread = threading.Thread(target=serve, name=self.thread_name, daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            self._thread = None
            raise errors[0]
        return self

    def stop(self) -> None:
        """Stop serving: open connections close and the port is released."""
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._thread = None
        self._loop = None

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _serve(self, port: int) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.add_routes(self._routes())
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port, reuse_address=True)
        await site.start()
        sockets = site._server.sockets if site._server else []  # type: ignore[union-attr]
        self.port = sockets[0].getsockname()[1]

    async def _on_shutdown(self) -> None:
        """Close what the subclass holds open (websockets) before the runner goes."""

    async def _shutdown(self) -> None:
        await self._on_shutdown()
        if self._runner is not None:
            await self._runner.cleanup()

    def _call(self, coro_factory: Callable[[], Any]) -> Any:
        """Run a coroutine on the server's loop from a test thread; a no-op when stopped."""
        if self._loop is None:
            return None
        return asyncio.run_coroutine_threadsafe(coro_factory(), self._loop).result(10)
