"""Start procedure: plan from a fresh diagnosis, or run one first (never waits on a DC here)."""

from __future__ import annotations

import time

from bot.directory.model import diagnosis_from_json
from bot.procedure.approval import Actor
from bot.procedure.plan import ApprovalPolicy
from bot.procedure.planner import PlanRefused, build_plan
from handlers.context import ServeContext
from handlers.render.diagnosis import diagnosis_headline
from handlers.transitions import Acted, Busy, Refused, Repeated
from state.diagnoses import DiagnosisRequest
from state.durability import StoreUnavailable, until_durable

PENDING_SECONDS = 600


def approval_policy(ctx: ServeContext) -> ApprovalPolicy:
    """The approval counts and TTL the configuration sets."""
    cfg = ctx.settings.file.approvals
    return ApprovalPolicy(cfg.change, cfg.temporary, cfg.disruptive, cfg.ttl_seconds)


async def start_procedure(ctx: ServeContext, incident_id: str, user_id: str, once: str) -> str:
    """Start the procedure of an open incident; returns the text for the clicking user.

    Tried again from the start while Redis fails over: the reads are safe to repeat, and the
    click's token makes a start that did take effect a no-op.
    """
    try:
        return await until_durable(
            lambda: _start(ctx, incident_id, user_id, once),
            what=f"start of a procedure for {incident_id}",
            deadline_seconds=ctx.procedures.retry_seconds,
        )
    except StoreUnavailable:
        return (
            f":warning: Starting the procedure of `{incident_id}` could not be confirmed: the "
            "bot's Redis is unavailable or failing over. Look in the incident thread in a "
            "minute; if no procedure message is there, press *Start procedure* again."
        )


async def _start(ctx: ServeContext, incident_id: str, user_id: str, once: str) -> str:
    if not await ctx.is_responder(user_id):
        return (
            "You are not a responder for 1411 incidents, so you cannot start the procedure. "
            "Ask an on-call responder, or an admin to add you to `slack.responders`."
        )
    inc = await ctx.store.get(incident_id)
    if inc is None or inc.status != "open":
        return f"Incident `{incident_id}` is not open; there is nothing to start."
    running = await ctx.procedures.current_id(incident_id)
    if running is not None:
        return f"Procedure `{running}` is already running for this incident: see its message."
    max_age = ctx.settings.file.procedure.diagnosis_max_age_seconds
    latest = await ctx.diagnoses.latest(incident_id)
    now = int(time.time() * 1000)
    if latest is None or now - latest.made_at_ms > max_age * 1000:
        age = None if latest is None else (now - latest.made_at_ms) // 1000
        return await _diagnose_first(ctx, incident_id, user_id, max_age, age)
    diagnosis = diagnosis_from_json(latest.data)
    try:
        plan = build_plan(diagnosis, approval_policy(ctx))
    except PlanRefused as exc:
        return f"The procedure cannot start: {exc}"
    outcome = await ctx.engine.start(
        incident_id=incident_id,
        plan=plan,
        actor=Actor(user_id, responder=True, approver=await ctx.is_approver(user_id)),
        diagnosis_at_ms=latest.made_at_ms,
        diagnosis_summary=diagnosis_headline(diagnosis),
        once=once,
    )
    if isinstance(outcome, Acted):
        ctx.spawn(ctx.procedure_messages.changed(outcome.procedure.id))
        return (
            f"Procedure `{outcome.procedure.id}` started with {len(plan.steps)} steps: the plan "
            "is in the incident thread. Nothing runs until someone presses its buttons."
        )
    if isinstance(outcome, Busy):
        return f"Procedure `{outcome.procedure_id}` is already running for this incident."
    if isinstance(outcome, Refused):
        return outcome.refusal.reason
    assert isinstance(outcome, Repeated)
    return "That click was already handled."


def _span(seconds: int) -> str:
    """A short duration in words (900 -> '15 min', 45 -> '45 s')."""
    return f"{seconds // 60} min" if seconds >= 120 else f"{seconds} s"


async def _diagnose_first(
    ctx: ServeContext, incident_id: str, user_id: str, max_age: int, age: int | None
) -> str:
    outcome, _ = await ctx.diagnoses.request(
        incident_id, user_id, pending_seconds=PENDING_SECONDS, then="start"
    )
    if outcome is DiagnosisRequest.NO_OPEN_INCIDENT:
        return f"Incident `{incident_id}` is no longer open."
    if outcome is DiagnosisRequest.ALREADY_PENDING:
        return (
            "A diagnosis is already running; press *Start procedure* again when its result is "
            "in the thread."
        )
    last = "there is none" if age is None else f"the last one is {_span(age)} old"
    text = (
        f"The procedure is planned from a diagnosis at most {_span(max_age)} old, and {last}: "
        "a fresh diagnosis runs first, then the plan is posted in the thread."
    )
    worker_cfg = ctx.settings.file.worker
    if not await ctx.workers.alive(worker_cfg.heartbeat_stale_seconds):
        text += (
            " :warning: *No worker is running*, so it will not run yet: start `ad1411 worker` "
            "(check with `ad1411 worker --check`)."
        )
    return text
