"""Worker heartbeats: who is alive, so serve can say at once when nobody will run a job."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio

from state.codec import text
from state.keys import WORKERS

# Entries older than this are dropped on every beat (a crashed worker leaves one behind).
_FORGET_AFTER_MS = 86_400_000


@dataclass(frozen=True)
class WorkerBeat:
    """One worker's last heartbeat."""

    consumer: str
    age_seconds: float


class WorkerRegistry:
    """A sorted set of worker names scored by their last heartbeat (ms)."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self.client = client

    async def beat(self, consumer: str) -> None:
        """Say this worker is alive now."""
        now = int(time.time() * 1000)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.zadd(WORKERS, {consumer: now})
            pipe.zremrangebyscore(WORKERS, "-inf", now - _FORGET_AFTER_MS)
            await pipe.execute()

    async def leave(self, consumer: str) -> None:
        """Remove this worker (clean shutdown)."""
        await self.client.zrem(WORKERS, consumer)

    async def alive(self, max_age_seconds: float) -> list[WorkerBeat]:
        """Workers whose last heartbeat is at most `max_age_seconds` old, freshest first."""
        now = int(time.time() * 1000)
        since = now - int(max_age_seconds * 1000)
        raw: Any = await self.client.zrevrangebyscore(WORKERS, "+inf", since, withscores=True)
        return [
            WorkerBeat(text(name), max(0.0, (now - float(score)) / 1000)) for name, score in raw
        ]
