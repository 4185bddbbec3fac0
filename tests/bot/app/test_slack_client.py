"""The bot's Web API client against the Slack emulator: a short Retry-After is waited inside
the call; a long one is the caller's to schedule (no call sleeps an hour because a header said
so), and a Retry-After that is not a number does not break the call."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.response import HttpResponse

from bot.app.slack import retry_after_header, slack_client
from lab.slack_emulator import SlackEmulator
from tests.handlers.serve_config import write_config
from tests.inprocess import settings_for

pytestmark = [pytest.mark.slack]


def _posts(emulator: SlackEmulator) -> list[int]:
    return [c.status for c in emulator.calls("chat.postMessage")]


async def _post(tmp_path: Path, emulator: SlackEmulator, secret: str) -> None:
    settings = settings_for(emulator, secret, "redis://127.0.0.1:1/0", write_config(tmp_path / "c"))
    client = slack_client(settings)
    # The deadline only catches a hang (a call sleeping out a long Retry-After).
    await asyncio.wait_for(client.chat_postMessage(channel="C0INCIDENT", text="x"), 60)


async def test_a_short_retry_after_is_waited_inside_the_call(
    tmp_path: Path, slack_emulator: SlackEmulator, slack_signing_secret: str
) -> None:
    slack_emulator.fail_next("chat.postMessage", times=2, status=429, retry_after=1)
    await _post(tmp_path, slack_emulator, slack_signing_secret)
    assert _posts(slack_emulator) == [429, 429, 200]
    calls = slack_emulator.calls("chat.postMessage")
    assert all(b.at - a.at >= 0.9 for a, b in itertools.pairwise(calls))  # Retry-After honoured


async def test_a_long_retry_after_is_left_to_the_caller(
    tmp_path: Path, slack_emulator: SlackEmulator, slack_signing_secret: str
) -> None:
    slack_emulator.fail_next("chat.postMessage", times=1, status=429, retry_after=3600)
    with pytest.raises(SlackApiError) as err:
        await _post(tmp_path, slack_emulator, slack_signing_secret)
    assert err.value.response.status_code == 429
    assert err.value.response.headers.get("Retry-After") in ("3600", ["3600"])
    assert _posts(slack_emulator) == [429]  # not retried after an hour's sleep


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Retry-After": ["7"]}, 7),
        ({"retry-after": ["0"]}, 1),
        ({"Retry-After": ["soon"]}, 1),
        ({"Retry-After": []}, 1),
        ({}, 1),
        ({"Retry-After": [" 12 "]}, 12),
        ({"Retry-After": "12"}, 12),
    ],
)
def test_retry_after_header_is_read_as_whole_seconds(
    headers: dict[str, str | list[str]], seconds: int
) -> None:
    response = HttpResponse(status_code=429, headers=headers, data=b"")
    assert retry_after_header(response) == seconds
