"""A replica that dies between recording an incident and posting its message: the serve
replicas that are left post it, once, by their periodic sweep (not only when one restarts)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio

from bot.app.serve import ServeRuntime
from lab.alert_samples import dsa_guid
from lab.slack_emulator import SlackEmulator
from state.incidents import AlertRecord, IncidentStore
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
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[InProcessBot]:
    monkeypatch.setattr(ServeRuntime, "missing_sweep_seconds", 0.5)
    settings = settings_for(
        slack_emulator, slack_signing_secret, redis_url, write_config(tmp_path / "c.toml")
    )
    async with running_bot(settings, slack_emulator, slack_signing_secret) as running:
        yield running


async def _recorded_by_a_dead_replica(redis_url: str, n: int, claim_ms: int) -> str:
    """An incident recorded in Redis whose poster died (optionally holding the post claim)."""
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        store = IncidentStore(client)
        intake = await store.record(
            AlertRecord(FOREST, dsa_guid(500 + n), "dc1.corp.example.com", 8589, None, "xml")
        )
        if claim_ms:
            assert await store.take_post_claim(intake.incident_id, claim_ms / 1000, "dead")
        return intake.incident_id
    finally:
        await client.aclose()


@pytest.mark.parametrize("claim_ms", [0, 1500], ids=["no-claim", "claim-expires"])
async def test_the_sweep_posts_what_a_dead_replica_left(
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
    # Later sweeps find nothing missing and post nothing more.
    await _sweeps(bot, 3)
    assert len(shown()) == 1


async def _sweeps(bot: InProcessBot, n: int) -> None:
    for _ in range(n):
        assert await bot.ctx.notifier.post_missing() == 0
