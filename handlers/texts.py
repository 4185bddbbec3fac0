"""What a Slack user reads when the bot cannot do what they asked, and how it reaches them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

REDIS_DOWN_TEXT = (
    ":warning: The bot cannot reach its database (Redis) right now, so nothing was done. "
    "Try again in a minute; if it lasts, tell the bot's operators (`/readyz` on serve says "
    "what is wrong)."
)
# A listener lost Redis part-way: a write may have happened (or not been confirmed by the
# replicas), so the text does not claim "nothing was done"; repeats are safe by design.
REDIS_LOST_TEXT = (
    ":warning: The bot lost its database (Redis) while handling this (it is down or failing "
    "over), so it could not be confirmed. Try again in a minute: a repeat never does anything "
    "twice, and the incident thread shows what was done. If it lasts, tell the bot's operators "
    "(`/readyz` on serve says what is wrong)."
)
BUG_TEXT = (
    ":x: Something went wrong inside the bot, so nothing was done. Try again; if it happens "
    "again, tell the bot's maintainers (serve's log has the details)."
)


def answer_for(
    payload: Mapping[str, Any],
    text: str,
    reply: Callable[[dict[str, Any], str], None],
    *,
    transient: bool,
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) that shows `text` to the user who sent the payload.

    A slash command shows the body itself; a click gets an empty ack and the text through its
    response_url; an event answers 503 when the failure is transient, so Slack delivers again.
    """
    if payload.get("command"):
        return 200, {"response_type": "ephemeral", "text": text}
    if payload.get("type") in ("block_actions", "view_submission", "shortcut", "message_action"):
        reply(dict(payload), text)
        return 200, {}
    if payload.get("type") == "event_callback" and transient:
        return 503, {"error": "temporarily unable to take events; deliver again"}
    return 200, {}
