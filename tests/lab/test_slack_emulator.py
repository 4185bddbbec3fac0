"""The Slack emulator and driver, exercised by the real slack_sdk clients and a real Bolt app."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.http_retry.builtin_handlers import (
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook import WebhookClient

from lab.slack_driver import Forgery, SlackDriver
from lab.slack_emulator import LAB_APP_TOKEN, LAB_BOT_TOKEN, SlackEmulator
from tests.fixtures_slack import *  # noqa: F403

pytestmark = pytest.mark.slack

CHANNEL = "C0INCIDENT"
ROOT = Path(__file__).resolve().parents[2]


def incident_blocks(value: str = "proc-1:step-4") -> list[dict[str, Any]]:
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": "*Event 1411* on dc2.corp.example"}},
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "action_id": "approve",
                    "text": {"type": "plain_text", "text": "Approve"},
                    "value": value,
                    "style": "primary",
                },
                {
                    "type": "button",
                    "action_id": "abort",
                    "text": {"type": "plain_text", "text": "Abort"},
                    "value": "proc-1",
                },
            ],
        },
    ]


def web_client(emu: SlackEmulator, **kwargs: Any) -> WebClient:
    return WebClient(token=LAB_BOT_TOKEN, base_url=emu.api_url, **kwargs)


# -- Web API --------------------------------------------------------------------------------


def test_post_then_update_shows_the_updated_message(slack_emulator: SlackEmulator) -> None:
    client = web_client(slack_emulator)
    first = client.chat_postMessage(
        channel=CHANNEL, text="Incident opened", blocks=incident_blocks()
    )
    second = client.chat_postMessage(channel=CHANNEL, text="Diagnosis", thread_ts=first["ts"])
    assert first["channel"] == CHANNEL
    assert float(second["ts"]) > float(first["ts"])
    assert len(first["ts"].split(".")[1]) == 6

    client.chat_update(channel=CHANNEL, ts=first["ts"], text="Incident: step 4 approved")

    parent, reply = slack_emulator.messages(CHANNEL)
    assert parent["ts"] == first["ts"]
    assert parent["text"] == "Incident: step 4 approved"
    assert [b["type"] for b in parent["blocks"]] == ["section", "actions"]  # kept by chat.update
    assert all(b.get("block_id") for b in parent["blocks"])  # Slack fills in missing block_ids
    assert parent["reply_count"] == 1
    assert reply["thread_ts"] == first["ts"]
    posted = slack_emulator.calls("chat.postMessage")
    assert [c.params["channel"] for c in posted] == [CHANNEL, CHANNEL]
    assert all(c.ok and "token" not in c.params for c in posted)


def test_form_encoded_and_multipart_bodies_are_understood(slack_emulator: SlackEmulator) -> None:
    client = web_client(slack_emulator)
    blocks = json.dumps(incident_blocks())
    client.api_call("chat.postMessage", params={"channel": CHANNEL, "blocks": blocks})
    client.api_call("chat.postMessage", data={"channel": CHANNEL, "text": "multipart"})
    first, second = slack_emulator.messages(CHANNEL)
    assert first["blocks"][1]["elements"][0]["action_id"] == "approve"
    assert second["text"] == "multipart"


async def test_async_client_reads_directory_and_threads(slack_emulator: SlackEmulator) -> None:
    slack_emulator.workspace.set_usergroup("S0APPROVE", ["U0APPROV1"])
    client = AsyncWebClient(token=LAB_BOT_TOKEN, base_url=slack_emulator.api_url)
    me = await client.auth_test()
    assert me["user_id"] == slack_emulator.workspace.bot_user_id
    user = await client.users_info(user="U0ONCALL1")
    assert user["user"]["name"] == "alice"
    group = await client.usergroups_users_list(usergroup="S0APPROVE")
    assert group["users"] == ["U0APPROV1"]
    channel = await client.conversations_info(channel=CHANNEL)
    assert channel["channel"]["name"] == "ad-incidents"

    parent = await client.chat_postMessage(channel=CHANNEL, text="Incident")
    await client.chat_postMessage(channel=CHANNEL, text="step 1 done", thread_ts=parent["ts"])
    await client.reactions_add(channel=CHANNEL, timestamp=parent["ts"], name="white_check_mark")
    replies = await client.conversations_replies(channel=CHANNEL, ts=parent["ts"])
    assert [m["text"] for m in replies["messages"]] == ["Incident", "step 1 done"]
    assert replies["messages"][0]["reactions"][0]["name"] == "white_check_mark"
    link = await client.chat_getPermalink(channel=CHANNEL, message_ts=parent["ts"])
    assert parent["ts"].replace(".", "") in link["permalink"]
    await client.chat_postEphemeral(channel=CHANNEL, user="U0ONCALL2", text="only for bob")
    assert [m["text"] for m in slack_emulator.ephemerals(CHANNEL, "U0ONCALL2")] == ["only for bob"]

    with pytest.raises(SlackApiError) as missing:
        await client.usergroups_users_list(usergroup="S0NOSUCH")
    assert missing.value.response["error"] == "no_such_subteam"


def test_tokens_are_checked(slack_emulator: SlackEmulator) -> None:
    with pytest.raises(SlackApiError) as wrong:
        WebClient(token="xoxb-forged", base_url=slack_emulator.api_url).auth_test()
    assert wrong.value.response["error"] == "invalid_auth"
    with pytest.raises(SlackApiError) as app_token:
        WebClient(token=LAB_APP_TOKEN, base_url=slack_emulator.api_url).auth_test()
    assert app_token.value.response["error"] == "not_allowed_token_type"
    with pytest.raises(SlackApiError) as bot_token:
        web_client(slack_emulator).apps_connections_open(app_token=LAB_BOT_TOKEN)
    assert bot_token.value.response["error"] == "not_allowed_token_type"
    opened = web_client(slack_emulator).apps_connections_open(app_token=LAB_APP_TOKEN)
    assert opened["url"].startswith(f"ws://127.0.0.1:{slack_emulator.port}/socket?")
    assert slack_emulator.messages() == []


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _button(**fields: Any) -> dict[str, Any]:
    button = {"type": "button", "text": {"type": "plain_text", "text": "Go"}, "action_id": "go"}
    return {"type": "actions", "elements": [{**button, **fields}]}


@pytest.mark.parametrize(
    ("blocks", "pointer"),
    [
        ([_section("x")] * 51, "/blocks]"),
        ([_section("x" * 3001)], "/blocks/0/text/text]"),
        ([_button(action_id="a" * 256)], "/blocks/0/elements/0/action_id]"),
        ([_button(value="v" * 2001)], "/blocks/0/elements/0/value]"),
        ([{**_section("x"), "block_id": "b" * 256}], "/blocks/0/block_id]"),
        ([{"type": "actions", "elements": [_button()["elements"][0]] * 2}], "/action_id]"),
    ],
    ids=["51-blocks", "section-3001", "action-id-256", "value-2001", "block-id-256", "dup-action"],
)
def test_invalid_blocks_are_refused_like_slack(
    slack_emulator: SlackEmulator, blocks: list[dict[str, Any]], pointer: str
) -> None:
    with pytest.raises(SlackApiError) as refused:
        web_client(slack_emulator).chat_postMessage(channel=CHANNEL, text="t", blocks=blocks)
    answer = refused.value.response
    assert answer["error"] == "invalid_blocks"
    assert any(e.endswith(pointer) for e in answer["errors"]), answer["errors"]
    assert slack_emulator.messages(CHANNEL) == []


def test_limits_at_the_edge_are_accepted_and_long_text_refused(
    slack_emulator: SlackEmulator,
) -> None:
    client = web_client(slack_emulator)
    edge = [_section("x" * 3000)] * 49 + [_button(action_id="a" * 255, value="v" * 2000)]
    client.chat_postMessage(channel=CHANNEL, text="y" * 40_000, blocks=edge)
    with pytest.raises(SlackApiError) as too_long:
        client.chat_postMessage(channel=CHANNEL, text="y" * 40_001)
    assert too_long.value.response["error"] == "msg_too_long"
    assert len(slack_emulator.messages(CHANNEL)) == 1


def test_views_need_a_fresh_trigger_and_the_current_hash(slack_emulator: SlackEmulator) -> None:
    client = web_client(slack_emulator)
    modal = {
        "type": "modal",
        "title": {"type": "plain_text", "text": "Approve step 5"},
        "submit": {"type": "plain_text", "text": "Approve"},
        "blocks": [_section("Restart the root DC?")],
    }
    trigger = slack_emulator.issue_trigger_id()
    opened = client.views_open(trigger_id=trigger, view=modal)["view"]
    with pytest.raises(SlackApiError) as reused:
        client.views_open(trigger_id=trigger, view=modal)
    assert reused.value.response["error"] == "invalid_trigger_id"

    changed = {**modal, "blocks": [_section("Restarting...")]}
    updated = client.views_update(view_id=opened["id"], hash=opened["hash"], view=changed)["view"]
    with pytest.raises(SlackApiError) as stale:
        client.views_update(view_id=opened["id"], hash=opened["hash"], view=modal)
    assert stale.value.response["error"] == "hash_conflict"
    [view] = slack_emulator.views()
    assert view["hash"] == updated["hash"]
    assert view["blocks"][0]["text"]["text"] == "Restarting..."


def test_response_url_works_five_times_and_checks_blocks(slack_emulator: SlackEmulator) -> None:
    url = slack_emulator.issue_response_url(CHANNEL, "U0ONCALL1")
    hook = WebhookClient(url)
    bad = hook.send(text="x", blocks=[_section("x" * 3001)])
    assert bad.status_code == 400
    assert json.loads(bad.body)["error"] == "invalid_blocks"
    answers = [hook.send(text=f"note {i}").status_code for i in range(5)]
    assert answers == [200, 200, 200, 200, 404]  # five uses, the refused post included
    notes = [m["text"] for m in slack_emulator.ephemerals(CHANNEL, "U0ONCALL1")]
    assert notes == ["note 0", "note 1", "note 2", "note 3"]
    shared = slack_emulator.issue_response_url(CHANNEL, "U0ONCALL1")
    assert WebhookClient(shared).send(text="for all", response_type="in_channel").status_code == 200
    assert [m["text"] for m in slack_emulator.messages(CHANNEL)] == ["for all"]
    assert [c.status for c in slack_emulator.calls("response_url")][-2:] == [404, 200]


def test_wait_for_sees_a_post_from_another_thread(slack_emulator: SlackEmulator) -> None:
    client = web_client(slack_emulator)
    poster = threading.Timer(0.2, lambda: client.chat_postMessage(channel=CHANNEL, text="late"))
    poster.start()
    try:
        [late] = slack_emulator.wait_for(lambda: slack_emulator.messages(CHANNEL), timeout=30)
    finally:
        poster.join()
    assert late["text"] == "late"
    with pytest.raises(TimeoutError, match=r"chat\.postMessage\(200\)"):
        slack_emulator.wait_for(lambda: slack_emulator.messages("C0ALERTS"), timeout=0.1)


# -- faults ---------------------------------------------------------------------------------


def test_rate_limit_is_retried_after_retry_after(slack_emulator: SlackEmulator) -> None:
    slack_emulator.fail_next("chat.postMessage", status=429, retry_after=1)
    with pytest.raises(SlackApiError) as limited:
        web_client(slack_emulator).chat_postMessage(channel=CHANNEL, text="no retry handler")
    assert limited.value.response.status_code == 429
    assert limited.value.response.headers["Retry-After"] == "1"

    slack_emulator.fail_next("chat.postMessage", status=429, retry_after=1)
    client = web_client(
        slack_emulator, retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)]
    )
    client.chat_postMessage(channel=CHANNEL, text="retried")
    assert [c.status for c in slack_emulator.calls("chat.postMessage")] == [429, 429, 200]
    assert [m["text"] for m in slack_emulator.messages(CHANNEL)] == ["retried"]


def test_server_errors_are_retried(slack_emulator: SlackEmulator) -> None:
    slack_emulator.fail_next("chat.update", 2, status=503)
    slack_emulator.fail_next("chat.postMessage", status=500)
    quick = FixedValueRetryIntervalCalculator(0.05)
    handlers = [ServerErrorRetryHandler(max_retry_count=2, interval_calculator=quick)]
    client = web_client(slack_emulator, retry_handlers=handlers)
    posted = client.chat_postMessage(channel=CHANNEL, text="v1")
    client.chat_update(channel=CHANNEL, ts=posted["ts"], text="v2")
    assert [c.status for c in slack_emulator.calls("chat.postMessage")] == [500, 200]
    assert [c.status for c in slack_emulator.calls("chat.update")] == [503, 503, 200]
    assert slack_emulator.messages(CHANNEL)[0]["text"] == "v2"


async def test_async_client_retries_rate_limits(slack_emulator: SlackEmulator) -> None:
    slack_emulator.fail_next("*", status=429, retry_after=0)
    handlers: list[AsyncRetryHandler] = [AsyncRateLimitErrorRetryHandler(max_retry_count=1)]
    client = AsyncWebClient(
        token=LAB_BOT_TOKEN, base_url=slack_emulator.api_url, retry_handlers=handlers
    )
    await client.reactions_add(
        channel=CHANNEL,
        timestamp=(await client.chat_postMessage(channel=CHANNEL, text="x"))["ts"],
        name="eyes",
    )
    assert [c.status for c in slack_emulator.calls()] == [429, 200, 200]


# -- signing --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("forgery", "valid"),
    [
        (Forgery.NONE, True),
        (Forgery.BAD_SIGNATURE, False),
        (Forgery.STALE_TIMESTAMP, False),
        (Forgery.NO_SIGNATURE, False),
    ],
)
def test_driver_signatures_verify_with_slack_sdk(
    slack_emulator: SlackEmulator, slack_signing_secret: str, forgery: Forgery, valid: bool
) -> None:
    driver = SlackDriver(
        slack_emulator, signing_secret=slack_signing_secret, bot_url="http://127.0.0.1:9/"
    )
    fields = driver.slash_command_fields(
        "/ad1411", "status", user_id="U0ONCALL1", channel_id=CHANNEL
    )
    body = driver.interactive_request({"fields": fields}).body
    headers = driver.signature_headers(body, forgery)
    assert SignatureVerifier(slack_signing_secret).is_valid_request(body, headers) is valid


# -- a real Bolt app ------------------------------------------------------------------------


def bolt_app(emu: SlackEmulator, signing_secret: str) -> AsyncApp:
    """A tiny incident bot: /ad1411 posts an incident with buttons; Approve replaces it."""
    app = AsyncApp(
        client=AsyncWebClient(token=LAB_BOT_TOKEN, base_url=emu.api_url),
        signing_secret=signing_secret,
    )

    @app.command("/ad1411")
    async def command(ack: Any, say: Any, respond: Any, command: dict[str, Any]) -> None:
        if command["text"] == "help":
            await ack("usage: /ad1411 status")
            return
        await ack()
        await say(text="Incident opened", blocks=incident_blocks())
        await respond(f"Working on it, <@{command['user_id']}>")

    @app.action("approve")
    async def approve(ack: Any, body: dict[str, Any], respond: Any) -> None:
        await ack()
        value = body["actions"][0]["value"]
        await respond(replace_original=True, text=f"Approved by <@{body['user']['id']}>: {value}")

    @app.event("message")
    async def message(event: dict[str, Any], say: Any) -> None:
        if "1411" in event.get("text", ""):
            await say(text="Saw an Event 1411", thread_ts=event["ts"])

    return app


@contextlib.asynccontextmanager
async def serving(app: AsyncApp) -> AsyncIterator[str]:
    runner = web.AppRunner(app.web_app(path="/slack/events"), shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
    finally:
        await runner.cleanup()


def _updated(emu: SlackEmulator, ts: str) -> dict[str, Any] | None:
    message = emu.message(CHANNEL, ts)
    return message if message and message.get("text", "").startswith("Approved") else None


async def test_bolt_app_gets_signed_command_and_click_over_http(
    slack_emulator: SlackEmulator, slack_signing_secret: str
) -> None:
    emu = slack_emulator
    async with serving(bolt_app(emu, slack_signing_secret)) as url:
        driver = SlackDriver(emu, signing_secret=slack_signing_secret, bot_url=url)

        answer = await driver.slash_command("/ad1411", "status", user_id="U0ONCALL1")
        assert answer.status == 200
        [incident] = await emu.wait_for_async(lambda: emu.messages(CHANNEL))
        assert incident["text"] == "Incident opened"
        [ack_note] = await emu.wait_for_async(lambda: emu.ephemerals(CHANNEL, "U0ONCALL1"))
        assert ack_note["text"] == "Working on it, <@U0ONCALL1>"

        clicked = await driver.click(incident, text="Approve", user_id="U0APPROV1")
        assert clicked.status == 200
        approved = await emu.wait_for_async(lambda: _updated(emu, incident["ts"]))
        assert approved["text"] == "Approved by <@U0APPROV1>: proc-1:step-4"
        assert "blocks" not in approved  # replace_original replaces the whole message

        help_answer = await driver.slash_command("/ad1411", "help")
        assert help_answer.body == "usage: /ad1411 status"  # Bolt acks plain text over HTTP


async def test_bolt_app_refuses_forged_and_stale_requests(
    slack_emulator: SlackEmulator, slack_signing_secret: str
) -> None:
    emu = slack_emulator
    async with serving(bolt_app(emu, slack_signing_secret)) as url:
        driver = SlackDriver(emu, signing_secret=slack_signing_secret, bot_url=url)
        for forgery in (Forgery.BAD_SIGNATURE, Forgery.STALE_TIMESTAMP, Forgery.NO_SIGNATURE):
            refused = await driver.slash_command("/ad1411", "status", forgery=forgery)
            assert refused.status == 401, forgery
        verified = await driver.url_verification("challenge-123")
        assert verified.json() == {"challenge": "challenge-123"}
        assert emu.messages(CHANNEL) == []


async def test_events_reach_the_bot_and_can_be_replayed(
    slack_emulator: SlackEmulator, slack_signing_secret: str
) -> None:
    emu = slack_emulator
    async with serving(bolt_app(emu, slack_signing_secret)) as url:
        driver = SlackDriver(emu, signing_secret=slack_signing_secret, bot_url=url)
        posted = await driver.message_event("C0ALERTS", "Event ID 1411 on dc2", user="U0ONCALL2")
        assert posted.status == 200
        both = await emu.wait_for_async(
            lambda: len(emu.messages("C0ALERTS")) == 2 and emu.messages("C0ALERTS")
        )
        assert isinstance(both, list)
        alert, reply = both
        assert reply["thread_ts"] == alert["ts"]
        assert reply["text"] == "Saw an Event 1411"

        retried = await driver.replay(posted.request, retry_num=1)
        assert retried.request.headers["X-Slack-Retry-Num"] == "1"
        assert json.loads(retried.request.body)["event_id"] == posted.request.payload["event_id"]
        assert retried.status == 200
        # Byte-for-byte replay keeps the original timestamp: fine now, refused once stale.
        same = await driver.replay(retried.request, resign=False)
        assert same.request.headers == retried.request.headers


# -- Socket Mode ----------------------------------------------------------------------------


async def test_bolt_socket_mode_app_acks_and_responds(slack_emulator: SlackEmulator) -> None:
    emu = slack_emulator
    handler = AsyncSocketModeHandler(bolt_app(emu, "unused-in-socket-mode"), LAB_APP_TOKEN)
    await handler.connect_async()  # type: ignore[no-untyped-call]
    try:
        await emu.wait_for_async(lambda: emu.socket_connections >= 1)
        # The SDK pings right after connecting and counts the link alive only on the echo.
        await emu.wait_for_async(lambda: handler.client.last_ping_pong_time is not None)
        driver = SlackDriver(emu, socket_mode=True)

        answer = await driver.slash_command("/ad1411", "status", user_id="U0ONCALL1")
        assert answer.status == 200
        assert answer.ack is not None and answer.ack["envelope_id"]
        [note] = await emu.wait_for_async(lambda: emu.ephemerals(CHANNEL, "U0ONCALL1"))
        assert note["text"] == "Working on it, <@U0ONCALL1>"
        help_answer = await driver.slash_command("/ad1411", "help")
        assert help_answer.json() == {"text": "usage: /ad1411 status"}

        # Slack asks apps to reconnect now and then; the SDK opens a new connection.
        await emu.disconnect_sockets("refresh_requested")
        await emu.wait_for_async(lambda: emu.socket.connects >= 2 and emu.socket_connections == 1)
        assert len(emu.calls("apps.connections.open")) >= 2

        # A dropped link (no disconnect message) is reconnected too.
        await emu.disconnect_sockets(close=True)
        await emu.wait_for_async(lambda: emu.socket.connects >= 3 and emu.socket_connections == 1)

        [incident] = emu.messages(CHANNEL)
        await driver.click(incident, action_id="approve", user_id="U0APPROV2")
        approved = await emu.wait_for_async(lambda: _updated(emu, incident["ts"]))
        assert approved["text"] == "Approved by <@U0APPROV2>: proc-1:step-4"
        assert [c.response["envelope_id"] for c in emu.calls("socket_mode.envelope")] == [
            c.params["envelope_id"] for c in emu.calls("socket_mode.envelope")
        ]
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]


# -- standalone -----------------------------------------------------------------------------


async def test_standalone_emulator_drives_a_bot(slack_signing_secret: str) -> None:
    app = bolt_app(SlackEmulator(), slack_signing_secret)
    async with serving(app) as url:
        env = {**os.environ, "SLACK_SIGNING_SECRET": slack_signing_secret}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "lab.slack_console", "--port", "0", "--bot-url", url,
            cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip()
            api_url = line.removeprefix("SLACK_API_URL=")
            app.client.base_url = api_url
            base = api_url.removesuffix("/api/")
            async with aiohttp.ClientSession() as http:
                async with http.post(f"{base}/_lab/command", json={"command": "/ad1411"}) as r:
                    assert (await r.json())["status"] == 200
                for _ in range(500):
                    async with http.get(f"{base}/_lab/messages", params={"channel": CHANNEL}) as r:
                        messages = await r.json()
                    if messages:
                        break
                    await asyncio.sleep(0.02)
            assert messages[0]["text"] == "Incident opened"
        finally:
            proc.terminate()
            await proc.wait()
