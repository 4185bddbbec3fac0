"""The procedure's rules: what an actor may do now, and what it changes (pure, no I/O).

`decide(procedure, intent, actor, now)` returns either a `Change` (the new procedure, the
audit entries, and the job to queue when the transition queues work) or a `Refusal` saying
why not. The state layer commits a Change in one atomic script only if the procedure's
version did not move meanwhile; on a race it reloads and decides again, so a double click,
a Slack retry or two replicas produce exactly one transition.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum

from bot.procedure.approval import (
    Actor,
    Refusal,
    expired_approvals,
    may_approve,
    reason_problem,
    request_expired,
    valid_approvals,
)
from bot.procedure.model import (
    FINISHED,
    IN_FLIGHT,
    LIVE,
    Attempt,
    Obligation,
    ObligationStatus,
    Procedure,
    ProcedureStatus,
    StepRecord,
    StepStatus,
    Vote,
)
from bot.procedure.operations import Prior, undo_ops
from bot.procedure.plan import Plan, PlannedStep
from bot.procedure.planner import with_digests
from bot.procedure.steps import TEMPORARY_UNDONE_BY, StepKind

MAX_EXCERPT_CHARS = 600
MAX_DETAIL_CHARS = 1500


class Act(StrEnum):
    """What someone (a person through a button, or a worker) asks the procedure to do."""

    REQUEST_APPROVAL = "request_approval"
    APPROVE = "approve"
    REJECT = "reject"
    RUN = "run"
    SKIP = "skip"
    RETRY = "retry"
    ABORT = "abort"
    CLOSE = "close"
    # The worker's side of a run, and its sweeper's.
    CLAIM = "claim"
    APPLYING = "applying"
    SATISFIED = "satisfied"
    COMPLETE = "complete"
    FAIL = "fail"
    REMIND = "remind"
    ESCALATE = "escalate"


PERSON_ACTS = frozenset(
    {
        Act.REQUEST_APPROVAL,
        Act.APPROVE,
        Act.REJECT,
        Act.RUN,
        Act.SKIP,
        Act.RETRY,
        Act.ABORT,
        Act.CLOSE,
    }
)
STEP_ACTS = PERSON_ACTS - {Act.ABORT, Act.CLOSE}
# What an approver who is not a responder may do: vote, and close with an override.
APPROVER_ACTS = frozenset({Act.APPROVE, Act.REJECT, Act.CLOSE})


@dataclass(frozen=True)
class StepResult:
    """What a worker reports at the end of a run."""

    outcome: str
    exit_code: int | None = None
    excerpt: str = ""
    detail: str = ""
    output_ref: str = ""
    note: str = ""


@dataclass(frozen=True)
class Intent:
    """One request to the procedure."""

    act: Act
    step_key: str | None = None
    digest: str | None = None
    reason: str = ""
    job_id: str = ""
    prior: Prior | None = None
    result: StepResult | None = None
    new_plan: Plan | None = None


@dataclass(frozen=True)
class AuditEvent:
    """One audit entry: an event name and flat string fields."""

    event: str
    fields: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class QueuedJob:
    """A step run to add to the job stream in the same commit."""

    job_id: str
    step_key: str
    attempt: int
    requested_by: str


@dataclass(frozen=True)
class Change:
    """An allowed transition: the new procedure, what to audit, what to queue, what to say."""

    procedure: Procedure
    events: tuple[AuditEvent, ...]
    job: QueuedJob | None = None
    say: str = ""


Decision = Change | Refusal


@dataclass(frozen=True)
class Context:
    """What a decision needs besides the procedure and the intent."""

    now_ms: int
    ttl_seconds: int
    new_job_id: str = ""
    obligation_seconds: int = 3600


def _event(proc: Procedure, name: str, actor: Actor, **fields: object) -> AuditEvent:
    values = {
        "procedure": proc.id,
        "incident": proc.incident_id,
        "user": actor.user_id,
        **{k: "" if v is None else str(v) for k, v in fields.items()},
    }
    if actor.worker:
        values["worker"] = actor.worker
    return AuditEvent(name, values)


def _refuse(code: str, reason: str) -> Refusal:
    return Refusal(code, reason)


def decide(proc: Procedure, intent: Intent, actor: Actor, ctx: Context) -> Decision:
    """Apply the rules: the change this intent makes, or why it is refused."""
    if intent.act in PERSON_ACTS and actor.worker:
        return _refuse("not_a_person", "Only people act on the procedure through Slack.")
    if intent.act not in PERSON_ACTS and not actor.worker:
        return _refuse("not_a_worker", "Only a worker reports on a run.")
    if intent.act in PERSON_ACTS and not actor.responder and intent.act not in APPROVER_ACTS:
        return _refuse(
            "not_responder",
            "You are not a responder for 1411 incidents, so you cannot act on this procedure. "
            "Ask an on-call responder, or an admin to add you to `slack.responders`.",
        )
    handler = _HANDLERS[intent.act]
    return handler(proc, intent, actor, ctx)


# -- people ------------------------------------------------------------------------------


def _current_step(proc: Procedure, intent: Intent) -> tuple[PlannedStep, StepRecord] | Refusal:
    """The step the intent names, if it is the step that may act now."""
    if proc.status not in LIVE:
        return _refuse(
            "procedure_ended",
            f"Procedure `{proc.id}` is {proc.status.value}; its buttons no longer act.",
        )
    key = intent.step_key or ""
    step = proc.plan.step(key)
    if step is None:
        return _refuse("unknown_step", f"Step {key[:20]!r} is not in procedure `{proc.id}`.")
    current = proc.current()
    if current is None or current.key != key:
        now = f"step {current.key}" if current else "closing"
        return _refuse(
            "not_current",
            f"Step {key} is not the current step (the procedure is at {now}); steps run in "
            "order. Use the buttons of the current step in the procedure message.",
        )
    if intent.act in STEP_ACTS and intent.digest != step.digest:
        return _refuse(
            "plan_changed",
            f"This button shows an old plan of step {key}; the plan changed since. Read the "
            "procedure message again and use its current buttons.",
        )
    return step, proc.record(key)


def _queue(
    proc: Procedure, step: PlannedStep, record: StepRecord, queued_by: str, ctx: Context
) -> tuple[StepRecord, QueuedJob]:
    """The step queued for a run on behalf of `queued_by` (the requester of an approved step)."""
    number = len(record.attempts) + 1
    attempt = Attempt(number, ctx.new_job_id, queued_by, ctx.now_ms)
    job = QueuedJob(ctx.new_job_id, step.key, number, queued_by)
    return replace(record, status=StepStatus.QUEUED, attempts=(*record.attempts, attempt)), job


def _request_approval(proc: Procedure, intent: Intent, actor: Actor, ctx: Context) -> Decision:
    found = _current_step(proc, intent)
    if isinstance(found, Refusal):
        return found
    step, record = found
    if step.approvals == 0:
        return _refuse("no_approval_needed", f"Step {step.key} needs no approval: press Run.")
    waiting = record.status is StepStatus.AWAITING_APPROVAL
    if waiting and not request_expired(record, ctx.now_ms, ctx.ttl_seconds):
        return _refuse(
            "already_requested",
            f"Approval of step {step.key} was already requested by <@{record.requested_by}>.",
        )
    if record.status not in (StepStatus.PENDING, StepStatus.REJECTED) and not waiting:
        return _refuse(
            "wrong_state",
            f"Step {step.key} is {record.status.value}; approval cannot be requested now.",
        )
    new = replace(
        record,
        status=StepStatus.AWAITING_APPROVAL,
        requested_by=actor.user_id,
        requested_at_ms=ctx.now_ms,
        votes=(),
    )
    event = _event(
        proc, "approval_requested", actor, step=step.key, digest=step.digest, needed=step.approvals
    )
    return Change(
        proc.with_record(new),
        (event,),
        say=f"Approval of step {step.key} requested; {step.approvals} approver(s) needed.",
    )


def _approve(proc: Procedure, intent: Intent, actor: Actor, ctx: Context) -> Decision:
    found = _current_step(proc, intent)
    if isinstance(found, Refusal):
        return found
    step, record = found
    refusal = may_approve(
        record, step, actor, digest=intent.digest, now_ms=ctx.now_ms, ttl_seconds=ctx.ttl_seconds
    )
    if refusal is not None:
        return refusal
    vote = Vote(actor.user_id, True, ctx.now_ms, step.digest)
    voted = replace(record, votes=(*record.votes, vote))
    valid = valid_approvals(voted, step, ctx.now_ms, ctx.ttl_seconds)
    events = [_event(proc, "approved", actor, step=step.key, digest=step.digest)]
    if len(valid) < step.approvals:
        stale = expired_approvals(voted, step, ctx.now_ms, ctx.ttl_seconds)
        note = (
            " (" + ", ".join(f"<@{v.user}>'s approval expired" for v in stale) + ")"
            if stale
            else ""
        )
        return Change(
            proc.with_record(voted),
            tuple(events),
            say=f"Approval recorded: {len(valid)} of {step.approvals} for step {step.key}{note}.",
        )
    queued, job = _queue(proc, step, voted, voted.requested_by, ctx)
    events.append(
        _event(proc, "step_queued", actor, step=step.key, attempt=job.attempt, job_id=job.job_id)
    )
    return Change(
        proc.with_record(queued),
        tuple(events),
        job,
        say=f"Step {step.key} approved ({len(valid)} of {step.approvals}) and queued to run.",
    )


def _reject(proc: Procedure, intent: Intent, actor: Actor, ctx: Context) -> Decision:
    found = _current_step(proc, intent)
    if isinstance(found, Refusal):
        return found
    step, record = found
    if not actor.approver:
        return _refuse("not_approver", "Only an approver can reject a step.")
    if record.status is not StepStatus.AWAITING_APPROVAL:
        return _refuse("not_awaiting_approval", f"Step {step.key} is not waiting for approval.")
    if request_expired(record, ctx.now_ms, ctx.ttl_seconds):
        # As the message shows it: an expired request offers only a new request.
        return _refuse(
            "request_expired",
            f"The approval request for step {step.key} expired; there is nothing to reject. "
            "It runs only if someone requests approval again.",
        )
    problem = reason_problem(intent.reason)
    if problem is not None:
        return _refuse("reason", f"Rejection not recorded: {problem}.")
    vote = Vote(actor.user_id, False, ctx.now_ms, step.digest, intent.reason)
    new = replace(record, status=StepStatus.REJECTED, votes=(*record.votes, vote))
    event = _event(proc, "rejected", actor, step=step.key, digest=step.digest, reason=intent.reason)
    return Change(proc.with_record(new), (event,), say=f"Step {step.key} rejected.")


def _run(proc: Procedure, intent: Intent, actor: Actor, ctx: Context) -> Decision:
    found = _current_step(proc, intent)
    if isinstance(found, Refusal):
        return found
    step, record = found
    if step.approvals > 0:
        return _refuse(
            "needs_approval",
            f"Step {step.key} needs {step.approvals} approval(s): press Request approval; it "
            "runs as soon as it is approved.",
        )
    if record.status in IN_FLIGHT:
        return _refuse("already_queued", f"Step {step.key} is already {record.status.value}.")
    if record.status is not StepStatus.PENDING:
        return _refuse("wrong_state", f"Step {step.key} is {record.status.value}; it cannot run.")
    queued, job = _queue(proc, step, record, actor.user_id, ctx)
    event = _event(
        proc, "step_queued", actor, step=step.key, attempt=job.attempt, job_id=job.job_id
    )
    return Change(proc.with_record(queued), (event,), job, say=f"Step {step.key} queued to run.")


def _retry(proc: Procedure, intent: Intent, actor: Actor, ctx: Context) -> Decision:
    found = _current_step(proc, intent)
    if isinstance(found, Refusal):
        return found
    step, record = found
    if record.status is not StepStatus.FAILED:
        return _refuse("wrong_state", f"Step {step.key} has not failed; nothing to retry.")
    valid = valid_approvals(record, step, ctx.now_ms, ctx.ttl_seconds)
    if step.approvals > 0 and len(valid) < step.approvals:
        again = replace(
            record,
            status=StepStatus.AWAITING_APPROVAL,
            requested_by=actor.user_id,
            requested_at_ms=ctx.now_ms,
            votes=(),
        )
        event = _event(
            proc, "approval_requested", actor, step=step.key, digest=step.digest, retry="1"
        )
        return Change(
            proc.with_record(again),
            (event,),
            say=f"The approvals of step {step.key} expired; approval requested again.",
        )
    queued, job = _queue(proc, step, record, actor.user_id, ctx)
    event = _event(
        proc, "step_retried", actor, step=step.key, attempt=job.attempt, job_id=job.job_id
    )
    return Change(proc.with_record(queued), (event,), job, say=f"Step {step.key} queued again.")


def _skip(proc: Procedure, intent: Intent, actor: Actor, ctx: Context) -> Decision:
    found = _current_step(proc, intent)
    if isinstance(found, Refusal):
        return found
    step, record = found
    if record.status in IN_FLIGHT:
        return _refuse("in_flight", f"Step {step.key} is {record.status.value}; wait for it.")
    problem = reason_problem(intent.reason)
    if problem is not None:
        return _refuse("reason", f"Step {step.key} not skipped: {problem}.")
    # A cleanup whose precheck found nothing to undo may be skipped; otherwise it must run,
    # unless an approver overrides the obligation with a reason.
    owed = _obligation_undone_by(proc, step) if record.status is not StepStatus.SATISFIED else None
    events: list[AuditEvent] = []
    after = proc
    if owed is not None:
        if not actor.approver:
            return _refuse(
                "cleanup_required",
                f"Step {step.key} undoes step {owed.step_key}, which took effect ({owed.what}): "
                "it cannot be skipped, or the weakening would stay. Run it; only an approver "
                "can skip it, with a reason (an audited override).",
            )
        after = after.with_obligation(_overridden(owed, actor, intent.reason, ctx))
        events.append(
            _event(proc, "obligation_overridden", actor, step=owed.step_key, reason=intent.reason)
        )
    new = replace(
        record, status=StepStatus.SKIPPED, skipped_by=actor.user_id, skip_reason=intent.reason
    )
    events.append(_event(proc, "step_skipped", actor, step=step.key, reason=intent.reason))
    after = _maybe_aborted(after.with_record(new), actor, ctx, events)
    return Change(after, tuple(events), say=f"Step {step.key} skipped.")


def _abort(proc: Procedure, intent: Intent, actor: Actor, ctx: Context) -> Decision:
    if proc.status is not ProcedureStatus.ACTIVE:
        return _refuse("procedure_ended", f"Procedure `{proc.id}` is already {proc.status.value}.")
    problem = reason_problem(intent.reason)
    if problem is not None:
        return _refuse("reason", f"Not aborted: {problem}.")
    undo = undo_steps(proc)
    ended = replace(
        proc,
        status=ProcedureStatus.ABORTING if undo else ProcedureStatus.ABORTED,
        ended_by=actor.user_id,
        ended_at_ms=ctx.now_ms,
        end_reason=intent.reason,
    )
    if undo:
        plan = with_digests(replace(proc.plan, steps=(*proc.plan.steps, *undo)), _priors(proc))
        ended = replace(ended, plan=plan, steps=(*proc.steps, *(StepRecord(u.key) for u in undo)))
    event = _event(
        proc,
        "procedure_aborted",
        actor,
        reason=intent.reason,
        undo=",".join(u.undoes for u in undo),
    )
    say = f"Procedure `{proc.id}` aborted."
    if undo:
        say += (
            " The undo of "
            + ", ".join(f"step {u.undoes}" for u in undo)
            + " is offered, newest first."
        )
    return Change(ended, (event,), say=say)


def _priors(proc: Procedure) -> dict[str, Prior]:
    return {r.key: r.prior for r in proc.steps if r.prior is not None}


def undo_steps(proc: Procedure) -> list[PlannedStep]:
    """The undo of every applied change and temporary step, newest first (none for steps
    whose cleanup already ran, for links the KCC owns, or for a restart)."""
    applied: list[tuple[int, int, PlannedStep]] = []
    for index, (planned, record) in enumerate(zip(proc.plan.steps, proc.steps, strict=True)):
        attempt = record.last_attempt
        if planned.number == "undo" or attempt is None or not attempt.applied_at_ms:
            continue
        if planned.kind not in (StepKind.CHANGE, StepKind.TEMPORARY):
            continue
        if undo_ops(proc.plan, planned, record.prior) is None:
            continue
        owed = next((o for o in proc.obligations if o.step_key == planned.key), None)
        if owed is not None and not owed.open:
            continue  # its cleanup step already put it back
        applied.append((attempt.applied_at_ms, index, planned))
    applied.sort(key=lambda item: (item[0], item[1]), reverse=True)
    return [
        PlannedStep(
            key=f"undo-{s.key}",
            number="undo",
            approvals=0 if s.kind is StepKind.TEMPORARY else s.approvals,
            dc=s.dc,
            server_dn=s.server_dn,
            computer_dn=s.computer_dn,
            undoes=s.key,
            undo_kind=(StepKind.CLEANUP if s.kind is StepKind.TEMPORARY else s.kind).value,
        )
        for _, _, s in applied
    ]


def _close(proc: Procedure, intent: Intent, actor: Actor, ctx: Context) -> Decision:
    if proc.status not in LIVE:
        return _refuse("procedure_ended", f"Procedure `{proc.id}` is already {proc.status.value}.")
    current = proc.current()
    owed = proc.open_obligations()
    if current is None and not owed:
        ended = replace(
            proc,
            status=ProcedureStatus.CLOSED,
            ended_by=actor.user_id,
            ended_at_ms=ctx.now_ms,
            end_reason=intent.reason or "all steps done",
        )
        return Change(ended, (_event(proc, "procedure_closed", actor),), say="Procedure closed.")
    left = [f"step {current.key} and the steps after it are not done"] if current else []
    left += [f"{o.what} on {o.dc} is still in place (step {o.step_key})" for o in owed]
    if not actor.approver:
        return _refuse(
            "obligation_open" if owed else "steps_left",
            "Not closed: " + "; ".join(left) + ". Run the remaining steps (or Abort, which "
            "offers the undo); only an approver can close now, with a reason (an audited "
            "override).",
        )
    problem = reason_problem(intent.reason)
    if problem is not None:
        return _refuse("reason", f"Not closed: an override needs {problem}.")
    after = proc
    events = []
    for o in owed:
        after = after.with_obligation(_overridden(o, actor, intent.reason, ctx))
        events.append(
            _event(proc, "obligation_overridden", actor, step=o.step_key, reason=intent.reason)
        )
    ended = replace(
        after,
        status=ProcedureStatus.CLOSED,
        ended_by=actor.user_id,
        ended_at_ms=ctx.now_ms,
        end_reason=f"override: {intent.reason}",
    )
    events.append(_event(proc, "procedure_closed", actor, override="1", reason=intent.reason))
    return Change(
        ended,
        tuple(events),
        say=f"Procedure `{proc.id}` closed by <@{actor.user_id}> with an override: "
        + "; ".join(left)
        + f". Reason: {intent.reason}",
    )


def _overridden(o: Obligation, actor: Actor, reason: str, ctx: Context) -> Obligation:
    return replace(
        o,
        status=ObligationStatus.OVERRIDDEN,
        ended_at_ms=ctx.now_ms,
        ended_by=actor.user_id,
        how=f"overridden by <@{actor.user_id}>: {reason}",
    )


def _obligation_undone_by(proc: Procedure, step: PlannedStep) -> Obligation | None:
    """The open obligation this cleanup or undo step fulfils, if any."""
    for o in proc.open_obligations():
        original = proc.plan.step(o.step_key)
        if original is None:
            continue
        if step.undoes == o.step_key or TEMPORARY_UNDONE_BY.get(original.number) == step.number:
            return o
    return None


def _maybe_aborted(
    proc: Procedure, actor: Actor, ctx: Context, events: list[AuditEvent]
) -> Procedure:
    """An abort ends once every undo it offered is done or skipped."""
    if proc.status is ProcedureStatus.ABORTING and proc.current() is None:
        events.append(_event(proc, "procedure_aborted_undone", actor))
        return replace(proc, status=ProcedureStatus.ABORTED)
    return proc


# -- the worker --------------------------------------------------------------------------


def _running(
    proc: Procedure, intent: Intent, *, claim: bool
) -> tuple[PlannedStep, StepRecord, Attempt] | Refusal:
    """The step and attempt a worker report is about, if the report is not stale."""
    step = proc.plan.step(intent.step_key or "")
    if step is None:
        return _refuse("unknown_step", f"step {intent.step_key!r} is not in {proc.id}")
    record = proc.record(step.key)
    attempt = record.last_attempt
    if attempt is None or attempt.job_id != intent.job_id:
        return _refuse("stale_job", f"job {intent.job_id} is not the latest run of {step.key}")
    wanted = IN_FLIGHT if claim else frozenset({StepStatus.RUNNING})
    if record.status not in wanted:
        return _refuse(
            "stale_job", f"step {step.key} is {record.status.value}, not waiting for this job"
        )
    if claim and not _may_run(proc, step):
        return _refuse("procedure_ended", f"procedure {proc.id} is {proc.status.value}")
    return step, record, attempt


def _may_run(proc: Procedure, step: PlannedStep) -> bool:
    """A step may start or apply while its procedure is active; an undo while it aborts."""
    if step.number == "undo":
        return proc.status is ProcedureStatus.ABORTING
    return proc.status is ProcedureStatus.ACTIVE


def _with_attempt(record: StepRecord, attempt: Attempt, **changes: object) -> StepRecord:
    return replace(record, attempts=(*record.attempts[:-1], attempt), **changes)  # type: ignore[arg-type]


def _claim(proc: Procedure, intent: Intent, actor: Actor, ctx: Context) -> Decision:
    found = _running(proc, intent, claim=True)
    if isinstance(found, Refusal):
        return found
    step, record, attempt = found
    reclaimed = record.status is StepStatus.RUNNING
    claimed = replace(
        attempt, worker=actor.worker, started_at_ms=attempt.started_at_ms or ctx.now_ms
    )
    new = _with_attempt(record, claimed, status=StepStatus.RUNNING)
    event = _event(
        proc,
        "step_reclaimed" if reclaimed else "step_started",
        actor,
        step=step.key,
        attempt=attempt.number,
        previous_worker=attempt.worker if reclaimed else "",
    )
    return Change(proc.with_record(new), (event,))


def _applying(proc: Procedure, intent: Intent, actor: Actor, ctx: Context) -> Decision:
    found = _running(proc, intent, claim=False)
    if isinstance(found, Refusal):
        return found
    step, record, attempt = found
    if not _may_run(proc, step):
        return _refuse(
            "procedure_ended", f"procedure {proc.id} is {proc.status.value}: nothing is applied"
        )
    # The first prior is the true original: a re-read after a partial apply sees our change.
    prior = record.prior if record.prior is not None else intent.prior
    new = _with_attempt(record, replace(attempt, applied_at_ms=ctx.now_ms), prior=prior)
    after = proc.with_record(new)
    if step.kind is StepKind.TEMPORARY and not any(
        o.step_key == step.key for o in proc.obligations
    ):
        # From the moment it may take effect, the weakening is owed back.
        after = after.with_obligation(_obligation(proc, step, ctx))
    event = _event(
        proc,
        "step_applying",
        actor,
        step=step.key,
        attempt=attempt.number,
        prior=prior.describe() if prior else "",
    )
    return Change(after, (event,))


def _obligation(proc: Procedure, step: PlannedStep, ctx: Context) -> Obligation:
    cleanup = TEMPORARY_UNDONE_BY.get(step.number, "")
    what = {
        "4": "Replicator Allow SPN Fallback (one-way replication authentication)",
        "6": "DISABLE_NTDSCONN_XLATE (connection translation disabled)",
    }.get(step.number, step.spec.title)
    restore = {
        "4": "delete the registry value (step 10)",
        "6": "repadmin /options -DISABLE_NTDSCONN_XLATE (step 9)",
    }.get(step.number, f"step {cleanup}")
    return Obligation(
        step_key=step.key,
        dc=step.dc or "",
        what=what,
        restore=restore,
        opened_at_ms=ctx.now_ms,
        deadline_ms=ctx.now_ms + ctx.obligation_seconds * 1000,
    )


def _finish(
    status: StepStatus, event_name: str
) -> Callable[[Procedure, Intent, Actor, Context], Decision]:
    def finish(proc: Procedure, intent: Intent, actor: Actor, ctx: Context) -> Decision:
        found = _running(proc, intent, claim=False)
        if isinstance(found, Refusal):
            return found
        step, record, attempt = found
        result = intent.result or StepResult(outcome=status.value)
        ended = replace(
            attempt,
            ended_at_ms=ctx.now_ms,
            outcome=result.outcome,
            exit_code=result.exit_code,
            excerpt=result.excerpt[:MAX_EXCERPT_CHARS],
            detail=result.detail[:MAX_DETAIL_CHARS],
            output_ref=result.output_ref,
        )
        prior = record.prior if record.prior is not None else intent.prior
        new = _with_attempt(
            record, ended, status=status, note=result.note[:MAX_DETAIL_CHARS], prior=prior
        )
        after = proc.with_record(new)
        events = [
            _event(
                proc,
                event_name,
                actor,
                step=step.key,
                attempt=attempt.number,
                outcome=result.outcome,
                exit_code=result.exit_code,
                seconds=f"{(ctx.now_ms - (attempt.started_at_ms or ctx.now_ms)) / 1000:.1f}",
            )
        ]
        if status is StepStatus.DONE and intent.new_plan is not None:
            after, replanned = replan(after, intent.new_plan)
            events.extend(_event(proc, "plan_changed", actor, step=k) for k in replanned)
        owed = _obligation_undone_by(proc, step)
        if owed is not None and status in (StepStatus.DONE, StepStatus.SATISFIED):
            after = after.with_obligation(
                replace(
                    owed,
                    status=ObligationStatus.UNDONE,
                    ended_at_ms=ctx.now_ms,
                    ended_by=actor.worker,
                    how=f"undone by step {step.key}",
                )
            )
            events.append(_event(proc, "obligation_undone", actor, step=owed.step_key, by=step.key))
        if status is StepStatus.DONE:
            after = _maybe_aborted(after, actor, ctx, events)
        return Change(after, tuple(events))

    return finish


def _remind(proc: Procedure, intent: Intent, actor: Actor, ctx: Context) -> Decision:
    """Halfway to its deadline, an open obligation is recalled in the thread, once."""
    o = next((x for x in proc.open_obligations() if x.step_key == intent.step_key), None)
    if o is None or o.reminded_at_ms or ctx.now_ms < (o.opened_at_ms + o.deadline_ms) // 2:
        return _refuse("not_due", "no reminder due")
    after = proc.with_obligation(replace(o, reminded_at_ms=ctx.now_ms))
    event = _event(proc, "obligation_reminded", actor, step=o.step_key)
    minutes = max(0, (o.deadline_ms - ctx.now_ms) // 60_000)
    say = (
        f":alarm_clock: Reminder: {o.what} is still in place on {o.dc} (step {o.step_key}). "
        f"It must be undone within {minutes} min: {o.restore}."
    )
    return Change(after, (event,), say=say)


def _escalate(proc: Procedure, intent: Intent, actor: Actor, ctx: Context) -> Decision:
    """At its deadline (and again each period after), an open obligation goes to approvers."""
    o = next((x for x in proc.open_obligations() if x.step_key == intent.step_key), None)
    period = max(1, o.deadline_ms - o.opened_at_ms) if o else 1
    due = o is not None and ctx.now_ms >= o.deadline_ms
    if o is None or not due or (o.escalated_at_ms and ctx.now_ms < o.escalated_at_ms + period):
        return _refuse("not_due", "no escalation due")
    after = proc.with_obligation(
        replace(o, escalated_at_ms=ctx.now_ms, escalations=o.escalations + 1)
    )
    event = _event(proc, "obligation_escalated", actor, step=o.step_key, count=o.escalations + 1)
    say = (
        f":rotating_light: Overdue: {o.what} is still in place on {o.dc} for incident "
        f"`{proc.incident_id}` (procedure `{proc.id}`, step {o.step_key}). Undo it now: "
        f"{o.restore}."
    )
    return Change(after, (event,), say=say)


def due_obligation_acts(proc: Procedure, now_ms: int) -> list[tuple[Act, str]]:
    """What the sweeper should do now for this procedure's obligations."""
    due: list[tuple[Act, str]] = []
    for o in proc.open_obligations():
        period = max(1, o.deadline_ms - o.opened_at_ms)
        if now_ms >= o.deadline_ms and (
            not o.escalated_at_ms or now_ms >= o.escalated_at_ms + period
        ):
            due.append((Act.ESCALATE, o.step_key))
        elif not o.reminded_at_ms and now_ms >= (o.opened_at_ms + o.deadline_ms) // 2:
            due.append((Act.REMIND, o.step_key))
    return due


def replan(proc: Procedure, plan: Plan) -> tuple[Procedure, list[str]]:
    """The procedure on a new plan: a step whose key and digest did not change keeps its
    record; any other gets a fresh one (its approvals are void). Returns the changed keys."""
    old = {s.key: (s, proc.record(s.key)) for s in proc.plan.steps}
    records, changed = [], []
    for step in plan.steps:
        kept = old.get(step.key)
        if kept is not None and kept[0].digest == step.digest:
            records.append(kept[1])
        else:
            records.append(StepRecord(step.key))
            changed.append(step.key)
    changed.extend(k for k in old if plan.step(k) is None)
    return replace(proc, plan=plan, steps=tuple(records)), changed


_HANDLERS: dict[Act, Callable[[Procedure, Intent, Actor, Context], Decision]] = {
    Act.REQUEST_APPROVAL: _request_approval,
    Act.APPROVE: _approve,
    Act.REJECT: _reject,
    Act.RUN: _run,
    Act.RETRY: _retry,
    Act.SKIP: _skip,
    Act.ABORT: _abort,
    Act.CLOSE: _close,
    Act.CLAIM: _claim,
    Act.APPLYING: _applying,
    Act.SATISFIED: _finish(StepStatus.SATISFIED, "step_already_done"),
    Act.COMPLETE: _finish(StepStatus.DONE, "step_done"),
    Act.FAIL: _finish(StepStatus.FAILED, "step_failed"),
    Act.REMIND: _remind,
    Act.ESCALATE: _escalate,
}


def start(
    *,
    procedure_id: str,
    incident_id: str,
    plan: Plan,
    actor: Actor,
    now_ms: int,
    diagnosis_at_ms: int,
    diagnosis_summary: str,
) -> Change | Refusal:
    """A new procedure: step 0 is the diagnosis it was planned from, so it starts done."""
    if not actor.responder:
        return _refuse(
            "not_responder",
            "You are not a responder for 1411 incidents, so you cannot start the procedure.",
        )
    records = tuple(StepRecord(s.key) for s in plan.steps)
    proc = Procedure(
        id=procedure_id,
        incident_id=incident_id,
        status=ProcedureStatus.ACTIVE,
        plan=plan,
        steps=records,
        started_by=actor.user_id,
        started_at_ms=now_ms,
        diagnosis_at_ms=diagnosis_at_ms,
        notes=plan.notes,
    )
    first = plan.steps[0]
    if first.number == "0":
        proc = proc.with_record(
            StepRecord(first.key, status=StepStatus.DONE, note=diagnosis_summary[:MAX_DETAIL_CHARS])
        )
    event = _event(proc, "procedure_started", actor, steps=len(plan.steps), cause=plan.cause)
    return Change(proc, (event,), say=f"Procedure `{procedure_id}` started.")


def buttons(proc: Procedure, now_ms: int, ttl_seconds: int) -> list[Act]:
    """The acts the procedure message offers now (who may use them is checked on click)."""
    if proc.status not in LIVE:
        return []
    step = proc.current()
    owed = bool(proc.open_obligations())
    if step is None:
        return [Act.CLOSE] if proc.status is ProcedureStatus.ABORTING else [Act.CLOSE, Act.ABORT]
    record = proc.record(step.key)
    status = record.status
    offered: list[Act] = []
    if status is StepStatus.PENDING:
        offered.append(Act.REQUEST_APPROVAL if step.approvals else Act.RUN)
    elif status is StepStatus.AWAITING_APPROVAL:
        if request_expired(record, now_ms, ttl_seconds):
            offered.append(Act.REQUEST_APPROVAL)
        else:
            offered += [Act.APPROVE, Act.REJECT]
    elif status is StepStatus.REJECTED:
        offered.append(Act.REQUEST_APPROVAL)
    elif status is StepStatus.FAILED:
        offered.append(Act.RETRY)
    if status not in IN_FLIGHT:
        offered.append(Act.SKIP)  # a skip that would leave a weakening needs an approver
    if owed:
        offered.append(Act.CLOSE)  # an approver's override, with a reason
    if proc.status is ProcedureStatus.ACTIVE:
        offered.append(Act.ABORT)
    return offered


def finished(proc: Procedure) -> bool:
    """Every step is done or skipped."""
    return all(r.status in FINISHED for r in proc.steps)


def kind_needs_lock(kind: StepKind) -> bool:
    """Whether a step of this kind must hold its DC's change lock while it applies."""
    return kind not in (StepKind.READ, StepKind.SAFE)
