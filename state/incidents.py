"""Incidents in Redis: one per (forest, target DSA GUID) while open, exactly once under races."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

import redis.asyncio

from state.audit import AUDIT_MAXLEN, AuditLog
from state.codec import text, text_map
from state.durability import until_durable
from state.keys import (
    GLOBAL_AUDIT,
    INCIDENT_THREADS,
    OPEN_INCIDENTS,
    OUTBOX,
    READY_PROBE,
    FloodKeys,
    IncidentKeys,
    incident_tag,
    new_incidents_key,
    parse_incident_id,
    thread_field,
)
from state.scripts import LuaScripts


@dataclass(frozen=True)
class AlertRecord:
    """What the store needs of a validated alert (keeps Redis free of the Alert model)."""

    forest: str
    dsa_guid: str
    reporting_dc: str
    error_code: int
    observed_at: str | None
    source_format: str


@dataclass(frozen=True)
class Intake:
    """Result of recording one alert; `grouped` when it went into an alert flood instead."""

    incident_id: str
    created: bool
    count: int
    grouped: bool = False


@dataclass(frozen=True)
class OpeningPolicy:
    """Limits on opening incidents and on how often a message is updated."""

    may_open: bool = True
    per_minute: int = 1_000_000
    coalesce_seconds: float = 30.0


FLOOD_TTL_MS = 2 * 86_400_000
FLOOD_ITEMS_LISTED = 50


@dataclass
class Incident:
    """An incident as stored."""

    id: str
    status: str
    forest: str
    dsa_guid: str
    error_code: int
    created_at_ms: int
    last_seen_ms: int
    count: int
    version: int
    reporters: dict[str, int] = field(default_factory=dict)
    channel: str | None = None
    ts: str | None = None
    observed_at: str | None = None
    dirty: bool = False
    intro_pending: bool = False
    delivery_attempts: int = 0

    @property
    def tag(self) -> str:
        """The hash tag of this incident's keys."""
        return self.id.split("-", 1)[0]


def _incident(raw: dict[str, str], reporters: dict[str, str]) -> Incident:
    def _s(name: str) -> str:
        return raw.get(name, "")

    return Incident(
        id=_s("id"),
        status=_s("status"),
        forest=_s("forest"),
        dsa_guid=_s("dsa_guid"),
        error_code=int(_s("error_code") or 0),
        created_at_ms=int(_s("created_at") or 0),
        last_seen_ms=int(_s("last_seen") or 0),
        count=int(_s("count") or 0),
        version=int(_s("version") or 0),
        reporters={k: int(v) for k, v in sorted(reporters.items())},
        channel=_s("channel") or None,
        ts=_s("ts") or None,
        observed_at=_s("observed_at") or None,
        dirty="dirty" in raw,
        intro_pending="intro_pending" in raw,
        delivery_attempts=int(_s("delivery_attempts") or 0),
    )


class IncidentStore:
    """Atomic incident operations on one Redis."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self.client = client
        self.scripts = LuaScripts(client)
        self.audit = AuditLog(client)

    async def record(
        self,
        alert: AlertRecord,
        *,
        now_ms: int | None = None,
        policy: OpeningPolicy | None = None,
    ) -> Intake:
        """Open or count the incident of this alert's problem, or group it into the minute's
        alert flood when the policy's caps are reached; one script."""
        now = now_ms if now_ms is not None else int(time.time() * 1000)
        rules = policy or OpeningPolicy()
        tag = incident_tag(alert.forest, alert.dsa_guid)
        keys = IncidentKeys(tag)
        minute = now // 60_000
        flood = FloodKeys(minute)
        created, incident_id, count = await self.scripts(
            "record_alert",
            [
                keys.incident,
                keys.reporters,
                keys.audit,
                keys.seq,
                OPEN_INCIDENTS,
                GLOBAL_AUDIT,
                OUTBOX,
                new_incidents_key(minute),
                flood.record,
                flood.items,
            ],
            [
                now,
                alert.forest,
                alert.dsa_guid,
                alert.reporting_dc,
                alert.error_code,
                alert.observed_at or "",
                alert.source_format,
                tag,
                AUDIT_MAXLEN,
                1 if rules.may_open else 0,
                rules.per_minute,
                max(1, int(rules.coalesce_seconds * 1000)),
                flood.id,
                FLOOD_TTL_MS,
                FLOOD_ITEMS_LISTED,
            ],
        )
        iid = text(incident_id)
        outcome = int(created)
        return Intake(iid, created=outcome == 1, count=int(count), grouped=outcome == 2)

    async def get(self, incident_id: str) -> Incident | None:
        """The incident with this id (open or archived), or None."""
        tag, seq = parse_incident_id(incident_id)
        keys = IncidentKeys(tag)
        for inc_key, rep_key in ((keys.incident, keys.reporters), keys.archived(seq)):
            # Both hashes in one round trip; the reporters are discarded when seq differs.
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.hgetall(inc_key)
                pipe.hgetall(rep_key)
                raw_inc, raw_rep = await pipe.execute()
            raw = text_map(raw_inc)
            if raw and int(raw.get("seq", "0")) == seq:
                return _incident(raw, text_map(raw_rep))
        return None

    async def count_open(self) -> int:
        """How many incidents are open."""
        return int(await self.client.zcard(OPEN_INCIDENTS))

    async def list_open(self, limit: int = 50) -> list[Incident]:
        """Open incidents, oldest first."""
        ids = await self.client.zrange(OPEN_INCIDENTS, 0, limit - 1)
        found = []
        for raw_id in ids:
            inc = await self.get(text(raw_id))
            if inc is not None and inc.status == "open":
                found.append(inc)
        return found

    async def set_message(self, incident_id: str, channel: str, ts: str) -> bool:
        """Remember the Slack message of the incident; False when one was already recorded."""
        tag, _ = parse_incident_id(incident_id)
        # The Slack message exists whatever happens to Redis: retry until it is recorded.
        res = await until_durable(
            lambda: self.scripts(
                "set_message",
                [IncidentKeys(tag).incident, INCIDENT_THREADS],
                [incident_id, channel, ts],
            ),
            what=f"message of incident {incident_id}",
        )
        return int(res) == 1

    async def by_thread(self, channel: str, thread_ts: str) -> str | None:
        """The id of the incident whose message opened the thread (channel, thread_ts)."""
        raw = await self.client.hget(INCIDENT_THREADS, thread_field(channel, thread_ts))
        return text(raw) if raw else None

    async def close(self, incident_id: str, *, actor: str, reason: str) -> bool:
        """Close an open incident; False when it was not open."""
        tag, _ = parse_incident_id(incident_id)
        keys = IncidentKeys(tag)
        now = int(time.time() * 1000)
        done = await self.scripts(
            "close_incident",
            [keys.incident, keys.reporters, keys.audit, OPEN_INCIDENTS, GLOBAL_AUDIT],
            [incident_id, now, actor, reason, AUDIT_MAXLEN],
        )
        return int(done) == 1

    async def ping(self) -> None:
        """A real round trip (readiness): a write read back, which a loading or read-only
        server refuses and PING alone would not show."""
        nonce = uuid.uuid4().hex
        for attempt in (1, 2):
            try:
                async with self.client.pipeline(transaction=True) as pipe:
                    pipe.set(READY_PROBE, nonce, px=60_000)
                    pipe.get(READY_PROBE)
                    _, got = await pipe.execute()
                break
            except (redis.ConnectionError, redis.TimeoutError):
                # A pooled connection a Redis restart closed fails once; a fresh one tells.
                if attempt == 2:
                    raise
        if text(got) != nonce:
            raise ConnectionError("Redis did not read back what was just written")
