"""The event loop serve runs on: uvloop's when configured and installed, else asyncio's."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


def loop_factory(kind: Literal["uvloop", "asyncio"]) -> Callable[[], asyncio.AbstractEventLoop]:
    """A new-loop function for `kind` (asyncio's when uvloop is not installed)."""
    if kind == "uvloop":
        try:
            import uvloop  # noqa: PLC0415
        except ImportError:
            log.warning("serve.event_loop = uvloop, but uvloop is not installed: using asyncio's")
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


def run_on(kind: Literal["uvloop", "asyncio"], main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run(main) on a loop of this kind."""
    with asyncio.Runner(loop_factory=loop_factory(kind)) as runner:
        return runner.run(main)
