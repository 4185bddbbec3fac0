"""The Slack outbox: which messages Slack must still get, durable across restarts and replicas.

A member is an incident id (its message must be posted, or updated because alerts arrived) or
an alert-flood id. Scripts that change a record also put it in the outbox in the same atomic
step, so a crash between "recorded" and "posted" loses nothing: any serve replica picks the
member up, under a lease so that one replica delivers it at a time.
"""

from __future__ import annotations

import time

import redis.asyncio

from state.codec import text
from state.durability import until_durable
from state.keys import (
    INCIDENT_THREADS,
    OPEN_INCIDENTS,
    OUTBOX,
    FloodKeys,
    IncidentKeys,
    outbox_claim,
    parse_flood_id,
    parse_incident_id,
)
from state.scripts import LuaScripts

REPAIR_PAGE = 500


def record_key(member: str) -> str:
    """The hash that holds a member's message fields (ts, channel, dirty, ...)."""
    minute = parse_flood_id(member)
    if minute is not None:
        return FloodKeys(minute).record
    tag, _ = parse_incident_id(member)
    return IncidentKeys(tag).incident


class SlackOutbox:
    """A sorted set of members scored by when they are due (ms), with per-member leases."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self.client = client
        self.scripts = LuaScripts(client)

    async def due(self, now_ms: int, limit: int) -> list[str]:
        """Members due at now_ms, earliest first."""
        raw = await self.client.zrangebyscore(OUTBOX, "-inf", now_ms, start=0, num=limit)
        return [text(m) for m in raw]

    async def next_due_ms(self) -> int | None:
        """When the earliest member is due, or None when the outbox is empty."""
        raw = await self.client.zrange(OUTBOX, 0, 0, withscores=True)
        return int(raw[0][1]) if raw else None

    async def pending(self) -> int:
        """Members waiting (due or not)."""
        return int(await self.client.zcard(OUTBOX))

    async def claim(self, member: str, token: str, lease_seconds: float) -> bool:
        """Take the lease on a member that is due now; False when another delivery holds it
        or has delivered and rescheduled it since the due list was read."""
        res = await self.scripts(
            "claim_delivery",
            [OUTBOX, outbox_claim(member)],
            [member, int(time.time() * 1000), token, max(1, int(lease_seconds * 1000))],
        )
        return int(res) == 1

    async def take_dirty(self, member: str) -> bool:
        """Clear and return the member's 'message needs an update' flag."""
        return bool(await self.client.hdel(record_key(member), "dirty"))

    async def set_message(self, member: str, channel: str, ts: str) -> bool:
        """Remember where the member's message lives; False when one was already recorded."""
        # An incident's thread is indexed (messages pasted there find their incident); a
        # flood's is not. The Slack message exists whatever happens to Redis: retry until
        # the write is confirmed (by the replicas, when write durability asks for them).
        keys = [record_key(member)]
        if parse_flood_id(member) is None:
            keys.append(INCIDENT_THREADS)
        res = await until_durable(
            lambda: self.scripts("set_message", keys, [member, channel, ts]),
            what=f"message of {member}",
        )
        return int(res) == 1

    async def finish(self, member: str, token: str, window_seconds: float) -> int:
        """Slack is up to date: 1 rescheduled (dirty again), 0 done, -1 claim lost."""
        now = int(time.time() * 1000)
        res = await self.scripts(
            "finish_delivery",
            [record_key(member), OUTBOX, outbox_claim(member)],
            [member, now, max(1, int(window_seconds * 1000)), token],
        )
        return int(res)

    async def defer(
        self,
        member: str,
        token: str,
        *,
        retry_after_seconds: float | None,
        redirty: bool,
        max_backoff_seconds: float,
    ) -> tuple[int, float]:
        """Try again after Slack's Retry-After, or after a backoff that doubles per attempt.

        Returns (attempts so far, seconds until due); attempts is -1 when the claim was lost.
        """
        now = int(time.time() * 1000)
        attempts, due = await self.scripts(
            "defer_delivery",
            [record_key(member), OUTBOX, outbox_claim(member)],
            [
                member,
                now,
                int((retry_after_seconds or 0) * 1000),
                token,
                "1" if redirty else "0",
                int(max_backoff_seconds * 1000),
            ],
        )
        return int(attempts), max(0.0, (int(due) - now) / 1000)

    async def enqueue_undelivered(self) -> int:
        """Put every open incident whose message is missing or stale into the outbox.

        Covers all open incidents, page by page (a repair: the scripts already queue what
        they change; this catches records written before the outbox existed, or restored
        from an older AOF). Returns how many were queued.
        """
        queued, start = 0, 0
        now = int(time.time() * 1000)
        while True:
            ids = [
                text(i)
                for i in await self.client.zrange(OPEN_INCIDENTS, start, start + REPAIR_PAGE - 1)
            ]
            if not ids:
                return queued
            start += len(ids)
            async with self.client.pipeline(transaction=False) as pipe:
                for iid in ids:
                    pipe.hmget(record_key(iid), ["id", "status", "ts", "dirty"])
                rows = await pipe.execute()
            wanted: dict[str, float] = {
                iid: now
                for iid, (rid, status, ts, dirty) in zip(ids, rows, strict=True)
                if text(rid) == iid and text(status) == "open" and (ts is None or dirty is not None)
            }
            if wanted:
                queued += int(await self.client.zadd(OUTBOX, dict(wanted), nx=True) or 0)
