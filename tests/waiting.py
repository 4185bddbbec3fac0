"""Waiting on conditions, never on the clock: timeouts only catch hangs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")
POLL_SECONDS = 0.02


async def until(
    probe: Callable[[], Awaitable[T | None]],
    *,
    timeout: float = 30.0,  # noqa: ASYNC109 - a hang guard, not a deadline of the work
    what: str = "condition",
) -> T:
    """Await `probe()` until it returns a truthy value; TimeoutError (naming `what`) on a hang."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} not met within {timeout:g} s")
        await asyncio.sleep(POLL_SECONDS)
