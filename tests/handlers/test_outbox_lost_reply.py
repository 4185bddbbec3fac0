"""An outbox claim whose reply a failover loses (found by CI: the Sentinel failover test waited
more than 60 s for an incident message). The claim was applied and its reply lost; the delivery
failed without releasing the lease, so the message waited out the whole 90 s lease. Now a claim
that fails is released once Redis answers again, and a claim retried with its attempt's token
(as a client retrying on a new connection would) is recognized as its own."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
import redis.asyncio

from lab.alert_samples import alert_body, dsa_guid
from lab.slack_emulator import SlackEmulator
from state.incidents import AlertRecord, IncidentStore
from state.keys import OUTBOX
from state.outbox import SlackOutbox
from tests.handlers.serve_config import FOREST, write_config
from tests.inprocess import InProcessBot, running_bot, settings_for
from tests.lossy_proxy import LossyProxy
from tests.redis_ha import RedisHA
from tests.waiting import until

pytestmark = [pytest.mark.slack]
TOKEN = "webhook-token-for-lost-replies"


@pytest.fixture(params=["plain", "wait-for-a-replica"])
async def proxy(
    request: pytest.FixtureRequest, redis_url: str, tmp_path: Path
) -> AsyncIterator[LossyProxy]:
    """In front of the session server; or of a primary with a replica, every write confirmed by
    it (WAIT 1 in the script's pipeline: the path behind Sentinel)."""
    if request.param == "plain":
        port = urlparse(redis_url).port
        assert port is not None
        async with LossyProxy(port).running() as running:
            yield running
        return
    pair = RedisHA(tmp_path / "pair", replica_count=1)  # no Sentinels: the primary stays
    try:
        for node in pair.nodes:
            node.start()
        await asyncio.to_thread(pair.wait_replicated, pair.primary.port, 1)
        async with LossyProxy(pair.primary.port, query="wait_replicas=1").running() as running:
            running.direct_url = f"redis://127.0.0.1:{pair.primary.port}/0"
            yield running
    finally:
        for node in pair.nodes:
            node.stop()


@pytest.fixture
async def bot(
    tmp_path: Path, proxy: LossyProxy, slack_emulator: SlackEmulator, slack_signing_secret: str
) -> AsyncIterator[InProcessBot]:
    settings = settings_for(
        slack_emulator,
        slack_signing_secret,
        proxy.url,
        write_config(tmp_path / "c.toml"),
        ALERT_WEBHOOK_TOKEN=TOKEN,
    )
    async with running_bot(settings, slack_emulator, slack_signing_secret) as running:
        yield running


async def test_a_claim_whose_reply_was_lost_still_delivers_the_message(
    bot: InProcessBot, proxy: LossyProxy, redis_url: str
) -> None:
    direct = redis.asyncio.Redis.from_url(proxy.direct_url or redis_url)
    try:
        # A first incident, delivered and done: Redis now knows the claim script, so the lost
        # call below is applied (not refused with NOSCRIPT), and no call of its own is left.
        first = await _alert(bot, 30)
        await bot.emulator.wait_for_async(lambda: _message_of(bot, first), timeout=30)
        await _until_delivered(direct)
        # The claim script's call: two keys, the outbox first (finish and defer have three).
        proxy.lose_reply_to(f"\r\n2\r\n${len(OUTBOX)}\r\n{OUTBOX}\r\n".encode())
        iid = await _alert(bot, 31)
        # Well inside the 90 s lease the lost claim would otherwise hold (a hang, not a speed).
        msg = await bot.emulator.wait_for_async(lambda: _message_of(bot, iid), timeout=45)
        assert len(proxy.lost) == 1 and iid.encode() in proxy.lost[0], proxy.lost
        assert msg
        await _until_delivered(direct)
        assert await direct.keys("*outbox-claim*") == []  # no lease left behind
    finally:
        await direct.aclose()
    assert len(_message_of(bot, iid)) == 1  # posted once


async def _until_delivered(direct: redis.asyncio.Redis) -> None:
    await until(lambda: _async_zero(direct.zcard(OUTBOX)), timeout=20, what="the outbox emptied")


async def _alert(bot: InProcessBot, n: int) -> str:
    body = alert_body("generic_json", "dc1.corp.example.com", dsa_guid(n), FOREST)[0]
    status, reply = await bot.post(body)
    assert status == 202, reply
    return str(reply["incidents"][0]["incident_id"])


def _message_of(bot: InProcessBot, iid: str) -> list[dict[str, object]]:
    return [m for m in bot.incident_messages() if iid in json.dumps(m.get("blocks", []))]


async def _async_zero(value: object) -> bool:
    return int(await value) == 0  # type: ignore[misc]


async def test_a_claim_retried_with_its_token_is_its_own_and_no_one_elses(
    redis_url: str,
) -> None:
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        outbox = SlackOutbox(client)
        intake = await IncidentStore(client).record(
            AlertRecord(FOREST, dsa_guid(32), "dc1.corp.example.com", 8589, None, "x")
        )
        iid = intake.incident_id
        assert await outbox.claim(iid, "replica-a:attempt-1", 30)
        assert await outbox.claim(iid, "replica-a:attempt-1", 30)  # the same attempt, retried
        assert not await outbox.claim(iid, "replica-a:attempt-2", 30)
        assert not await outbox.claim(iid, "replica-b:attempt-1", 30)
        assert await outbox.finish(iid, "replica-a:attempt-1", 1) == 0
        assert not await outbox.claim(iid, "replica-a:attempt-1", 30)  # finished: not due
    finally:
        await client.aclose()
