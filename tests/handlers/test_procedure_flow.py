"""The procedure in Slack: plan, approvals and runs, with the bot in-process, real Redis, the
Slack emulator with signed requests, and real pypsrp against simulated DCs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.app.slack import slack_client
from bot.procedure.approval import Actor
from bot.procedure.plan import ApprovalPolicy
from bot.procedure.planner import build_plan
from bot.procedure.report import build_report
from bot.procedure.rules import Act, Intent
from handlers.procedure_messages import ProcedureMessages
from handlers.thread import IncidentThread
from handlers.transitions import ProcedureEngine, Refused
from lab.slack_driver import SlackDriver
from lab.slack_emulator import SlackEmulator
from state.connection import async_client
from state.incidents import IncidentStore
from state.procedures import ProcedureStore
from tests.inprocess import running_bot
from tests.procedure_lab import (
    APPROVER1,
    APPROVER2,
    MISSING,
    REPORTER,
    RESPONDER,
    ROOT,
    LabFactory,
    ProcedureLab,
    buttons,
    reason_values,
    seeded_diagnosis,
    step_state,
)
from tests.procedure_run import procedure_id_of
from tests.waiting import until

pytestmark = [pytest.mark.slack, pytest.mark.winrm]


@pytest.fixture
async def lab(
    new_lab: LabFactory,
) -> AsyncIterator[ProcedureLab]:
    async with new_lab() as running:
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


async def _said(lab: ProcedureLab, words: str) -> str:
    found = await lab.emulator.wait_for_async(lambda: lab.ephemeral_texts(words), timeout=20)
    return found[0]


async def test_refusals_are_explained_to_the_clicker_and_audited(lab: ProcedureLab) -> None:
    _, incident, msg = await _started(lab)
    await lab.click(msg, "Request approval", APPROVER1)
    msg = await lab.wait_message(incident["ts"], lambda m: "Approve" in buttons(m))
    # The requester cannot approve their own step; a responder who is no approver cannot.
    await lab.click(msg, "Approve", APPROVER1)
    assert "cannot approve it" in await _said(lab, "you cannot approve")
    await lab.click(msg, "Approve", RESPONDER)
    assert "not an approver" in await _said(lab, "not an approver")
    codes = {(e.get("code"), e.get("user")) for e in await lab.audit() if e["event"] == "refused"}
    assert ("self_approval", APPROVER1) in codes and ("not_approver", RESPONDER) in codes
    assert step_state(lab.procedure_message(incident["ts"]) or {}, "1.1") == "awaiting approval"
    assert lab.dcs.dc(ROOT).commands() == []


async def test_tampered_button_values_are_refused_and_audited(lab: ProcedureLab) -> None:
    iid, _, msg = await _started(lab)
    pid = f"{iid}.1"
    later = next(
        json.loads(b["value"]) for b in SlackDriver.buttons(msg) if b["text"]["text"] == "Abort"
    )
    digest_21 = _digest_of(msg, "2.1")
    cases = [
        ("Request approval", json.dumps({"p": pid, "s": "2.1", "d": digest_21}), "not the current"),
        ("Request approval", json.dumps({"p": pid, "s": "1.1", "d": "0" * 16}), "old plan"),
        (
            "Request approval",
            json.dumps({"p": "abcdef0123-9.1", "s": "1.1", "d": later["d"]}),
            "does not belong",
        ),
        ("Request approval", "x; rm -rf /", "not a procedure button"),
    ]
    for label, value, words in cases:
        await lab.driver.click(msg, text=label, user_id=RESPONDER, value=value)
        assert await _said(lab, words)
    refused = [e for e in await lab.audit() if e["event"] == "refused"]
    assert {e["code"] for e in refused} >= {
        "not_current",
        "plan_changed",
        "wrong_message",
        "bad_value",
    }
    assert all(dc.commands() == [] for dc in lab.dcs.dcs.values())


def _digest_of(message: dict[str, Any], key: str) -> str:
    """The digest of a step as the plan the bot posted computes it (from the stored plan)."""
    del message
    plan = build_plan(seeded_diagnosis(), ApprovalPolicy())
    step = plan.step(key)
    assert step is not None
    return step.digest


async def test_reasons_are_asked_in_a_modal_for_reject_skip_and_abort(lab: ProcedureLab) -> None:
    _, incident, msg = await _started(lab)
    await lab.click(msg, "Request approval", RESPONDER)
    msg = await lab.wait_message(incident["ts"], lambda m: "Reject" in buttons(m))
    await lab.click(msg, "Reject", APPROVER2)
    modal = (await lab.emulator.wait_for_async(lab.emulator.views, timeout=20))[-1]
    assert modal["callback_id"] == "proc_reason"
    empty = await lab.driver.submit_view(modal["id"], reason_values("  "), user_id=APPROVER2)
    assert empty.json()["response_action"] == "errors"
    await lab.driver.submit_view(
        modal["id"], reason_values("change window not open yet"), user_id=APPROVER2
    )
    msg = await lab.wait_message(incident["ts"], lambda m: step_state(m, "1.1") == "rejected")
    assert "change window not open yet" in json.dumps(msg["blocks"])
    await lab.click(msg, "Skip", RESPONDER)
    modal = (await lab.emulator.wait_for_async(lambda: lab.emulator.views()[1:], timeout=20))[-1]
    await lab.driver.submit_view(modal["id"], reason_values("set by GPO"), user_id=RESPONDER)
    msg = await lab.wait_message(incident["ts"], lambda m: step_state(m, "1.1") == "skipped")
    await lab.click(msg, "Abort", RESPONDER)
    modal = (await lab.emulator.wait_for_async(lambda: lab.emulator.views()[2:], timeout=20))[-1]
    await lab.driver.submit_view(modal["id"], reason_values("wrong forest"), user_id=RESPONDER)
    msg = await lab.wait_message(incident["ts"], lambda m: "aborted" in json.dumps(m["blocks"]))
    assert buttons(msg) == []
    events = [(e["event"], e.get("reason")) for e in await lab.audit()]
    assert ("rejected", "change window not open yet") in events
    assert ("step_skipped", "set by GPO") in events
    assert ("procedure_aborted", "wrong forest") in events


async def test_fifty_concurrent_clicks_on_two_replicas_run_the_command_once(
    new_lab: LabFactory,
    slack_emulator: SlackEmulator,
    slack_signing_secret: str,
) -> None:
    async with (
        new_lab(
            extra_config="[approvals]\nchange = 0",
        ) as lab,
        running_bot(lab.settings, slack_emulator, slack_signing_secret) as replica,
    ):
        _, incident, msg = await _started(lab)
        assert buttons(msg) == ["Run", "Skip", "Abort"]
        drivers = [lab.driver, replica.driver]
        clicks = [drivers[i % 2].click(msg, text="Run", user_id=RESPONDER) for i in range(50)]
        answers = await asyncio.gather(*clicks)
        assert all(a.status == 200 for a in answers)
        done = await lab.wait_message(incident["ts"], lambda m: step_state(m, "1.1") == "done")
        adds = [c for c in lab.dcs.dc(ROOT).commands() if "reg.exe add" in c.command_line]
        assert len(adds) == 1
        audit = await lab.audit()
        assert sum(e["event"] == "step_queued" for e in audit) == 1
        assert sum(e["event"] == "refused" for e in audit) == 49
        # A Slack retry of one of those requests does nothing new: no audit entry, no job.
        before = len(await lab.audit())
        retried = await lab.driver.replay(answers[0].request, retry_num=1)
        assert retried.status == 200
        assert len(await lab.audit()) == before
        assert step_state(done, "1.2") == "pending"


async def test_a_failed_step_says_why_and_offers_retry(
    new_lab: LabFactory,
) -> None:
    async with new_lab(
        extra_config="[approvals]\nchange = 0",
    ) as lab:
        _, incident, msg = await _started(lab)
        again = await lab.driver.click(incident, text="Start procedure", user_id=RESPONDER)
        assert again.status == 200
        assert await _said(lab, "already running")
        root = lab.dcs.dc(ROOT)
        root.faults.exit_code(5, "reg.exe add", stderr="ERROR: Access is denied.\r\n", times=1)
        await lab.click(msg, "Run", RESPONDER)
        msg = await lab.wait_message(incident["ts"], lambda m: step_state(m, "1.1") == "failed")
        assert buttons(msg) == ["Retry", "Skip", "Abort"]
        # The thread hears of it in its own post, which may land after the message's update.
        said = await lab.emulator.wait_for_async(
            lambda: [
                str(m.get("text"))
                for m in lab.emulator.messages("C0INCIDENT")
                if m.get("thread_ts") == incident["ts"] and "FAILED" in str(m.get("text"))
            ],
            timeout=60,
        )
        assert "Access is denied" in said[0] and "Retry" in said[0]
        await lab.click(msg, "Retry", RESPONDER)
        msg = await lab.wait_message(incident["ts"], lambda m: step_state(m, "1.1") == "done")
        value = root.registry_value("RepsTo Failure Time (sec)")
        assert value is not None and value.data == 60
        # The full output of the run is one click away, in a modal.
        result = next(
            m
            for m in reversed(lab.emulator.messages("C0INCIDENT"))
            if m.get("thread_ts") == incident["ts"] and "Full output" in json.dumps(m)
        )
        await lab.driver.click(result, text="Full output", user_id=RESPONDER)
        shown = await lab.emulator.wait_for_async(
            lambda: [v for v in lab.emulator.views() if "Command output" in json.dumps(v)],
            timeout=20,
        )
        assert "reg.exe add" in json.dumps(shown[-1])


async def test_a_listener_slower_than_slacks_3_s_is_acknowledged_and_goes_on(
    lab: ProcedureLab,
) -> None:
    # Skip opens its form inside the click (a trigger_id is good for 3 s); Slack answers
    # views.open slowly this time. Serve acknowledges at its budget and the form still opens.
    _, incident, msg = await _started(lab)
    lab.emulator.faults.slow_next("views.open", delay=6.0)
    reply = await lab.driver.click(msg, text="Skip", user_id=RESPONDER)
    assert reply.status == 200 and reply.body in ("", "{}")
    assert lab.emulator.views() == []  # answered before the slow call came back
    views = await lab.emulator.wait_for_async(lab.emulator.views, timeout=30)
    assert views[-1]["callback_id"] == "proc_reason"
    late = lab.bot.ctx.metrics.registry.get_sample_value("ad1411_slack_finished_after_ack_total")
    assert late == 1
    # The form works as usual.
    await lab.driver.submit_view(views[-1]["id"], reason_values("set by GPO"), user_id=RESPONDER)
    await lab.wait_message(incident["ts"], lambda m: step_state(m, "1.1") == "skipped")


async def test_an_update_that_lands_after_a_newer_one_is_shown_again(lab: ProcedureLab) -> None:
    """Two processes update one procedure message, and the one that rendered the older state
    reaches Slack last (its call held in the emulator): the message is marked stale again and
    the latest state is shown, not the one that landed last. A slot its holder outlived is not
    released by it."""
    _, incident, msg = await _started(lab)
    procedure_id = procedure_id_of(msg)
    client = async_client(lab.redis_url)
    store = ProcedureStore(client)
    slack = slack_client(lab.settings)
    other = ProcedureMessages(
        store,
        IncidentStore(client),
        slack,
        IncidentThread(slack),
        window_seconds=0.2,
        ttl_seconds=3600,
    )
    try:
        # Another process starts to show the procedure as it is now (step 1.1 pending)...
        assert await store.redirty_if_newer(procedure_id, -1)
        held = lab.emulator.faults.hold_next("chat.update")
        stale = asyncio.create_task(other.flush(procedure_id))
        await lab.emulator.wait_for_async(lambda: lab.emulator.faults.pending("chat.update") == 0)
        # ...while a click moves it on, and serve shows that at once.
        assert (await lab.click(msg, "Request approval", RESPONDER)).status == 200
        await lab.wait_message(incident["ts"], lambda m: "Approve" in buttons(m))
        held.set()
        await asyncio.wait_for(stale, 60)
        # The older update landed last; the message is stale again and shown anew.
        shown = await lab.wait_message(incident["ts"], lambda m: "Approve" in buttons(m))
        assert step_state(shown, "1.1") == "awaiting approval", step_state(shown, "1.1")

        # A slot whose holder outlived it (expired, or lost in a failover) is not released by
        # that holder: the process that holds it now keeps it.
        first = await until(
            lambda: store.take_update_slot(procedure_id, 0.05), what="the slot free"
        )
        now_held: list[str] = []

        async def taken_by_another() -> bool:
            token = await store.take_update_slot(procedure_id, 60)
            now_held.extend([token] if token else [])
            return bool(now_held)

        await until(taken_by_another, timeout=30, what="the slot expired and taken again")
        await store.release_update_slot(procedure_id, first)
        assert await store.take_update_slot(procedure_id, 60) is None
        await store.release_update_slot(procedure_id, now_held[0])
        assert await store.take_update_slot(procedure_id, 60) is not None
    finally:
        await client.aclose()


async def test_a_workers_refused_report_is_the_workers_in_the_audit_and_the_report(
    lab: ProcedureLab,
) -> None:
    """A worker acts for the person who queued the step; when its report is refused (a job
    delivered again after its step moved on), the audit and the report name the worker, not
    the person."""
    _, _, msg = await _started(lab)
    procedure_id = procedure_id_of(msg)
    client = async_client(lab.redis_url)
    try:
        engine = ProcedureEngine(ProcedureStore(client), 3600)
        claim = Intent(Act.CLAIM, "1.1", job_id="a-job-never-queued")
        outcome = await engine.act(procedure_id, claim, Actor(RESPONDER, worker="w-lab-7"))
        assert isinstance(outcome, Refused), outcome
        proc = await engine.procedure(procedure_id)
    finally:
        await client.aclose()
    assert proc is not None
    audit = await lab.audit()
    refused = [e for e in audit if e["event"] == "refused"]
    assert [(e["user"], e.get("worker"), e["act"]) for e in refused] == [
        (RESPONDER, "w-lab-7", "claim")
    ], refused
    lines = [m.what for m in build_report(proc, audit).timeline if "refused" in m.what]
    assert lines == [f"worker w-lab-7 was refused (claim 1.1): {refused[0]['code']}"], lines
