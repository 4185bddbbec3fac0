"""Diagnosis requests: authorize, de-duplicate and enqueue for a worker (never run here)."""

from __future__ import annotations

from handlers.context import ServeContext
from state.keys import IncidentKeys, parse_incident_id

PENDING_SECONDS = 600


async def request_diagnosis(ctx: ServeContext, incident_id: str, user_id: str) -> str:
    """Queue one diagnosis of an open incident; returns the text to show the user."""
    if not await ctx.is_responder(user_id):
        return (
            "You are not a responder for 1411 incidents, so you cannot run a diagnosis. "
            "Ask an on-call responder, or an admin to add you to `slack.responders`."
        )
    inc = await ctx.store.get(incident_id)
    if inc is None:
        return f"No incident `{incident_id}`; see `/ad1411 list`."
    if inc.status != "open":
        return f"Incident `{incident_id}` is {inc.status}; nothing to diagnose."
    tag, _ = parse_incident_id(incident_id)
    pending = await ctx.redis.set(
        IncidentKeys(tag).diagnosis_pending, user_id, nx=True, ex=PENDING_SECONDS
    )
    if not pending:
        return (
            f"A diagnosis of `{incident_id}` is already running; its result will be posted "
            "in the incident thread."
        )
    await ctx.jobs.enqueue("diagnose", incident_id, user_id)
    await ctx.store.audit.append_global("diagnosis_requested", incident=incident_id, user=user_id)
    return (
        f"Diagnosis of `{incident_id}` queued; the result will be posted in the incident thread. "
        "No result within a few minutes? Check that `ad1411 worker` is running."
    )
