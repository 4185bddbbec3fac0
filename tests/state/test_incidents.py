"""Incident correlation on a real redis-server: one incident per problem, exactly once."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio

from state.incidents import AlertRecord, IncidentStore
from state.keys import parse_incident_id

GUID = "6f1c2a7e-0d3b-4c2a-9a51-3e5b8d7c1f20"


def _alert(dc: str = "dc1.corp.example.com", guid: str = GUID) -> AlertRecord:
    return AlertRecord(
        forest="corp.example.com",
        dsa_guid=guid,
        reporting_dc=dc,
        error_code=8589,
        observed_at=None,
        source_format="generic_json",
    )


@pytest.fixture
async def store(redis_url: str) -> IncidentStore:
    return IncidentStore(redis.asyncio.Redis.from_url(redis_url))


async def test_first_alert_opens_and_repeats_count(store: IncidentStore) -> None:
    first = await store.record(_alert())
    second = await store.record(_alert("dc2.corp.example.com"))
    third = await store.record(_alert())
    assert first.created and not second.created and not third.created
    assert first.incident_id == second.incident_id == third.incident_id
    inc = await store.get(first.incident_id)
    assert inc is not None
    assert inc.count == 3
    assert inc.reporters == {"dc1.corp.example.com": 2, "dc2.corp.example.com": 1}
    assert [i.id for i in await store.list_open()] == [first.incident_id]


async def test_concurrent_deliveries_open_exactly_one(redis_url: str) -> None:
    # Ten independent clients (as ten serve replicas would have) race on the same problem.
    stores = [IncidentStore(redis.asyncio.Redis.from_url(redis_url)) for _ in range(10)]
    results = await asyncio.gather(
        *[s.record(_alert(f"dc{i % 4}.corp.example.com")) for i, s in enumerate(stores * 20)]
    )
    assert sum(r.created for r in results) == 1
    assert len({r.incident_id for r in results}) == 1
    inc = await stores[0].get(results[0].incident_id)
    assert inc is not None and inc.count == 200 and len(inc.reporters) == 4


async def test_closed_incident_is_archived_and_a_new_one_opens(store: IncidentStore) -> None:
    first = await store.record(_alert())
    assert await store.close(first.incident_id, actor="U123", reason="fixed")
    assert not await store.close(first.incident_id, actor="U123", reason="again")
    again = await store.record(_alert())
    assert again.created and again.incident_id != first.incident_id
    old = await store.get(first.incident_id)
    assert old is not None and old.status == "closed"
    assert parse_incident_id(again.incident_id)[1] == 2
    assert [i.id for i in await store.list_open()] == [again.incident_id]


async def test_message_recorded_once(store: IncidentStore) -> None:
    intake = await store.record(_alert())
    assert await store.set_message(intake.incident_id, "C1", "1.000100")
    assert not await store.set_message(intake.incident_id, "C1", "2.000200")
    inc = await store.get(intake.incident_id)
    assert inc is not None and inc.ts == "1.000100"


async def test_thread_of_the_incident_message_finds_the_incident(store: IncidentStore) -> None:
    intake = await store.record(_alert())
    other = await store.record(_alert(guid="0d3b6f1c-2a7e-4c2a-9a51-3e5b8d7c1f20"))
    assert await store.by_thread("C1", "1.000100") is None
    await store.set_message(intake.incident_id, "C1", "1.000100")
    await store.set_message(other.incident_id, "C1", "1.000200")
    # A second poster's message is not the incident's: its thread finds nothing.
    await store.set_message(intake.incident_id, "C1", "2.000200")
    assert await store.by_thread("C1", "1.000100") == intake.incident_id
    assert await store.by_thread("C1", "1.000200") == other.incident_id
    assert await store.by_thread("C1", "2.000200") is None
    assert await store.by_thread("C2", "1.000100") is None
    # Closing keeps the thread's incident (an archived incident is still read by id).
    await store.close(intake.incident_id, actor="U1", reason="done")
    assert await store.by_thread("C1", "1.000100") == intake.incident_id


async def test_audit_records_opening(store: IncidentStore) -> None:
    intake = await store.record(_alert())
    lines = [line async for line in store.audit.export()]
    assert any('"incident_opened"' in line and intake.incident_id in line for line in lines)


def test_malformed_incident_ids_are_refused() -> None:
    for bad in ["", "abc", "3f9a0c1b2e-0", "3f9a0c1b2e-1;rm", "../3f9a0c1b2e-1"]:
        with pytest.raises(ValueError, match="not an incident id"):
            parse_incident_id(bad)


async def test_a_burst_beyond_the_pool_size_waits_instead_of_failing(redis_url: str) -> None:
    from state.connection import ASYNC_POOL_SIZE, async_client

    client = async_client(redis_url)
    # Blocking commands hold their connection, as hundreds of notifier tasks do in a storm.
    results = await asyncio.gather(
        *[client.blpop([f"ad1411:test:burst:{i}"], timeout=0.2) for i in range(ASYNC_POOL_SIZE * 3)]
    )
    assert results == [None] * (ASYNC_POOL_SIZE * 3)
    await client.aclose()
