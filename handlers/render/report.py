"""The post-incident report in the thread (the same content as `ad1411 audit report`)."""

from __future__ import annotations

from typing import Any

from bot.procedure.report import Report
from handlers.render.procedure import when
from handlers.render.text import fit, mrkdwn_escape, section

MAX_TIMELINE_SHOWN = 40
STEPS_PER_SECTION = 8


def _users(users: tuple[str, ...]) -> str:
    return ", ".join(f"<@{u}>" for u in users) or "-"


def report_blocks(report: Report) -> list[dict[str, Any]]:
    """Header, summary, people, steps, obligations and the timeline (the latest part)."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Post-incident report"}},
        section(
            f"Procedure `{report.procedure_id}` for incident `{report.incident_id}`: "
            f"*{report.status}* by <@{report.ended_by}> at {when(report.ended_at_ms)}"
            + (f" ({mrkdwn_escape(report.end_reason)})" if report.end_reason else "")
            + f"\nTarget `{mrkdwn_escape(report.target)}`, cause `{report.cause}`, root DC "
            f"`{mrkdwn_escape(report.root_dc)}`, started by <@{report.started_by}> at "
            f"{when(report.started_at_ms)}.\nFinal verification: "
            f"{mrkdwn_escape(report.final_verification or 'not run')}"
        ),
        section("\n".join(f"*{role}*: {_users(users)}" for role, users in report.people)),
    ]
    lines = []
    for s in report.steps:
        took = f", {s.seconds:.1f} s" if s.seconds is not None else ""
        who = []
        if s.requested_by:
            who.append(f"requested <@{s.requested_by}>")
        if s.approved_by:
            who.append(f"approved {_users(s.approved_by)}")
        if s.rejected_by:
            who.append(f"rejected {_users(s.rejected_by)}")
        if s.queued_by:
            who.append(f"ran <@{s.queued_by}>")
        lines.append(
            f"• *{s.key}* {mrkdwn_escape(s.title)}: {s.status}{took}"
            + (f" ({'; '.join(who)})" if who else "")
        )
    for i in range(0, len(lines), STEPS_PER_SECTION):
        blocks.append(section("\n".join(lines[i : i + STEPS_PER_SECTION])))
    if report.obligations:
        owed = [
            f"• step {o.step_key}: {mrkdwn_escape(o.what)} on `{mrkdwn_escape(o.dc)}`: "
            + (mrkdwn_escape(o.how) if o.ended_at_ms else "*still open*")
            + (f", escalated {o.escalations}x" if o.escalations else "")
            for o in report.obligations
        ]
        blocks.append(section("*Obligations*\n" + "\n".join(owed)))
    shown = report.timeline[-MAX_TIMELINE_SHOWN:]
    timeline = [
        f"{when(m.at_ms)} <@{m.user}>: {mrkdwn_escape(m.what)}"
        if m.user
        else f"{when(m.at_ms)} {mrkdwn_escape(m.what)}"
        for m in shown
    ]
    more = len(report.timeline) - len(shown)
    head = "*Timeline*" + (f" (last {len(shown)} of {len(report.timeline)})" if more > 0 else "")
    blocks.append(section(fit(head + "\n" + "\n".join(timeline))))
    blocks.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": "The full report as Markdown: "
                    f"`ad1411 audit report {report.incident_id}`",
                }
            ],
        }
    )
    return blocks[:50]
