"""Redis failing between a request's duplicate check and its recording (a reply-losing proxy
refuses the one recording call): the sender is told to send again (503, not a 500), and what it
sends again is recorded, not refused or dropped as already received.

- A 1411 event posted in an alert channel: Slack's retry (within the same second it carries the
  same signature; later, a new one) is recorded once.
- An HMAC-signed alert on /alerts: the sender's resend of the same bytes is recorded."""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
import redis

from handlers.webhook import sign_body
from lab.alert_samples import alert_body, dsa_guid, event_text
from lab.slack_emulator import SlackEmulator
from state.keys import OPEN_INCIDENTS, IncidentKeys
from tests.handlers.serve_config import FOREST, write_config
from tests.inprocess import InProcessBot, running_bot, settings_for
from tests.lossy_proxy import LossyProxy

pytestmark = [pytest.mark.slack]
HMAC_KEY = "hmac-key-for-redis-failure-tests"


@pytest.fixture
async def proxy(redis_url: str) -> AsyncIterator[LossyProxy]:
    port = urlparse(redis_url).port
    assert port is not None
    async with LossyProxy(port).running() as running:
        yield running


@pytest.fixture
async def bot(
    tmp_path: Path,
    proxy: LossyProxy,
    slack_emulator: SlackEmulator,
    slack_signing_secret: str,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[InProcessBot]:
    cfg = write_config(tmp_path / "c.toml", extra='hmac_secret = { env = "ALERT_HMAC" }')
    monkeypatch.setenv("ALERT_HMAC", HMAC_KEY)
    settings = settings_for(slack_emulator, slack_signing_secret, proxy.url, cfg)
    async with running_bot(settings, slack_emulator, slack_signing_secret) as running:
        yield running


@pytest.mark.parametrize("same_second", [True, False], ids=["same-signature", "signed-anew"])
async def test_an_event_redis_failed_to_record_is_retried_by_slack_and_recorded(
    bot: InProcessBot, proxy: LossyProxy, redis_url: str, same_second: bool
) -> None:
    direct = redis.Redis.from_url(redis_url)  # not through the proxy, which runs in this loop
    guid = dsa_guid(41)
    text = "SCOM forwarded event:\n" + event_text("dc7.corp.example.com", guid, FOREST)
    proxy.refuse(b"dc7.corp.example.com")  # only the recording names the reporting DC
    first = await bot.driver.message_event("C0ALERTS", text, bot_id="B0SCOM0001")
    assert proxy.refused, "the recording was never refused: the test proved nothing"
    assert first.status == 503, (first.status, first.body)
    assert direct.zcard(OPEN_INCIDENTS) == 0
    retry = await bot.driver.replay(
        first.request, retry_num=1, retry_reason="http_error", same_second=same_second
    )
    assert retry.status == 200, (retry.status, retry.body)
    assert direct.zcard(OPEN_INCIDENTS) == 1
    msgs = await bot.emulator.wait_for_async(bot.incident_messages, timeout=20)
    assert guid in json.dumps(msgs[0]["blocks"])
    assert "Traceback" not in bot.stderr()
    # Recorded once: a further retry of the same event is Slack's retry of what was handled.
    again = await bot.driver.replay(first.request, retry_num=2, same_second=same_second)
    assert again.status == 200
    assert int(direct.hget(_incident_key(msgs[0]), "count") or 0) == 1


def _incident_key(message: dict[str, object]) -> str:
    found = re.search(r"([0-9a-f]{10})-1", json.dumps(message["blocks"]))
    assert found, message
    return IncidentKeys(found.group(1)).incident


async def test_a_signed_alert_redis_failed_to_record_is_taken_when_sent_again(
    bot: InProcessBot, proxy: LossyProxy, redis_url: str
) -> None:
    direct = redis.Redis.from_url(redis_url)
    body, _ = alert_body("generic_json", "dc8.corp.example.com", dsa_guid(42), FOREST)
    ts = str(int(time.time()))
    signature = sign_body(HMAC_KEY.encode(), ts, body)
    headers = {"X-AD1411-Timestamp": ts, "X-AD1411-Signature": signature}
    proxy.refuse(b"dc8.corp.example.com")
    status, reply = await bot.post(body, headers)
    assert proxy.refused, "the recording was never refused: the test proved nothing"
    assert status == 503 and "Send it again" in str(reply["error"]), (status, reply)
    assert direct.zcard(OPEN_INCIDENTS) == 0
    status, reply = await bot.post(body, headers)  # the same bytes, as a sender resends them
    assert status == 202, (status, reply)
    assert reply["incidents"][0]["count"] == 1
    # Once recorded, the same signed bytes are a replay again.
    status, reply = await bot.post(body, headers)
    assert status == 409, (status, reply)
    assert direct.zcard(OPEN_INCIDENTS) == 1
