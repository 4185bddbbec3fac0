"""The lab event source: DC2 loses its serverReference, Samba refuses it, Event 1411 arrives
at the bot's /alerts as Windows event XML, and serve opens the incident."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import pytest

from bot.alerts.formats import parse_alerts
from lab.event_source import EventSource
from lab.samba import SambaForest
from lab.slack_emulator import SlackEmulator
from tests.handlers.serve_config import write_config
from tests.inprocess import running_bot, settings_for

pytestmark = [pytest.mark.samba, pytest.mark.slack, pytest.mark.slow]
TOKEN = "event-source-token"


async def test_a_lost_server_reference_becomes_an_incident(
    healthy_forest: SambaForest, slack_emulator: SlackEmulator, redis_url: str, tmp_path: Path
) -> None:
    forest = healthy_forest
    dc1, dc2 = forest.dcs
    config = write_config(tmp_path / "c.toml", forests=(forest.forest,), coalesce_seconds=0.5)
    secret = secrets.token_hex(16)
    settings = settings_for(slack_emulator, secret, redis_url, config, ALERT_WEBHOOK_TOKEN=TOKEN)
    async with running_bot(settings, slack_emulator, secret) as bot:
        source = EventSource(forest, bot.url + "/alerts", TOKEN, poll_seconds=0.2)
        stop = asyncio.Event()
        task = asyncio.create_task(source.run(stop))
        try:
            await asyncio.to_thread(forest.remove_server_reference, dc2)
            # DC2's scheduled pull from DC1; DC1 refuses it (8453) and logs why.
            pulled = await asyncio.to_thread(
                forest.try_replicate, dc2, dc1, forest.configuration_dn
            )
            assert pulled.returncode != 0 and "8453" in pulled.output

            incident = await slack_emulator.wait_for_async(
                lambda: next(
                    (m for m in bot.incident_messages() if dc2.dsa_guid in str(m.get("text"))),
                    None,
                ),
                timeout=30,
            )
        finally:
            stop.set()
            await task
    assert incident is not None
    text = incident["text"]
    assert isinstance(text, str)
    assert "1 DC(s)" in text and forest.forest in text
    sent = source.forwarded
    assert sent and all(f.status == 202 for f in sent)
    first = sent[0]
    assert (first.denial.reporter, first.denial.target_guid) == (dc1, dc2.dsa_guid)
    assert first.denial.evidence == "samba log"
    (alert,) = parse_alerts(first.body.encode())
    assert alert.source_format == "event_xml"
    assert (alert.reporting_dc, alert.target_dsa_guid, alert.error_code) == (
        dc1.fqdn,
        dc2.dsa_guid,
        8589,
    )
    # The same refusal again within repeat_seconds is not forwarded twice.
    assert len({(f.denial.reporter.fqdn, f.denial.target_guid) for f in sent}) == len(sent)


def test_showrepl_8453_is_forwarded_only_without_server_reference(
    healthy_forest: SambaForest,
) -> None:
    forest = healthy_forest
    dc1, dc2 = forest.dcs
    source = EventSource(forest, "http://127.0.0.1:9/alerts", TOKEN)
    assert source.scan_showrepl() == []
    forest.remove_server_reference(dc2)
    assert forest.try_replicate(dc2, dc1, forest.configuration_dn).returncode != 0
    (denial,) = source.scan_showrepl()
    assert (denial.reporter, denial.target_guid, denial.evidence) == (
        dc1,
        dc2.dsa_guid,
        "showrepl 8453",
    )
    # Healed reference, failure still on record: not a 1411 any more, so nothing to forward.
    forest.restore_server_reference(dc2)
    assert source.scan_showrepl() == []
