"""Append-only audit: one stream per incident (in its script) and a global stream."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio

from state.codec import text, text_map
from state.keys import GLOBAL_AUDIT, IncidentKeys

AUDIT_MAXLEN = 100_000


class AuditLog:
    """Writes and reads the global audit stream."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self.client = client

    async def append_global(self, event: str, **fields: str) -> str:
        """Append one entry; returns its stream id."""
        entry: dict[bytes | bytearray | memoryview[int] | str | int | float, Any] = {
            "event": event,
            "at_ms": str(int(time.time() * 1000)),
        }
        entry.update(fields)
        return text(await self.client.xadd(GLOBAL_AUDIT, entry, maxlen=AUDIT_MAXLEN * 10))

    async def export(
        self,
        stream: str = GLOBAL_AUDIT,
        *,
        since_ms: int | None = None,
        incident: str | None = None,
    ) -> AsyncIterator[str]:
        """Every entry as one JSON line, oldest first (from `since_ms`, of one incident)."""
        last = "-" if since_ms is None else str(max(0, since_ms))
        first = True
        while True:
            batch = await self.client.xrange(stream, min=last, max="+", count=1000)
            if not first and batch:
                batch = batch[1:]
            first = False
            if not batch:
                return
            for sid, fields in batch:
                record = {"id": text(sid)}
                record.update(text_map(fields))
                if incident is None or record.get("incident") == incident:
                    yield json.dumps(record, sort_keys=True)
            last = text(batch[-1][0])


def incident_stream(incident_id: str) -> str:
    """The audit stream of one incident's problem (its entries name the incident)."""
    return IncidentKeys(incident_id.split("-", 1)[0]).audit
