"""The 'alert flood' message: alerts beyond the incident-opening caps, listed in one message."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from handlers.render.text import SECTION_TEXT_LIMIT, fit, mrkdwn_escape
from state.floods import Flood

MAX_ITEMS_SHOWN = 25


def _clock(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%H:%M:%S UTC")


def flood_fallback_text(flood: Flood) -> str:
    """Notification text of the flood message."""
    return (
        f"Alert flood: {flood.count} Event 1411 alert(s) for new problems beyond the "
        "incident-opening cap; no incident was opened for them"
    )


def flood_summary(flood: Flood) -> str:
    """What arrived, bounded in length: the first problems, then how many more."""
    lines = [
        f"• `{mrkdwn_escape(i.dsa_guid)}` in `{mrkdwn_escape(i.forest)}`, "
        f"reported by `{mrkdwn_escape(i.reporting_dc)}`"
        for i in flood.items[:MAX_ITEMS_SHOWN]
    ]
    listed = min(len(flood.items), MAX_ITEMS_SHOWN)
    if flood.count > listed:
        lines.append(f"… and {flood.count - listed} more alert(s) not listed here")
    return "\n".join(lines)


def flood_blocks(flood: Flood) -> list[dict[str, Any]]:
    """Header, what happened and what to do, and the bounded list of problems."""
    what = (
        f"*{flood.count}* alert(s) between {_clock(flood.first_ms)} and {_clock(flood.last_ms)} "
        "named problems beyond the cap on new incidents (per request and per minute, "
        "`alerts.max_new_incidents_per_request` and `alerts.max_new_incidents_per_minute`). "
        "No incident was opened for them, so no one is paged per problem. "
        "If they are real, raise the caps or have monitoring send them again: an alert for "
        "the same problem after this minute opens its incident as usual."
    )
    return [
        {"type": "header", "text": {"type": "plain_text", "text": "Alert flood: alerts grouped"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": fit(what, SECTION_TEXT_LIMIT)}},
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": fit(flood_summary(flood) or "(none listed)")},
        },
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": f"Flood `{flood.id}`; see `/ad1411 list`."}],
        },
    ]
