"""Redis killed and restarted under a running serve (issue 9, item 11 and the fault suite):
clear answers while it is down, nothing acknowledged lost, nothing posted twice after."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from handlers.texts import REDIS_DOWN_TEXT
from lab.alert_samples import FORMATS, alert_body, dsa_guid
from lab.slack_emulator import SlackEmulator
from state.redis_server import RedisServer
from tests.conftest import free_port
from tests.handlers.serve_config import FOREST, write_config
from tests.inprocess import InProcessBot, running_bot, settings_for

pytestmark = [pytest.mark.slack]
TOKEN = "webhook-token-for-redis-outage"
PROBLEMS = 6


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server (AOF on) that this test may kill and restart."""
    server = RedisServer(tmp_path / "redis", port=free_port()).start()
    yield server
    server.stop()


@pytest.fixture
async def bot(
    tmp_path: Path,
    own_redis: RedisServer,
    slack_emulator: SlackEmulator,
    slack_signing_secret: str,
) -> AsyncIterator[InProcessBot]:
    cfg = write_config(tmp_path / "c.toml", coalesce_seconds=0.3)
    settings = settings_for(
        slack_emulator, slack_signing_secret, own_redis.url, cfg, ALERT_WEBHOOK_TOKEN=TOKEN
    )
    async with running_bot(settings, slack_emulator, slack_signing_secret) as running:
        yield running


async def _get(url: str) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return r.status, json.loads(await r.text())


async def test_redis_down_gets_503_and_clear_slack_texts(
    bot: InProcessBot, own_redis: RedisServer
) -> None:
    body = alert_body("generic_json", "dc1.corp.example.com", dsa_guid(1), FOREST)[0]
    assert (await bot.post(body))[0] == 202
    msg = (await bot.emulator.wait_for_async(bot.incident_messages, timeout=20))[0]
    own_redis.kill()

    async with aiohttp.ClientSession() as s:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with s.post(bot.url + "/alerts", data=body, headers=headers) as r:
            assert r.status == 503
            assert r.headers["Retry-After"].isdigit()
            assert "Redis" in (await r.json())["error"]
    listing = await bot.driver.slash_command("/ad1411", "list")
    assert listing.status == 200 and REDIS_DOWN_TEXT in listing.body
    click = await bot.driver.click(msg, action_id="incident_diagnose")
    assert click.status == 200
    await bot.emulator.wait_for_async(
        lambda: [
            c for c in bot.emulator.calls("response_url") if "database" in json.dumps(c.params)
        ],
        timeout=20,
    )
    status, ready = await _get(bot.url + "/readyz")
    assert status == 503 and "redis" in json.dumps(ready)
    assert (await _get(bot.url + "/healthz"))[0] == 200  # an external Redis is not ours to fix
    assert "Traceback" not in bot.stderr()

    own_redis.start()
    status, reply = await bot.post(body)
    assert status == 202
    assert reply["incidents"][0]["count"] == 2  # type: ignore[index]
    assert (await _get(bot.url + "/readyz"))[0] == 200


async def test_redis_killed_and_restarted_mid_stream_loses_no_acknowledged_alert(
    bot: InProcessBot, own_redis: RedisServer
) -> None:
    rng = random.Random(9)
    accepted: Counter[str] = Counter()
    refused = 0
    stop = asyncio.Event()

    async def stream() -> None:
        nonlocal refused
        i = 0
        async with aiohttp.ClientSession() as s:
            while not stop.is_set():
                guid = dsa_guid(100 + rng.randrange(PROBLEMS))
                body, ctype = alert_body(FORMATS[i % 3], f"dc{i % 4}.{FOREST}", guid, FOREST)
                headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": ctype}
                async with s.post(bot.url + "/alerts", data=body, headers=headers) as r:
                    assert r.status in (202, 503), await r.text()
                    if r.status == 202:
                        accepted[guid] += 1
                    else:
                        refused += 1
                i += 1

    senders = [asyncio.create_task(stream()) for _ in range(3)]
    await bot.emulator.wait_for_async(lambda: sum(accepted.values()) >= 60, timeout=30)
    own_redis.kill()
    await bot.emulator.wait_for_async(lambda: refused >= 10, timeout=30)
    own_redis.start()
    before = sum(accepted.values())
    await bot.emulator.wait_for_async(lambda: sum(accepted.values()) >= before + 60, timeout=30)
    stop.set()
    await asyncio.gather(*senders)

    def settled() -> bool:
        tops = bot.incident_messages()
        if len(tops) < len(accepted):
            return False
        text = json.dumps(tops)
        return all(f"*Alerts*\\n{n}" in text for n in accepted.values())

    await bot.emulator.wait_for_async(settled, timeout=30)
    # Every acknowledged alert is counted; every problem has exactly one message.
    for guid, n in accepted.items():
        incidents = [i for i in await bot.ctx.store.list_open() if i.dsa_guid == guid]
        assert len(incidents) == 1 and incidents[0].count == n
    posts = [c for c in bot.emulator.calls("chat.postMessage") if "thread_ts" not in c.params]
    assert len(posts) == len(accepted)
    assert "Traceback" not in bot.stderr()
