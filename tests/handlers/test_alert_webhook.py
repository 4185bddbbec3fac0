"""POST /alerts and alert-channel messages, into the real serve app and the Slack emulator."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from handlers.webhook import sign_body
from lab.alert_samples import alert_body, dsa_guid, event_text
from lab.slack_driver import SlackDriver
from lab.slack_emulator import SlackEmulator
from state.keys import JOBS_STREAM, OPEN_INCIDENTS
from tests.handlers.serve_config import FOREST, write_config
from tests.inprocess import InProcessBot, running_bot, settings_for
from tests.procs import http_env, serve

pytestmark = [pytest.mark.slack]
TOKEN = "webhook-token-for-tests"
HMAC_KEY = "hmac-key-for-tests"


@pytest.fixture
async def bot(
    tmp_path: Path,
    redis_url: str,
    slack_emulator: SlackEmulator,
    slack_signing_secret: str,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[InProcessBot]:
    cfg = write_config(
        tmp_path / "c.toml", extra='hmac_secret = { env = "ALERT_HMAC" }', coalesce_seconds=0.5
    )
    monkeypatch.setenv("ALERT_HMAC", HMAC_KEY)
    settings = settings_for(
        slack_emulator, slack_signing_secret, redis_url, cfg, ALERT_WEBHOOK_TOKEN=TOKEN
    )
    async with running_bot(settings, slack_emulator, slack_signing_secret) as running:
        yield running


async def test_alert_opens_incident_with_message_and_thread(bot: InProcessBot) -> None:
    guid = dsa_guid(1)
    body, _ = alert_body("event_text", "dc1.corp.example.com", guid, FOREST)
    status, reply = await bot.post(body)
    assert status == 202
    assert reply["accepted"] == 1
    incident = reply["incidents"][0]
    assert incident["created"] is True
    iid = incident["incident_id"]

    msg = (await bot.emulator.wait_for_async(bot.incident_messages, timeout=20))[0]
    text = json.dumps(msg["blocks"])
    assert iid in text and guid in text and "dc1.corp.example.com" in text
    assert "serverReference" in text  # what 8589 means, in plain words
    buttons = [b["text"] for b in SlackDriver.buttons(msg)]
    assert [b["text"] for b in buttons] == ["Diagnose", "Start procedure"]
    await bot.emulator.wait_for_async(
        lambda: [
            m
            for m in bot.emulator.messages("C0INCIDENT")
            if m.get("thread_ts") == msg["ts"] and m["ts"] != msg["ts"]
        ],
        timeout=20,
    )

    # A second DC reports the same problem: same incident, listed, no new message.
    body, _ = alert_body("alertmanager", "dc2.corp.example.com", guid, FOREST)
    status, reply = await bot.post(body)
    assert status == 202 and reply["incidents"][0]["created"] is False
    updated = (
        await bot.emulator.wait_for_async(
            lambda: [m for m in bot.incident_messages() if "dc2.corp.example.com" in json.dumps(m)],
            timeout=20,
        )
    )[0]
    assert updated["ts"] == msg["ts"]
    assert len(bot.incident_messages()) == 1

    listing = await bot.driver.slash_command("/ad1411", "list")
    assert iid in listing.body and "2 alert(s) from 2 DC(s)" in listing.body
    status_reply = await bot.driver.slash_command("/ad1411", f"status {iid}")
    assert "dc1.corp.example.com" in status_reply.body
    assert "dc2.corp.example.com" in status_reply.body


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({"Authorization": "Bearer wrong"}, "bearer token is wrong"),
        ({}, "authentication"),
        ({"X-AD1411-Timestamp": "1", "X-AD1411-Signature": "v1=00"}, "authentication"),
    ],
)
async def test_bad_credentials_are_refused_and_create_nothing(
    bot: InProcessBot, headers: dict[str, str], why: str
) -> None:
    body, _ = alert_body("generic_json", "dc1.corp.example.com", dsa_guid(2), FOREST)
    status, reply = await bot.post(body, headers)
    assert status == 401
    assert why in str(reply["error"])
    assert bot.redis.zcard(OPEN_INCIDENTS) == 0
    assert bot.emulator.calls("chat.postMessage") == []


async def test_hmac_signature_accepted_and_stale_refused(bot: InProcessBot) -> None:
    body, _ = alert_body("generic_json", "dc1.corp.example.com", dsa_guid(3), FOREST)
    ts = str(int(time.time()))
    good = {"X-AD1411-Timestamp": ts, "X-AD1411-Signature": sign_body(HMAC_KEY.encode(), ts, body)}
    status, _ = await bot.post(body, good)
    assert status == 202
    old = str(int(time.time()) - 600)
    stale = {
        "X-AD1411-Timestamp": old,
        "X-AD1411-Signature": sign_body(HMAC_KEY.encode(), old, body),
    }
    status, _ = await bot.post(body, stale)
    assert status == 401
    tampered = {**good, "X-AD1411-Signature": sign_body(HMAC_KEY.encode(), ts, body + b" ")}
    status, _ = await bot.post(
        body + b" ", {**tampered, "X-AD1411-Signature": good["X-AD1411-Signature"]}
    )
    assert status == 401


async def test_oversize_body_is_refused(bot: InProcessBot) -> None:
    status, reply = await bot.post(b"x" * (1_048_576 + 1))
    assert status == 413
    assert "at most 1048576" in str(reply["error"])
    assert bot.redis.zcard(OPEN_INCIDENTS) == 0


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (
            b'{"event_id": 4625, "computer": "dc1.corp.example.com", "message": "x"}',
            "event_id",
            "1411",
        ),
        (
            event_text("dc1.corp.example.com&calc.exe", dsa_guid(4), FOREST).encode(),
            "reporting_dc",
            "expected",
        ),
        (event_text("dc1.corp.example.com", "not-a-guid", FOREST).encode(), None, "expected"),
        (
            event_text("dc1.corp.example.com", dsa_guid(4), "other.example.org").encode(),
            "forest",
            "not a configured forest",
        ),
    ],
)
async def test_bad_alerts_get_400_with_the_field(
    bot: InProcessBot, body: bytes, field: str | None, words: str
) -> None:
    status, reply = await bot.post(body)
    assert status == 400, reply
    if field is not None:
        assert reply.get("field") == field, reply
    assert words in str(reply["error"])
    assert bot.redis.zcard(OPEN_INCIDENTS) == 0


async def test_event_posted_in_alert_channel_opens_incident_once(bot: InProcessBot) -> None:
    guid = dsa_guid(5)
    text = "SCOM forwarded event:\n" + event_text("dc3.corp.example.com", guid, FOREST)
    first = await bot.driver.message_event("C0ALERTS", text, bot_id="B0SCOM0001")
    assert first.status == 200
    await bot.driver.replay(first.request, retry_num=1)
    msgs = await bot.emulator.wait_for_async(bot.incident_messages, timeout=20)
    assert guid in json.dumps(msgs[0]["blocks"])
    assert bot.redis.zcard(OPEN_INCIDENTS) == 1
    # Ordinary chat and other channels open nothing.
    await bot.driver.message_event("C0ALERTS", "is dc3 ok? it said 1411 earlier")
    await bot.driver.message_event(
        "C0OTHER01", event_text("dc4.corp.example.com", dsa_guid(6), FOREST)
    )
    assert bot.redis.zcard(OPEN_INCIDENTS) == 1


async def test_buttons_authorize_and_enqueue_once(bot: InProcessBot) -> None:
    body, _ = alert_body("generic_json", "dc1.corp.example.com", dsa_guid(7), FOREST)
    await bot.post(body)
    msg = (await bot.emulator.wait_for_async(bot.incident_messages, timeout=20))[0]

    visitor = await bot.driver.click(msg, action_id="incident_diagnose", user_id="U0VISITOR")
    assert visitor.status == 200
    await bot.emulator.wait_for_async(
        lambda: [
            c
            for c in bot.emulator.calls("response_url")
            if "not a responder" in json.dumps(c.params)
        ],
        timeout=20,
    )
    assert bot.redis.xlen(JOBS_STREAM) == 0

    first = await bot.driver.click(msg, action_id="incident_diagnose", user_id="U0ONCALL1")
    second = await bot.driver.click(msg, action_id="incident_diagnose", user_id="U0ONCALL1")
    assert first.status == second.status == 200
    assert bot.redis.xlen(JOBS_STREAM) == 1
    await bot.emulator.wait_for_async(
        lambda: [
            c
            for c in bot.emulator.calls("response_url")
            if "already queued or running" in json.dumps(c.params)
        ],
        timeout=20,
    )

    tampered = await bot.driver.click(msg, action_id="incident_diagnose", value="x; rm -rf /")
    assert tampered.status == 200
    await bot.emulator.wait_for_async(
        lambda: [
            c for c in bot.emulator.calls("response_url") if "refused" in json.dumps(c.params)
        ],
        timeout=20,
    )
    assert bot.redis.xlen(JOBS_STREAM) == 1

    await bot.driver.click(msg, action_id="incident_start")
    await bot.emulator.wait_for_async(
        lambda: [
            c
            for c in bot.emulator.calls("response_url")
            if "diagnosis is already running" in json.dumps(c.params)
        ],
        timeout=20,
    )
    assert TOKEN not in bot.stderr()


async def test_bad_1411_in_alert_channel_is_explained_in_its_thread(bot: InProcessBot) -> None:
    text = event_text("dc1.corp.example.com;rm", dsa_guid(8), FOREST)
    sent = await bot.driver.message_event("C0ALERTS", text, bot_id="B0SCOM0001")
    assert sent.status == 200
    reply = (
        await bot.emulator.wait_for_async(
            lambda: [
                m
                for m in bot.emulator.messages("C0ALERTS")
                if "no incident was opened" in str(m.get("text", ""))
            ],
            timeout=20,
        )
    )[0]
    assert reply["thread_ts"] != reply["ts"]
    assert "reporting_dc" in reply["text"]
    assert bot.redis.zcard(OPEN_INCIDENTS) == 0


async def test_slack_rate_limit_and_5xx_are_retried_once_each(bot: InProcessBot) -> None:
    bot.emulator.fail_next("chat.postMessage", times=1, status=429, retry_after=1)
    body, _ = alert_body("generic_json", "dc1.corp.example.com", dsa_guid(9), FOREST)
    status, _ = await bot.post(body)
    assert status == 202
    msgs = await bot.emulator.wait_for_async(bot.incident_messages, timeout=30)
    assert len(msgs) == 1
    statuses = [c.status for c in bot.emulator.calls("chat.postMessage")]
    assert statuses[:2] == [429, 200]

    bot.emulator.fail_next("chat.update", times=1, status=503)
    body, _ = alert_body("generic_json", "dc2.corp.example.com", dsa_guid(9), FOREST)
    await bot.post(body)
    await bot.emulator.wait_for_async(
        lambda: [m for m in bot.incident_messages() if "dc2.corp.example.com" in json.dumps(m)],
        timeout=30,
    )
    assert [c.status for c in bot.emulator.calls("chat.update")][:2] == [503, 200]
    assert len(bot.incident_messages()) == 1


@pytest.mark.e2e
async def test_incident_left_unposted_by_a_dead_replica_is_posted_at_start(
    tmp_path: Path,
    redis_url: str,
    slack_env: dict[str, str],
    slack_emulator: SlackEmulator,
) -> None:
    import redis.asyncio

    from state.incidents import AlertRecord, IncidentStore

    # As if a serve process recorded the alert and died before posting its message.
    store = IncidentStore(redis.asyncio.Redis.from_url(redis_url))
    intake = await store.record(
        AlertRecord(FOREST, dsa_guid(10), "dc1.corp.example.com", 8589, None, "event_text")
    )
    await store.client.aclose()
    env = http_env(
        slack_env,
        REDIS_URL=redis_url,
        AD1411_CONFIG=str(write_config(tmp_path / "c.toml")),
    )
    with serve(env, tmp_path, "a"), serve(env, tmp_path, "b"):
        msgs = slack_emulator.wait_for(
            lambda: [
                m
                for m in slack_emulator.messages("C0INCIDENT")
                if "blocks" in m and intake.incident_id in json.dumps(m["blocks"])
            ],
            timeout=30,
        )
    # Two replicas started; exactly one posted it.
    assert len(msgs) == 1
    posts = [c for c in slack_emulator.calls("chat.postMessage") if "thread_ts" not in c.params]
    assert len(posts) == 1
