"""The App Home tab: what is waiting for this person (pure: data in, a home view out)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.procedure.model import Obligation, Procedure
from bot.procedure.operations import operation_lines
from bot.procedure.plan import PlannedStep
from bot.procedure.rules import Act
from handlers.render.procedure import ACTION_PREFIX, button_value, when
from handlers.render.text import fit, mrkdwn_escape, section
from state.incidents import Incident

MAX_ITEMS = 10


@dataclass(frozen=True)
class PendingApproval:
    """A step waiting for this person's approval."""

    procedure: Procedure
    step: PlannedStep
    requested_by: str


def _approval_blocks(item: PendingApproval) -> list[dict[str, Any]]:
    proc, step = item.procedure, item.step
    lines = [
        f"*{step.key}. {mrkdwn_escape(step.title)}* ({step.kind.value}) in procedure "
        f"`{proc.id}`, requested by <@{item.requested_by}>",
        *(f"`{mrkdwn_escape(line)}`" for line in operation_lines(proc.plan, step)[:4]),
    ]
    value = button_value(proc, step)
    return [
        section("\n".join(lines)),
        {
            "type": "actions",
            "block_id": f"home-{proc.id}-{step.key}",
            "elements": [
                {
                    "type": "button",
                    "action_id": ACTION_PREFIX + Act.APPROVE.value,
                    "text": {"type": "plain_text", "text": "Approve"},
                    "style": "primary",
                    "value": value,
                },
                {
                    "type": "button",
                    "action_id": ACTION_PREFIX + Act.REJECT.value,
                    "text": {"type": "plain_text", "text": "Reject"},
                    "style": "danger",
                    "value": value,
                },
            ],
        },
    ]


def _incident_line(inc: Incident, proc: Procedure | None) -> str:
    where = f"<#{inc.channel}>" if inc.channel else "no message yet"
    if proc is None:
        state = "no procedure running"
    else:
        step = proc.current()
        state = f"procedure `{proc.id}` {proc.status.value}" + (
            f", at step {step.key}: {mrkdwn_escape(step.title)}" if step else ", all steps done"
        )
    return (
        f"• `{inc.id}` {mrkdwn_escape(inc.forest)}: {inc.count} alert(s) from "
        f"{len(inc.reporters)} DC(s), {where}; {state}"
    )


def home_view(
    *,
    approver: bool,
    pending: Sequence[PendingApproval],
    responder: bool = True,
    incidents: Sequence[tuple[Incident, Procedure | None]],
    obligations: Sequence[tuple[Procedure, Obligation]],
    note: str = "",
) -> dict[str, Any]:
    """The Home tab: pending approvals (with buttons), open incidents, obligations due."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "AD 1411 Responder"}}
    ]
    if note:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": fit(note, 2900)}]}
        )
    if not responder:
        # Incidents name DCs, forests and GUIDs: for responders and approvers only (as `list`).
        blocks.append(
            section(
                "_You are not a responder or approver for 1411 incidents, so incidents and "
                "approvals are not shown here. Ask an admin to add you to `slack.responders`._"
            )
        )
        return {"type": "home", "blocks": blocks}
    blocks.append(section("*Waiting for your approval*"))
    if not approver:
        blocks.append(section("_You are not an approver; approvals are not yours to give._"))
    elif not pending:
        blocks.append(section("_Nothing waits for your approval._"))
    for item in pending[:MAX_ITEMS]:
        blocks += _approval_blocks(item)
    blocks.append({"type": "divider"})
    shown = [_incident_line(inc, proc) for inc, proc in incidents[: 3 * MAX_ITEMS]]
    more = len(incidents) - len(shown)
    blocks.append(
        section(
            "*Open incidents*\n"
            + ("\n".join(shown) if shown else "_None._")
            + (f"\n…and {more} more (`/ad1411 list`)" if more > 0 else "")
        )
    )
    blocks.append({"type": "divider"})
    owed = [
        f"• {mrkdwn_escape(o.what)} on `{mrkdwn_escape(o.dc)}` (procedure `{proc.id}`, step "
        f"{o.step_key}): due {when(o.deadline_ms)}; {mrkdwn_escape(o.restore)}"
        for proc, o in obligations[: 2 * MAX_ITEMS]
    ]
    blocks.append(
        section("*Temporary changes coming due*\n" + ("\n".join(owed) if owed else "_None._"))
    )
    return {"type": "home", "blocks": blocks[:100]}
