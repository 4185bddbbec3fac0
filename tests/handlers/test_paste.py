"""repadmin output pasted in an incident thread, through the Slack emulator into the real serve
app: the reading in the thread, nothing for unrelated text, one line when asked about it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from lab.alert_samples import alert_body, dsa_guid
from lab.slack_emulator import SlackEmulator
from tests.handlers.serve_config import FOREST, write_config
from tests.inprocess import InProcessBot, running_bot, settings_for
from tests.waiting import until

pytestmark = [pytest.mark.slack]
CHANNEL = "C0INCIDENT"
BOT_USER = "U0BOT0001"
SAMPLES = Path(__file__).parents[1] / "bot" / "windows" / "outputs"


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


async def _incident(bot: InProcessBot, guid: str) -> tuple[str, str]:
    """Open an incident for `guid`; (incident id, ts of its message) once its thread is known."""
    body, _ = alert_body("generic_json", f"livdc01.{FOREST}", guid, FOREST)
    status, reply = await bot.post(body)
    assert status == 202
    iid = str(reply["incidents"][0]["incident_id"])

    async def recorded() -> str | None:
        inc = await bot.ctx.store.get(iid)
        return inc.ts if inc is not None else None

    ts = await until(recorded, timeout=20, what="incident message recorded")
    assert await bot.ctx.store.by_thread(CHANNEL, ts) == iid

    async def introduced() -> bool:
        return bool(_bot_replies(bot, ts))  # the thread's opening note comes after the record

    await until(introduced, timeout=20, what="the thread's opening note")
    return iid, ts


def _bot_replies(bot: InProcessBot, ts: str) -> list[dict[str, Any]]:
    return [m for m in bot.thread(ts) if m.get("user") == BOT_USER]


async def _next_reply(bot: InProcessBot, ts: str, before: int) -> str:
    replies = await bot.emulator.wait_for_async(lambda: _bot_replies(bot, ts)[before:], timeout=20)
    return str(replies[0]["text"])


def _showrepl_with_target(guid: str) -> str:
    """A failing /showrepl of LIVDC01: the Configuration NC from the incident's target fails
    8589, the domain NC from ROOTDC1 fails with Kerberos' -2146893022."""
    text = (SAMPLES / "showrepl_8589.stdout.txt").read_text(encoding="utf-8")
    text = text.replace("3dab7f9b-92e7-4391-b8db-71df532c1493", guid)
    return text.replace(
        "        Last attempt @ 2024-06-11 10:44:16 was successful.",
        "        Last attempt @ 2024-06-11 10:44:16 failed, result -2146893022 (0x80090322):\n"
        "            The target principal name is incorrect.\n"
        "        4 consecutive failure(s).\n"
        "        Last success @ 2024-06-11 09:00:00.",
    )


async def test_a_pasted_failing_showrepl_gets_its_summary_in_the_thread(bot: InProcessBot) -> None:
    guid = dsa_guid(301)
    _, ts = await _incident(bot, guid)
    before = len(_bot_replies(bot, ts))
    pasted = "C:\\>repadmin /showrepl\n" + _showrepl_with_target(guid)
    resp = await bot.driver.message_event(CHANNEL, f"```{pasted}```", thread_ts=ts)
    assert resp.status == 200

    said = await _next_reply(bot, ts, before)
    assert said.startswith("*Read `repadmin /showrepl`* (LIVDC01): 3 link(s), 3 failing.")
    lines = said.splitlines()
    target_line = next(line for line in lines if "8589" in line)
    assert "CN=Configuration,DC=corp,DC=example,DC=com" in target_line
    assert "Houston\\HOUDC01" in target_line
    assert "cannot derive the SPN: the server object has no serverReference" in target_line
    assert "1700 consecutive failure(s), last success never" in target_line
    assert target_line.endswith("*the incident's target DC*")
    kerberos = next(line for line in lines if "-2146893022" in line)
    assert "`DC=corp,DC=example,DC=com` on LIVDC01 from Charlotte\\ROOTDC1" in kerberos
    assert "the target principal name is incorrect" in kerberos
    assert "4 consecutive failure(s), last success 2024-06-11 09:00:00" in kerberos
    assert "target DC*" not in kerberos
    assert "1 of the failing entries involve the incident's target DC" in said


async def test_an_unrelated_message_gets_nothing(bot: InProcessBot) -> None:
    _, ts = await _incident(bot, dsa_guid(302))
    before = len(_bot_replies(bot, ts))
    await bot.driver.message_event(CHANNEL, "looking at DC2 now, back in 5", thread_ts=ts)
    await bot.driver.message_event(
        CHANNEL, "Repadmin: running command /showrepl against full DC x\n(cut)", thread_ts=ts
    )
    await bot.ctx.drain()
    assert len(_bot_replies(bot, ts)) == before
    # Only the thread of an incident is read: a thread elsewhere gets nothing either.
    other = bot.emulator.workspace.post_message(CHANNEL, {"text": "chat"}, user="U0ONCALL1")
    await bot.driver.message_event(
        CHANNEL, f"<@{BOT_USER}> ```{_showrepl_with_target('x')}```", thread_ts=other["ts"]
    )
    await bot.ctx.drain()
    assert [m for m in bot.thread(other["ts"]) if m.get("user") == BOT_USER] == []


async def test_asked_about_unreadable_text_says_why_in_one_line(bot: InProcessBot) -> None:
    _, ts = await _incident(bot, dsa_guid(303))
    before = len(_bot_replies(bot, ts))
    await bot.driver.message_event(CHANNEL, f"<@{BOT_USER}> what does this mean?", thread_ts=ts)
    said = await _next_reply(bot, ts, before)
    assert said == (
        "Not recognized, because it is not the output of `repadmin /showrepl`, `/showrepl /csv` "
        "or `/replsummary` (paste one of those, as text or as a text snippet)."
    )
    # A broken listing: the line and what was expected, never the pasted text itself.
    broken = _showrepl_with_target(dsa_guid(303)).replace(
        "1700 consecutive failure(s).", "password=Hunter2 <b>&amp;</b>"
    )
    await bot.driver.message_event(CHANNEL, f"<@{BOT_USER}>\n```{broken}```", thread_ts=ts)
    said = await _next_reply(bot, ts, before + 1)
    assert said.startswith("Not recognized, because it looks like `repadmin /showrepl` output")
    assert "at line 23 of the output it expected '        Last success @ TIME.'" in said
    assert "Hunter2" not in said and "<b>" not in said
    assert "\n" not in said
    russian = (SAMPLES / "replsummary_russian.stdout.txt").read_text(encoding="utf-8")
    await bot.driver.message_event(CHANNEL, f"<@{BOT_USER}> ```{russian}```", thread_ts=ts)
    said = await _next_reply(bot, ts, before + 2)
    assert "not in English (Cyrillic letters)" in said
    assert "Hunter2" not in bot.stderr()


async def test_a_replsummary_snippet_is_read_through_files_info(bot: InProcessBot) -> None:
    guid = dsa_guid(304)
    _, ts = await _incident(bot, guid)
    before = len(_bot_replies(bot, ts))
    summary = (SAMPLES / "replsummary_errors.stdout.txt").read_text(encoding="utf-8")
    snippet = bot.emulator.workspace.add_file("replsum.txt", summary, user="U0ONCALL2")
    resp = await bot.driver.message_event(
        CHANNEL, "", user="U0ONCALL2", thread_ts=ts, files=[snippet]
    )
    assert resp.status == 200
    said = await _next_reply(bot, ts, before)
    assert said.startswith("*Read `repadmin /replsummary`*")
    assert "DC02 as source: *8524* DNS lookup failure; 1 failing link(s)" in said
    assert "HOUDC01 as source: *8589*" in said
    assert "dc3.corp.example.com did not answer: *58* the DC did not answer the request" in said
    calls = bot.emulator.calls("files.info")
    assert [c.params.get("file") for c in calls] == [snippet["id"]]


async def test_a_slack_retry_of_a_paste_is_answered_once(bot: InProcessBot) -> None:
    _, ts = await _incident(bot, dsa_guid(305))
    before = len(_bot_replies(bot, ts))
    csv = (SAMPLES / "showrepl_kerberos.csv.stdout.txt").read_text(encoding="utf-8")
    first = await bot.driver.message_event(CHANNEL, f"```{csv}```", thread_ts=ts)
    said = await _next_reply(bot, ts, before)
    assert said.startswith("*Read `repadmin /showrepl /csv`* (CONTOSODC2): 2 link(s), 2 failing.")
    again = await bot.driver.replay(first.request)
    assert again.status == 200
    await bot.ctx.drain()
    assert len(_bot_replies(bot, ts)) == before + 1
