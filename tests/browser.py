"""The Slack emulator's page in headless Chromium (Debian's /usr/bin/chromium, driven by
Playwright): helpers a browser test reads like a person's actions.

    with chromium() as browser:
        slack = SlackPage(browser.new_page(viewport=VIEWPORT), url)
        slack.act_as("U0ONCALL1")
        slack.click("Diagnose")
        slack.open_thread()
        slack.wait_in_thread("Diagnosis of")
        slack.screenshot("diagnosis")
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Locator, Page, ViewportSize, sync_playwright

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT: ViewportSize = {"width": 1360, "height": 900}
ROOT = Path(__file__).resolve().parents[1]
# Screenshots always go to test-results/; to docs/img/ (the walkthrough's) when asked, so a
# plain test run leaves the working tree as it was.
SHOTS = ROOT / "test-results" / "screenshots"
DOCS_IMG = ROOT / "docs" / "img"
UPDATE_DOCS = os.environ.get("AD1411_UPDATE_SCREENSHOTS") == "1"
TIMEOUT_MS = 60_000


# Scroll the thread to the last message containing the text; true once it has stayed there
# (same scroll position and content height) for three polls in a row.
_SCROLL_TO_MESSAGE = """text => {
  const thread = document.querySelector('#thread');
  const hits = [...thread.querySelectorAll('.message')].filter(m => m.innerText.includes(text));
  if (!hits.length) return false;
  const target = hits[hits.length - 1];
  const offset = target.getBoundingClientRect().top - thread.getBoundingClientRect().top;
  const atEnd = thread.scrollTop + thread.clientHeight >= thread.scrollHeight - 2;
  const last = !target.nextElementSibling;
  if (Math.abs(offset) > 2 && !(offset > 0 && atEnd && last)) {
    thread.scrollTop += offset;
    window.__shown = null;
    return false;
  }
  const seen = [thread.scrollTop, thread.scrollHeight].join();
  const before = window.__shown || { seen: '', count: 0 };
  window.__shown = { seen: seen, count: before.seen === seen ? before.count + 1 : 1 };
  return window.__shown.count >= 3;
}"""


@contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, headless; a clear failure when it is not installed."""
    if not Path(CHROMIUM).exists():
        raise RuntimeError(
            f"{CHROMIUM} is missing: run ./scripts/setup.sh --with-browser as root "
            "(Debian packages chromium chromium-driver)"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()


class SlackPage:
    """One browser tab on the emulator's page, acting as one visitor at a time."""

    def __init__(self, page: Page, url: str) -> None:
        self.page = page
        self.url = url.split("?", 1)[0]
        page.set_default_timeout(TIMEOUT_MS)

    def open(self, user: str) -> None:
        """Load the page as `user`."""
        self.page.goto(f"{self.url}?as={user}")
        self.page.wait_for_selector(f"body[data-me='{user}']")

    def act_as(self, user: str) -> None:
        """Choose who you are in the sidebar's switch."""
        self.page.select_option("#as", user)
        self.page.wait_for_selector(f"body[data-me='{user}']")
        self.page.wait_for_selector("#messages .message, #messages .empty")

    def _button(self, text: str, where: str) -> Locator:
        return self.page.locator(f"{where} button.btn", has_text=re.compile(f"^{re.escape(text)}$"))

    def click(self, text: str, *, where: str = "#messages", confirm: bool = True) -> None:
        """Click the (last) button labelled `text`; answer its confirm dialog if it has one."""
        button = self._button(text, where).last
        has_confirm = button.get_attribute("data-confirm") is not None
        button.click()
        if has_confirm:
            self.page.wait_for_selector("#confirm-layer:not([hidden])")
            self.page.click("#confirm-ok" if confirm else "#confirm-deny")

    def wait_for(self, text: str, *, where: str = "#messages") -> Locator:
        """The element under `where` that shows `text`, once it does."""
        found = self.page.locator(where).get_by_text(text, exact=False).first
        found.wait_for(state="visible")
        return found

    def absent(self, text: str, *, where: str = "#messages") -> bool:
        """Whether no element under `where` shows `text` now."""
        return self.page.locator(where).get_by_text(text, exact=False).count() == 0

    def open_thread(self) -> None:
        """Open the thread of the (last) message that has replies."""
        self.page.locator("#messages button.thread-link").last.click()
        self.page.wait_for_selector("#thread-pane:not([hidden]) .message")

    def wait_in_thread(self, text: str) -> Locator:
        """A thread message showing `text`, once it does."""
        return self.wait_for(text, where="#thread")

    def show_last_reply(self) -> None:
        """Scroll the thread so its latest reply starts at the top (for a screenshot)."""
        self.page.eval_on_selector(
            "#thread", "el => { el.scrollTop = el.lastElementChild.offsetTop - el.offsetTop; }"
        )

    def show_in_thread(self, text: str) -> None:
        """Scroll the thread so the (last) message showing `text` starts at its top (or the
        thread is at its end), re-scrolling until a re-render no longer moves it."""
        self.wait_in_thread(text)
        deadline = time.monotonic() + TIMEOUT_MS / 1000
        while not self.page.evaluate(_SCROLL_TO_MESSAGE, text):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the thread did not stay scrolled to {text!r}")
            self.page.wait_for_timeout(200)  # a poll interval: the condition is re-checked

    def thread_text(self) -> str:
        """Everything the open thread shows, as text."""
        return self.page.inner_text("#thread")

    def channel_text(self) -> str:
        """Everything the channel shows, as text."""
        return self.page.inner_text("#messages")

    def send(self, text: str) -> None:
        """Type a message or a slash command in the channel's composer and send it."""
        self.page.fill("#composer-text", text)
        self.page.press("#composer-text", "Enter")

    def modal(self) -> Locator:
        """The modal on top, once one is open."""
        found = self.page.locator("#modal-layer:not([hidden]) .modal")
        found.wait_for(state="visible")
        return found

    def choose_in_modal(self, block_id: str, value: str) -> None:
        """Pick a radio button or checkbox of the open modal, by block_id and option value."""
        self.page.check(f"#modal-layer [data-block-id='{block_id}'] input[value='{value}']")

    def fill_modal(self, values: dict[str, str]) -> None:
        """Type into the open modal's inputs, by block_id."""
        for block_id, value in values.items():
            self.page.fill(f"#modal-layer [data-block-id='{block_id}']", value)

    def submit_modal(self) -> None:
        """Press the modal's submit button."""
        self.page.click("#modal-layer button[data-kind='submit']")

    def screenshot(self, name: str) -> Path:
        """Save the page as test-results/screenshots/NAME.png (and docs/img/ when asked)."""
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name}.png"
        self.page.screenshot(path=str(path))
        if UPDATE_DOCS:
            DOCS_IMG.mkdir(parents=True, exist_ok=True)
            (DOCS_IMG / path.name).write_bytes(path.read_bytes())
        return path
