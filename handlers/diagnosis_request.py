"""Diagnosis requests: authorize, then one atomic request in Redis (never run here)."""

from __future__ import annotations

from handlers.context import ServeContext
from state.diagnoses import DiagnosisRequest
from state.durability import StoreUnavailable

PENDING_SECONDS = 600


async def request_diagnosis(ctx: ServeContext, incident_id: str, user_id: str) -> str:
    """Queue one diagnosis of an open incident; returns the text to show the user."""
    try:
        return await _request(ctx, incident_id, user_id)
    except StoreUnavailable:
        return (
            f":warning: The diagnosis of `{incident_id}` could not be confirmed: the bot's "
            "Redis is unavailable or failing over. Ask again in a few seconds (if it was queued "
            "after all, you will be told it is already pending)."
        )


async def _request(ctx: ServeContext, incident_id: str, user_id: str) -> str:
    if not await ctx.is_responder(user_id):
        return (
            "You are not a responder for 1411 incidents, so you cannot run a diagnosis. "
            "Ask an on-call responder, or an admin to add you to `slack.responders`."
        )
    # The script checks the incident is open: one round trip; reading the incident to say
    # why is only needed when it refuses.
    outcome, _ = await ctx.diagnoses.request(incident_id, user_id, pending_seconds=PENDING_SECONDS)
    if outcome is DiagnosisRequest.NO_OPEN_INCIDENT:
        inc = await ctx.store.get(incident_id)
        if inc is None:
            return f"No incident `{incident_id}`; see `/ad1411 list`."
        return f"Incident `{incident_id}` is {inc.status}; nothing to diagnose."
    if outcome is DiagnosisRequest.ALREADY_PENDING:
        return (
            f"A diagnosis of `{incident_id}` is already queued or running; its result will be "
            "posted in the incident thread."
        )
    worker_cfg = ctx.settings.file.worker
    if not await ctx.workers.alive(worker_cfg.heartbeat_stale_seconds):
        return (
            f":warning: Diagnosis of `{incident_id}` is queued, but *no worker is running*: no "
            f"`ad1411 worker` has reported in the last {worker_cfg.heartbeat_stale_seconds:g} s, "
            "so nothing will run it yet. Start a worker (or check why it stopped: "
            "`ad1411 worker --check`); the queued diagnosis runs as soon as one is up."
        )
    return f"Diagnosis of `{incident_id}` queued; the result will be posted in the incident thread."
