"""Slack answering 429 (with Retry-After) and bursts of 5xx on every Web API method the bot
calls, and on response_url: nothing lost, nothing done twice (issue 9, fault suite).

Methods: chat.postMessage (incident message, thread intro, thread posts), chat.update,
auth.test, usergroups.users.list, apps.connections.open, and response_url replies.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from lab.alert_samples import alert_body, dsa_guid, event_text
from lab.slack_emulator import SlackEmulator
from state.keys import JOBS_STREAM
from tests.handlers.serve_config import FOREST, write_config
from tests.inprocess import InProcessBot, running_bot, settings_for

pytestmark = [pytest.mark.slack]
TOKEN = "webhook-token-for-slack-faults"


def _settings(
    tmp_path: Path, emulator: SlackEmulator, secret: str, redis_url: str, **env: str
) -> Any:
    cfg = write_config(tmp_path / "c.toml", coalesce_seconds=0.3)
    return settings_for(emulator, secret, redis_url, cfg, ALERT_WEBHOOK_TOKEN=TOKEN, **env)


@pytest.fixture
async def bot(
    tmp_path: Path, redis_url: str, slack_emulator: SlackEmulator, slack_signing_secret: str
) -> AsyncIterator[InProcessBot]:
    settings = _settings(tmp_path, slack_emulator, slack_signing_secret, redis_url)
    async with running_bot(settings, slack_emulator, slack_signing_secret) as running:
        yield running


def _ok(emulator: SlackEmulator, method: str, where: Any = None) -> list[Any]:
    return [
        c for c in emulator.calls(method) if c.status == 200 and (where is None or where(c.params))
    ]


async def test_incident_message_update_and_intro_through_429_and_5xx(bot: InProcessBot) -> None:
    # Posting: 429s then 5xx on chat.postMessage hit both the message and its thread intro.
    bot.emulator.fail_next("chat.postMessage", times=2, status=429, retry_after=1)
    bot.emulator.fail_next("chat.postMessage", times=2, status=503)
    body = alert_body("generic_json", "dc1.corp.example.com", dsa_guid(1), FOREST)[0]
    assert (await bot.post(body))[0] == 202
    await bot.emulator.wait_for_async(
        lambda: len(_ok(bot.emulator, "chat.postMessage")) >= 2, timeout=30
    )
    tops = _ok(bot.emulator, "chat.postMessage", lambda p: "thread_ts" not in p)
    intros = _ok(bot.emulator, "chat.postMessage", lambda p: "thread_ts" in p)
    assert len(tops) == 1 and len(intros) == 1
    # Updating: a burst of 5xx on chat.update; the update lands once.
    bot.emulator.fail_next("chat.update", times=3, status=500)
    body = alert_body("event_text", "dc2.corp.example.com", dsa_guid(1), FOREST)[0]
    assert (await bot.post(body))[0] == 202
    await bot.emulator.wait_for_async(
        lambda: "dc2.corp.example.com" in json.dumps(bot.incident_messages()), timeout=30
    )
    assert [c.status for c in bot.emulator.calls("chat.update")] == [500] * 3 + [200]
    from state.keys import OUTBOX

    await bot.emulator.wait_for_async(lambda: bot.redis.zcard(OUTBOX) == 0, timeout=10)
    assert len(bot.incident_messages()) == 1


async def test_thread_post_through_429_and_5xx(bot: InProcessBot) -> None:
    # A bad 1411 in an alert channel is explained in its thread: once, through the faults.
    # More than the Web API client's own three retries, then a server error.
    bot.emulator.fail_next("chat.postMessage", times=4, status=429, retry_after=1)
    bot.emulator.fail_next("chat.postMessage", times=1, status=502)
    sent = await bot.driver.message_event(
        "C0ALERTS", event_text("dc1.corp.example.com;rm", dsa_guid(2), FOREST), bot_id="B0SCOM"
    )
    assert sent.status == 200
    explained = await bot.emulator.wait_for_async(
        lambda: [
            m for m in bot.emulator.messages("C0ALERTS") if "no incident" in str(m.get("text"))
        ],
        timeout=40,
    )
    assert len(explained) == 1
    assert len(_ok(bot.emulator, "chat.postMessage")) == 1


async def test_response_url_replies_through_5xx_and_429(bot: InProcessBot) -> None:
    body = alert_body("generic_json", "dc1.corp.example.com", dsa_guid(3), FOREST)[0]
    await bot.post(body)
    msg = (await bot.emulator.wait_for_async(bot.incident_messages, timeout=20))[0]
    bot.emulator.fail_next("response_url", times=2, status=503)
    bot.emulator.fail_next("response_url", times=1, status=429, retry_after=1)
    click = await bot.driver.click(msg, action_id="incident_diagnose")
    assert click.status == 200
    replies = await bot.emulator.wait_for_async(
        lambda: _ok(bot.emulator, "response_url", lambda p: "queued" in json.dumps(p)), timeout=30
    )
    assert len(replies) == 1
    assert bot.redis.xlen(JOBS_STREAM) == 1


async def test_group_lookup_rate_limited_says_so_then_works_once(
    bot: InProcessBot,
) -> None:
    body = alert_body("generic_json", "dc1.corp.example.com", dsa_guid(4), FOREST)[0]
    await bot.post(body)
    msg = (await bot.emulator.wait_for_async(bot.incident_messages, timeout=20))[0]
    # U0ONCALL2 is a responder only through the user group S0RESPOND.
    bot.emulator.fail_next("usergroups.users.list", times=20, status=429, retry_after=1)
    first = await bot.driver.click(msg, action_id="incident_diagnose", user_id="U0ONCALL2")
    assert first.status == 200
    await bot.emulator.wait_for_async(
        lambda: _ok(bot.emulator, "response_url", lambda p: "did not list" in json.dumps(p)),
        timeout=20,
    )
    assert bot.redis.xlen(JOBS_STREAM) == 0  # nothing done, and the user was told why
    bot.emulator.faults.clear()  # Slack recovers
    again = await bot.driver.click(msg, action_id="incident_diagnose", user_id="U0ONCALL2")
    assert again.status == 200
    await bot.emulator.wait_for_async(
        lambda: _ok(bot.emulator, "response_url", lambda p: "queued" in json.dumps(p)), timeout=20
    )
    assert bot.redis.xlen(JOBS_STREAM) == 1


async def test_auth_test_failing_at_start_is_retried_and_requests_are_told(
    tmp_path: Path, redis_url: str, slack_emulator: SlackEmulator, slack_signing_secret: str
) -> None:
    slack_emulator.fail_next("auth.test", times=4, status=503)
    settings = _settings(tmp_path, slack_emulator, slack_signing_secret, redis_url)
    async with running_bot(settings, slack_emulator, slack_signing_secret) as bot:
        early = await bot.driver.slash_command("/ad1411", "help")
        assert early.status == 200
        assert "auth.test" in early.body or "Usage" in early.body  # told, or already warmed up
        await bot.emulator.wait_for_async(lambda: _ok(bot.emulator, "auth.test"), timeout=30)
        later = await bot.driver.slash_command("/ad1411", "help")
        assert "Usage" in later.body
        assert len(_ok(bot.emulator, "auth.test")) == 1  # cached once it succeeded


async def test_socket_mode_connects_through_a_5xx_and_a_429(
    tmp_path: Path, redis_url: str, slack_emulator: SlackEmulator, slack_signing_secret: str
) -> None:
    from lab.slack_driver import SlackDriver
    from lab.slack_emulator import LAB_APP_TOKEN

    slack_emulator.fail_next("apps.connections.open", times=1, status=503)
    slack_emulator.fail_next("apps.connections.open", times=1, status=429, retry_after=1)
    settings = _settings(
        tmp_path, slack_emulator, slack_signing_secret, redis_url, SLACK_APP_TOKEN=LAB_APP_TOKEN
    )
    async with running_bot(settings, slack_emulator, slack_signing_secret):
        await slack_emulator.wait_for_async(lambda: slack_emulator.socket_connections, timeout=20)
        resp = await SlackDriver(slack_emulator, socket_mode=True).slash_command("/ad1411", "help")
        assert "Usage" in json.dumps(resp.ack)
    assert len(_ok(slack_emulator, "apps.connections.open")) == 1
