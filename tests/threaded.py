"""The real serve app on its own event-loop thread, for synchronous (hypothesis) tests.

Hypothesis drives a test function synchronously, example after example; the bot under test
must keep running between them. This runs `ServeRuntime` in a background thread with its
own loop (the Slack emulator does the same) and offers a blocking HTTP client to it.
"""

from __future__ import annotations

import asyncio
import http.client
import threading
from dataclasses import dataclass
from typing import Any

from bot.app.serve import ServeRuntime
from bot.config import Settings


@dataclass(frozen=True)
class Answer:
    """One HTTP answer."""

    status: int
    headers: dict[str, str]
    body: bytes


class ThreadedServe:
    """ServeRuntime on a private loop thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="serve", daemon=True)
        self.runtime = ServeRuntime(settings)

    def start(self) -> ThreadedServe:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.runtime.start(), self.loop).result(60)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runtime.stop(), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)
        self.loop.close()

    def call(self, coro: Any, timeout: float = 30.0) -> Any:
        """Run a coroutine on the bot's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Answer:
        """One request on a fresh connection (the server may close it after a refusal)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.runtime.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        finally:
            conn.close()
