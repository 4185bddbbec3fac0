"""The /ad1411 slash command: ack first with the answer; Redis reads only."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from handlers.context import ServeContext
from handlers.diagnosis_request import request_diagnosis
from handlers.render.incident import USAGE, incident_line, incident_status_text
from state.incidents import Incident
from state.keys import parse_incident_id

COMMAND = "/ad1411"
LIST_LIMIT = 25
READERS_ONLY = (
    "Incident details (`list`, `status`) are shown only to responders and approvers, since "
    "they name domain controllers and forests. Ask an on-call responder, or an admin to add "
    "you to `slack.responders`."
)


def list_text(incidents: list[Incident], total: int) -> str:
    """The answer to `list`: says when it shows only part of the open incidents."""
    if not incidents:
        return "No open 1411 incidents."
    lines = [incident_line(i) for i in incidents]
    if total > len(lines):
        head = (
            f"*Open 1411 incidents: the {len(lines)} oldest of {total}* "
            f"(the list stops at {LIST_LIMIT}; `{COMMAND} status <incident-id>` shows any one)"
        )
    else:
        head = f"*Open 1411 incidents ({len(lines)})*"
    return head + "\n" + "\n".join(lines)


def register(app: AsyncApp, ctx: ServeContext) -> None:
    """Attach the slash command listener."""

    @app.command(COMMAND)
    async def ad1411(ack: AsyncAck, command: dict[str, Any]) -> None:
        words = str(command.get("text", "")).split()
        verb = words[0].lower() if words else "help"
        args = words[1:]
        user = str(command.get("user_id", ""))
        if verb == "help":
            await ack(text=USAGE)
        elif verb in ("list", "status") and not await ctx.is_responder(user):
            await ack(text=READERS_ONLY)
        elif verb == "list":
            incidents = await ctx.store.list_open(limit=LIST_LIMIT)
            await ack(text=list_text(incidents, await ctx.store.count_open()))
        elif verb in ("status", "diagnose"):
            if len(args) != 1:
                await ack(
                    text=f"`{COMMAND} {verb}` needs one incident id, e.g. "
                    f"`{COMMAND} {verb} 3f9a0c1b2e-1` (see `{COMMAND} list`)."
                )
                return
            try:
                parse_incident_id(args[0])
            except ValueError as exc:
                await ack(text=str(exc))
                return
            if verb == "status":
                inc = await ctx.store.get(args[0])
                await ack(
                    text=incident_status_text(inc)
                    if inc is not None
                    else f"No incident `{args[0][:40]}`; see `{COMMAND} list`."
                )
            else:
                await ack(text=await request_diagnosis(ctx, args[0].lower(), user))
        else:
            await ack(text=f"Unknown command `{verb[:30]}`.\n\n{USAGE}")
