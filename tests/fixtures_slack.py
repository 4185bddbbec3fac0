"""Slack emulator fixtures: a real HTTP Slack on 127.0.0.1 per test, and a driver factory."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator

import pytest

from lab.slack_driver import SlackDriver
from lab.slack_emulator import LAB_APP_TOKEN, LAB_BOT_TOKEN, SlackEmulator


@pytest.fixture
def slack_emulator() -> Iterator[SlackEmulator]:
    """A running Slack emulator (own thread and loop); its Web API is at .api_url."""
    emulator = SlackEmulator().start()
    yield emulator
    emulator.stop()


@pytest.fixture
def slack_signing_secret() -> str:
    """A fresh signing secret shared by the bot under test and the driver."""
    return secrets.token_hex(16)


@pytest.fixture
def slack_env(slack_emulator: SlackEmulator, slack_signing_secret: str) -> dict[str, str]:
    """The environment a bot needs to talk to the emulator."""
    return {
        "SLACK_API_URL": slack_emulator.api_url,
        "SLACK_BOT_TOKEN": LAB_BOT_TOKEN,
        "SLACK_APP_TOKEN": LAB_APP_TOKEN,
        "SLACK_SIGNING_SECRET": slack_signing_secret,
    }


@pytest.fixture
def slack_driver_factory(
    slack_emulator: SlackEmulator, slack_signing_secret: str
) -> Callable[[str | None], SlackDriver]:
    """make(bot_url) gives an HTTP driver for the bot at bot_url; make(None) a Socket Mode one."""

    def make(bot_url: str | None) -> SlackDriver:
        if bot_url is None:
            return SlackDriver(slack_emulator, socket_mode=True)
        return SlackDriver(slack_emulator, signing_secret=slack_signing_secret, bot_url=bot_url)

    return make
