"""Procedures in Redis: one compare-and-set script per transition, and what hangs off them.

The rules live in the domain; this store only commits a decided transition if the version
it was decided on is still current (`procedure_commit.lua`), atomically with its audit
entries, its job, and the request token that makes a Slack retry a no-op. Keys share the
incident's hash tag. It stores bytes: the domain owns the JSON.

Through a failover: every commit carries a request token (the caller's, or one of its own) and
a nonce of this attempt. When a commit's reply is lost or its replicas do not confirm it in
time (`WriteNotReplicated`), the same commit is sent again until it is confirmed. The script
then tells "applied by this very attempt earlier" (the token holds this nonce: the commit
stands, once) from "never applied" (a promoted replica without it: commit now) from "another
request with this token" (a duplicate).
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import redis.asyncio

from state.audit import AUDIT_MAXLEN
from state.codec import text, text_map
from state.durability import until_durable
from state.keys import ACTIVE_PROCEDURES, GLOBAL_AUDIT, JOBS_STREAM, PREFIX, IncidentKeys
from state.scripts import LuaScripts

# A Slack request token is remembered this long: Slack retries an event within 5 minutes and
# never retries an interaction, so an hour covers every retry with room to spare.
ONCE_TTL_MS = 3_600_000
# A token of the store's own (a worker's report) only has to outlive the retries of its commit.
OWN_TOKEN_TTL_MS = 600_000
# How long a write is retried through a failover before the caller is told it failed.
RETRY_SECONDS = 30.0
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

    def __init__(
        self, client: redis.asyncio.Redis, *, retry_seconds: float = RETRY_SECONDS
    ) -> None:
        self.client = client
        self.scripts = LuaScripts(client)
        self.retry_seconds = retry_seconds

    @staticmethod
    def _once_key(tag: str, token: str) -> str:
        # A digest, not the token: Slack's trigger_id:action_ts is 60 characters, and every
        # transition and audited command keeps one key for a while.
        digest = hashlib.sha256(token.encode(), usedforsecurity=False).hexdigest()[:24]
        return f"{PREFIX}:{{{tag}}}:once:{digest}"

    @staticmethod
    def _token(once: str | None, nonce: str) -> tuple[str, int]:
        """The request token of a write and how long it is remembered."""
        return (once, ONCE_TTL_MS) if once else (f"own:{nonce}", OWN_TOKEN_TTL_MS)

    async def next_id(self, incident_id: str) -> str:
        """A new procedure id for this incident (3f9a0c1b2e-1.1, .2, ...)."""
        tag = _tag(incident_id)
        while True:
            n = await self.client.incr(f"{PREFIX}:{{{tag}}}:proc-seq:{incident_id}")
            procedure_id = f"{incident_id}.{int(n)}"
            # A counter a failover took back must not hand out an id that exists.
            if not await self.client.exists(procedure_key(procedure_id)):
                return procedure_id

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
        """Write a decided transition if nothing changed meanwhile (see procedure_commit.lua).

        Returns once the transition is durable (replicas confirmed it, when required), retrying
        it through a failover; raises the store's error when it cannot be confirmed in time.
        """
        tag = _tag(procedure_id)
        keys = IncidentKeys(tag)
        now = int(time.time() * 1000)
        nonce = uuid.uuid4().hex
        token, ttl_ms = self._token(once, nonce)
        stored = pack(data)
        job_args: list[str] = [str(len(job or {}))]
        for k, v in (job or {}).items():
            job_args += [k, v]
        reply: Any = await until_durable(
            lambda: self.scripts(
                "procedure_commit",
                [
                    procedure_key(procedure_id),
                    keys.procedure,
                    keys.audit,
                    JOBS_STREAM,
                    GLOBAL_AUDIT,
                    ACTIVE_PROCEDURES,
                    self._once_key(tag, token),
                ],
                [
                    procedure_id,
                    expected_version,
                    stored,
                    status,
                    "start" if start else "update",
                    ttl_ms,
                    AUDIT_MAXLEN,
                    now,
                    nonce,
                    *_flatten(audit, now),
                    *job_args,
                ],
            ),
            what=f"transition of procedure {procedure_id}",
            deadline_seconds=self.retry_seconds,
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
        made, _, by = text(reply[1]).partition(":")
        if by == nonce:
            # This very commit was applied by an earlier attempt whose reply was lost or not
            # confirmed in time: it stands, once, and is now confirmed.
            return CommitResult(CommitOutcome.OK, int(made))
        return CommitResult(outcome)

    async def note(
        self, incident_id: str, audit: Sequence[AuditEntry], *, once: str | None = None
    ) -> bool:
        """Audit what changed no state (a refusal, a command run), once per request token,
        retried through a failover like a commit; False when the token was seen before."""
        tag = _tag(incident_id)
        keys = IncidentKeys(tag)
        now = int(time.time() * 1000)
        nonce = uuid.uuid4().hex
        token, ttl_ms = self._token(once, nonce)
        res: Any = await until_durable(
            lambda: self.scripts(
                "procedure_note",
                [keys.audit, GLOBAL_AUDIT, self._once_key(tag, token)],
                [ttl_ms, AUDIT_MAXLEN, nonce, *_flatten(audit, now)],
            ),
            what=f"audit of incident {incident_id}",
            deadline_seconds=self.retry_seconds,
        )
        return text(res[0]) == "written" or text(res[1]) == nonce

    async def active_ids(self) -> list[str]:
        """Every active procedure, oldest first."""
        return [text(x) for x in await self.client.zrange(ACTIVE_PROCEDURES, 0, -1)]

    # -- its Slack message ----------------------------------------------------------------

    async def set_message(self, procedure_id: str, channel: str, ts: str) -> bool:
        """Remember the procedure message, once; False when one was already recorded.

        The message exists in Slack whatever happens to Redis: retried until it is recorded.
        """
        res = await until_durable(
            lambda: self.scripts("procedure_message", [procedure_key(procedure_id)], [channel, ts]),
            what=f"message of procedure {procedure_id}",
            deadline_seconds=self.retry_seconds,
        )
        return int(res) == 1

    async def take_post_claim(self, procedure_id: str, ttl_s: float) -> bool:
        """Claim the first posting of the procedure message (one process posts it)."""
        ok = await self.client.set(
            procedure_key(procedure_id) + ":post", b"1", nx=True, px=max(1, int(ttl_s * 1000))
        )
        return bool(ok)

    async def release_post_claim(self, procedure_id: str) -> None:
        """Let the message be posted again (a post Slack refused outright)."""
        await self.client.delete(procedure_key(procedure_id) + ":post")

    async def take_update_slot(self, procedure_id: str, window_s: float) -> str | None:
        """Claim the right to update the message in this window (coalescing); the token that
        holds it, or None when another process holds it."""
        token = uuid.uuid4().hex
        ok = await self.client.set(
            procedure_key(procedure_id) + ":slot",
            token.encode(),
            nx=True,
            px=max(1, int(window_s * 1000)),
        )
        return token if ok else None

    async def release_update_slot(self, procedure_id: str, token: str) -> None:
        """Let the next change claim an update slot, if this token still holds it (a slot that
        expired, or was lost in a failover, may belong to another process now)."""
        await self.scripts("lock_release", [procedure_key(procedure_id) + ":slot"], [token])

    async def redirty_if_newer(self, procedure_id: str, shown_version: int) -> bool:
        """After an update that showed `shown_version`: mark the message stale again when the
        procedure has moved on since (True then)."""
        res = await self.scripts(
            "redirty_if_newer", [procedure_key(procedure_id)], [str(shown_version)]
        )
        return bool(res)

    async def take_dirty(self, procedure_id: str) -> bool:
        """Clear and return the 'message needs an update' flag."""
        return bool(await self.client.hdel(procedure_key(procedure_id), "dirty"))

    async def mark_stale(self, procedure_id: str) -> None:
        """The message does not show the procedure (an update Slack did not take)."""
        await self.client.hset(procedure_key(procedure_id), "dirty", "1")

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
        blob = zlib.compress(raw, 6)
        # The script keeps a run's output once: retried through a failover like a commit.
        kept = await until_durable(
            lambda: self.scripts(
                "save_output",
                [_outputs_key(procedure_id)],
                [name, blob, OUTPUT_BUDGET_BYTES, OUTPUT_TTL_SECONDS],
            ),
            what=f"output of {procedure_id}:{name}",
            deadline_seconds=self.retry_seconds,
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
    """One change at a time per DC: a lock with a token and an expiry.

    Taking, keeping and stealing wait for replicas like transitions, and are retried through a
    failover (each recognizes its own earlier attempt): a lock a failover took back would let
    two changes run on one DC.
    """

    def __init__(
        self, client: redis.asyncio.Redis, *, retry_seconds: float = RETRY_SECONDS
    ) -> None:
        self.client = client
        self.scripts = LuaScripts(client)
        self.retry_seconds = retry_seconds

    @staticmethod
    def key(name: str) -> str:
        """The lock key of a DC (or of the directory)."""
        return f"{PREFIX}:dc-lock:{name.lower()}"

    async def _run(self, script: str, name: str, args: list[Any]) -> int:
        res = await until_durable(
            lambda: self.scripts(script, [self.key(name)], args),
            what=f"{script} of {name}",
            deadline_seconds=self.retry_seconds,
        )
        return int(res)

    async def acquire(self, name: str, token: str, ttl_s: float) -> bool:
        """Take the lock if free; True when this token now holds it."""
        return await self._run("lock_acquire", name, [token, max(1, int(ttl_s * 1000))]) == 1

    async def extend(self, name: str, token: str, ttl_s: float) -> bool:
        """Keep holding it; False when the token no longer holds it."""
        return await self._run("lock_extend", name, [token, max(1, int(ttl_s * 1000))]) == 1

    async def steal(self, name: str, old_token: str, new_token: str, ttl_s: float) -> bool:
        """Take the lock from a holder known to be dead, if it still holds it."""
        ttl_ms = max(1, int(ttl_s * 1000))
        return await self._run("lock_steal", name, [old_token, new_token, ttl_ms]) == 1

    async def release(self, name: str, token: str) -> bool:
        """Release it if this token holds it."""
        return await self._run("lock_release", name, [token]) == 1

    async def holder(self, name: str) -> str | None:
        """The token holding the lock, if any."""
        raw = await self.client.get(self.key(name))
        return text(raw) if raw else None
