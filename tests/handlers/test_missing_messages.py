"""A replica that dies between recording an incident and posting its message: the serve
replicas that are left post it, once, from the outbox (not only when one restarts), also when
the dead replica held the delivery's lease."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio

from lab.alert_samples import dsa_guid
from lab.slack_emulator import SlackEmulator
from state.incidents import AlertRecord, IncidentStore
from state.outbox import SlackOutbox
from tests.handlers.serve_config import FOREST, write_config
from tests.inprocess import InProcessBot, running_bot, settings_for
from tests.waiting import until

pytestmark = [pytest.mark.slack]


@pytest.fixture
async def bot(
    tmp_path: Path,
    redis_url: str,
    slack_emulator: SlackEmulator,
    slack_signing_secret: str,
) -> AsyncIterator[InProcessBot]:
    settings = settings_for(
        slack_emulator, slack_signing_secret, redis_url, write_config(tmp_path / "c.toml")
    )
    async with running_bot(settings, slack_emulator, slack_signing_secret) as running:
        yield running


async def _recorded_by_a_dead_replica(redis_url: str, n: int, claim_ms: int) -> str:
    """An incident recorded in Redis whose poster died (optionally holding the lease)."""
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        store = IncidentStore(client)
        intake = await store.record(
            AlertRecord(FOREST, dsa_guid(500 + n), "dc1.corp.example.com", 8589, None, "xml")
        )
        if claim_ms:
            lease = claim_ms / 1000
            assert await SlackOutbox(client).claim(intake.incident_id, "dead", lease)
        return intake.incident_id
    finally:
        await client.aclose()


@pytest.mark.parametrize("claim_ms", [0, 1500], ids=["no-lease", "lease-expires"])
async def test_the_replicas_left_post_what_a_dead_replica_left(
    bot: InProcessBot, redis_url: str, claim_ms: int
) -> None:
    iid = await _recorded_by_a_dead_replica(redis_url, claim_ms, claim_ms)

    def shown() -> list[dict[str, object]]:
        return [m for m in bot.incident_messages() if iid in json.dumps(m.get("blocks", []))]

    posted = await bot.emulator.wait_for_async(shown, timeout=20)
    assert len(posted) == 1

    async def recorded() -> bool:
        inc = await bot.ctx.store.get(iid)
        return inc is not None and inc.ts == posted[0]["ts"]

    await until(recorded, timeout=20, what="message recorded")
    # The outbox is then empty of it, and the repair pass finds nothing missing.
    await until(lambda: _not_queued(bot, iid), timeout=20, what="the delivery leaves the outbox")
    assert await bot.ctx.notifier.outbox.enqueue_undelivered() == 0
    assert len(shown()) == 1


async def _not_queued(bot: InProcessBot, iid: str) -> bool:
    return iid not in await bot.ctx.notifier.outbox.due(2**62, 1000)
