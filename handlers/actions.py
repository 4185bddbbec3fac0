"""Button clicks on incident messages: ack at once, then answer in the thread or ephemerally."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from handlers.context import ServeContext
from handlers.diagnosis_request import request_diagnosis
from handlers.procedure_start import start_procedure
from handlers.render.incident import ACTION_DIAGNOSE, ACTION_START
from state.keys import parse_incident_id


def _incident_id(body: dict[str, Any]) -> str | None:
    actions = body.get("actions") or [{}]
    value = str(actions[0].get("value", ""))
    try:
        parse_incident_id(value)
    except ValueError:
        return None
    return value.lower()


def register(app: AsyncApp, ctx: ServeContext) -> None:
    """Attach the incident-message button listeners."""

    @app.action(ACTION_DIAGNOSE)
    async def diagnose(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        incident_id = _incident_id(body)
        if incident_id is None:
            ctx.reply_ephemeral(body, "This button's value is not an incident id; it was refused.")
            return
        user = str(body.get("user", {}).get("id", ""))
        ctx.reply_ephemeral(body, await request_diagnosis(ctx, incident_id, user))

    @app.action(ACTION_START)
    async def start(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        incident_id = _incident_id(body)
        if incident_id is None:
            ctx.reply_ephemeral(body, "This button's value is not an incident id; it was refused.")
            return
        user = str(body.get("user", {}).get("id", ""))
        once = f"{body.get('trigger_id', '')}:start"
        ctx.reply_ephemeral(body, await start_procedure(ctx, incident_id, user, once))
