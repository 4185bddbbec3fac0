"""Diagnose says at once whether a worker will run it (heartbeats in Redis)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio

from lab.alert_samples import alert_body, dsa_guid
from lab.slack_emulator import SlackEmulator
from state.keys import JOBS_STREAM
from state.workers import WorkerRegistry
from tests.handlers.serve_config import FOREST, write_config
from tests.inprocess import InProcessBot, running_bot, settings_for

pytestmark = [pytest.mark.slack]


@pytest.fixture
async def bot(
    tmp_path: Path, redis_url: str, slack_emulator: SlackEmulator, slack_signing_secret: str
) -> AsyncIterator[InProcessBot]:
    cfg = write_config(tmp_path / "c.toml", extra="[worker]\nheartbeat_stale_seconds = 30")
    settings = settings_for(
        slack_emulator, slack_signing_secret, redis_url, cfg, ALERT_WEBHOOK_TOKEN="t0ken"
    )
    async with running_bot(settings, slack_emulator, slack_signing_secret) as running:
        yield running


async def _replies(bot: InProcessBot, words: str) -> list[str]:
    found = await bot.emulator.wait_for_async(
        lambda: [
            str(c.params.get("text"))
            for c in bot.emulator.calls("response_url")
            if words in json.dumps(c.params)
        ],
        timeout=20,
    )
    return list(found)


async def test_diagnose_with_no_worker_alive_says_so_at_once(bot: InProcessBot) -> None:
    body, _ = alert_body("generic_json", f"dc1.{FOREST}", dsa_guid(51), FOREST)
    assert (await bot.post(body))[0] == 202
    msg = (await bot.emulator.wait_for_async(bot.incident_messages, timeout=20))[0]
    click = await bot.driver.click(msg, action_id="incident_diagnose", user_id="U0ONCALL1")
    assert click.status == 200
    said = await _replies(bot, "no worker is running")
    assert "ad1411 worker --check" in said[0]
    # It is still queued: a worker that starts later runs it.
    assert bot.redis.xlen(JOBS_STREAM) == 1


async def test_diagnose_with_a_live_worker_says_queued(bot: InProcessBot, redis_url: str) -> None:
    client = redis.asyncio.Redis.from_url(redis_url)
    await WorkerRegistry(client).beat("test-worker-1")
    await client.aclose()
    body, _ = alert_body("generic_json", f"dc1.{FOREST}", dsa_guid(52), FOREST)
    await bot.post(body)
    msg = (await bot.emulator.wait_for_async(bot.incident_messages, timeout=20))[0]
    await bot.driver.click(msg, action_id="incident_diagnose", user_id="U0ONCALL1")
    said = await _replies(bot, "queued")
    assert "no worker" not in said[0]
    assert "posted in the incident thread" in said[0]
