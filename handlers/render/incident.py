"""Block Kit rendering of what the bot posts. Pure functions: data in, blocks out."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot.windows.win32 import words
from handlers.render.text import SECTION_TEXT_LIMIT, fit, mrkdwn_escape
from state.incidents import Incident

Block = dict[str, Any]
MAX_REPORTERS_SHOWN = 15
ACTION_DIAGNOSE = "incident_diagnose"
ACTION_START = "incident_start"

USAGE = "\n".join(
    [
        "*AD 1411 Responder* — Event ID 1411 (KB938704) help for on-call engineers.",
        "Usage: `/ad1411 <command>`",
        "• `help` — this text",
        "• `list` — open incidents",
        "• `status <incident-id>` — one incident: reporters, counts, last seen",
        "• `diagnose <incident-id>` — run the LDAP diagnosis; the result is posted in the "
        "incident thread",
        "Incidents are opened from alerts (`POST /alerts`) or from 1411 events posted in the "
        "alert channels.",
    ]
)


def _when(ms: int) -> str:
    if ms <= 0:
        return "unknown"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def reporters_text(reporters: dict[str, int]) -> str:
    """Reporting DCs with their alert counts, bounded in length."""
    items = sorted(reporters.items(), key=lambda kv: (-kv[1], kv[0]))
    shown = [f"`{dc}` ({n})" for dc, n in items[:MAX_REPORTERS_SHOWN]]
    more = len(items) - MAX_REPORTERS_SHOWN
    if more > 0:
        shown.append(f"and {more} more")
    return ", ".join(shown) or "none"


def incident_fallback_text(inc: Incident) -> str:
    """Notification text of the incident message."""
    return (
        f"Event 1411 on {len(inc.reporters)} DC(s): cannot authenticate to DSA "
        f"{inc.dsa_guid} in {inc.forest} (incident {inc.id})"
    )


def incident_blocks(inc: Incident) -> list[Block]:
    """The incident message: what happened in plain words, counts, and the two buttons."""
    target = f"{inc.dsa_guid}._msdcs.{inc.forest}"
    reporters = reporters_text(inc.reporters)
    what = (
        f"{reporters} cannot build the mutual-authentication SPN for the domain controller "
        f"`{target}`, so replication to that DC fails. Error {inc.error_code}: "
        f"{mrkdwn_escape(words(inc.error_code))}."
    )
    status = "open" if inc.status == "open" else f"*{inc.status}*"
    blocks: list[Block] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": "AD Event 1411: replication SPN failure"},
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": fit(what, SECTION_TEXT_LIMIT)}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Incident*\n`{inc.id}` ({status})"},
                {"type": "mrkdwn", "text": f"*Forest*\n`{inc.forest}`"},
                {"type": "mrkdwn", "text": f"*Alerts*\n{inc.count}"},
                {"type": "mrkdwn", "text": f"*Reporting DCs*\n{len(inc.reporters)}"},
                {"type": "mrkdwn", "text": f"*First seen*\n{_when(inc.created_at_ms)}"},
                {"type": "mrkdwn", "text": f"*Last seen*\n{_when(inc.last_seen_ms)}"},
            ],
        },
    ]
    if inc.status == "open":
        blocks.append(
            {
                "type": "actions",
                "block_id": "incident_actions",
                "elements": [
                    {
                        "type": "button",
                        "action_id": ACTION_DIAGNOSE,
                        "text": {"type": "plain_text", "text": "Diagnose"},
                        "value": inc.id,
                        "style": "primary",
                    },
                    {
                        "type": "button",
                        "action_id": ACTION_START,
                        "text": {"type": "plain_text", "text": "Start procedure"},
                        "value": inc.id,
                    },
                ],
            }
        )
    blocks.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": "Diagnosis, steps, approvals and results follow in this thread.",
                }
            ],
        }
    )
    return blocks


def incident_line(inc: Incident) -> str:
    """One line of `/ad1411 list`."""
    return (
        f"• `{inc.id}` {inc.forest} DSA `{inc.dsa_guid}`: {inc.count} alert(s) from "
        f"{len(inc.reporters)} DC(s), last seen {_when(inc.last_seen_ms)}"
    )


def incident_status_text(inc: Incident) -> str:
    """The answer to `/ad1411 status <id>`."""
    where = f" — message in <#{inc.channel}>" if inc.channel else ""
    return "\n".join(
        [
            f"*Incident `{inc.id}`* ({inc.status}){where}",
            f"Target DC: `{inc.dsa_guid}._msdcs.{inc.forest}`",
            f"Error {inc.error_code}: {mrkdwn_escape(words(inc.error_code))}",
            f"Alerts: {inc.count}; first seen {_when(inc.created_at_ms)}, "
            f"last seen {_when(inc.last_seen_ms)}",
            f"Reporting DCs: {reporters_text(inc.reporters)}",
        ]
    )
