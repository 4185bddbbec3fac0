"""Nothing weakening is left behind: obligations, abort with undo, close overrides, the report.
The bot in-process, real Redis, the Slack emulator, real pypsrp against simulated DCs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from lab.dcsim.state import RegistryValue
from tests.procedure_lab import (
    APPROVER1,
    APPROVER2,
    RESPONDER,
    ROOT,
    LabFactory,
    ProcedureLab,
    advance,
    buttons,
    step_state,
    submit_reason,
)

pytestmark = [pytest.mark.slack, pytest.mark.winrm]
# Steps that need a real directory (Samba) are skipped here; they run in the full-run test.
NO_LDAP = frozenset({"3", "3b", "5"})
SPN = "Replicator Allow SPN Fallback"
REPS_TO = "RepsTo Failure Time (sec)"


@pytest.fixture
async def lab(
    new_lab: LabFactory,
) -> AsyncIterator[ProcedureLab]:
    async with new_lab(
        extra_config="[approvals]\nobligation_deadline_seconds = 3",
    ) as running:
        yield running


async def _started(lab: ProcedureLab) -> tuple[str, dict[str, Any]]:
    iid, incident = await lab.open_incident()
    await lab.seed_diagnosis(iid)
    await lab.driver.click(incident, text="Start procedure", user_id=RESPONDER)
    await lab.wait_message(incident["ts"], lambda m: bool(buttons(m)))
    return iid, incident


def _thread_texts(lab: ProcedureLab, ts: str) -> list[str]:
    return [
        str(m.get("text")) for m in lab.emulator.messages("C0INCIDENT") if m.get("thread_ts") == ts
    ]


def _channel_texts(lab: ProcedureLab) -> list[str]:
    return [str(m.get("text")) for m in lab.emulator.messages("C0INCIDENT") if "thread_ts" not in m]


async def test_abort_after_step_6_undoes_what_was_applied_with_its_approvals(
    lab: ProcedureLab,
) -> None:
    root = lab.dcs.dc(ROOT)
    # What dc1 had before: RepsTo 120 (kept), SPN fallback absent.
    with lab.dcs.forest.lock:
        root.state.set_registry_value(RegistryValue(REPS_TO, "REG_DWORD", 120))
    _, incident = await _started(lab)
    ts = incident["ts"]
    msg = await advance(lab, ts, until="7", skip=NO_LDAP)
    assert root.registry_value(SPN) is not None and root.registry_value(REPS_TO).data == 60  # type: ignore[union-attr]
    with lab.dcs.forest.lock:
        assert "DISABLE_NTDSCONN_XLATE" in root.state.dsa_options
    await lab.click(msg, "Abort", RESPONDER)
    await submit_reason(lab, RESPONDER, "wrong forest")
    msg = await lab.wait_message(ts, lambda m: "undo-6" in json.dumps(m))
    text = json.dumps(msg["blocks"])
    assert (
        text.index("undo-6")
        < text.index("undo-4")
        < text.index("undo-1.2")
        < text.index("undo-1.1")
    )
    assert buttons(msg)[0] == "Run"  # undoing a temporary step needs no approval
    msg = await advance(lab, ts, until="undo-1.2")
    assert root.registry_value(SPN) is None  # absent before: absent again, not 0
    with lab.dcs.forest.lock:
        assert "DISABLE_NTDSCONN_XLATE" not in root.state.dsa_options
    assert buttons(msg)[0] == "Request approval"  # undoing a change needs its approval
    msg = await advance(lab, ts, until="undo-1.1")
    await lab.click(msg, "Request approval", RESPONDER)
    msg = await lab.wait_message(ts, lambda m: "Approve" in buttons(m))
    await lab.click(msg, "Approve", APPROVER2)
    done = await lab.wait_message(
        ts, lambda m: "aborted" in json.dumps(m["blocks"]) and not buttons(m)
    )
    assert step_state(done, "undo-1.1") == "done"
    value = root.registry_value(REPS_TO)
    assert value is not None and value.data == 120 and value.kind == "REG_DWORD"
    report = await lab.emulator.wait_for_async(
        lambda: [t for t in _thread_texts(lab, ts) if "Post-incident report" in t], timeout=30
    )
    assert report
    events = [e["event"] for e in await lab.audit()]
    assert events.count("obligation_undone") == 2 and "procedure_aborted_undone" in events


async def test_an_obligation_past_its_deadline_is_escalated_in_the_channel(
    lab: ProcedureLab,
) -> None:
    _, incident = await _started(lab)
    ts = incident["ts"]
    await advance(lab, ts, until="5", skip=NO_LDAP - {"5"})
    # The obligation lives in Redis, not in a process: a new worker chases it.
    lab.stop.set()
    await asyncio.gather(*lab.workers)
    lab.stop = asyncio.Event()
    lab.workers.clear()
    lab.start_worker()
    reminded = await lab.emulator.wait_for_async(
        lambda: [t for t in _thread_texts(lab, ts) if "Reminder" in t], timeout=30
    )
    assert "SPN Fallback" in reminded[0] and ROOT in reminded[0]
    escalated = await lab.emulator.wait_for_async(
        lambda: [t for t in _channel_texts(lab) if "Overdue" in t], timeout=30
    )
    assert f"<@{APPROVER1}>" in escalated[0] and f"<@{APPROVER2}>" in escalated[0]
    events = [e["event"] for e in await lab.audit()]
    assert "obligation_reminded" in events and "obligation_escalated" in events


async def test_closing_with_an_open_obligation_needs_an_approver_override(
    lab: ProcedureLab,
) -> None:
    _, incident = await _started(lab)
    ts = incident["ts"]
    msg = await advance(lab, ts, until="5", skip=NO_LDAP - {"5"})
    assert "Close (approver override)" in buttons(msg)
    await lab.click(msg, "Close (approver override)", RESPONDER)
    await submit_reason(lab, RESPONDER, "done here")
    refusal = await lab.emulator.wait_for_async(
        lambda: [e for e in lab.emulator.ephemerals() if "only an approver" in str(e.get("text"))],
        timeout=30,
    )
    assert "SPN Fallback" in str(refusal[0]["text"])
    await lab.click(msg, "Close (approver override)", APPROVER1)
    await submit_reason(lab, APPROVER1, "dc1 is being rebuilt")
    closed = await lab.wait_message(ts, lambda m: "closed" in json.dumps(m["blocks"]))
    assert buttons(closed) == []
    announced = await lab.emulator.wait_for_async(
        lambda: [t for t in _channel_texts(lab) if "override" in t], timeout=30
    )
    assert "dc1 is being rebuilt" in announced[0]
    audit = await lab.audit()
    overrides = [e for e in audit if e["event"] == "obligation_overridden"]
    assert overrides and overrides[0]["user"] == APPROVER1
    assert overrides[0]["reason"] == "dc1 is being rebuilt"


async def test_an_approver_approves_from_app_home_and_the_procedure_moves_on(
    lab: ProcedureLab,
) -> None:
    iid, incident = await _started(lab)
    ts = incident["ts"]
    msg = await lab.wait_message(ts, lambda m: "Request approval" in buttons(m))
    await lab.click(msg, "Request approval", RESPONDER)
    await lab.wait_message(ts, lambda m: "Approve" in buttons(m))
    await lab.driver.open_home(APPROVER2)
    home = await lab.wait_home(APPROVER2, "1.1.")
    text = json.dumps(home["blocks"])
    assert "Waiting for your approval" in text and "reg.exe add" in text
    assert incident["ts"] and "Open incidents" in text
    # The requester sees no approval to give: they cannot approve their own request.
    await lab.driver.open_home(RESPONDER)
    mine = await lab.emulator.wait_for_async(lambda: lab.emulator.home(RESPONDER), timeout=30)
    assert "reg.exe add" not in json.dumps(mine)
    # Someone who is neither responder nor approver sees no incident (they name DCs and GUIDs).
    await lab.driver.open_home("U0STRANGER")
    theirs = await lab.emulator.wait_for_async(lambda: lab.emulator.home("U0STRANGER"), timeout=30)
    assert "not a responder or approver" in json.dumps(theirs)
    assert iid in text and iid not in json.dumps(theirs) and "reg.exe" not in json.dumps(theirs)
    await lab.driver.click_in_home(home, text="Approve", user_id=APPROVER2)
    await lab.wait_message(ts, lambda m: step_state(m, "1.1") == "done")
    refreshed = await lab.wait_home(APPROVER2, "queued")
    assert "Nothing waits for your approval" in json.dumps(refreshed)
    votes = [e for e in await lab.audit() if e["event"] == "approved"]
    assert [(e["user"], e["step"]) for e in votes] == [(APPROVER2, "1.1")]
