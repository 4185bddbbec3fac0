"""What the bot says in an incident thread about repadmin output pasted there."""

from __future__ import annotations

from bot.windows.pasted import REPLSUMMARY, FailingLink, IncidentTarget, PastedReading
from bot.windows.win32 import words
from handlers.render.text import mrkdwn_escape

MAX_LINKS_SHOWN = 10
MAX_UNREACHABLE_SHOWN = 10
MAX_NAME_CHARS = 200


def _name(text: str) -> str:
    """A name from the pasted text, escaped and bounded."""
    cut = text if len(text) <= MAX_NAME_CHARS else text[: MAX_NAME_CHARS - 1] + "…"
    return mrkdwn_escape(cut)


def target_label(target: IncidentTarget) -> str:
    """The incident's target DC as people know it."""
    return _name(target.hostname) if target.hostname else f"DSA {_name(target.dsa_guid)}"


def _link_line(link: FailingLink) -> str:
    if link.naming_context is None:
        # A /replsummary row: one DC, as source or as destination of its failing links.
        role = "as source" if link.source is not None else "as destination"
        where = f"{_name(link.source or link.destination or '?')} {role}"
        count = f"{link.failures} failing link(s)"
    else:
        where = f"`{_name(link.naming_context)}` on {_name(link.destination or '?')} from " + (
            _name(link.source or "?")
        )
        success = link.last_success.isoformat(sep=" ") if link.last_success else "never"
        count = f"{link.failures} consecutive failure(s), last success {success}"
    status = "" if link.code is None else f"*{link.code}* {mrkdwn_escape(link.words)}; "
    mark = " — *the incident's target DC*" if link.involves_target else ""
    return f"• {where}: {status}{count}{mark}"


def pasted_reading_text(reading: PastedReading, target: IncidentTarget) -> str:
    """The reading in mrkdwn: the failing links, each error in words, which involve the target."""
    label = target_label(target)
    dcs = ", ".join(_name(dc) for dc in reading.dcs[:5]) + (
        f" and {len(reading.dcs) - 5} more" if len(reading.dcs) > 5 else ""
    )
    what = "link(s)" if reading.command != REPLSUMMARY else "link(s) in all"
    head = f"*Read `{reading.command}`* ({dcs or 'no DC'}): {reading.links} {what}, "
    if reading.failing:
        head += f"{len(reading.failing)} failing."
    elif reading.reached_no_dc:
        head += "no DC answered: this is *not* an all-clear."
    else:
        head += "none failing."
    lines = [head]
    lines += [_link_line(link) for link in reading.failing[:MAX_LINKS_SHOWN]]
    if len(reading.failing) > MAX_LINKS_SHOWN:
        lines.append(f"… and {len(reading.failing) - MAX_LINKS_SHOWN} more failing.")
    for code, dc in reading.unreachable[:MAX_UNREACHABLE_SHOWN]:
        mark = " — *the incident's target DC*" if target.is_named(dc) else ""
        lines.append(f"• {_name(dc)} did not answer: *{code}* {mrkdwn_escape(words(code))}{mark}")
    if len(reading.unreachable) > MAX_UNREACHABLE_SHOWN:
        lines.append(f"… and {len(reading.unreachable) - MAX_UNREACHABLE_SHOWN} more silent DCs.")
    involved = reading.target_failing
    if involved:
        lines.append(
            f"{len(involved)} of the failing entries involve the incident's target DC ({label})."
        )
    elif reading.failing:
        lines.append(f"None of the failing entries involves the incident's target DC ({label}).")
    return "\n".join(lines)


def not_recognized_text(reason: str) -> str:
    """The one line said when someone asked the bot about text it cannot read."""
    return f"Not recognized, because {mrkdwn_escape(reason)}."


def snippet_unreadable_text(error: str) -> str:
    """Said when Slack would not hand over a pasted snippet (rate limited, down)."""
    return (
        f"I could not read your snippet: Slack kept answering `{mrkdwn_escape(error)}`. "
        "Paste it again in a few minutes, or paste the text itself."
    )
