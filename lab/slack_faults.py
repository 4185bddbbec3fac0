"""Faults the Slack emulator can inject: rate limits, server errors and slow answers."""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class Fault:
    """How to answer one call instead of answering it normally."""

    status: int | None  # 429 or 5xx; None answers normally, only later
    retry_after: int | None = None  # seconds, sent as Retry-After with 429
    delay: float = 0.0  # seconds to wait before answering
    hold: threading.Event | None = None  # answered only once this is set (a test's release)

    def body(self) -> dict[str, object]:
        """The JSON body Slack sends with this status (for a failing fault)."""
        error = "ratelimited" if self.status == 429 else "internal_error"
        return {"ok": False, "error": error}


HOLD_LIMIT_SECONDS = 60.0


class FaultPlan:
    """Per-method queues of faults, consumed one per call; safe to change from any thread."""

    ANY = "*"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queued: dict[str, list[Fault]] = {}

    def fail_next(
        self,
        method: str,
        times: int = 1,
        *,
        status: int = 429,
        retry_after: int | None = 1,
        delay: float = 0.0,
    ) -> None:
        """The next `times` calls of `method` ("*" for any) answer `status` instead."""
        if status != 429 and not 500 <= status <= 599:
            raise ValueError(f"fault status must be 429 or 5xx, not {status}")
        fault = Fault(status, retry_after if status == 429 else None, delay)
        with self._lock:
            self._queued.setdefault(method, []).extend([fault] * times)

    def slow_next(self, method: str, times: int = 1, *, delay: float) -> None:
        """The next `times` calls of `method` answer normally but only after `delay` seconds."""
        with self._lock:
            self._queued.setdefault(method, []).extend([Fault(None, None, delay)] * times)

    def hold_next(self, method: str) -> threading.Event:
        """The next call of `method` is answered (and takes effect) only once the returned
        event is set: a test orders calls by conditions, not by delays. Released after
        HOLD_LIMIT_SECONDS anyway (a hang guard)."""
        release = threading.Event()
        with self._lock:
            self._queued.setdefault(method, []).append(Fault(None, None, 0.0, release))
        return release

    def take(self, method: str) -> Fault | None:
        """The fault for this call, if one is queued for the method or for any method."""
        with self._lock:
            for key in (method, self.ANY):
                queue = self._queued.get(key)
                if queue:
                    return queue.pop(0)
            return None

    def clear(self) -> None:
        """Drop every queued fault."""
        with self._lock:
            self._queued.clear()

    def pending(self, method: str | None = None) -> int:
        """How many faults are still queued (for one method, or in all)."""
        with self._lock:
            if method is not None:
                return len(self._queued.get(method, []))
            return sum(len(q) for q in self._queued.values())
