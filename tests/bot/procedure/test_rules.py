"""The procedure's rules, pure: who may do what now, and what it changes. Milliseconds a case."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.directory.model import Cause
from bot.procedure.approval import Actor, Refusal, valid_approvals
from bot.procedure.model import Procedure, ProcedureStatus, StepStatus
from bot.procedure.operations import Prior
from bot.procedure.plan import ApprovalPolicy
from bot.procedure.planner import build_plan
from bot.procedure.rules import (
    Act,
    Change,
    Context,
    Intent,
    StepResult,
    buttons,
    decide,
    due_obligation_acts,
    replan,
    start,
)
from tests.procedure_lab import seeded_diagnosis

TTL = 900
T0 = 1_000_000_000
RESPONDER = Actor("U0ONCALL1", responder=True)
BOTH = Actor("U0BOTH001", responder=True, approver=True)
APPROVER_A = Actor("U0APPROVA", approver=True)
APPROVER_B = Actor("U0APPROVB", approver=True)
VISITOR = Actor("U0VISITOR")
WORKER = Actor("U0ONCALL1", worker="w1")


def _proc() -> Procedure:
    plan = build_plan(seeded_diagnosis(), ApprovalPolicy(ttl_seconds=TTL))
    change = start(
        procedure_id="abcdef0123-1.1",
        incident_id="abcdef0123-1",
        plan=plan,
        actor=RESPONDER,
        now_ms=T0,
        diagnosis_at_ms=T0,
        diagnosis_summary="server reference missing",
    )
    assert isinstance(change, Change)
    return change.procedure


def _do(proc: Procedure, act: Act, actor: Actor, at: int = T0, **kw: object) -> Change | Refusal:
    step = proc.current()
    intent = Intent(
        act,
        step_key=str(kw.pop("step", step.key if step else "")),
        digest=str(kw.pop("digest", step.digest if step else "")),
        **kw,  # type: ignore[arg-type]
    )
    return decide(proc, intent, actor, Context(at, TTL, f"job-{at}"))


def _ok(decision: Change | Refusal) -> Procedure:
    assert isinstance(decision, Change), decision
    return decision.procedure


def _at(proc: Procedure, number: str) -> Procedure:
    """The procedure with every step before the first `number` step done."""
    steps = []
    reached = False
    for planned, record in zip(proc.plan.steps, proc.steps, strict=True):
        reached = reached or planned.number == number
        steps.append(record if reached else replace(record, status=StepStatus.DONE))
    return replace(proc, steps=tuple(steps))


def test_the_plan_starts_with_the_diagnosis_done_and_offers_the_first_step() -> None:
    proc = _proc()
    assert proc.record("0").status is StepStatus.DONE
    assert proc.current().key == "1.1"  # type: ignore[union-attr]
    assert buttons(proc, T0, TTL) == [Act.REQUEST_APPROVAL, Act.SKIP, Act.ABORT]


def test_an_approved_step_is_queued_once_with_one_job() -> None:
    proc = _ok(_do(_proc(), Act.REQUEST_APPROVAL, RESPONDER))
    approved = _do(proc, Act.APPROVE, APPROVER_A)
    assert isinstance(approved, Change) and approved.job is not None
    record = approved.procedure.record("1.1")
    assert record.status is StepStatus.QUEUED
    assert record.last_attempt is not None and record.last_attempt.queued_by == RESPONDER.user_id
    # A second approval (or a double click) on the queued step queues nothing.
    again = _do(approved.procedure, Act.APPROVE, APPROVER_B)
    assert isinstance(again, Refusal) and again.code == "not_awaiting_approval"


@pytest.mark.parametrize(
    ("setup", "act", "actor", "when", "digest", "code"),
    [
        pytest.param("requested_by_both", Act.APPROVE, BOTH, 0, None, "self_approval", id="self"),
        pytest.param("requested", Act.APPROVE, RESPONDER, 0, None, "not_approver", id="responder"),
        pytest.param("requested", Act.APPROVE, VISITOR, 0, None, "not_approver", id="visitor"),
        pytest.param(
            "requested", Act.APPROVE, APPROVER_A, TTL + 1, None, "request_expired", id="expired"
        ),
        pytest.param(
            "requested", Act.APPROVE, APPROVER_A, 0, "0" * 16, "plan_changed", id="old-plan"
        ),
        pytest.param(
            "pending", Act.APPROVE, APPROVER_A, 0, None, "not_awaiting_approval", id="unrequested"
        ),
        pytest.param("pending", Act.RUN, RESPONDER, 0, None, "needs_approval", id="run-unapproved"),
        pytest.param(
            "pending", Act.REQUEST_APPROVAL, VISITOR, 0, None, "not_responder", id="visitor-request"
        ),
        pytest.param(
            "pending",
            Act.REQUEST_APPROVAL,
            APPROVER_A,
            0,
            None,
            "not_responder",
            id="approver-request",
        ),
        pytest.param(
            "requested", Act.REJECT, RESPONDER, 0, None, "not_approver", id="responder-reject"
        ),
    ],
)
def test_the_approval_matrix(
    setup: str, act: Act, actor: Actor, when: int, digest: str | None, code: str
) -> None:
    proc = _proc()
    if setup == "requested":
        proc = _ok(_do(proc, Act.REQUEST_APPROVAL, RESPONDER))
    elif setup == "requested_by_both":
        proc = _ok(_do(proc, Act.REQUEST_APPROVAL, BOTH))
    kw: dict[str, object] = {"reason": "no"} if act is Act.REJECT else {}
    if digest is not None:
        kw["digest"] = digest
    refused = _do(proc, act, actor, T0 + when * 1000, **kw)
    assert isinstance(refused, Refusal), refused
    assert refused.code == code
    assert refused.reason  # always said in words


def test_the_restart_waits_for_two_different_approvers() -> None:
    proc = _ok(_do(_at(_proc(), "5"), Act.REQUEST_APPROVAL, RESPONDER))
    assert proc.current().key == "5" and proc.current().approvals == 2  # type: ignore[union-attr]
    once = _do(proc, Act.APPROVE, APPROVER_A)
    assert isinstance(once, Change) and once.job is None
    proc = once.procedure
    twice = _do(proc, Act.APPROVE, APPROVER_A, T0 + 1)
    assert isinstance(twice, Refusal) and twice.code == "already_approved"
    second = _do(proc, Act.APPROVE, APPROVER_B, T0 + 2)
    assert isinstance(second, Change) and second.job is not None
    assert second.procedure.record("5").status is StepStatus.QUEUED


def test_an_expired_approval_does_not_count_toward_the_restart() -> None:
    proc = _ok(_do(_at(_proc(), "5"), Act.REQUEST_APPROVAL, RESPONDER, T0))
    proc = _ok(_do(proc, Act.APPROVE, APPROVER_A, T0))
    # B approves within the request's life but after A's approval expired: not enough.
    late = T0 + (TTL - 1) * 1000
    proc = replace(
        proc,
        steps=tuple(
            replace(r, requested_at_ms=late - 1000) if r.key == "5" else r for r in proc.steps
        ),
    )
    second = _do(proc, Act.APPROVE, APPROVER_B, T0 + (TTL + 5) * 1000)
    assert isinstance(second, Change) and second.job is None
    assert "expired" in second.say
    assert second.procedure.record("5").status is StepStatus.AWAITING_APPROVAL


def test_a_changed_plan_voids_an_earlier_approval() -> None:
    proc = _ok(_do(_at(_proc(), "5"), Act.REQUEST_APPROVAL, RESPONDER))
    proc = _ok(_do(proc, Act.APPROVE, APPROVER_A))
    step = proc.planned("5")
    assert len(valid_approvals(proc.record("5"), step, T0, TTL)) == 1
    # The forest changed: another root DC, so step 5 restarts another DC.
    moved = replace(seeded_diagnosis(), root_dc="dc2.corp.example.com")
    new_plan = build_plan(moved, ApprovalPolicy(ttl_seconds=TTL))
    after, changed = replan(proc, new_plan)
    assert "5" in changed
    assert after.record("5").votes == () and after.record("5").status is StepStatus.PENDING
    stale = _do(after, Act.APPROVE, APPROVER_B, digest=step.digest)
    assert isinstance(stale, Refusal) and stale.code == "plan_changed"


def test_steps_act_only_in_order_and_only_the_current_one() -> None:
    proc = _proc()
    later = proc.planned("2.1")
    refused = decide(proc, Intent(Act.RUN, "2.1", later.digest), RESPONDER, Context(T0, TTL, "j"))
    assert isinstance(refused, Refusal) and refused.code == "not_current"
    unknown = decide(proc, Intent(Act.RUN, "99", "x"), RESPONDER, Context(T0, TTL, "j"))
    assert isinstance(unknown, Refusal) and unknown.code == "unknown_step"


def _run(proc: Procedure, at: int = T0, prior: Prior | None = None) -> Procedure:
    """Queue the current step (approving it when it needs approval) and let a worker do it."""
    step = proc.current()
    assert step is not None
    if step.approvals:
        proc = _ok(_do(proc, Act.REQUEST_APPROVAL, RESPONDER, at))
        proc = _ok(_do(proc, Act.APPROVE, APPROVER_A, at))
        if step.approvals > 1:
            proc = _ok(_do(proc, Act.APPROVE, APPROVER_B, at))
    else:
        proc = _ok(_do(proc, Act.RUN, RESPONDER, at))
    job = proc.record(step.key).last_attempt.job_id  # type: ignore[union-attr]
    for act in (Act.CLAIM, Act.APPLYING, Act.COMPLETE):
        intent = Intent(act, step.key, job_id=job, prior=prior or Prior(False))
        proc = _ok(decide(proc, intent, WORKER, Context(at, TTL, obligation_seconds=3600)))
    return proc


def _run_until(proc: Procedure, key: str) -> Procedure:
    while proc.current() is not None and proc.current().key != key:  # type: ignore[union-attr]
        proc = _run(proc)
    return proc


def test_a_temporary_step_opens_an_obligation_its_cleanup_closes() -> None:
    proc = _run_until(_proc(), "5")
    owed = proc.open_obligations()
    assert [o.step_key for o in owed] == ["4"]
    assert owed[0].deadline_ms == T0 + 3600 * 1000 and "SPN Fallback" in owed[0].what
    proc = _run_until(proc, "10")
    assert {o.step_key for o in proc.open_obligations()} == {"4"}  # 6 was undone by step 9
    proc = _run(proc)
    assert proc.open_obligations() == []
    assert {o.how for o in proc.obligations} == {"undone by step 9", "undone by step 10"}


def test_a_cleanup_step_cannot_be_skipped_by_a_responder_while_its_obligation_is_open() -> None:
    proc = _run_until(_proc(), "10")
    refused = _do(proc, Act.SKIP, RESPONDER, reason="tired")
    assert isinstance(refused, Refusal) and refused.code == "cleanup_required"
    overridden = _do(proc, Act.SKIP, BOTH, reason="DC is being rebuilt")
    assert isinstance(overridden, Change)
    assert overridden.procedure.open_obligations() == []
    assert [e.event for e in overridden.events] == ["obligation_overridden", "step_skipped"]


def test_abort_offers_the_undo_of_what_was_applied_newest_first() -> None:
    proc = _run_until(_proc(), "7")  # 1.1, 1.2, 3b, 4 (temporary), 6 (temporary) applied
    aborted = _do(proc, Act.ABORT, RESPONDER, reason="wrong target")
    assert isinstance(aborted, Change)
    after = aborted.procedure
    assert after.status is ProcedureStatus.ABORTING
    undo = [s for s in after.plan.steps if s.number == "undo"]
    assert [s.undoes for s in undo] == ["6", "4", "3b", "1.2", "1.1"]
    assert [s.approvals for s in undo] == [0, 0, 1, 1, 1]  # cleanups need none, changes one
    assert after.current().key == "undo-6"  # type: ignore[union-attr]
    assert Act.ABORT not in buttons(after, T0, TTL)
    # Undo 6 then 4 closes both obligations; skipping the rest ends the abort.
    after = _run(after)
    after = _run(after)
    assert after.open_obligations() == []
    for _ in range(3):
        after = _ok(_do(after, Act.SKIP, RESPONDER, reason="keep the fix"))
    assert after.status is ProcedureStatus.ABORTED


def test_closing_with_an_open_obligation_needs_an_approvers_override() -> None:
    proc = _run_until(_proc(), "5")
    assert Act.CLOSE in buttons(proc, T0, TTL)
    refused = decide(proc, Intent(Act.CLOSE), RESPONDER, Context(T0, TTL))
    assert isinstance(refused, Refusal) and refused.code == "obligation_open"
    assert "SPN Fallback" in refused.reason
    no_reason = decide(proc, Intent(Act.CLOSE), APPROVER_A, Context(T0, TTL))
    assert isinstance(no_reason, Refusal) and no_reason.code == "reason"
    closed = decide(
        proc, Intent(Act.CLOSE, reason="DC decommissioned"), APPROVER_A, Context(T0, TTL)
    )
    assert isinstance(closed, Change) and closed.procedure.status is ProcedureStatus.CLOSED
    assert "override" in closed.say and "DC decommissioned" in closed.say
    assert [o.status.value for o in closed.procedure.obligations] == ["overridden"]


def test_obligations_are_reminded_halfway_and_escalated_at_the_deadline() -> None:
    proc = _run_until(_proc(), "5")
    assert due_obligation_acts(proc, T0) == []
    half = T0 + 1800 * 1000
    assert due_obligation_acts(proc, half) == [(Act.REMIND, "4")]
    reminded = _ok(decide(proc, Intent(Act.REMIND, "4"), WORKER, Context(half, TTL)))
    assert due_obligation_acts(reminded, half + 1) == []
    late = T0 + 3600 * 1000
    assert due_obligation_acts(reminded, late) == [(Act.ESCALATE, "4")]
    escalated = decide(reminded, Intent(Act.ESCALATE, "4"), WORKER, Context(late, TTL))
    assert isinstance(escalated, Change) and "Overdue" in escalated.say
    again = decide(escalated.procedure, Intent(Act.ESCALATE, "4"), WORKER, Context(late + 1, TTL))
    assert isinstance(again, Refusal)  # once per period
    assert due_obligation_acts(escalated.procedure, late + 3600 * 1000) == [(Act.ESCALATE, "4")]


def test_worker_reports_are_bound_to_the_latest_job() -> None:
    proc = _ok(_do(_proc(), Act.REQUEST_APPROVAL, RESPONDER))
    proc = _ok(_do(proc, Act.APPROVE, APPROVER_A, T0))
    job = proc.record("1.1").last_attempt.job_id  # type: ignore[union-attr]
    stale = decide(proc, Intent(Act.CLAIM, "1.1", job_id="other"), WORKER, Context(T0, TTL))
    assert isinstance(stale, Refusal) and stale.code == "stale_job"
    proc = _ok(decide(proc, Intent(Act.CLAIM, "1.1", job_id=job), WORKER, Context(T0, TTL)))
    # A person cannot report for a worker, nor a worker click for a person.
    forged = decide(proc, Intent(Act.COMPLETE, "1.1", job_id=job), RESPONDER, Context(T0, TTL))
    assert isinstance(forged, Refusal)
    done = decide(
        proc,
        Intent(Act.COMPLETE, "1.1", job_id=job, result=StepResult("complete", 0, note="60")),
        WORKER,
        Context(T0 + 1500, TTL),
    )
    assert isinstance(done, Change) and done.procedure.record("1.1").status is StepStatus.DONE


def test_abort_needs_a_reason_and_ends_the_procedure() -> None:
    proc = _proc()
    assert isinstance(_do(proc, Act.ABORT, RESPONDER, reason=" "), Refusal)
    aborted = _ok(_do(proc, Act.ABORT, RESPONDER, reason="wrong forest"))
    assert aborted.status is ProcedureStatus.ABORTED
    assert isinstance(_do(aborted, Act.REQUEST_APPROVAL, RESPONDER), Refusal)
    assert buttons(aborted, T0, TTL) == []


def test_close_only_when_every_step_is_finished() -> None:
    proc = _proc()
    refused = decide(proc, Intent(Act.CLOSE), RESPONDER, Context(T0, TTL))
    assert isinstance(refused, Refusal) and refused.code == "steps_left"
    done = replace(proc, steps=tuple(replace(r, status=StepStatus.DONE) for r in proc.steps))
    assert buttons(done, T0, TTL) == [Act.CLOSE, Act.ABORT]
    closed = decide(done, Intent(Act.CLOSE), RESPONDER, Context(T0, TTL))
    assert isinstance(closed, Change) and closed.procedure.status is ProcedureStatus.CLOSED


def test_a_gone_dc_gets_no_links_and_no_restore() -> None:
    gone = replace(seeded_diagnosis(), cause=Cause.DC_REMOVED, missing_links=())
    plan = build_plan(gone, ApprovalPolicy())
    numbers = [s.number for s in plan.steps]
    assert "3b" not in numbers and "7" not in numbers and "4" not in numbers
    assert any("metadata clean-up" in n for n in plan.notes)


# -- the matrix as a property -------------------------------------------------------------

PEOPLE = [RESPONDER, BOTH, APPROVER_A, APPROVER_B, VISITOR]
ACTS = [Act.REQUEST_APPROVAL, Act.APPROVE, Act.REJECT, Act.RUN, Act.SKIP, Act.RETRY]


@given(
    st.lists(
        st.tuples(
            st.sampled_from(ACTS),
            st.sampled_from(PEOPLE),
            st.integers(min_value=0, max_value=2 * TTL),
            st.booleans(),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_no_sequence_of_clicks_runs_a_step_without_its_approvals(
    clicks: list[tuple[Act, Actor, int, bool]],
) -> None:
    proc = _at(_proc(), "4")
    clock = T0
    for act, actor, dt, fresh_digest in clicks:
        clock += dt * 1000
        step = proc.current()
        if step is None:
            break
        digest = step.digest if fresh_digest else "f" * 16
        decision = decide(
            proc,
            Intent(act, step.key, digest, reason="why" if act in (Act.REJECT, Act.SKIP) else ""),
            actor,
            Context(clock, TTL, f"job-{clock}"),
        )
        if isinstance(decision, Refusal):
            assert decision.reason and decision.code
            continue
        after = decision.procedure.record(step.key)
        if decision.job is not None:
            # Queued: exactly this step, with enough valid approvals, none from its requester.
            assert after.status is StepStatus.QUEUED and decision.job.step_key == step.key
            valid = valid_approvals(after, step, clock, TTL)
            assert len(valid) >= step.approvals
            assert all(v.user != after.requested_by for v in valid)
            assert all(
                v.user in (APPROVER_A.user_id, APPROVER_B.user_id, BOTH.user_id) for v in valid
            )
            assert actor.approver or step.approvals == 0
            # The worker finishes it, so the next step can be tried.
            job = after.last_attempt.job_id  # type: ignore[union-attr]
            proc = decision.procedure
            for wact in (Act.CLAIM, Act.COMPLETE):
                proc = _ok(
                    decide(proc, Intent(wact, step.key, job_id=job), WORKER, Context(clock, TTL))
                )
            continue
        if act in (Act.RUN, Act.RETRY, Act.REQUEST_APPROVAL, Act.SKIP):
            assert actor.responder
        if act is Act.APPROVE:
            assert actor.approver
            assert actor.user_id != decision.procedure.record(step.key).requested_by
        if act is Act.REJECT:  # the requester may withdraw their own request
            assert actor.approver
        proc = decision.procedure


ALL_PERSON_ACTS = [*ACTS, Act.ABORT, Act.CLOSE]


def _offered_matches_the_rules(proc: Procedure, clock: int) -> None:
    """What the message offers is exactly what someone may do now."""
    offered = set(buttons(proc, clock, TTL))
    step = proc.current()
    for act in ALL_PERSON_ACTS:
        intent = Intent(
            act,
            step.key if step else None,
            step.digest if step else None,
            reason="why",
        )
        decisions = [decide(proc, intent, p, Context(clock, TTL, f"job-{clock}")) for p in PEOPLE]
        for d in decisions:
            if isinstance(d, Refusal):
                assert d.code and d.reason, d
        someone = any(isinstance(d, Change) for d in decisions)
        if act is Act.CLOSE and act not in offered:
            # Closing with steps left is an approver's audited override (a reason), not a
            # button: the message offers Abort, which offers the undo.
            allowed = [p for p, d in zip(PEOPLE, decisions, strict=True) if isinstance(d, Change)]
            assert all(p.approver for p in allowed), (allowed, decisions)
            continue
        assert someone == (act in offered), (act, sorted(offered), decisions)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(ALL_PERSON_ACTS),
            st.sampled_from(PEOPLE),
            st.integers(min_value=0, max_value=2 * TTL),
        ),
        min_size=1,
        max_size=40,
    ),
    st.sampled_from(["1.1", "4", "5", "7", "10"]),
)
def test_every_button_shown_is_one_someone_may_press_and_no_other_act_is_allowed(
    clicks: list[tuple[Act, Actor, int]], start_at: str
) -> None:
    """Along any sequence of clicks (the worker finishing what they queue): the buttons the
    message shows are exactly the acts at least one person may do, and every refusal says
    why. (Who among them may is the approval matrix's business.)"""
    proc = _at(_proc(), start_at)
    clock = T0
    _offered_matches_the_rules(proc, clock)
    for act, actor, dt in clicks:
        clock += dt * 1000
        step = proc.current()
        intent = Intent(act, step.key if step else None, step.digest if step else None, "why")
        decision = decide(proc, intent, actor, Context(clock, TTL, f"job-{clock}"))
        if isinstance(decision, Change):
            proc = decision.procedure
            if decision.job is not None and step is not None:
                for wact in (Act.CLAIM, Act.COMPLETE):
                    job = Intent(wact, step.key, job_id=decision.job.job_id)
                    proc = _ok(decide(proc, job, WORKER, Context(clock, TTL)))
        _offered_matches_the_rules(proc, clock)
