"""Slack answering 429 (with Retry-After) and bursts of 5xx on the methods a person waits on:
views.open (reason and output modals), views.publish (App Home), chat.postEphemeral (the answer
to a form sent from the channel) and files.info (a pasted snippet). Each: retried or the person
told what to do next, never a 500, nothing lost or done twice (issue 9, fault suite).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import handlers.paste
from lab.alert_samples import alert_body, dsa_guid
from lab.slack_emulator import SlackEmulator
from tests.handlers.serve_config import FOREST, write_config
from tests.inprocess import InProcessBot, running_bot, settings_for
from tests.procedure_lab import (
    APPROVER2,
    RESPONDER,
    LabFactory,
    ProcedureLab,
    buttons,
    reason_values,
    step_state,
)
from tests.waiting import until

pytestmark = [pytest.mark.slack]
CHANNEL = "C0INCIDENT"
BOT_USER = "U0BOT0001"
SAMPLES = Path(__file__).parents[1] / "bot" / "windows" / "outputs"
# More failures than the Web API client's own three retries of each kind.
BURST = 4


def _ok(emulator: SlackEmulator, method: str) -> list[Any]:
    return [c for c in emulator.calls(method) if c.status == 200]


def _told(emulator: SlackEmulator, user: str, words: str) -> list[dict[str, Any]]:
    return [e for e in emulator.ephemerals(user=user) if words in json.dumps(e)]


# -- the procedure: views.open, chat.postEphemeral ---------------------------------------------


@pytest.fixture
async def lab(
    new_lab: LabFactory,
) -> AsyncIterator[ProcedureLab]:
    async with new_lab(
        extra_config="[approvals]\nchange = 0",
    ) as running:
        yield running


async def _started(lab: ProcedureLab) -> tuple[dict[str, Any], dict[str, Any]]:
    iid, incident = await lab.open_incident()
    await lab.seed_diagnosis(iid)
    reply = await lab.driver.click(incident, text="Start procedure", user_id=RESPONDER)
    assert reply.status == 200
    msg = await lab.wait_message(incident["ts"], lambda m: "Run" in buttons(m))
    return incident, msg


@pytest.mark.winrm
async def test_reason_form_through_429_and_5xx_and_its_answer_through_429(
    lab: ProcedureLab,
) -> None:
    incident, msg = await _started(lab)
    emulator = lab.emulator
    # A 5xx burst beyond the client's retries: the form does not open; the person is told.
    emulator.fail_next("views.open", times=BURST, status=503)
    first = await lab.click(msg, "Skip", RESPONDER)
    assert first.status == 200
    await emulator.wait_for_async(
        lambda: _told(emulator, RESPONDER, "press the button again"), timeout=60
    )
    assert emulator.views() == []
    # Rate limited twice: the client waits out Retry-After and the form opens, once.
    emulator.fail_next("views.open", times=2, status=429, retry_after=1)
    again = await lab.click(msg, "Skip", RESPONDER)
    assert again.status == 200
    modal = (await emulator.wait_for_async(emulator.views, timeout=60))[-1]
    assert len(emulator.views()) == 1 and modal["callback_id"] == "proc_reason"
    # The answer to a form sent from the channel is an ephemeral message: through 429s and a
    # 503, it arrives once.
    emulator.fail_next("chat.postEphemeral", times=BURST, status=429, retry_after=1)
    emulator.fail_next("chat.postEphemeral", times=1, status=502)
    sent = await lab.driver.submit_view(modal["id"], reason_values("set by GPO"), user_id=RESPONDER)
    assert sent.status == 200
    await lab.wait_message(incident["ts"], lambda m: step_state(m, "1.1") == "skipped")
    await emulator.wait_for_async(lambda: _ok(emulator, "chat.postEphemeral"), timeout=60)
    assert len(_ok(emulator, "chat.postEphemeral")) == 1
    assert len(_told(emulator, RESPONDER, "skipped")) == 1
    skips = [e for e in await lab.audit() if e["event"] == "step_skipped"]
    assert [(e["step"], e["reason"]) for e in skips] == [("1.1", "set by GPO")]


@pytest.mark.winrm
async def test_output_modal_through_5xx_tells_the_person_then_opens(lab: ProcedureLab) -> None:
    incident, msg = await _started(lab)
    emulator = lab.emulator
    await lab.click(msg, "Run", RESPONDER)
    await lab.wait_message(incident["ts"], lambda m: step_state(m, "1.1") == "done")
    result = await emulator.wait_for_async(
        lambda: [
            m
            for m in emulator.messages(CHANNEL)
            if m.get("thread_ts") == incident["ts"] and "Full output" in json.dumps(m)
        ],
        timeout=30,
    )
    emulator.fail_next("views.open", times=BURST, status=500)
    first = await lab.driver.click(result[-1], text="Full output", user_id=RESPONDER)
    assert first.status == 200
    await emulator.wait_for_async(
        lambda: _told(emulator, RESPONDER, "did not open the output"), timeout=60
    )
    assert emulator.views() == []
    emulator.fail_next("views.open", times=1, status=429, retry_after=1)
    again = await lab.driver.click(result[-1], text="Full output", user_id=RESPONDER)
    assert again.status == 200
    shown = await emulator.wait_for_async(emulator.views, timeout=60)
    assert len(shown) == 1 and "Command output" in json.dumps(shown[0])
    runs = [e for e in await lab.audit() if e["event"] == "step_run"]
    assert len(runs) <= 1  # reading the output ran nothing


@pytest.mark.winrm
async def test_home_is_published_through_a_429_burst_and_a_5xx(lab: ProcedureLab) -> None:
    emulator = lab.emulator
    emulator.fail_next("views.publish", times=BURST, status=429, retry_after=1)
    emulator.fail_next("views.publish", times=1, status=503)
    opened = await lab.driver.open_home(APPROVER2)
    assert opened.status == 200
    home = await emulator.wait_for_async(lambda: emulator.home(APPROVER2), timeout=60)
    assert "Nothing waits for your approval" in json.dumps(home)
    assert len(_ok(emulator, "views.publish")) == 1
    assert emulator.faults.pending("views.publish") == 0


# -- a pasted snippet: files.info ------------------------------------------------------------


@pytest.fixture
async def bot(
    tmp_path: Path, redis_url: str, slack_emulator: SlackEmulator, slack_signing_secret: str
) -> AsyncIterator[InProcessBot]:
    cfg = write_config(tmp_path / "c.toml", coalesce_seconds=0.5)
    settings = settings_for(
        slack_emulator, slack_signing_secret, redis_url, cfg, ALERT_WEBHOOK_TOKEN="t0ken"
    )
    async with running_bot(settings, slack_emulator, slack_signing_secret) as running:
        yield running


async def _thread(bot: InProcessBot, guid: str) -> str:
    """Open an incident; the ts of its message once its thread has the bot's opening note."""
    body, _ = alert_body("generic_json", f"livdc01.{FOREST}", guid, FOREST)
    status, reply = await bot.post(body)
    assert status == 202
    iid = str(reply["incidents"][0]["incident_id"])

    async def introduced() -> str | None:
        inc = await bot.ctx.store.get(iid)
        return inc.ts if inc is not None and inc.ts and _replies(bot, inc.ts) else None

    return await until(introduced, timeout=30, what="the incident thread")


def _replies(bot: InProcessBot, ts: str) -> list[str]:
    return [str(m.get("text")) for m in bot.thread(ts) if m.get("user") == BOT_USER]


async def _paste_snippet(bot: InProcessBot, ts: str) -> str:
    summary = (SAMPLES / "replsummary_errors.stdout.txt").read_text(encoding="utf-8")
    snippet = bot.emulator.workspace.add_file("replsum.txt", summary, user="U0ONCALL2")
    sent = await bot.driver.message_event(
        CHANNEL, "", user="U0ONCALL2", thread_ts=ts, files=[snippet]
    )
    assert sent.status == 200
    return str(snippet["id"])


async def test_a_snippet_is_read_through_429s_and_a_5xx(bot: InProcessBot) -> None:
    ts = await _thread(bot, dsa_guid(401))
    before = len(_replies(bot, ts))
    bot.emulator.fail_next("files.info", times=BURST, status=429, retry_after=1)
    bot.emulator.fail_next("files.info", times=1, status=502)
    await _paste_snippet(bot, ts)
    said = await bot.emulator.wait_for_async(lambda: _replies(bot, ts)[before:], timeout=60)
    assert said[0].startswith("*Read `repadmin /replsummary`*")
    assert len(_ok(bot.emulator, "files.info")) == 1
    assert len(_replies(bot, ts)) == before + 1


async def test_a_snippet_slack_keeps_back_is_answered_with_what_to_do(
    bot: InProcessBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The bot's own retry deadline, shortened so the test outlasts it in seconds, not a minute.
    monkeypatch.setattr(handlers.paste, "FILES_INFO_RETRY_SECONDS", 2.0)
    ts = await _thread(bot, dsa_guid(402))
    before = len(_replies(bot, ts))
    bot.emulator.fail_next("files.info", times=100, status=503)
    await _paste_snippet(bot, ts)
    said = await bot.emulator.wait_for_async(lambda: _replies(bot, ts)[before:], timeout=60)
    assert said == [
        "I could not read your snippet: Slack kept answering `internal_error`. "
        "Paste it again in a few minutes, or paste the text itself."
    ]
    assert "Traceback" not in bot.stderr()
    bot.emulator.faults.clear()  # Slack recovers; the same snippet pasted again is read
    await _paste_snippet(bot, ts)
    again = await bot.emulator.wait_for_async(lambda: _replies(bot, ts)[before + 1 :], timeout=30)
    assert again[0].startswith("*Read `repadmin /replsummary`*")
