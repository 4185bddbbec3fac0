"""The Slack outbox on a real redis-server: leases, retries, coalescing, floods, repair."""

from __future__ import annotations

import time

import pytest
import redis.asyncio

from state.floods import FloodStore
from state.incidents import AlertRecord, IncidentStore, OpeningPolicy
from state.keys import OUTBOX
from state.outbox import REPAIR_PAGE, SlackOutbox

FOREST = "corp.example.com"


def _alert(n: int, dc: str = "dc1.corp.example.com") -> AlertRecord:
    return AlertRecord(FOREST, f"00000000-0000-4000-8000-{n:012d}", dc, 8589, None, "x")


@pytest.fixture
async def client(redis_url: str) -> redis.asyncio.Redis:
    return redis.asyncio.Redis.from_url(redis_url)


async def test_a_new_incident_is_queued_and_one_lease_wins(client: redis.asyncio.Redis) -> None:
    store, outbox = IncidentStore(client), SlackOutbox(client)
    intake = await store.record(_alert(1))
    now = int(time.time() * 1000)
    assert await outbox.due(now + 1, 10) == [intake.incident_id]
    assert await outbox.claim(intake.incident_id, "a", 30)
    assert not await outbox.claim(intake.incident_id, "b", 30)
    assert await outbox.set_message(intake.incident_id, "C1", "1.0001")
    assert await outbox.finish(intake.incident_id, "a", 30) == 0
    assert await outbox.pending() == 0
    # Another replica finishing with a lease it does not hold changes nothing.
    assert await outbox.finish(intake.incident_id, "b", 30) == -1


async def test_alerts_during_a_delivery_schedule_one_update_a_window_later(
    client: redis.asyncio.Redis,
) -> None:
    store, outbox = IncidentStore(client), SlackOutbox(client)
    policy = OpeningPolicy(coalesce_seconds=30)
    iid = (await store.record(_alert(2), policy=policy)).incident_id
    await outbox.claim(iid, "a", 30)
    await outbox.set_message(iid, "C1", "1.0002")
    await store.record(_alert(2, "dc2.corp.example.com"), policy=policy)  # while posting
    assert await outbox.finish(iid, "a", 30) == 1
    due = await outbox.next_due_ms()
    assert due is not None and due >= time.time() * 1000 + 29_000
    # Not due yet: no replica may take it early (it read the due list before the finish).
    assert not await outbox.claim(iid, "b", 30)
    # More alerts in the window do not move it earlier.
    await store.record(_alert(2, "dc3.corp.example.com"), policy=policy)
    assert await outbox.next_due_ms() == due


async def test_deferral_honours_retry_after_and_backs_off_otherwise(
    client: redis.asyncio.Redis,
) -> None:
    store, outbox = IncidentStore(client), SlackOutbox(client)
    iid = (await store.record(_alert(3))).incident_id
    await outbox.claim(iid, "a", 30)
    attempts, due_in = await outbox.defer(
        iid, "a", retry_after_seconds=7, redirty=False, max_backoff_seconds=300
    )
    assert (attempts, round(due_in)) == (0, 7)
    waits = []
    for _ in range(4):
        await client.zadd(OUTBOX, {iid: 0}, xx=True)  # due again now
        assert await outbox.claim(iid, "a", 30)
        _, due_in = await outbox.defer(
            iid, "a", retry_after_seconds=None, redirty=True, max_backoff_seconds=300
        )
        waits.append(round(due_in, 1))
    assert waits == [0.5, 1.0, 2.0, 4.0]
    inc = await store.get(iid)
    assert inc is not None and inc.dirty and inc.delivery_attempts == 4


async def test_caps_group_new_problems_into_the_minutes_flood(client: redis.asyncio.Redis) -> None:
    store, floods = IncidentStore(client), FloodStore(client)
    minute = 29_000_000
    now = minute * 60_000 + 1000
    results = [
        await store.record(_alert(10 + i), now_ms=now, policy=OpeningPolicy(per_minute=3))
        for i in range(8)
    ]
    assert [r.created for r in results] == [True] * 3 + [False] * 5
    assert all(r.grouped for r in results[3:])
    assert {r.incident_id for r in results[3:]} == {f"flood-{minute}"}
    flood = await floods.get(f"flood-{minute}")
    assert flood is not None and flood.count == 5 and len(flood.items) == 5
    # An already open incident is still counted, whatever the cap.
    again = await store.record(_alert(10), now_ms=now, policy=OpeningPolicy(per_minute=3))
    assert not again.grouped and again.count == 2
    # The next minute opens incidents again.
    later = await store.record(_alert(20), now_ms=now + 60_000, policy=OpeningPolicy(per_minute=3))
    assert later.created


async def test_repair_covers_every_open_incident(client: redis.asyncio.Redis) -> None:
    store, outbox = IncidentStore(client), SlackOutbox(client)
    n = REPAIR_PAGE + 20
    for i in range(n):
        await store.record(_alert(100 + i))
    await client.delete(OUTBOX)
    assert await outbox.enqueue_undelivered() == n
    assert await outbox.enqueue_undelivered() == 0  # idempotent
