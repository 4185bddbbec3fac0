"""The emulator's page in headless Chromium with an app that uses what the procedure will:
a confirm dialog, ephemeral replies, a modal with required inputs, errors and a submission."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from aiohttp import web

from lab.slack_driver import SlackDriver
from lab.slack_emulator import SlackEmulator
from lab.slack_web import REQUIRED
from tests.browser import VIEWPORT, SlackPage, chromium
from tests.lab.test_slack_web import APPROVER_1, APPROVER_2, RESPONDER, modal_app

pytestmark = [pytest.mark.slack, pytest.mark.e2e, pytest.mark.slow]


@contextmanager
def app_in_thread(emu: SlackEmulator, secret: str) -> Iterator[None]:
    """The Bolt app on its own loop thread (the browser test itself is synchronous)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="bolt-app", daemon=True)
    thread.start()

    async def start() -> web.AppRunner:
        runner = web.AppRunner(modal_app(emu, secret).web_app(path="/slack/events"))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return runner

    runner = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
    emu.driver = SlackDriver(emu, signing_secret=secret, bot_url=url)
    try:
        yield
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_confirm_ephemeral_and_modal_in_the_browser(
    slack_emulator: SlackEmulator, slack_signing_secret: str
) -> None:
    with app_in_thread(slack_emulator, slack_signing_secret), chromium() as browser:
        slack = SlackPage(browser.new_page(viewport=VIEWPORT), slack_emulator.web.url())
        slack.open(RESPONDER)
        slack.send("/ad1411 step")
        slack.wait_for("Opening step 5")  # the command's ack, for the one who typed it
        slack.wait_for("restart dc1")

        # A button with a confirm dialog: nothing is sent until the dialog is confirmed.
        slack.act_as(APPROVER_1)
        assert slack.absent("Opening step 5")
        slack.click("Acknowledge", confirm=False)
        assert slack.page.is_hidden("#confirm-layer")
        slack.click("Acknowledge")
        slack.wait_for("Noted, @carol")

        # A modal in approver 2's client: required fields, the app's errors, then a submission.
        slack.act_as(APPROVER_2)
        assert slack.absent("Noted")
        slack.click("Approve…")
        modal = slack.modal()
        assert "Approve step 5" in modal.inner_text()
        slack.submit_modal()
        slack.wait_for(REQUIRED, where="#modal-layer")
        assert slack.page.locator("#modal-layer .error").count() == 2
        slack.fill_modal({"reason": "bad"})
        slack.choose_in_modal("risk", "high")
        slack.submit_modal()
        slack.wait_for("Not a reason", where="#modal-layer")
        assert slack.page.input_value("#modal-layer [data-block-id='reason']") == "bad"
        slack.fill_modal({"reason": "planned window"})
        slack.submit_modal()
        slack.page.wait_for_selector("#modal-layer", state="hidden")
        slack.wait_for("Step 5 approved")
        slack.wait_for("(edited)")
        slack.open_thread()
        slack.wait_in_thread("Approved by @dave: planned window (high)")
        slack.screenshot("page-modal-submitted")
