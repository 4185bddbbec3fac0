"""The post-incident report of a procedure: who did what, when, how long, and how it ended.

Pure: built from the procedure and its audit entries. `report_markdown` is what
`ad1411 audit report` writes; the thread shows the same content (handlers.render.report).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.procedure.model import Obligation, Procedure, StepStatus

# Audit events worth a line in the timeline, in words.
_TIMELINE = {
    "procedure_started": "started the procedure",
    "approval_requested": "requested approval of step {step}",
    "approved": "approved step {step}",
    "rejected": "rejected step {step}: {reason}",
    "step_queued": "queued step {step} to run",
    "step_retried": "retried step {step}",
    "step_started": "worker {worker} started step {step}",
    "step_reclaimed": "worker {worker} took over step {step} from {previous_worker}",
    "step_done": "step {step} done ({seconds} s)",
    "step_failed": "step {step} failed",
    "step_already_done": "step {step} found already done",
    "step_skipped": "skipped step {step}: {reason}",
    "obligation_reminded": "reminder: the change of step {step} is still in place",
    "obligation_escalated": "escalated to approvers: the change of step {step} is overdue",
    "obligation_undone": "the change of step {step} was undone by step {by}",
    "obligation_overridden": "overrode the obligation of step {step}: {reason}",
    "procedure_aborted": "aborted the procedure: {reason}",
    "procedure_aborted_undone": "the offered undo steps are finished",
    "procedure_closed": "closed the procedure",
    "refused": "was refused ({act} {step}): {code}",
}
# A worker's report refused (a job delivered again after its step moved on): the worker's.
_WORKER_REFUSED = "worker {worker} was refused ({act} {step}): {code}"


@dataclass(frozen=True)
class StepLine:
    """One step as the report tells it."""

    key: str
    title: str
    kind: str
    status: str
    requested_by: str
    approved_by: tuple[str, ...]
    rejected_by: tuple[str, ...]
    queued_by: str
    attempts: int
    seconds: float | None
    result: str


@dataclass(frozen=True)
class Moment:
    """One line of the timeline."""

    at_ms: int
    user: str
    what: str


@dataclass(frozen=True)
class Report:
    """Everything the post-incident report says."""

    procedure_id: str
    incident_id: str
    forest: str
    cause: str
    root_dc: str
    target: str
    status: str
    started_by: str
    started_at_ms: int
    ended_by: str
    ended_at_ms: int
    end_reason: str
    steps: tuple[StepLine, ...]
    obligations: tuple[Obligation, ...]
    final_verification: str
    timeline: tuple[Moment, ...]
    people: tuple[tuple[str, tuple[str, ...]], ...]


def _stamp(ms: int) -> str:
    if ms <= 0:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _seconds(proc: Procedure, key: str) -> float | None:
    """Time the step's runs took on the workers (started to ended, every attempt)."""
    total = 0.0
    counted = False
    for attempt in proc.record(key).attempts:
        if attempt.started_at_ms and attempt.ended_at_ms:
            total += (attempt.ended_at_ms - attempt.started_at_ms) / 1000
            counted = True
    return round(total, 1) if counted else None


def _line(entry: Mapping[str, str]) -> str:
    template = _TIMELINE[entry["event"]]
    if entry["event"] == "refused" and entry.get("worker"):
        template = _WORKER_REFUSED
    values = {
        k: entry.get(k, "")
        for k in ("step", "reason", "worker", "previous_worker", "seconds", "by", "act", "code")
    }
    return template.format(**values)


def build_report(proc: Procedure, audit: Sequence[Mapping[str, str]]) -> Report:
    """The report of one procedure from its state and its audit entries (oldest first)."""
    mine = [e for e in audit if e.get("procedure") == proc.id and e.get("event") in _TIMELINE]
    timeline = tuple(
        Moment(int(e.get("at_ms", "0") or 0), e.get("user", ""), _line(e)) for e in mine
    )
    steps = []
    for planned, record in zip(proc.plan.steps, proc.steps, strict=True):
        approved = tuple(dict.fromkeys(v.user for v in record.votes if v.approve))
        rejected = tuple(dict.fromkeys(v.user for v in record.votes if not v.approve))
        last = record.last_attempt
        result = record.note or (last.detail if last else "")
        if record.status is StepStatus.SKIPPED:
            result = f"skipped: {record.skip_reason}"
        steps.append(
            StepLine(
                key=planned.key,
                title=planned.title,
                kind=planned.kind.value,
                status=record.status.value,
                requested_by=record.requested_by,
                approved_by=approved,
                rejected_by=rejected,
                queued_by=last.queued_by if last else "",
                attempts=len(record.attempts),
                seconds=_seconds(proc, planned.key),
                result=result,
            )
        )
    final = next((s.result for s in steps if s.key == "12"), "")
    people = _people(proc, steps)
    return Report(
        procedure_id=proc.id,
        incident_id=proc.incident_id,
        forest=proc.plan.forest,
        cause=proc.plan.cause,
        root_dc=proc.plan.root_dc or "",
        target=proc.plan.target_dc or proc.plan.target_dsa_guid,
        status=proc.status.value,
        started_by=proc.started_by,
        started_at_ms=proc.started_at_ms,
        ended_by=proc.ended_by,
        ended_at_ms=proc.ended_at_ms,
        end_reason=proc.end_reason,
        steps=tuple(steps),
        obligations=proc.obligations,
        final_verification=final,
        timeline=timeline,
        people=people,
    )


def _people(proc: Procedure, steps: Sequence[StepLine]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    def unique(values: list[str]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(v for v in values if v))

    return (
        ("started", unique([proc.started_by])),
        ("requested approval", unique([s.requested_by for s in steps])),
        ("approved", unique([u for s in steps for u in s.approved_by])),
        ("rejected", unique([u for s in steps for u in s.rejected_by])),
        ("ran steps", unique([s.queued_by for s in steps])),
        ("ended", unique([proc.ended_by])),
    )


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def report_markdown(report: Report) -> str:
    """The report as Markdown (people appear as their Slack user IDs)."""
    duration = ""
    if report.started_at_ms and report.ended_at_ms:
        duration = f" ({(report.ended_at_ms - report.started_at_ms) / 60000:.1f} min)"
    out = [
        f"# Post-incident report: procedure {report.procedure_id}",
        "",
        f"- Incident: `{report.incident_id}`, forest `{report.forest}`",
        f"- Target DC: `{report.target}`, cause: `{report.cause}`, root DC: `{report.root_dc}`",
        f"- Started by {report.started_by} at {_stamp(report.started_at_ms)}",
        f"- Ended: {report.status} by {report.ended_by or '-'} at "
        f"{_stamp(report.ended_at_ms)}{duration}"
        + (f": {report.end_reason}" if report.end_reason else ""),
        f"- Final verification: {report.final_verification or 'not run'}",
        "",
        "## People",
        "",
    ]
    out += [f"- {role}: {', '.join(users) or '-'}" for role, users in report.people]
    out += [
        "",
        "## Steps",
        "",
        "| step | what | kind | result | requested by | approved by | ran by | runs | seconds "
        "| outcome |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in report.steps:
        seconds = f"{s.seconds:.1f}" if s.seconds is not None else "-"
        out.append(
            f"| {s.key} | {_cell(s.title)} | {s.kind} | {s.status} | {s.requested_by or '-'} | "
            f"{', '.join(s.approved_by) or '-'} | {s.queued_by or '-'} | {s.attempts} | "
            f"{seconds} | {_cell(s.result)[:200] or '-'} |"
        )
    out += ["", "## Obligations (temporary changes)", ""]
    if not report.obligations:
        out.append("- none: no temporary step took effect")
    for o in report.obligations:
        ended = f"{o.how} at {_stamp(o.ended_at_ms)}" if o.ended_at_ms else "STILL OPEN"
        out.append(
            f"- step {o.step_key}: {o.what} on `{o.dc}`, opened {_stamp(o.opened_at_ms)}, due "
            f"{_stamp(o.deadline_ms)}; {ended}"
            + (f"; reminded, escalated {o.escalations} time(s)" if o.escalations else "")
        )
    out += ["", "## Timeline", ""]
    out += [f"- {_stamp(m.at_ms)} {m.user or 'bot'}: {m.what}" for m in report.timeline]
    return "\n".join(out) + "\n"
