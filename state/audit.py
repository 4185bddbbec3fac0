"""Append-only audit: one stream per incident (in its script) and a global stream."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import redis.asyncio

from state.codec import text, text_map
from state.keys import GLOBAL_AUDIT, PREFIX, IncidentKeys
from state.scripts import LuaScripts

AUDIT_MAXLEN = 100_000


def chain_hash(prev: str, fields: list[tuple[str, str]]) -> str:
    """The hash an entry must carry (the same as state/lua/lib/audit_append.lua computes)."""
    parts = [prev, *(x for kv in fields for x in kv)]
    blob = b"".join(str(len(p.encode())).encode() + b":" + p.encode() for p in parts)
    return hashlib.sha1(blob, usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class ChainCheck:
    """The result of checking one audit stream's hash chain."""

    stream: str
    entries: int
    bad_id: str | None = None
    why: str = ""
    trimmed: bool = False

    @property
    def ok(self) -> bool:
        """No entry was edited, removed or moved."""
        return self.bad_id is None


class AuditLog:
    """Writes and reads the audit streams (every entry chained to the one before)."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self.client = client
        self.scripts = LuaScripts(client)

    async def append_global(self, event: str, **fields: str) -> None:
        """Append one entry to the global stream."""
        entry = {"event": event, **fields, "at_ms": str(int(time.time() * 1000))}
        flat = [x for kv in entry.items() for x in kv]
        await self.scripts("audit_append", [GLOBAL_AUDIT], [AUDIT_MAXLEN, *flat])

    async def verify(self, stream: str = GLOBAL_AUDIT) -> ChainCheck:
        """Check the chain: the first entry edited, removed or moved, if any."""
        prev: str | None = None
        count = 0
        trimmed = False
        length = int(await self.client.xlen(stream))
        async for sid, raw in self._entries(stream):
            fields = [(text(k), text(v)) for k, v in raw.items()]
            names = [k for k, _ in fields]
            if names[-2:] != ["prev", "hash"]:
                return ChainCheck(stream, count, sid, "it carries no chain hash", trimmed)
            body, claimed_prev, claimed = fields[:-2], fields[-2][1], fields[-1][1]
            if prev is None and claimed_prev != "":
                if length < AUDIT_MAXLEN:
                    # Too short to have been trimmed (MAXLEN): something before it went.
                    return ChainCheck(
                        stream, count, sid, "the entries before it were removed or moved"
                    )
                trimmed = True
            elif prev is not None and claimed_prev != prev:
                return ChainCheck(
                    stream, count, sid, "it does not follow the entry before it", trimmed
                )
            if chain_hash(claimed_prev, body) != claimed:
                return ChainCheck(stream, count, sid, "its content was changed", trimmed)
            prev = claimed
            count += 1
        head = await self.client.get(stream + ":head")
        if prev is not None and head is not None and text(head) != prev:
            return ChainCheck(stream, count, "(end)", "entries after the last one were removed")
        return ChainCheck(stream, count, trimmed=trimmed)

    async def streams(self) -> list[str]:
        """The global stream and every incident's audit stream."""
        found = [GLOBAL_AUDIT]
        async for key in self.client.scan_iter(match=f"{PREFIX}:{{*}}:audit", count=500):
            found.append(text(key))
        return found

    async def _entries(self, stream: str) -> AsyncIterator[tuple[str, dict[Any, Any]]]:
        last = "-"
        first = True
        while True:
            batch = await self.client.xrange(stream, min=last, max="+", count=1000)
            if not first and batch:
                batch = batch[1:]
            first = False
            if not batch:
                return
            for sid, fields in batch:
                yield text(sid), dict(fields or {})
            last = text(batch[-1][0])

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
