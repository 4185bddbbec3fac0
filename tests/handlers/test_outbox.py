"""Incident and flood messages through the durable Slack outbox (issue 9: items 2, 3, 7 and the
Low item on a message left stale): posted until Slack takes them, exactly once, after
restarts, for every open incident; floods grouped."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio

from bot.config import Settings
from lab.alert_samples import alert_body, dsa_guid, event_text
from lab.slack_emulator import SlackEmulator
from lab.slack_workspace import ApiCall
from state.incidents import AlertRecord, IncidentStore
from state.keys import OPEN_INCIDENTS, IncidentKeys
from tests.handlers.serve_config import FOREST, write_config
from tests.inprocess import InProcessBot, running_bot, settings_for
from tests.waiting import until

pytestmark = [pytest.mark.slack]


def _outbox() -> str:
    # Imported here so the rest of this file also runs against code without an outbox.
    from state.keys import OUTBOX

    return OUTBOX


TOKEN = "webhook-token-for-outbox"


def _settings(
    tmp_path: Path,
    emulator: SlackEmulator,
    secret: str,
    redis_url: str,
    *,
    extra: str = "",
    coalesce: float = 0.5,
) -> Settings:
    cfg = write_config(tmp_path / "c.toml", coalesce_seconds=coalesce, extra=extra)
    return settings_for(emulator, secret, redis_url, cfg, ALERT_WEBHOOK_TOKEN=TOKEN)


@pytest.fixture
async def bot(
    tmp_path: Path, redis_url: str, slack_emulator: SlackEmulator, slack_signing_secret: str
) -> AsyncIterator[InProcessBot]:
    settings = _settings(tmp_path, slack_emulator, slack_signing_secret, redis_url)
    async with running_bot(settings, slack_emulator, slack_signing_secret) as running:
        yield running


def _posts(emulator: SlackEmulator) -> list[ApiCall]:
    """Top-level chat.postMessage calls that Slack accepted."""
    return [
        c
        for c in emulator.calls("chat.postMessage")
        if c.status == 200 and "thread_ts" not in c.params
    ]


def _incidents(reply: dict[str, object]) -> list[dict[str, Any]]:
    """The incidents a webhook reply lists."""
    incidents = reply["incidents"]
    assert isinstance(incidents, list)
    return incidents


async def _record_directly(redis_url: str, n: int, *, unqueue: bool) -> list[str]:
    """Incidents as a replica that died before posting (or an older version) left them."""
    client = redis.asyncio.Redis.from_url(redis_url)
    store = IncidentStore(client)
    ids = []
    for i in range(n):
        intake = await store.record(
            AlertRecord(FOREST, dsa_guid(1000 + i), "dc1.corp.example.com", 8589, None, "x")
        )
        ids.append(intake.incident_id)
    if unqueue:
        await client.delete(_outbox())
    await client.aclose()
    return ids


# -- item 2: retried until Slack takes it, honouring Retry-After; one message --------------------


async def test_rate_limited_incident_message_is_posted_once_after_retry_after(
    bot: InProcessBot,
) -> None:
    bot.emulator.fail_next("chat.postMessage", times=5, status=429, retry_after=1)
    body = alert_body("generic_json", "dc1.corp.example.com", dsa_guid(1), FOREST)[0]
    status, reply = await bot.post(body)
    assert status == 202
    iid = reply["incidents"][0]["incident_id"]
    msgs = await bot.emulator.wait_for_async(bot.incident_messages, timeout=30)
    assert len(msgs) == 1 and iid in json.dumps(msgs[0]["blocks"])
    calls = [c for c in bot.emulator.calls("chat.postMessage") if "thread_ts" not in c.params]
    assert [c.status for c in calls] == [429] * 5 + [200]
    gaps = [b.at - a.at for a, b in itertools.pairwise(calls)]
    assert all(g >= 0.9 for g in gaps), gaps  # Retry-After: 1 was honoured every time
    # The thread intro follows, once; the outbox is empty again.
    await bot.emulator.wait_for_async(lambda: bot.thread(str(msgs[0]["ts"])), timeout=10)
    await until(lambda: _async(bot.redis.zcard(_outbox()) == 0), what="outbox empty", timeout=10)
    assert len(bot.thread(str(msgs[0]["ts"]))) == 1
    # A later alert for the incident updates the message (it did not on main: nothing posted).
    await bot.post(alert_body("event_text", "dc2.corp.example.com", dsa_guid(1), FOREST)[0])
    await bot.emulator.wait_for_async(
        lambda: "dc2.corp.example.com" in json.dumps(bot.incident_messages()), timeout=10
    )
    assert len(_posts(bot.emulator)) == 1


async def _async(value: object) -> object:
    return value


async def test_every_open_incident_is_posted_at_start_not_only_fifty(
    tmp_path: Path, redis_url: str, slack_emulator: SlackEmulator, slack_signing_secret: str
) -> None:
    ids = await _record_directly(redis_url, 60, unqueue=True)
    settings = _settings(tmp_path, slack_emulator, slack_signing_secret, redis_url)
    async with running_bot(settings, slack_emulator, slack_signing_secret) as bot:
        await bot.emulator.wait_for_async(lambda: len(_posts(bot.emulator)) >= 60, timeout=60)
        posted = json.dumps([m.get("blocks") for m in bot.incident_messages()])
        assert all(iid in posted for iid in ids)
        assert len(_posts(bot.emulator)) == 60
        # `/ad1411 list` says it shows only part of them.
        listing = await bot.driver.slash_command("/ad1411", "list")
        assert "the 25 oldest of 60" in listing.body
        assert ids[0] in listing.body and ids[-1] not in listing.body


async def test_two_replicas_post_each_waiting_message_once(
    tmp_path: Path, redis_url: str, slack_emulator: SlackEmulator, slack_signing_secret: str
) -> None:
    ids = await _record_directly(redis_url, 30, unqueue=False)
    settings = _settings(tmp_path, slack_emulator, slack_signing_secret, redis_url)
    async with (
        running_bot(settings, slack_emulator, slack_signing_secret),
        running_bot(settings, slack_emulator, slack_signing_secret),
    ):
        await slack_emulator.wait_for_async(lambda: len(_posts(slack_emulator)) >= 30, timeout=30)

        def intros() -> list[ApiCall]:
            return [c for c in slack_emulator.calls("chat.postMessage") if "thread_ts" in c.params]

        await slack_emulator.wait_for_async(lambda: len(intros()) >= 30, timeout=30)
    assert len(_posts(slack_emulator)) == 30
    assert len(intros()) == 30
    assert len({json.dumps(c.params.get("blocks")) for c in _posts(slack_emulator)}) == len(ids)


# -- Low: a message left stale (dirty, nothing queued) is brought up to date at start ------------


async def test_a_stale_message_is_updated_at_start_without_a_new_alert(
    tmp_path: Path, redis_url: str, slack_emulator: SlackEmulator, slack_signing_secret: str
) -> None:
    settings = _settings(tmp_path, slack_emulator, slack_signing_secret, redis_url)
    async with running_bot(settings, slack_emulator, slack_signing_secret) as bot:
        body = alert_body("generic_json", "dc1.corp.example.com", dsa_guid(3), FOREST)[0]
        _, reply = await bot.post(body)
        iid = str(reply["incidents"][0]["incident_id"])
        await bot.emulator.wait_for_async(bot.incident_messages, timeout=20)
        await until(lambda: _async(bot.redis.zcard(_outbox()) == 0), what="posted", timeout=10)
    # Serve is gone. An alert is counted, but its update is lost (as after a Redis kill that
    # took the queued update with it): dirty, and nothing in the outbox.
    client = redis.asyncio.Redis.from_url(redis_url)
    await IncidentStore(client).record(
        AlertRecord(FOREST, dsa_guid(3), "dc9.corp.example.com", 8589, None, "x")
    )
    await client.delete(_outbox())
    await client.aclose()
    assert slack_emulator.calls("chat.update") == []
    async with running_bot(settings, slack_emulator, slack_signing_secret) as bot:
        await bot.emulator.wait_for_async(
            lambda: "dc9.corp.example.com" in json.dumps(bot.incident_messages()), timeout=20
        )
        tag = iid.split("-", maxsplit=1)[0]
        assert not bot.redis.hexists(IncidentKeys(tag).incident, "dirty")


# -- item 7: a flood of new problems opens a bounded number of incidents --------------------------


async def _minute_with_room(seconds: float = 12.0) -> None:
    """Start a per-minute test early in a minute, so the window does not roll over mid-test."""
    await until(
        lambda: _async(time.time() % 60 < 60 - seconds), what="room in this minute", timeout=20
    )


async def test_a_flood_is_grouped_into_one_message_and_said_in_the_answer(
    tmp_path: Path, redis_url: str, slack_emulator: SlackEmulator, slack_signing_secret: str
) -> None:
    extra = "max_new_incidents_per_request = 5\nmax_new_incidents_per_minute = 8"
    settings = _settings(tmp_path, slack_emulator, slack_signing_secret, redis_url, extra=extra)
    await _minute_with_room()
    async with (
        running_bot(settings, slack_emulator, slack_signing_secret) as a,
        running_bot(settings, slack_emulator, slack_signing_secret) as b,
    ):
        flood = "\n".join(
            event_text(f"dc1.{FOREST}", dsa_guid(5000 + i), FOREST) for i in range(200)
        )
        status, reply = await a.post(flood.encode())
        assert status == 202
        assert len([i for i in _incidents(reply) if i["created"]]) == 5
        grouped = reply["flood"]
        assert grouped["grouped"] == 195
        assert "alert flood" in grouped["message"]
        # Two replicas at once: together they open at most the 3 left of the minute's 8.
        more = [event_text(f"dc2.{FOREST}", dsa_guid(6000 + i), FOREST).encode() for i in range(20)]
        replies = await asyncio.gather(
            *[(a if i % 2 else b).post(body) for i, body in enumerate(more)]
        )
        created = sum(i["created"] for _, r in replies for i in _incidents(r))
        assert created == 3
        assert a.redis.zcard(OPEN_INCIDENTS) == 8
        # One flood message, updated to count all 212 grouped alerts; 8 incident messages.
        await slack_emulator.wait_for_async(
            lambda: (
                len(a.incident_messages()) >= 9
                and any("*212* alert(s)" in json.dumps(m) for m in a.incident_messages())
            ),
            timeout=30,
        )
        tops = a.incident_messages()
        floods = [m for m in tops if "Alert flood" in json.dumps(m)]
        assert len(floods) == 1
        assert len(tops) == 9
        text = json.dumps(floods[0]["blocks"])
        assert "and 187 more" in text  # bounded: 25 listed
        assert len(text) < 12_000
