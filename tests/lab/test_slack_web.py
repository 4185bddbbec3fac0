"""The emulator's web page end to end: a real Bolt app, real signed requests from the page's
endpoints, and what each visitor sees (messages, threads, their own ephemerals, modals)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from lab.slack_driver import SlackDriver
from lab.slack_emulator import LAB_BOT_TOKEN, SlackEmulator
from lab.slack_web import REQUIRED
from tests.waiting import until

pytestmark = pytest.mark.slack

CHANNEL = "C0INCIDENT"
RESPONDER, APPROVER_1, APPROVER_2 = "U0ONCALL1", "U0APPROV1", "U0APPROV2"


def _input(block_id: str, label: str) -> dict[str, Any]:
    return {
        "type": "input",
        "block_id": block_id,
        "label": {"type": "plain_text", "text": label},
        "element": {"type": "plain_text_input", "action_id": "text"},
    }


def form_view(title: str = "Approve step 5") -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": "form",
        "notify_on_close": True,
        "title": {"type": "plain_text", "text": title},
        "submit": {"type": "plain_text", "text": "Approve"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            _input("reason", "Why"),
            {
                "type": "input",
                "block_id": "risk",
                "label": {"type": "plain_text", "text": "Risk"},
                "element": {
                    "type": "radio_buttons",
                    "action_id": "pick",
                    "options": [
                        {"text": {"type": "plain_text", "text": "Low"}, "value": "low"},
                        {"text": {"type": "plain_text", "text": "High"}, "value": "high"},
                    ],
                },
            },
            {
                "type": "actions",
                "block_id": "extra",
                "elements": [
                    {
                        "type": "button",
                        "action_id": "more",
                        "text": {"type": "plain_text", "text": "Details"},
                    }
                ],
            },
        ],
    }


def incident_blocks() -> list[dict[str, Any]]:
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": "*Step 5*: restart `dc1`"}},
        {
            "type": "actions",
            "block_id": "step_5",
            "elements": [
                {
                    "type": "button",
                    "action_id": "open_form",
                    "text": {"type": "plain_text", "text": "Approve…"},
                    "style": "primary",
                },
                {
                    "type": "button",
                    "action_id": "ack",
                    "text": {"type": "plain_text", "text": "Acknowledge"},
                    "confirm": {
                        "title": {"type": "plain_text", "text": "Sure?"},
                        "text": {"type": "plain_text", "text": "It is noted."},
                        "confirm": {"type": "plain_text", "text": "Yes"},
                        "deny": {"type": "plain_text", "text": "No"},
                    },
                },
            ],
        },
    ]


def modal_app(emu: SlackEmulator, signing_secret: str) -> AsyncApp:
    """A small app that uses what the procedure will: modals, push, update, errors, threads."""
    client = AsyncWebClient(token=LAB_BOT_TOKEN, base_url=emu.api_url)
    app = AsyncApp(client=client, signing_secret=signing_secret)
    posted: dict[str, str] = {}

    @app.command("/ad1411")
    async def command(ack: Any, say: Any) -> None:
        await ack("Opening step 5")
        sent = await say(text="Step 5", blocks=incident_blocks())
        posted["ts"] = sent["ts"]

    @app.action("open_form")
    async def open_form(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        await client.views_open(trigger_id=body["trigger_id"], view=form_view())

    @app.action("more")
    async def more(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        details = {
            "type": "modal",
            "title": {"type": "plain_text", "text": "Details"},
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "KB938704"}}],
        }
        await client.views_push(trigger_id=body["trigger_id"], view=details)

    @app.action("ack")
    async def acknowledge(ack: Any, body: dict[str, Any], respond: Any) -> None:
        await ack()
        await respond(f"Noted, <@{body['user']['id']}>", replace_original=False)

    @app.view("form")
    async def submitted(ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        reason = view["state"]["values"]["reason"]["text"]["value"]
        risk = view["state"]["values"]["risk"]["pick"]["selected_option"]["value"]
        if reason == "bad":
            await ack(response_action="errors", errors={"reason": "Not a reason"})
            return
        if reason == "again":
            await ack(response_action="update", view=form_view("Approve step 5 (again)"))
            return
        await ack()
        user = body["user"]["id"]
        await client.chat_postMessage(
            channel=CHANNEL,
            thread_ts=posted["ts"],
            text=f"Approved by <@{user}>: {reason} ({risk})",
        )
        await client.chat_update(
            channel=CHANNEL, ts=posted["ts"], text="Step 5 approved", blocks=[]
        )

    @app.view_closed("form")
    async def closed(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        await client.chat_postMessage(
            channel=CHANNEL, thread_ts=posted["ts"], text=f"<@{body['user']['id']}> cancelled"
        )

    return app


@contextlib.asynccontextmanager
async def page_with_bot(emu: SlackEmulator, secret: str) -> AsyncIterator[Page]:
    runner = web.AppRunner(modal_app(emu, secret).web_app(path="/slack/events"))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
    emu.driver = SlackDriver(emu, signing_secret=secret, bot_url=url)
    try:
        async with aiohttp.ClientSession() as session:
            yield Page(emu, session)
    finally:
        await runner.cleanup()


class Page:
    """What the page's JavaScript does, as plain HTTP calls."""

    def __init__(self, emu: SlackEmulator, session: aiohttp.ClientSession) -> None:
        self.emu = emu
        self.session = session

    async def act(self, name: str, **spec: Any) -> tuple[int, dict[str, Any]]:
        async with self.session.post(f"{self.emu.base_url}/_web/{name}", json=spec) as resp:
            return resp.status, await resp.json()

    async def state(self, user: str, thread: str = "", since: int = -1) -> dict[str, Any]:
        query = {"as": user, "since": str(since), "thread": thread}
        async with self.session.get(f"{self.emu.base_url}/_web/state", params=query) as resp:
            assert resp.status == 200
            data: dict[str, Any] = await resp.json()
            return data

    async def seen(self, user: str, text: str, *, thread: str = "", where: str = "") -> bool:
        state = await self.state(user, thread)
        html = state[where] if where else state["channel_html"] + state["thread_html"]
        return text in html

    def message(self) -> dict[str, Any]:
        return next(m for m in self.emu.messages(CHANNEL) if "thread_ts" not in m)


async def test_page_assets_are_local_and_locked_down(slack_emulator: SlackEmulator) -> None:
    async with aiohttp.ClientSession() as session:
        for path, kind in (("/", "text/html"), ("/_web/slack.js", "text/javascript")):
            async with session.get(slack_emulator.base_url + path) as resp:
                body = await resp.text()
                assert resp.status == 200 and resp.content_type == kind
                assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
                assert "http://" not in body and "https://" not in body  # nothing external
        async with session.get(slack_emulator.base_url + "/_web/slack.css") as resp:
            assert "url(" not in await resp.text()


async def test_commands_clicks_and_ephemerals_per_visitor(
    slack_emulator: SlackEmulator, slack_signing_secret: str
) -> None:
    async with page_with_bot(slack_emulator, slack_signing_secret) as page:
        status, answer = await page.act("command", **{"as": RESPONDER, "text": "/ad1411 step"})
        assert (status, answer["status"]) == (200, 200)
        # The ack's text is shown to the one who typed the command only.
        assert await page.seen(RESPONDER, "Opening step 5")
        assert not await page.seen(APPROVER_1, "Opening step 5")
        await until(
            lambda: _async(page.seen(APPROVER_1, "<b>Step 5</b>: restart <code>dc1</code>"))
        )
        ts = page.message()["ts"]

        status, answer = await page.act(
            "click", **{"as": APPROVER_1, "ts": ts, "block_id": "step_5", "action_id": "ack"}
        )
        assert (status, answer["status"]) == (200, 200)
        await until(lambda: _async(page.seen(APPROVER_1, 'Noted, <span class="mention">@carol')))
        assert not await page.seen(RESPONDER, "Noted")
        assert not await page.seen(APPROVER_2, "Noted")


async def _async(value: Any) -> Any:
    return await value


async def test_modal_open_errors_update_push_and_submit(
    slack_emulator: SlackEmulator, slack_signing_secret: str
) -> None:
    emu = slack_emulator
    async with page_with_bot(emu, slack_signing_secret) as page:
        await page.act("command", **{"as": RESPONDER, "text": "/ad1411 step"})
        await until(lambda: _async(page.seen(APPROVER_2, "Step 5")))
        ts = page.message()["ts"]
        await page.act(
            "click", **{"as": APPROVER_2, "ts": ts, "block_id": "step_5", "action_id": "open_form"}
        )

        async def modal_of(user: str) -> dict[str, Any] | None:
            modal: dict[str, Any] | None = (await page.state(user))["modal"]
            return modal

        modal = await until(lambda: modal_of(APPROVER_2))
        assert "Approve step 5" in modal["html"]
        assert await modal_of(RESPONDER) is None  # a modal opens in the clicker's client only
        view_id = emu.workspace.open_views(APPROVER_2)[0]["id"]
        submissions = len([c for c in emu.calls("chat.postMessage")])

        # Required fields are checked before anything is sent, as Slack's client does.
        await page.act("submit", **{"as": APPROVER_2, "view_id": view_id, "values": {}})
        modal = await until(lambda: modal_of(APPROVER_2))
        assert modal["html"].count(REQUIRED) == 2

        def values(reason: str) -> dict[str, Any]:
            return {"reason": {"text": reason}, "risk": {"pick": "high"}}

        # response_action errors: shown on the field.
        status, answer = await page.act(
            "submit", **{"as": APPROVER_2, "view_id": view_id, "values": values("bad")}
        )
        assert (status, answer["status"]) == (200, 200)
        assert "Not a reason" in (await modal_of(APPROVER_2) or {})["html"]

        # response_action update: same modal, new content (views.update semantics).
        await page.act(
            "submit", **{"as": APPROVER_2, "view_id": view_id, "values": values("again")}
        )
        assert "(again)" in (await modal_of(APPROVER_2) or {})["html"]

        # A button inside the modal pushes a second one; closing it shows the first again.
        await page.act("click", **{"as": APPROVER_2, "view_id": view_id, "action_id": "more"})
        pushed = await until(lambda: _async(_depth(page, APPROVER_2, 2)), what="the pushed modal")
        assert "KB938704" in pushed["html"]
        top = emu.workspace.open_views(APPROVER_2)[-1]
        assert top["previous_view_id"] == view_id and top["root_view_id"] == view_id
        await page.act("close", **{"as": APPROVER_2, "view_id": top["id"]})
        assert (await modal_of(APPROVER_2) or {})["depth"] == 1

        # A good submission closes the modal; the app answers in the thread and edits in place.
        submission = await page.act(
            "submit", **{"as": APPROVER_2, "view_id": view_id, "values": values("planned")}
        )
        assert submission[1]["status"] == 200
        assert await modal_of(APPROVER_2) is None
        await until(
            lambda: _async(page.seen(RESPONDER, "Approved by", thread=ts, where="thread_html"))
        )
        state = await page.state(RESPONDER, ts)
        assert (
            'Approved by <span class="mention">@dave</span>: planned (high)' in state["thread_html"]
        )
        await until(lambda: _async(page.seen(RESPONDER, "Step 5 approved")))
        assert "(edited)" in (await page.state(RESPONDER))["channel_html"]
        assert len(emu.calls("chat.postMessage")) == submissions + 1


async def _depth(page: Page, user: str, depth: int) -> dict[str, Any] | None:
    modal = (await page.state(user))["modal"]
    return modal if modal and modal["depth"] == depth else None


async def test_cancelling_a_modal_tells_the_app_when_it_asked(
    slack_emulator: SlackEmulator, slack_signing_secret: str
) -> None:
    emu = slack_emulator
    async with page_with_bot(emu, slack_signing_secret) as page:
        await page.act("command", **{"as": RESPONDER, "text": "/ad1411 step"})
        await until(lambda: _async(page.seen(RESPONDER, "Step 5")))
        ts = page.message()["ts"]
        await page.act(
            "click", **{"as": APPROVER_1, "ts": ts, "block_id": "step_5", "action_id": "open_form"}
        )
        await until(lambda: _async(_depth(page, APPROVER_1, 1)))
        view_id = emu.workspace.open_views(APPROVER_1)[0]["id"]
        await page.act("close", **{"as": APPROVER_1, "view_id": view_id})
        await until(
            lambda: _async(page.seen(RESPONDER, "cancelled", thread=ts, where="thread_html"))
        )


async def test_the_page_refuses_what_it_did_not_send(
    slack_emulator: SlackEmulator, slack_signing_secret: str
) -> None:
    base = slack_emulator.base_url
    async with page_with_bot(slack_emulator, slack_signing_secret) as page:
        spec = {"as": RESPONDER, "text": "/ad1411 step"}
        async with page.session.post(base + "/_web/command", data="as=U0ONCALL1") as resp:
            assert resp.status == 400  # a form post (what another site could send) is refused
        async with page.session.post(
            base + "/_web/command", json=spec, headers={"Origin": "http://evil.example"}
        ) as resp:
            assert resp.status == 403
        status, answer = await page.act("command", **{"as": "U0NOBODY9", "text": "/ad1411"})
        assert status == 400 and "unknown user" in answer["error"]
        status, answer = await page.act("command", **{"as": "U0BOT0001", "text": "/ad1411"})
        assert status == 400  # nobody acts as the bot
        status, answer = await page.act(
            "click", **{"as": RESPONDER, "ts": "1.000000", "action_id": "ack"}
        )
        assert status == 400 and "no message" in answer["error"]
        status, answer = await page.act("command", **{"as": RESPONDER, "text": "no slash"})
        assert status == 400 and "starts with /" in answer["error"]
    assert slack_emulator.messages(CHANNEL) == []
