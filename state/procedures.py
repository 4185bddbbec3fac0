"""Procedures in Redis: one compare-and-set script per transition, and what hangs off them.

The rules live in the domain; this store only commits a decided transition if the version
it was decided on is still current (`procedure_commit.lua`), atomically with its audit
entries, its job, and the request token that makes a Slack retry a no-op. Keys share the
incident's hash tag. It stores bytes: the domain owns the JSON.
"""

from __future__ import annotations

import hashlib
import re
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import redis.asyncio

from state.audit import AUDIT_MAXLEN
from state.codec import text, text_map
from state.keys import ACTIVE_PROCEDURES, GLOBAL_AUDIT, JOBS_STREAM, PREFIX, IncidentKeys
from state.scripts import LuaScripts

# A Slack request token is remembered this long: Slack retries an event within 5 minutes and
# never retries an interaction, so an hour covers every retry with room to spare.
ONCE_TTL_MS = 3_600_000
# Full command outputs: kept compressed beside the procedure, capped, for a month.
OUTPUT_MAX_BYTES = 64 * 1024
OUTPUT_TTL_SECONDS = 30 * 86_400
# What one procedure may keep of outputs, compressed: at least 16 runs at the cap above.
OUTPUT_BUDGET_BYTES = 512 * 1024
# The procedure's JSON is stored deflated (about 8 times smaller; level 1 costs ~40 us).
_DATA_LEVEL = 1


# procedure id : step key : job id prefix (what save_output hands out), nothing else.
_OUTPUT_REF = re.compile(r"[0-9a-f]{10}-[0-9]{1,10}\.[0-9]{1,6}:[0-9a-z.\-]{1,20}:[0-9a-f]{1,32}")


class CommitOutcome(StrEnum):
    """How a commit ended."""

    OK = "ok"
    CONFLICT = "conflict"
    DUPLICATE = "duplicate"
    BUSY = "busy"


@dataclass(frozen=True)
class StoredProcedure:
    """A procedure as stored: its JSON, version, and where its Slack message is."""

    id: str
    version: int
    data: bytes
    channel: str | None = None
    ts: str | None = None


@dataclass(frozen=True)
class CommitResult:
    """The end of one commit attempt (`current` is set on a conflict)."""

    outcome: CommitOutcome
    version: int = 0
    current: StoredProcedure | None = None
    busy_with: str = ""


@dataclass(frozen=True)
class AuditEntry:
    """One audit record (event name and flat string fields)."""

    event: str
    fields: Mapping[str, str]


def _tag(procedure_id: str) -> str:
    return procedure_id.split("-", 1)[0]


def procedure_key(procedure_id: str) -> str:
    """The hash holding one procedure."""
    return f"{PREFIX}:{{{_tag(procedure_id)}}}:proc:{procedure_id}"


def _outputs_key(procedure_id: str) -> str:
    """The hash of one procedure's kept command outputs (field: run name)."""
    return f"{PREFIX}:{{{_tag(procedure_id)}}}:outputs:{procedure_id}"


def pack(data: bytes) -> bytes:
    """The procedure JSON as stored (deflated)."""
    return zlib.compress(data, _DATA_LEVEL)


def unpack(stored: bytes) -> bytes:
    """The procedure JSON from what is stored (records written before deflation are JSON)."""
    return stored if stored[:1] == b"{" else zlib.decompress(stored)


def _flatten(entries: Sequence[AuditEntry], now_ms: int) -> list[str]:
    out: list[str] = [str(len(entries))]
    for e in entries:
        pairs = {"event": e.event, **e.fields, "at_ms": str(now_ms)}
        out.append(str(len(pairs)))
        for k, v in pairs.items():
            out += [k, v]
    return out


class ProcedureStore:
    """Atomic procedure operations on one Redis."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self.client = client
        self.scripts = LuaScripts(client)

    @staticmethod
    def _once(tag: str, token: str | None) -> tuple[str, str]:
        """The problem's request-token set and this token's member in it ('' when none)."""
        if not token:
            return "", ""
        digest = hashlib.sha256(token.encode(), usedforsecurity=False).hexdigest()[:24]
        return f"{PREFIX}:{{{tag}}}:once", digest

    async def next_id(self, incident_id: str) -> str:
        """A new procedure id for this incident (3f9a0c1b2e-1.1, .2, ...)."""
        tag = _tag(incident_id)
        n = await self.client.incr(f"{PREFIX}:{{{tag}}}:proc-seq:{incident_id}")
        return f"{incident_id}.{int(n)}"

    async def ids_for(self, incident_id: str) -> list[str]:
        """Every procedure this incident had, oldest first."""
        raw = await self.client.get(f"{PREFIX}:{{{_tag(incident_id)}}}:proc-seq:{incident_id}")
        count = int(text(raw) or 0) if raw else 0
        ids = [f"{incident_id}.{n}" for n in range(1, count + 1)]
        return [i for i in ids if await self.client.exists(procedure_key(i))]

    async def current_id(self, incident_id: str) -> str | None:
        """The active procedure of this incident's problem, if one is running."""
        raw = await self.client.get(IncidentKeys(_tag(incident_id)).procedure)
        return text(raw) if raw else None

    async def load(self, procedure_id: str) -> StoredProcedure | None:
        """The stored procedure, or None."""
        raw: dict[Any, Any] = await self.client.hgetall(procedure_key(procedure_id))
        data = next((v for k, v in raw.items() if text(k) == "data"), None)
        if not data:
            return None
        fields = text_map({k: v for k, v in raw.items() if text(k) != "data"})
        return StoredProcedure(
            procedure_id,
            int(fields.get("version", "0")),
            unpack(data if isinstance(data, bytes) else str(data).encode()),
            fields.get("msg_channel") or None,
            fields.get("msg_ts") or None,
        )

    async def commit(
        self,
        procedure_id: str,
        *,
        expected_version: int,
        data: bytes,
        status: str,
        audit: Sequence[AuditEntry],
        job: Mapping[str, str] | None = None,
        once: str | None = None,
        start: bool = False,
    ) -> CommitResult:
        """Write a decided transition if nothing changed meanwhile (see procedure_commit.lua)."""
        tag = _tag(procedure_id)
        keys = IncidentKeys(tag)
        now = int(time.time() * 1000)
        once_key, once_token = self._once(tag, once)
        job_args: list[str] = [str(len(job or {}))]
        for k, v in (job or {}).items():
            job_args += [k, v]
        reply: Any = await self.scripts(
            "procedure_commit",
            [
                procedure_key(procedure_id),
                keys.procedure,
                keys.audit,
                JOBS_STREAM,
                GLOBAL_AUDIT,
                ACTIVE_PROCEDURES,
                once_key,
            ],
            [
                procedure_id,
                expected_version,
                pack(data),
                status,
                "start" if start else "update",
                ONCE_TTL_MS,
                AUDIT_MAXLEN,
                now,
                once_token,
                *_flatten(audit, now),
                *job_args,
            ],
        )
        outcome = CommitOutcome(text(reply[0]))
        if outcome is CommitOutcome.OK:
            return CommitResult(outcome, int(text(reply[1])))
        if outcome is CommitOutcome.CONFLICT:
            version = int(text(reply[1]))
            data_now = reply[2] if isinstance(reply[2], bytes) else text(reply[2]).encode()
            current = StoredProcedure(procedure_id, version, unpack(data_now)) if data_now else None
            return CommitResult(outcome, version, current)
        if outcome is CommitOutcome.BUSY:
            return CommitResult(outcome, busy_with=text(reply[1]))
        return CommitResult(outcome)

    async def note(
        self, incident_id: str, audit: Sequence[AuditEntry], *, once: str | None = None
    ) -> bool:
        """Audit what changed no state (a refusal), once per request token; False: repeat."""
        tag = _tag(incident_id)
        keys = IncidentKeys(tag)
        now = int(time.time() * 1000)
        once_key, once_token = self._once(tag, once)
        res = await self.scripts(
            "procedure_note",
            [keys.audit, GLOBAL_AUDIT, once_key],
            [ONCE_TTL_MS, AUDIT_MAXLEN, now, once_token, *_flatten(audit, now)],
        )
        return int(res) == 1

    async def active_ids(self) -> list[str]:
        """Every active procedure, oldest first."""
        return [text(x) for x in await self.client.zrange(ACTIVE_PROCEDURES, 0, -1)]

    # -- its Slack message ----------------------------------------------------------------

    async def set_message(self, procedure_id: str, channel: str, ts: str) -> bool:
        """Remember the procedure message, once; False when one was already recorded."""
        key = procedure_key(procedure_id)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hsetnx(key, "msg_ts", ts)
            pipe.hsetnx(key, "msg_channel", channel)
            first, _ = await pipe.execute()
        return bool(first)

    async def take_post_claim(self, procedure_id: str, ttl_s: float) -> bool:
        """Claim the first posting of the procedure message (one process posts it)."""
        ok = await self.client.set(
            procedure_key(procedure_id) + ":post", b"1", nx=True, px=max(1, int(ttl_s * 1000))
        )
        return bool(ok)

    async def take_update_slot(self, procedure_id: str, window_s: float) -> bool:
        """Claim the right to update the message in this window (coalescing)."""
        ok = await self.client.set(
            procedure_key(procedure_id) + ":slot", b"1", nx=True, px=max(1, int(window_s * 1000))
        )
        return bool(ok)

    async def release_update_slot(self, procedure_id: str) -> None:
        """Let the next change claim an update slot."""
        await self.client.delete(procedure_key(procedure_id) + ":slot")

    async def take_dirty(self, procedure_id: str) -> bool:
        """Clear and return the 'message needs an update' flag."""
        return bool(await self.client.hdel(procedure_key(procedure_id), "dirty"))

    async def is_dirty(self, procedure_id: str) -> bool:
        """Whether a change is not shown in the message yet."""
        return bool(await self.client.hexists(procedure_key(procedure_id), "dirty"))

    # -- command outputs ------------------------------------------------------------------

    async def save_output(self, procedure_id: str, name: str, output: str) -> str:
        """Keep a command's full output (capped, compressed, expiring, within the procedure's
        output budget); returns its reference, or '' when the budget is used up."""
        raw = output.encode("utf-8", "replace")
        if len(raw) > OUTPUT_MAX_BYTES:
            raw = (
                raw[:OUTPUT_MAX_BYTES]
                + b"\n... (output cut at 64 KiB; its SHA-256 is in the audit)"
            )
        kept = await self.scripts(
            "save_output",
            [_outputs_key(procedure_id)],
            [name, zlib.compress(raw, 6), OUTPUT_BUDGET_BYTES, OUTPUT_TTL_SECONDS],
        )
        return f"{procedure_id}:{name}" if int(kept) == 1 else ""

    async def load_output(self, ref: str) -> str | None:
        """A saved output by its reference (None when expired, unknown, or not a reference)."""
        if not _OUTPUT_REF.fullmatch(ref):
            return None
        procedure_id, _, name = ref.partition(":")
        raw = await self.client.hget(_outputs_key(procedure_id), name)
        if raw is None:
            # Outputs kept before the per-procedure hash: one key each.
            raw = await self.client.get(f"{PREFIX}:{{{_tag(ref)}}}:output:{ref}")
        if raw is None:
            return None
        blob = raw if isinstance(raw, bytes) else str(raw).encode()
        return zlib.decompress(blob).decode("utf-8", "replace")


class DcLocks:
    """One change at a time per DC: a lock with a token and an expiry."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self.client = client
        self.scripts = LuaScripts(client)

    @staticmethod
    def key(name: str) -> str:
        """The lock key of a DC (or of the directory)."""
        return f"{PREFIX}:dc-lock:{name.lower()}"

    async def acquire(self, name: str, token: str, ttl_s: float) -> bool:
        """Take the lock if free; True when this token now holds it."""
        ok = await self.client.set(
            self.key(name), token.encode(), nx=True, px=max(1, int(ttl_s * 1000))
        )
        return bool(ok)

    async def extend(self, name: str, token: str, ttl_s: float) -> bool:
        """Keep holding it; False when the token no longer holds it."""
        res = await self.scripts("lock_extend", [self.key(name)], [token, int(ttl_s * 1000)])
        return int(res) == 1

    async def steal(self, name: str, old_token: str, new_token: str, ttl_s: float) -> bool:
        """Take the lock from a holder known to be dead, if it still holds it."""
        res = await self.scripts(
            "lock_steal", [self.key(name)], [old_token, new_token, int(ttl_s * 1000)]
        )
        return int(res) == 1

    async def release(self, name: str, token: str) -> bool:
        """Release it if this token holds it."""
        return int(await self.scripts("lock_release", [self.key(name)], [token])) == 1

    async def holder(self, name: str) -> str | None:
        """The token holding the lock, if any."""
        raw = await self.client.get(self.key(name))
        return text(raw) if raw else None
