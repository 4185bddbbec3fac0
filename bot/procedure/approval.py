"""Who may approve what, and which approvals still count (pure).

An approval counts when it approves the step's current plan (same digest), was given by an
approver who is not the requester, is not older than the TTL, and answers a request that has
not itself expired. Two votes from one person count once.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.procedure.model import StepRecord, StepStatus, Vote
from bot.procedure.plan import PlannedStep

MAX_REASON_CHARS = 500


@dataclass(frozen=True)
class Actor:
    """Who acts: a Slack user with the roles the configuration gives them, or a worker."""

    user_id: str
    responder: bool = False
    approver: bool = False
    worker: str = ""


@dataclass(frozen=True)
class Refusal:
    """Why an action is not allowed now, in words for the person who tried (and a code)."""

    code: str
    reason: str


def request_expired(record: StepRecord, now_ms: int, ttl_seconds: int) -> bool:
    """The approval request is older than the TTL."""
    return (
        record.status is StepStatus.AWAITING_APPROVAL
        and now_ms > record.requested_at_ms + ttl_seconds * 1000
    )


def valid_approvals(
    record: StepRecord, step: PlannedStep, now_ms: int, ttl_seconds: int
) -> list[Vote]:
    """The approvals that count now, one per person, oldest first."""
    seen: set[str] = set()
    valid = []
    for vote in record.votes:
        if (
            vote.approve
            and vote.digest == step.digest
            and vote.user != record.requested_by
            and now_ms <= vote.at_ms + ttl_seconds * 1000
            and vote.user not in seen
        ):
            seen.add(vote.user)
            valid.append(vote)
    return valid


def expired_approvals(
    record: StepRecord, step: PlannedStep, now_ms: int, ttl_seconds: int
) -> list[Vote]:
    """Approvals of this plan that no longer count because they are too old."""
    return [
        v
        for v in record.votes
        if v.approve and v.digest == step.digest and now_ms > v.at_ms + ttl_seconds * 1000
    ]


def may_approve(
    record: StepRecord,
    step: PlannedStep,
    actor: Actor,
    *,
    digest: str | None,
    now_ms: int,
    ttl_seconds: int,
) -> Refusal | None:
    """May this person approve this step now? None when they may, else why not."""
    if not actor.approver:
        return Refusal(
            "not_approver",
            "You are not an approver, so your approval cannot count. Ask someone listed in "
            "`slack.approvers` (or an admin to add you).",
        )
    if step.approvals == 0:
        return Refusal("no_approval_needed", f"Step {step.key} needs no approval.")
    if record.status is not StepStatus.AWAITING_APPROVAL:
        return Refusal(
            "not_awaiting_approval",
            f"Step {step.key} is not waiting for approval (it is {record.status.value}).",
        )
    if digest != step.digest:
        return Refusal(
            "plan_changed",
            f"The plan of step {step.key} changed since this button was shown, so this "
            "approval would be for commands that will not run. Read the step again in the "
            "procedure message and approve from there.",
        )
    if request_expired(record, now_ms, ttl_seconds):
        return Refusal(
            "request_expired",
            f"The approval request for step {step.key} expired ({ttl_seconds // 60} min). "
            f"<@{record.requested_by}> must request approval again.",
        )
    if actor.user_id == record.requested_by:
        return Refusal(
            "self_approval",
            f"You requested step {step.key}, so you cannot approve it: another approver must.",
        )
    if any(v.user == actor.user_id for v in valid_approvals(record, step, now_ms, ttl_seconds)):
        return Refusal("already_approved", f"You already approved step {step.key}.")
    return None


def reason_problem(reason: str) -> str | None:
    """Why a reason text cannot be accepted, or None."""
    if not reason.strip():
        return "a reason is required: say why, for the record"
    if len(reason) > MAX_REASON_CHARS:
        return f"the reason is {len(reason)} characters; keep it under {MAX_REASON_CHARS}"
    return None
