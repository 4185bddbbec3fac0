"""The procedure in Slack: plan, approvals and runs, with the bot in-process, real Redis, the
Slack emulator with signed requests, and real pypsrp against simulated DCs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from lab.slack_emulator import SlackEmulator
from tests.procedure_lab import (
    APPROVER1,
    APPROVER2,
    MISSING,
    REPORTER,
    RESPONDER,
    ROOT,
    ProcedureLab,
    buttons,
    procedure_lab,
    step_state,
)

pytestmark = [pytest.mark.slack, pytest.mark.winrm]


@pytest.fixture
async def lab(
    tmp_path: Path,
    redis_url: str,
    slack_emulator: SlackEmulator,
    slack_signing_secret: str,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[ProcedureLab]:
    async with procedure_lab(
        tmp_path, redis_url, slack_emulator, slack_signing_secret, monkeypatch
    ) as running:
        yield running


async def _started(lab: ProcedureLab) -> tuple[str, dict[str, Any], dict[str, Any]]:
    iid, incident = await lab.open_incident()
    await lab.seed_diagnosis(iid)
    reply = await lab.driver.click(incident, text="Start procedure", user_id=RESPONDER)
    assert reply.status == 200
    proc_msg = await lab.wait_message(incident["ts"], lambda m: "1.1" in json.dumps(m))
    return iid, incident, proc_msg


async def test_start_shows_the_whole_plan_before_anything_runs(lab: ProcedureLab) -> None:
    _, _, msg = await _started(lab)
    text = json.dumps(msg["blocks"])
    for key in ("1.1", "1.2", "2.1", "2.2", "3", "3b", "4", "5", "6", "7", "8", "9", "10", "12"):
        assert f"*{key}. " in text, key
    assert "RepsTo Failure Time (sec)" in text and "Replicator Allow SPN Fallback" in text
    assert f"repadmin.exe /add CN=Configuration,DC=corp,DC=example,DC=com {ROOT} {MISSING}" in text
    assert "shutdown.exe /r /t 30" in text
    assert REPORTER in text
    # Nothing ran: the simulated DCs saw no command at all.
    assert all(dc.commands() == [] for dc in lab.dcs.dcs.values())
    assert buttons(msg) == ["Request approval", "Skip", "Abort"]
    assert step_state(msg, "0") == "done" and step_state(msg, "1.1") == "pending"


async def test_an_approved_change_runs_once_and_is_verified(lab: ProcedureLab) -> None:
    _, incident, msg = await _started(lab)
    await lab.click(msg, "Request approval", RESPONDER)
    msg = await lab.wait_message(incident["ts"], lambda m: "Approve" in buttons(m))
    assert step_state(msg, "1.1") == "awaiting approval"
    request = [
        m
        for m in lab.emulator.messages("C0INCIDENT")
        if m.get("thread_ts") == incident["ts"] and "approval needed" in str(m.get("text"))
    ]
    assert request and f"<@{APPROVER1}>" in request[0]["text"]
    assert "reg.exe add" in request[0]["text"] and ROOT in request[0]["text"]
    await lab.click(msg, "Approve", APPROVER2)
    msg = await lab.wait_message(incident["ts"], lambda m: step_state(m, "1.1") == "done")
    value = lab.dcs.dc(ROOT).registry_value("RepsTo Failure Time (sec)")
    assert value is not None and value.data == 60
    lines = [c.command_line for c in lab.dcs.dc(ROOT).commands()]
    assert sum("reg.exe add" in line for line in lines) == 1
    assert sum("reg.exe query" in line for line in lines) == 2  # precheck and read-back
    assert step_state(msg, "1.2") == "pending"
    audit = await lab.audit()
    events = [(e["event"], e.get("user"), e.get("step")) for e in audit if e.get("procedure")]
    assert ("approval_requested", RESPONDER, "1.1") in events
    assert ("approved", APPROVER2, "1.1") in events
    assert ("step_done", RESPONDER, "1.1") in events
    runs = [e for e in audit if e["event"] == "command_run" and e.get("step") == "1.1"]
    # reg query of the absent value exits 1 (Windows' own answer), then add and read back.
    assert [(e["command"].split()[1], e["exit_code"]) for e in runs] == [
        ("query", "1"),
        ("add", "0"),
        ("query", "0"),
    ]
    assert all(len(e["output_sha256"]) == 32 for e in runs)
