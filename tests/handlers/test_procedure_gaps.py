"""Procedure behaviours that had no test: a stale diagnosis, a step already in its wanted state,
coalesced message updates, the audit of a procedure, App Home and user-group escalation. The
bot in-process, real Redis, the Slack emulator, real pypsrp against simulated DCs."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from lab.dcsim.state import RegistryValue
from lab.slack_emulator import SlackEmulator
from state.connection import async_client
from state.diagnoses import DiagnosisStore
from state.keys import JOBS_STREAM
from state.procedures import ProcedureStore
from tests.procedure_lab import (
    APPROVER2,
    RESPONDER,
    ROOT,
    ProcedureLab,
    buttons,
    procedure_lab,
    reason_values,
    step_state,
    submit_reason,
)
from tests.waiting import until

pytestmark = [pytest.mark.slack, pytest.mark.winrm]
REPS_TO = "RepsTo Failure Time (sec)"


def _ephemeral(lab: ProcedureLab, words: str) -> list[str]:
    return [
        str(c.params.get("text"))
        for c in lab.emulator.calls("response_url")
        if words in str(c.params.get("text"))
    ]


async def _said(lab: ProcedureLab, words: str) -> str:
    found = await lab.emulator.wait_for_async(lambda: _ephemeral(lab, words), timeout=30)
    return found[-1]


async def _next_view(lab: ProcedureLab, seen: int) -> dict[str, Any]:
    """The modal opened after the first `seen` ones."""

    def opened() -> list[dict[str, Any]]:
        return lab.emulator.views()[seen:]

    return (await lab.emulator.wait_for_async(opened, timeout=30))[-1]


async def _diagnosis_jobs(lab: ProcedureLab, incident_id: str) -> list[dict[Any, Any]]:
    client = async_client(lab.redis_url)
    try:
        entries = await client.xrange(JOBS_STREAM) or []
    finally:
        await client.aclose()
    return [
        fields
        for _, fields in entries
        if fields is not None
        and fields.get(b"kind") == b"diagnose"
        and fields.get(b"incident") == incident_id.encode()
    ]


async def test_a_stale_diagnosis_is_not_planned_from_a_fresh_one_runs_first(
    tmp_path: Path,
    redis_url: str,
    slack_emulator: SlackEmulator,
    slack_signing_secret: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No worker: the diagnosis job stays queued where the test can count it.
    async with procedure_lab(
        tmp_path,
        redis_url,
        slack_emulator,
        slack_signing_secret,
        monkeypatch,
        extra_config="diagnosis_max_age_seconds = 1",
        workers=0,
    ) as lab:
        iid, incident = await lab.open_incident()
        await lab.seed_diagnosis(iid)
        client = async_client(redis_url)
        store = DiagnosisStore(client)

        async def stale() -> bool:
            latest = await store.latest(iid)
            return latest is not None and time.time() * 1000 - latest.made_at_ms > 1500

        await until(stale, timeout=30, what="the seeded diagnosis older than the max age")
        await lab.driver.click(incident, text="Start procedure", user_id=RESPONDER)
        said = await _said(lab, "a fresh diagnosis runs first")
        assert "at most 0 min old" not in said and "1 s old" in said, said
        assert "the last one is" in said, said
        assert len(await _diagnosis_jobs(lab, iid)) == 1
        # A second press while it is pending queues nothing more.
        await lab.driver.click(incident, text="Start procedure", user_id=RESPONDER)
        assert await _said(lab, "A diagnosis is already running")
        jobs = await _diagnosis_jobs(lab, iid)
        assert len(jobs) == 1 and jobs[0][b"then"] == b"start"
        # Nothing was started on the stale diagnosis.
        assert await ProcedureStore(client).current_id(iid) is None
        assert lab.procedure_message(incident["ts"]) is None
        events = [e["event"] for e in await lab.audit()]
        assert events.count("diagnosis_requested") == 1 and "procedure_started" not in events
        await client.aclose()


async def test_a_step_already_in_its_wanted_state_is_satisfied_and_nothing_is_written(
    tmp_path: Path,
    redis_url: str,
    slack_emulator: SlackEmulator,
    slack_signing_secret: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with procedure_lab(
        tmp_path, redis_url, slack_emulator, slack_signing_secret, monkeypatch
    ) as lab:
        root = lab.dcs.dc(ROOT)
        with lab.dcs.forest.lock:
            root.state.set_registry_value(RegistryValue(REPS_TO, "REG_DWORD", 60))
        iid, incident = await lab.open_incident()
        ts = incident["ts"]
        await lab.seed_diagnosis(iid)
        await lab.driver.click(incident, text="Start procedure", user_id=RESPONDER)
        msg = await lab.wait_message(ts, lambda m: "Request approval" in buttons(m))
        await lab.click(msg, "Request approval", RESPONDER)
        msg = await lab.wait_message(ts, lambda m: "Approve" in buttons(m))
        await lab.click(msg, "Approve", APPROVER2)
        msg = await lab.wait_message(ts, lambda m: step_state(m, "1.1") == "satisfied")
        assert "already 60" in json.dumps(msg["blocks"])
        assert buttons(msg) == ["Skip", "Abort"]
        lines = [c.command_line for c in root.commands()]
        assert not any("reg.exe add" in line for line in lines), lines
        assert sum("reg.exe query" in line for line in lines) == 1  # the precheck alone
        value = root.registry_value(REPS_TO)
        assert value is not None and value.data == 60
        # Skip moves on to the next step.
        await lab.click(msg, "Skip", RESPONDER)
        await submit_reason(lab, RESPONDER, "already 60 on dc1")
        msg = await lab.wait_message(ts, lambda m: step_state(m, "1.1") == "skipped")
        assert step_state(msg, "1.2") == "pending"
        events = [(e["event"], e.get("step")) for e in await lab.audit()]
        assert ("step_already_done", "1.1") in events and ("step_done", "1.1") not in events


async def test_a_burst_of_transitions_updates_the_message_at_most_once_per_window(
    tmp_path: Path,
    redis_url: str,
    slack_emulator: SlackEmulator,
    slack_signing_secret: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    window = 1.0
    async with procedure_lab(
        tmp_path,
        redis_url,
        slack_emulator,
        slack_signing_secret,
        monkeypatch,
        update_seconds=window,
    ) as lab:
        iid, incident = await lab.open_incident()
        ts = incident["ts"]
        await lab.seed_diagnosis(iid)
        await lab.driver.click(incident, text="Start procedure", user_id=RESPONDER)
        to_request = await lab.wait_message(ts, lambda m: "Request approval" in buttons(m))
        await lab.click(to_request, "Request approval", RESPONDER)
        to_reject = await lab.wait_message(ts, lambda m: "Reject" in buttons(m))
        proc_ts = to_reject["ts"]

        def updates() -> list[Any]:
            return [c for c in lab.emulator.calls("chat.update") if c.params.get("ts") == proc_ts]

        # The buttons' values name the step, not the message's version: the same two
        # messages serve every round, as fast as the bot acknowledges them.
        before = len(updates())
        started = time.monotonic()
        rounds = 10
        for n in range(rounds):
            await lab.click(to_reject, "Reject", APPROVER2)
            modal = await _next_view(lab, n)
            await lab.driver.submit_view(
                modal["id"], reason_values(f"round {n}"), user_id=APPROVER2
            )
            if n < rounds - 1:
                await lab.click(to_request, "Request approval", RESPONDER)
        final = await lab.wait_message(
            ts,
            lambda m: (
                step_state(m, "1.1") == "rejected"
                and f"round {rounds - 1}" in json.dumps(m["blocks"])
            ),
        )
        elapsed = time.monotonic() - started
        assert buttons(final) == ["Request approval", "Skip", "Abort"]
        audit = await lab.audit()
        transitions = sum(
            e["event"] in ("approval_requested", "rejected") and e.get("step") == "1.1"
            for e in audit
        )
        assert transitions == 2 * rounds
        shown = len(updates()) - before
        # At most one update per window while changes keep coming, plus the trailing one.
        assert shown <= elapsed / window + 2, (shown, elapsed)
        assert shown < transitions - 1, (shown, transitions)
