"""Alert floods: alerts beyond the incident-opening caps, grouped per minute (read side)."""

from __future__ import annotations

from dataclasses import dataclass, field

import redis.asyncio

from state.codec import text_map
from state.keys import FloodKeys, parse_flood_id


@dataclass(frozen=True)
class FloodItem:
    """One problem that arrived during the flood, with the first DC that reported it."""

    dsa_guid: str
    forest: str
    reporting_dc: str


@dataclass(frozen=True)
class Flood:
    """One minute's alert flood as stored."""

    id: str
    count: int
    first_ms: int
    last_ms: int
    items: list[FloodItem] = field(default_factory=list)
    channel: str | None = None
    ts: str | None = None
    delivery_attempts: int = 0


class FloodStore:
    """Reads flood records (the record_alert script writes them)."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self.client = client

    async def get(self, flood_id: str) -> Flood | None:
        """The flood with this id, or None (unknown or expired)."""
        minute = parse_flood_id(flood_id)
        if minute is None:
            return None
        keys = FloodKeys(minute)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.record)
            pipe.hgetall(keys.items)
            raw_rec, raw_items = await pipe.execute()
        rec = text_map(raw_rec)
        if rec.get("id") != flood_id:
            return None
        items = []
        for key, dc in sorted(text_map(raw_items).items()):
            guid, _, forest = key.partition(" ")
            items.append(FloodItem(guid, forest, dc))
        return Flood(
            id=flood_id,
            count=int(rec.get("count", "0") or 0),
            first_ms=int(rec.get("first_ms", "0") or 0),
            last_ms=int(rec.get("last_ms", "0") or 0),
            items=items,
            channel=rec.get("channel") or None,
            ts=rec.get("ts") or None,
            delivery_attempts=int(rec.get("delivery_attempts", "0") or 0),
        )
