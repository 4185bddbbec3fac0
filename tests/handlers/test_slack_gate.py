"""/slack/events attacked as an outsider (and a malicious insider) would (issue 9: items 5, 10
and the Low items on workspaces, malformed payloads and who may read incidents)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest

from lab.alert_samples import alert_body, dsa_guid
from lab.slack_driver import SentRequest, slack_signature
from lab.slack_emulator import SlackEmulator
from state.keys import JOBS_STREAM, OPEN_INCIDENTS
from tests.handlers.serve_config import FOREST, write_config
from tests.inprocess import InProcessBot, running_bot, settings_for
from tests.rawhttp import exchange, request_head

pytestmark = [pytest.mark.slack]
TOKEN = "webhook-token-for-slack-gate"


@pytest.fixture
async def bot(
    tmp_path: Path, redis_url: str, slack_emulator: SlackEmulator, slack_signing_secret: str
) -> AsyncIterator[InProcessBot]:
    cfg = write_config(tmp_path / "c.toml")
    settings = settings_for(
        slack_emulator, slack_signing_secret, redis_url, cfg, ALERT_WEBHOOK_TOKEN=TOKEN
    )
    async with running_bot(settings, slack_emulator, slack_signing_secret) as running:
        yield running


async def _incident(bot: InProcessBot, n: int = 1) -> str:
    status, reply = await bot.post(
        alert_body("generic_json", "dc1.corp.example.com", dsa_guid(n), FOREST)[0]
    )
    assert status == 202
    return str(reply["incidents"][0]["incident_id"])


async def _post(bot: InProcessBot, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as s,
        s.post(bot.url + "/slack/events", data=body, headers=headers) as r,
    ):
        return r.status, await r.text()


def _log_size(bot: InProcessBot) -> int:
    return sum(len(line) + 1 for line in bot.logs.lines)


# -- item 5: nothing is logged of a body; refused before the body is read ------------------------


async def test_unsigned_megabyte_posts_do_not_grow_the_log(bot: InProcessBot) -> None:
    before = _log_size(bot)
    marker = "BODY-MARKER-" + "x" * (1024 * 1024 - 20)
    for _ in range(3):
        status, text = await _post(
            bot, marker.encode(), {"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert status == 401
        assert "X-Slack-Signature" in json.loads(text)["error"]
    assert _log_size(bot) - before < 2000
    assert "BODY-MARKER" not in bot.stderr()


async def test_a_forged_log_line_in_a_badly_signed_body_is_never_logged(bot: InProcessBot) -> None:
    body = b"text=hi\n2026-11-30 03:00:00,000 INFO handlers.slash: user U0ADMIN approved step 5"
    ts = str(int(time.time()))
    headers = {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": slack_signature("not-the-secret", ts, body),
        "Content-Type": "application/x-www-form-urlencoded",
    }
    status, text = await _post(bot, body, headers)
    assert status == 401 and "does not match" in text
    assert "approved step 5" not in bot.stderr()


# -- item 10: a timestamp that is not a number is a 401 ------------------------------------------


@pytest.mark.parametrize("stamp", ["abc", "\u00b2", "1" * 5000, "", "1.5", "+1"])
async def test_odd_slack_timestamps_are_401(bot: InProcessBot, stamp: str) -> None:
    body = b"command=%2Fad1411&text=help"
    headers = {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": "v0=" + "0" * 64,
        "Content-Type": "application/x-www-form-urlencoded",
    }
    answer = await exchange(
        bot.url, request_head(bot.url, "/slack/events", headers, content_length=len(body)) + body
    )
    assert answer.status == 401, answer
    assert "Traceback" not in bot.stderr()


async def test_replayed_slack_request_is_refused_and_a_slack_retry_is_a_no_op(
    bot: InProcessBot,
) -> None:
    first = await bot.driver.slash_command("/ad1411", "help")
    assert first.status == 200
    again = await bot.driver.replay(first.request, resign=False)
    assert again.status == 401 and "replay" in again.body
    retried = await _post(
        bot, first.request.body, {**first.request.headers, "X-Slack-Retry-Num": "1"}
    )
    assert retried == (200, "{}")


# -- Low: only the configured workspace (default: the bot token's) ------------------------------


def _from_team(bot: InProcessBot, fields: dict[str, str], team: str) -> SentRequest:
    fields = {**fields, "team_id": team}
    return SentRequest(
        "slash_commands", fields, urlencode(fields).encode(), "application/x-www-form-urlencoded"
    )


async def test_requests_from_another_workspace_are_refused(bot: InProcessBot) -> None:
    iid = await _incident(bot)
    fields = bot.driver.slash_command_fields(
        "/ad1411", f"diagnose {iid}", user_id="U0ONCALL1", channel_id="C0INCIDENT"
    )
    refused = await bot.driver.send(_from_team(bot, fields, "T0EVIL0001"))
    assert refused.status == 403
    assert "another one" in refused.body
    assert bot.redis.xlen(JOBS_STREAM) == 0
    own = await bot.driver.send(_from_team(bot, fields, bot.emulator.workspace.team_id))
    assert own.status == 200 and "queued" in own.body
    assert bot.redis.xlen(JOBS_STREAM) == 1


async def test_configured_workspaces_replace_the_default(
    tmp_path: Path, redis_url: str, slack_emulator: SlackEmulator, slack_signing_secret: str
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[slack]\nchannel = "C0INCIDENT"\nresponders = ["U0ONCALL1"]\n'
        'workspaces = ["E0GRID0001"]\n'
        f'[[forests]]\nname = "{FOREST}"\nldap_hosts = ["dc1.{FOREST}"]\n'
    )
    settings = settings_for(slack_emulator, slack_signing_secret, redis_url, cfg)
    async with running_bot(settings, slack_emulator, slack_signing_secret) as bot:
        fields = bot.driver.slash_command_fields(
            "/ad1411", "help", user_id="U0ONCALL1", channel_id="C0INCIDENT"
        )
        own_team = await bot.driver.send(_from_team(bot, fields, "T0LAB0001"))
        assert own_team.status == 403
        in_grid = {**fields, "enterprise_id": "E0GRID0001"}
        sent = await bot.driver.send(_from_team(bot, in_grid, "T0LAB0001"))
        assert sent.status == 200 and "Usage" in sent.body


# -- Low: validly signed but malformed payloads are a 400, and change nothing ---------------------


def _interactive(payload: object) -> SentRequest:
    body = urlencode({"payload": json.dumps(payload)}).encode()
    return SentRequest("interactive", {}, body, "application/x-www-form-urlencoded")


def _click_payload(bot: InProcessBot, iid: str) -> dict[str, Any]:
    msg = bot.incident_messages()[0]
    button = bot.driver.find_button(msg, action_id="incident_diagnose")
    payload = bot.driver.block_actions_payload(msg, button, user_id="U0ONCALL1")
    assert payload["actions"][0]["value"] == iid
    return payload


async def test_malformed_signed_payloads_get_400_and_change_nothing(bot: InProcessBot) -> None:
    iid = await _incident(bot)
    await bot.emulator.wait_for_async(bot.incident_messages, timeout=20)
    good = _click_payload(bot, iid)
    form = "application/x-www-form-urlencoded"
    cases: list[tuple[SentRequest, str]] = [
        (_interactive({**good, "user": "U0ONCALL1"}), "user"),
        (_interactive({**good, "user": {"id": 7}}), "user"),
        (_interactive({**good, "actions": []}), "actions"),
        (_interactive({**good, "actions": ["x"]}), "actions"),
        (_interactive({**good, "team": ["T0LAB0001"]}), "team"),
        (_interactive([good]), "JSON object"),
        (_interactive({**good, "type": "view_submission"}), "view"),
        (SentRequest("interactive", {}, b"payload=%7Bnot+json", form), "body"),
        (SentRequest("interactive", {}, b"payload=%5B%5B" * 2000, form), "body"),
        (
            SentRequest(
                "events_api", {}, b'{"type": "event_callback", "event": "x"}', "application/json"
            ),
            "event",
        ),
        (SentRequest("events_api", {}, b"[1, 2]", "application/json"), "JSON object"),
        (SentRequest("slash_commands", {}, b"command=%2Fad1411&text=list", form), "user_id"),
        (SentRequest("slash_commands", {}, b"\xff\xfe", form), "UTF-8"),
    ]
    for sent, why in cases:
        answer = await bot.driver.send(sent)
        assert answer.status == 400, (why, answer.status, answer.body)
        assert why in json.loads(answer.body)["error"], (why, answer.body)
    assert bot.redis.xlen(JOBS_STREAM) == 0
    assert bot.redis.zcard(OPEN_INCIDENTS) == 1
    assert "Traceback" not in bot.stderr()
    # The same click, well-formed, still works.
    ok = await bot.driver.send(_interactive(good))
    assert ok.status == 200
    assert bot.redis.xlen(JOBS_STREAM) == 1


# -- Low: `list` and `status` are for responders and approvers; `help` for anyone ----------------


async def test_incident_details_are_for_responders_and_approvers(bot: InProcessBot) -> None:
    from handlers.slash import READERS_ONLY

    iid = await _incident(bot)
    for verb in ("list", f"status {iid}"):
        visitor = await bot.driver.slash_command("/ad1411", verb, user_id="U0VISITOR")
        assert READERS_ONLY in visitor.body and iid not in visitor.body
        in_dm = await bot.driver.slash_command(
            "/ad1411", verb, user_id="U0VISITOR", channel_id="D0VISITOR"
        )
        assert READERS_ONLY in in_dm.body
        approver = await bot.driver.slash_command("/ad1411", verb, user_id="U0APPROV1")
        assert iid in approver.body
    helped = await bot.driver.slash_command("/ad1411", "help", user_id="U0VISITOR")
    assert "Usage" in helped.body


async def test_replies_go_only_to_slack_whatever_response_url_says(bot: InProcessBot) -> None:
    from aiohttp import web

    hits: list[str] = []

    async def evil(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response()

    app = web.Application()
    app.router.add_post("/{tail:.*}", evil)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        iid = await _incident(bot)
        await bot.emulator.wait_for_async(bot.incident_messages, timeout=20)
        payload = {**_click_payload(bot, iid), "response_url": f"http://127.0.0.1:{port}/steal"}
        answer = await bot.driver.send(_interactive(payload))
        assert answer.status == 200
        await bot.emulator.wait_for_async(
            lambda: "no Slack response_url" in bot.stderr(), timeout=10
        )
        assert hits == []
    finally:
        await runner.cleanup()


async def test_socket_mode_requests_from_another_workspace_are_refused(
    tmp_path: Path, redis_url: str, slack_emulator: SlackEmulator, slack_signing_secret: str
) -> None:
    from lab.slack_driver import SlackDriver
    from lab.slack_emulator import LAB_APP_TOKEN

    cfg = write_config(tmp_path / "c.toml")
    settings = settings_for(
        slack_emulator, slack_signing_secret, redis_url, cfg, SLACK_APP_TOKEN=LAB_APP_TOKEN
    )
    async with running_bot(settings, slack_emulator, slack_signing_secret):
        await slack_emulator.wait_for_async(lambda: slack_emulator.socket_connections, timeout=20)
        driver = SlackDriver(slack_emulator, socket_mode=True)
        fields = driver.slash_command_fields(
            "/ad1411", "help", user_id="U0ONCALL1", channel_id="C0INCIDENT"
        )
        ack = await slack_emulator.deliver(
            "slash_commands", {**fields, "team_id": "T0EVIL0001"}, accepts_response_payload=True
        )
        assert "another one" in json.dumps(ack) and "Usage" not in json.dumps(ack)
        own = await driver.slash_command("/ad1411", "help")
        assert "Usage" in json.dumps(own.ack)
