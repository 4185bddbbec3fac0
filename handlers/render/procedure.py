"""The procedure message, its thread notes, and its modals, as Block Kit (pure: data in)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from bot.procedure.approval import valid_approvals
from bot.procedure.model import Procedure, ProcedureStatus, StepRecord, StepStatus
from bot.procedure.operations import operation_lines
from bot.procedure.plan import PlannedStep
from bot.procedure.rules import Act, buttons
from handlers.render.text import MAX_BLOCKS, fit, mrkdwn_escape, section

Block = dict[str, Any]
ACTION_PREFIX = "proc_"
OUTPUT_ACTION = "proc_output"
REASON_CALLBACK = "proc_reason"
REASON_BLOCK = "reason"
REASON_INPUT = "reason"
# Acts that ask for a reason in a modal before they are sent.
NEEDS_REASON = frozenset({Act.REJECT, Act.SKIP, Act.ABORT})

_ICON = {
    StepStatus.PENDING: ":white_circle:",
    StepStatus.AWAITING_APPROVAL: ":hourglass_flowing_sand:",
    StepStatus.REJECTED: ":no_entry:",
    StepStatus.QUEUED: ":arrows_counterclockwise:",
    StepStatus.RUNNING: ":gear:",
    StepStatus.SATISFIED: ":ballot_box_with_check:",
    StepStatus.DONE: ":white_check_mark:",
    StepStatus.FAILED: ":x:",
    StepStatus.SKIPPED: ":fast_forward:",
}
_LABEL = {
    Act.REQUEST_APPROVAL: "Request approval",
    Act.APPROVE: "Approve",
    Act.REJECT: "Reject",
    Act.RUN: "Run",
    Act.SKIP: "Skip",
    Act.RETRY: "Retry",
    Act.ABORT: "Abort",
    Act.CLOSE: "Close procedure",
}
_STYLE = {
    Act.APPROVE: "primary",
    Act.RUN: "primary",
    Act.REQUEST_APPROVAL: "primary",
    Act.RETRY: "primary",
    Act.CLOSE: "primary",
    Act.REJECT: "danger",
    Act.ABORT: "danger",
}


def when(ms: int) -> str:
    """A time as people read it in the thread."""
    if ms <= 0:
        return "?"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%H:%M:%S UTC")


def button_value(proc: Procedure, step: PlannedStep | None) -> str:
    """What a procedure button carries: procedure, step and the plan digest it was shown."""
    value = {"p": proc.id, "s": step.key if step else "", "d": step.digest if step else ""}
    return json.dumps(value, separators=(",", ":"))


def parse_button_value(raw: str) -> dict[str, str] | None:
    """A button value back as a dict of strings, or None when it is not one of ours."""
    if len(raw) > 400:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(value, dict) or set(value) != {"p", "s", "d"}:
        return None
    if not all(isinstance(v, str) and len(v) <= 80 for v in value.values()):
        return None
    return {str(k): str(v) for k, v in value.items()}


def _kind_text(step: PlannedStep) -> str:
    needs = f" · needs {step.approvals} approval(s)" if step.approvals else ""
    return f"{step.kind.value}{needs}"


def _who(record: StepRecord, step: PlannedStep, now_ms: int, ttl: int) -> list[str]:
    parts: list[str] = []
    if record.requested_by:
        parts.append(f"requested by <@{record.requested_by}> at {when(record.requested_at_ms)}")
    approvers = [f"<@{v.user}>" for v in valid_approvals(record, step, now_ms, ttl)]
    if approvers:
        parts.append("approved by " + ", ".join(approvers))
    rejected = [v for v in record.votes if not v.approve]
    if rejected:
        last = rejected[-1]
        parts.append(f"rejected by <@{last.user}>: {mrkdwn_escape(last.reason)}")
    attempt = record.last_attempt
    if attempt is not None:
        ran = f"run {attempt.number} queued by <@{attempt.queued_by}>"
        if attempt.worker:
            ran += f", on worker `{mrkdwn_escape(attempt.worker)}`"
        if attempt.ended_at_ms and attempt.started_at_ms:
            ran += f", {(attempt.ended_at_ms - attempt.started_at_ms) / 1000:.1f} s"
        if attempt.exit_code is not None:
            ran += f", exit {attempt.exit_code}"
        parts.append(ran)
    if record.skipped_by:
        parts.append(f"skipped by <@{record.skipped_by}>: {mrkdwn_escape(record.skip_reason)}")
    return parts


def step_text(proc: Procedure, step: PlannedStep, now_ms: int, ttl: int) -> str:
    """One step as the procedure message shows it: state, what, where, exact command, who."""
    record = proc.record(step.key)
    head = (
        f"{_ICON[record.status]} *{step.key}. {mrkdwn_escape(step.title)}* · {_kind_text(step)}"
        f" · _{record.status.value.replace('_', ' ')}_"
    )
    lines = [head]
    priors = {r.key: r.prior for r in proc.steps if r.prior is not None}
    shown = operation_lines(proc.plan, step, priors)[:4]
    lines += [f"`{mrkdwn_escape(line)}`" for line in shown]
    who = _who(record, step, now_ms, ttl)
    if who:
        lines.append("; ".join(who))
    if record.note:
        lines.append(mrkdwn_escape(record.note))
    return fit("\n".join(lines))


def _actions(proc: Procedure, now_ms: int, ttl: int) -> Block | None:
    offered = buttons(proc, now_ms, ttl)
    if not offered:
        return None
    step = proc.current()
    elements: list[Block] = []
    early = closing_needs_override(proc)
    for act in offered:
        label = "Close (approver override)" if act is Act.CLOSE and early else _LABEL[act]
        element: Block = {
            "type": "button",
            "action_id": ACTION_PREFIX + act.value,
            "text": {"type": "plain_text", "text": label},
            "value": button_value(proc, step),
        }
        if act in _STYLE:
            element["style"] = "danger" if act is Act.CLOSE and early else _STYLE[act]
        elements.append(element)
    return {"type": "actions", "block_id": f"proc-{proc.version}", "elements": elements}


def closing_needs_override(proc: Procedure) -> bool:
    """Closing now would leave steps or a weakening behind: only an approver, with a reason."""
    return proc.current() is not None or bool(proc.open_obligations())


def obligations_text(proc: Procedure) -> str:
    """Open obligations (temporary weakenings still in place) with their deadlines."""
    owed = proc.open_obligations()
    if not owed:
        return ""
    lines = [":warning: *Still in place, must be undone:*"]
    lines += [
        f"• {mrkdwn_escape(o.what)} on `{mrkdwn_escape(o.dc)}` (step {o.step_key}), due "
        f"{when(o.deadline_ms)}: {mrkdwn_escape(o.restore)}"
        for o in owed
    ]
    return "\n".join(lines)


def procedure_fallback(proc: Procedure) -> str:
    """The notification text of the procedure message."""
    step = proc.current()
    where = f"at step {step.key}" if step else "all steps finished"
    return f"KB938704 procedure {proc.id}: {proc.status.value}, {where}"


def procedure_blocks(proc: Procedure, now_ms: int, ttl: int) -> list[Block]:
    """The procedure message: every step with its state and command, and the buttons of now."""
    status = {
        ProcedureStatus.ACTIVE: "active",
        ProcedureStatus.ABORTING: ":octagonal_sign: aborted, undo offered",
        ProcedureStatus.CLOSED: ":white_check_mark: closed",
        ProcedureStatus.ABORTED: ":octagonal_sign: aborted",
    }[proc.status]
    blocks: list[Block] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": f"KB938704 procedure {proc.id}"[:150]},
        },
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": fit(
                        f"*{status}* · started by <@{proc.started_by}> at "
                        f"{when(proc.started_at_ms)} · cause `{proc.plan.cause}` · root DC "
                        f"`{mrkdwn_escape(proc.plan.root_dc or '?')}` · plan from the diagnosis "
                        f"of {when(proc.diagnosis_at_ms)}",
                        2900,
                    ),
                }
            ],
        },
    ]
    steps = list(proc.plan.steps)
    room = MAX_BLOCKS - 6
    if len(steps) > room:
        # Too many for Slack's 50 blocks: finished steps fold into one line.
        done = [
            s for s in steps if proc.record(s.key).status in (StepStatus.DONE, StepStatus.SKIPPED)
        ]
        fold = done[: len(steps) - room + 1]
        if fold:
            blocks.append(section(f"Steps {fold[0].key} to {fold[-1].key}: finished."))
            steps = [s for s in steps if s not in fold]
    blocks += [section(step_text(proc, s, now_ms, ttl)) for s in steps]
    if proc.notes:
        notes = "\n".join(f"• {mrkdwn_escape(n)}" for n in proc.notes)
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": fit(notes, 2900)}]}
        )
    owed = obligations_text(proc)
    if owed:
        blocks.append(section(owed))
    if proc.status is not ProcedureStatus.ACTIVE:
        ended = f"{proc.status.value} by <@{proc.ended_by}> at {when(proc.ended_at_ms)}"
        if proc.end_reason:
            ended += f": {mrkdwn_escape(proc.end_reason)}"
        blocks.append(section(ended))
    actions = _actions(proc, now_ms, ttl)
    if actions is not None:
        blocks.append(actions)
    return blocks


def mention(principals: Sequence[str]) -> str:
    """Slack mentions of users (U...) and user groups (S...)."""
    return " ".join(f"<!subteam^{p}>" if p.startswith("S") else f"<@{p}>" for p in principals)


def approval_request_text(
    proc: Procedure, step: PlannedStep, approvers: Sequence[str], requester: str
) -> str:
    """The thread note asking approvers, with the exact commands and the DC they run on."""
    lines = [
        f"{mention(approvers)} approval needed for step *{step.key}. "
        f"{mrkdwn_escape(step.title)}* ({_kind_text(step)}), requested by <@{requester}>.",
        f"Why: {mrkdwn_escape(step.spec.why)}",
        "Exact operations:",
    ]
    lines += [f"`{mrkdwn_escape(line)}`" for line in operation_lines(proc.plan, step)]
    lines.append(
        "Approve or Reject with the buttons in the procedure message. The requester cannot "
        "approve their own request; the approval is bound to these exact commands."
    )
    return "\n".join(lines)


def result_blocks(proc: Procedure, step: PlannedStep) -> tuple[str, list[Block]]:
    """The thread note at the end of a run: outcome in words, excerpt, the full-output button."""
    record = proc.record(step.key)
    attempt = record.last_attempt
    verb = {
        StepStatus.DONE: "done",
        StepStatus.FAILED: "FAILED",
        StepStatus.SATISFIED: "already in the wanted state (nothing changed; Skip it)",
    }.get(record.status, record.status.value)
    text = f"{_ICON[record.status]} Step *{step.key}. {mrkdwn_escape(step.title)}*: {verb}."
    if record.note:
        text += f"\n{mrkdwn_escape(record.note)}"
    if attempt is not None and attempt.detail:
        text += f"\n{mrkdwn_escape(attempt.detail)}"
    if attempt is not None and attempt.exit_code is not None:
        text += f"\nExit code {attempt.exit_code}."
    if record.status is StepStatus.FAILED:
        text += "\n*What to do:* read the output, fix the cause on the DC, then press Retry."
    blocks: list[Block] = [section(text)]
    if attempt is not None and attempt.excerpt:
        blocks.append(section(f"```{mrkdwn_escape(attempt.excerpt)}```"))
    if attempt is not None and attempt.output_ref:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "action_id": OUTPUT_ACTION,
                        "text": {"type": "plain_text", "text": "Full output"},
                        "value": attempt.output_ref[:200],
                    }
                ],
            }
        )
    return text, blocks


def reason_modal(act: Act, proc: Procedure, step_key: str, metadata: str) -> Block:
    """The modal asking why (reject, skip, abort)."""
    title = {
        Act.REJECT: "Reject step",
        Act.SKIP: "Skip step",
        Act.ABORT: "Abort procedure",
        Act.CLOSE: "Close with override",
    }[act]
    what = f"step {step_key} of " if act not in (Act.ABORT, Act.CLOSE) else ""
    return {
        "type": "modal",
        "callback_id": REASON_CALLBACK,
        "private_metadata": metadata,
        "title": {"type": "plain_text", "text": title},
        "submit": {"type": "plain_text", "text": title.split()[0]},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            section(f"{title.split()[0]} {what}procedure `{proc.id}`: say why, for the record."),
            {
                "type": "input",
                "block_id": REASON_BLOCK,
                "label": {"type": "plain_text", "text": "Reason"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": REASON_INPUT,
                    "multiline": True,
                    "max_length": 500,
                },
            },
        ],
    }


def output_modal(title: str, output: str) -> Block:
    """A modal showing a command's full output (as much as a modal holds)."""
    chunks = [output[i : i + 2900] for i in range(0, min(len(output), 2900 * 40), 2900)] or [""]
    blocks = [section(f"```{mrkdwn_escape(c) or ' '}```") for c in chunks]
    if len(output) > 2900 * 40:
        blocks.append(section("_(cut: a modal holds no more; its SHA-256 is in the audit)_"))
    return {
        "type": "modal",
        "title": {"type": "plain_text", "text": title[:24]},
        "close": {"type": "plain_text", "text": "Close"},
        "blocks": blocks[:100],
    }
