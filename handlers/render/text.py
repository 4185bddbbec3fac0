"""Slack text rules every renderer shares: escaping and Slack's size limits."""

from __future__ import annotations

# Slack's limits (https://api.slack.com/reference/block-kit/blocks).
SECTION_TEXT_LIMIT = 3000
MESSAGE_TEXT_LIMIT = 40_000
MAX_BLOCKS = 50
BUTTON_VALUE_LIMIT = 2000
# Room kept under the section limit for a "... (truncated)" marker.
_MARK = "\n… (truncated)"


def mrkdwn_escape(text: str) -> str:
    """Text safe inside Slack mrkdwn (Slack's three control characters escaped)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def fit(text: str, limit: int = SECTION_TEXT_LIMIT) -> str:
    """Text cut to `limit` characters, saying so when it was cut."""
    if len(text) <= limit:
        return text
    return text[: limit - len(_MARK)] + _MARK


def section(text: str) -> dict[str, object]:
    """One mrkdwn section block, cut to Slack's limit."""
    return {"type": "section", "text": {"type": "mrkdwn", "text": fit(text)}}
