"""Procedure buttons and modals: ack, authorize, one transition, render. Work runs in workers."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.errors import SlackApiError

from bot.procedure.approval import Actor, reason_problem
from bot.procedure.model import Procedure, ProcedureStatus, parse_procedure_id
from bot.procedure.rules import Act, Intent
from handlers.context import RESPONSE_URL_RETRY_SECONDS, ServeContext
from handlers.home import from_home, publish_home
from handlers.render.procedure import (
    ACTION_PREFIX,
    NEEDS_REASON,
    OUTPUT_ACTION,
    REASON_BLOCK,
    REASON_CALLBACK,
    REASON_INPUT,
    approval_request_text,
    closing_needs_override,
    output_modal,
    parse_button_value,
    reason_modal,
)
from handlers.slack_retry import with_slack_retries
from handlers.transitions import Acted, Refused, Repeated
from state.durability import StoreUnavailable, until_durable
from state.procedures import AuditEntry, StoredProcedure

log = logging.getLogger(__name__)
CONFIRMED_LATE = (
    "Your click took effect: Redis confirmed it once it was back. The procedure message shows it."
)
UNCONFIRMED = (
    ":warning: Your click could not be confirmed: the bot's Redis is unavailable or failing "
    "over. Look at the procedure message in a minute; if it does not show your change, press "
    "again (a click that did take effect is never applied twice)."
)
_ACTS = "|".join(
    a.value
    for a in (*NEEDS_REASON, Act.REQUEST_APPROVAL, Act.APPROVE, Act.RUN, Act.RETRY, Act.CLOSE)
)
ACTION_PATTERN = re.compile(rf"^{ACTION_PREFIX}({_ACTS})$")


def _user(body: dict[str, Any]) -> str:
    user = body.get("user")
    return str(user.get("id", "")) if isinstance(user, dict) else ""


def _action(body: dict[str, Any]) -> dict[str, Any]:
    actions = body.get("actions")
    if isinstance(actions, list) and actions and isinstance(actions[0], dict):
        return actions[0]
    return {}


def _where(body: dict[str, Any]) -> tuple[str, str, str]:
    """(channel, message ts, thread ts) of the clicked message ('' when not a message)."""
    container = body.get("container") if isinstance(body.get("container"), dict) else {}
    message = body.get("message") if isinstance(body.get("message"), dict) else {}
    assert isinstance(container, dict) and isinstance(message, dict)
    return (
        str(container.get("channel_id", "")),
        str(container.get("message_ts", "")),
        str(message.get("thread_ts", "")),
    )


async def _actor(ctx: ServeContext, user_id: str) -> Actor:
    return Actor(
        user_id,
        responder=await ctx.is_responder(user_id),
        approver=await ctx.is_approver(user_id),
    )


async def _refuse_unknown(ctx: ServeContext, body: dict[str, Any], why: str) -> None:
    """A button value that is not one of ours: refuse, say why, audit (globally)."""
    await ctx.store.audit.append_global(
        "refused",
        user=_user(body),
        act=str(_action(body).get("action_id", ""))[:40],
        code="bad_value",
        reason=why,
    )
    ctx.reply_ephemeral(body, f"This button was refused: {why}.")


async def _belongs(ctx: ServeContext, body: dict[str, Any], stored: StoredProcedure) -> bool:
    """The click came from this procedure's message, its incident's thread, or the clicker's
    Home tab (which shows only the clicker's pending approvals)."""
    if from_home(body):
        return True
    channel, message_ts, thread_ts = _where(body)
    incident_id, _ = parse_procedure_id(stored.id)
    where = await ctx.incident_message(incident_id)
    if where is None:
        return False
    inc_channel, inc_ts = where
    if channel and inc_channel and channel != inc_channel:
        return False
    return message_ts in (stored.ts, inc_ts) or (bool(thread_ts) and thread_ts == inc_ts)


async def _this_procedure(
    ctx: ServeContext, body: dict[str, Any], procedure_id: str, act: Act
) -> Procedure | None:
    """The clicked procedure if the click belongs to it. The state last seen serves in the
    steady state (the commit checks its version); a refusal, and the choice of a close's
    form, are made on state read fresh."""
    stored, fresh = await ctx.engine.known(procedure_id)
    if not fresh and (stored is None or act is Act.CLOSE or not await _belongs(ctx, body, stored)):
        stored = await ctx.engine.load(procedure_id)
    if stored is None or not await _belongs(ctx, body, stored):
        return None
    return ctx.engine.parsed(stored)


async def _on_button(ctx: ServeContext, body: dict[str, Any]) -> None:
    """A procedure button: check it is ours and belongs here, ask a reason, or act."""
    action = _action(body)
    act = Act(str(action.get("action_id", ""))[len(ACTION_PREFIX) :])
    value = parse_button_value(str(action.get("value", "")))
    if value is None:
        await _refuse_unknown(ctx, body, "its value is not a procedure button's")
        return
    try:
        incident_id, _ = parse_procedure_id(value["p"])
    except ValueError:
        await _refuse_unknown(ctx, body, "it names no procedure")
        return
    proc = await _this_procedure(ctx, body, value["p"], act)
    user = _user(body)
    intent = Intent(act, value["s"] or None, value["d"] or None)
    if proc is None:
        await ctx.procedures.note(
            incident_id,
            [
                AuditEntry(
                    "refused",
                    {
                        "procedure": value["p"],
                        "incident": incident_id,
                        "user": user,
                        "act": act.value,
                        "step": value["s"],
                        "code": "wrong_message",
                        "reason": "button value names a procedure of another message",
                    },
                )
            ],
            once=_once(body),
        )
        ctx.reply_ephemeral(
            body, "This button was refused: it does not belong to this procedure's message."
        )
        return
    if act in NEEDS_REASON or (act is Act.CLOSE and closing_needs_override(proc)):
        await _ask_reason(ctx, body, act, proc, value)
        return
    if from_home(body):
        said = await perform(ctx, proc.id, intent, user, once=_once(body))
        ctx.spawn(publish_home(ctx, user, said))
        return
    await perform(ctx, proc.id, intent, user, once=_once(body), body=body)


def register(app: AsyncApp, ctx: ServeContext) -> None:
    """Attach the procedure listeners."""

    @app.action(ACTION_PATTERN)
    async def on_button(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        if not await _through_failover(ctx, lambda: _on_button(ctx, body)):
            ctx.reply_ephemeral(body, UNCONFIRMED)

    @app.view(REASON_CALLBACK)
    async def on_reason(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        values = view.get("state", {}).get("values", {})
        reason = str(values.get(REASON_BLOCK, {}).get(REASON_INPUT, {}).get("value") or "")
        problem = reason_problem(reason)
        if problem is not None:
            await ack(response_action="errors", errors={REASON_BLOCK: problem})
            return
        try:
            meta = json.loads(str(view.get("private_metadata", "")))
            act = Act(str(meta["a"]))
        except (ValueError, KeyError, TypeError):
            await ack(response_action="errors", errors={REASON_BLOCK: "this form is not ours"})
            return
        await ack()
        intent = Intent(
            act, str(meta.get("s") or "") or None, str(meta.get("d") or "") or None, reason
        )
        channel = str(meta.get("c", ""))
        said = await perform(
            ctx,
            str(meta.get("p", "")),
            intent,
            _user(body),
            once=str(view.get("id", "")) + ":submit",
            channel=channel,
        )
        if not channel:  # asked from the Home tab: the answer shows there
            ctx.spawn(publish_home(ctx, _user(body), said))

    @app.action(OUTPUT_ACTION)
    async def on_output(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        user = _user(body)
        if not await ctx.is_responder(user):
            ctx.reply_ephemeral(body, "Only responders and approvers can read command outputs.")
            return
        ref = str(_action(body).get("value", ""))[:200]
        output = await ctx.procedures.load_output(ref) if ref else None
        if output is None:
            ctx.reply_ephemeral(
                body, "That output is no longer kept (outputs expire after 30 days)."
            )
            return
        try:
            await ctx.slack.views_open(
                trigger_id=str(body.get("trigger_id", "")),
                view=output_modal("Command output", output),
            )
        except SlackApiError as exc:
            log.warning("could not open the output modal: %s", exc.response.get("error"))
            ctx.reply_ephemeral(body, "Slack did not open the output; press the button again.")


def _once(body: dict[str, Any]) -> str:
    """A token of this very click: a Slack retry of the same request carries the same one."""
    action = _action(body)
    return f"{body.get('trigger_id', '')}:{action.get('action_ts', '')}"


async def _ask_reason(
    ctx: ServeContext, body: dict[str, Any], act: Act, proc: Procedure, value: dict[str, str]
) -> None:
    channel, _, _ = _where(body)
    metadata = json.dumps({"a": act.value, **value, "c": channel}, separators=(",", ":"))
    try:
        await ctx.slack.views_open(
            trigger_id=str(body.get("trigger_id", "")),
            view=reason_modal(act, proc, value["s"], metadata),
        )
    except SlackApiError as exc:
        log.warning("could not open the reason modal: %s", exc.response.get("error"))
        ctx.reply_ephemeral(body, "Slack did not open the form; press the button again.")


async def _through_failover(ctx: ServeContext, work: Callable[[], Awaitable[Any]]) -> bool:
    """Run a click's work, again from the start while Redis fails over (every read is safe to
    repeat, and the request token makes a repeated transition a no-op); False when Redis could
    not take or confirm it in time."""
    try:
        await until_durable(
            work, what="a procedure click", deadline_seconds=ctx.procedures.retry_seconds
        )
    except StoreUnavailable as exc:
        log.warning("a procedure click could not be confirmed: %s", exc)
        return False
    return True


async def perform(
    ctx: ServeContext,
    procedure_id: str,
    intent: Intent,
    user_id: str,
    *,
    once: str,
    body: dict[str, Any] | None = None,
    channel: str = "",
) -> str:
    """One transition for one person, then tell them and the thread; returns what was said."""
    ended: list[tuple[str, str]] = []

    async def attempt() -> None:
        again = bool(ended)
        ended[:] = [("", "")]
        outcome, said = await _perform(
            ctx, procedure_id, intent, user_id, once=once, body=body, channel=channel
        )
        if outcome == "repeated" and again:
            # This very click was applied by an earlier try that Redis could not confirm then.
            outcome, said = "acted", CONFIRMED_LATE
            await _tell(ctx, body, channel, user_id, said)
        ended[:] = [(outcome, said)]

    if not await _through_failover(ctx, attempt):
        ctx.metrics.procedure_clicks.labels("unconfirmed").inc()
        await _tell(ctx, body, channel, user_id, UNCONFIRMED)
        return UNCONFIRMED
    outcome, said = ended[0]
    ctx.metrics.procedure_clicks.labels(outcome).inc()
    return said


async def _perform(
    ctx: ServeContext,
    procedure_id: str,
    intent: Intent,
    user_id: str,
    *,
    once: str,
    body: dict[str, Any] | None,
    channel: str,
) -> tuple[str, str]:
    """(what became of the click: acted, refused or repeated; what the person was told)."""
    try:
        incident_id, _ = parse_procedure_id(procedure_id)
    except ValueError:
        return "refused", "That is not a procedure."
    actor = await _actor(ctx, user_id)
    outcome = await ctx.engine.act(procedure_id, intent, actor, once=once, incident_id=incident_id)
    if isinstance(outcome, Repeated):
        return "repeated", ""
    if isinstance(outcome, Refused):
        await _tell(ctx, body, channel, user_id, outcome.refusal.reason)
        return "refused", outcome.refusal.reason
    assert isinstance(outcome, Acted)
    proc = outcome.procedure
    ctx.spawn(ctx.procedure_messages.changed(proc.id))
    await _tell(ctx, body, channel, user_id, outcome.change.say)
    step = proc.plan.step(intent.step_key or "")
    if intent.act is Act.REQUEST_APPROVAL and step is not None:
        approvers = ctx.settings.file.slack.approvers
        text = approval_request_text(proc, step, approvers, user_id)
        ctx.spawn(_say(ctx, proc.incident_id, text))
    elif intent.act is Act.ABORT:
        text = f"{outcome.change.say} By <@{user_id}>: {intent.reason}"
        ctx.spawn(_say(ctx, proc.incident_id, text))
    elif intent.act is Act.CLOSE:
        ctx.spawn(_announce_close(ctx, proc, outcome.change.say, bool(intent.reason)))
    if proc.status is ProcedureStatus.ABORTED:
        ctx.spawn(ctx.post_report(proc))
    return "acted", outcome.change.say


async def _say(ctx: ServeContext, incident_id: str, text: str) -> None:
    """Say something in the incident thread (after the ack: the incident is read here, through
    a failover if need be; the click has taken effect whatever happens to this)."""
    try:
        inc = await until_durable(
            lambda: ctx.store.get(incident_id), what=f"incident {incident_id}"
        )
    except StoreUnavailable:
        log.warning("incident %s unreadable: the thread was not told of a click", incident_id)
        return
    if inc is not None:
        await ctx.thread.say(inc, text)


async def _announce_close(ctx: ServeContext, proc: Procedure, said: str, override: bool) -> None:
    """The thread hears every close; an override is announced in the channel too."""
    inc = await ctx.store.get(proc.incident_id)
    if inc is None:
        return
    await ctx.thread.say(inc, said)
    if override and inc.channel:
        await ctx.thread.announce(inc.channel, f":warning: {said} (incident `{inc.id}`)")
    await ctx.post_report(proc)


async def _tell(
    ctx: ServeContext, body: dict[str, Any] | None, channel: str, user_id: str, text: str
) -> None:
    if not text or (body is None and not channel):
        return
    if body is not None:
        ctx.reply_ephemeral(body, text)
        return
    if channel:
        # After the click's work, not inside it: Slack's rate limits must not hold the click.
        ctx.spawn(_ephemeral(ctx, channel, user_id, text))


async def _ephemeral(ctx: ServeContext, channel: str, user_id: str, text: str) -> None:
    """Tell one person (a form submitted from the channel has no response_url)."""
    try:
        await with_slack_retries(
            lambda: ctx.slack.chat_postEphemeral(channel=channel, user=user_id, text=text),
            deadline_seconds=RESPONSE_URL_RETRY_SECONDS,
            what="an ephemeral reply",
        )
    except SlackApiError as exc:
        log.warning("ephemeral reply not sent: %s", exc.response.get("error"))
    except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
        log.warning("ephemeral reply not sent: %s", type(exc).__name__)
