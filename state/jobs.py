"""The job stream: serve enqueues, workers consume with a consumer group and reclaim."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio
from redis.exceptions import ResponseError

from state.codec import text, text_map
from state.keys import JOBS_GROUP, JOBS_STREAM


@dataclass(frozen=True)
class Job:
    """One unit of work for a worker."""

    stream_id: str
    job_id: str
    kind: str
    incident_id: str
    requested_by: str
    enqueued_at_ms: int
    deliveries: int = 1
    extra: Mapping[str, str] = field(default_factory=dict)


_BASE_FIELDS = frozenset({"job_id", "kind", "incident", "requested_by", "enqueued_at_ms"})


class JobQueue:
    """Redis Stream with one consumer group."""

    def __init__(self, client: redis.asyncio.Redis, stream: str = JOBS_STREAM) -> None:
        self.client = client
        self.stream = stream

    async def ensure_group(self) -> None:
        """Create the consumer group (idempotent)."""
        try:
            await self.client.xgroup_create(self.stream, JOBS_GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def enqueue(
        self,
        kind: str,
        incident_id: str,
        requested_by: str,
        extra: Mapping[str, str] | None = None,
    ) -> str:
        """Add a job; returns its job id."""
        job_id = uuid.uuid4().hex
        fields: dict[Any, Any] = {
            "job_id": job_id,
            "kind": kind,
            "incident": incident_id,
            "requested_by": requested_by,
            "enqueued_at_ms": str(int(time.time() * 1000)),
        }
        fields.update(extra or {})
        await self.client.xadd(self.stream, fields)
        return job_id

    @staticmethod
    def _job(sid: object, fields: dict[str, str], deliveries: int = 1) -> Job:
        return Job(
            stream_id=text(sid),
            job_id=fields.get("job_id", ""),
            kind=fields.get("kind", ""),
            incident_id=fields.get("incident", ""),
            requested_by=fields.get("requested_by", ""),
            enqueued_at_ms=int(fields.get("enqueued_at_ms", "0") or 0),
            deliveries=deliveries,
            extra={k: v for k, v in fields.items() if k not in _BASE_FIELDS},
        )

    async def take(self, consumer: str, block_ms: int = 1000) -> Job | None:
        """The next new job for this consumer, or None after block_ms."""
        reply: Any = await self.client.xreadgroup(
            JOBS_GROUP, consumer, {self.stream: ">"}, count=1, block=block_ms
        )
        for _stream, entries in reply or []:
            for sid, fields in entries:
                return self._job(sid, text_map(fields))
        return None

    async def reclaim(self, consumer: str, min_idle_ms: int) -> list[Job]:
        """Jobs of consumers idle longer than min_idle_ms (a dead worker's), now ours."""
        reply: Any = await self.client.xautoclaim(
            self.stream, JOBS_GROUP, consumer, min_idle_time=min_idle_ms, start_id="0-0", count=10
        )
        entries = reply[1] if len(reply) > 1 else []
        return [self._job(sid, text_map(fields), deliveries=2) for sid, fields in entries if fields]

    async def ack(self, job: Job) -> None:
        """Mark a job done and drop it from the stream (the audit keeps its record), so the
        stream holds only jobs not yet done instead of every job ever queued."""
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.xack(self.stream, JOBS_GROUP, job.stream_id)
            pipe.xdel(self.stream, job.stream_id)
            await pipe.execute()
