"""The App Home tab: published when a person opens it, and again after they act from it."""

from __future__ import annotations

import logging
import time
from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError

from bot.procedure.approval import valid_approvals
from bot.procedure.model import Procedure, StepStatus
from handlers.context import ServeContext
from handlers.render.home import PendingApproval, home_view
from handlers.slack_retry import with_slack_retries

log = logging.getLogger(__name__)
PUBLISH_RETRY_SECONDS = 60.0  # the person looks at their Home tab for the answer to a click


async def _live(ctx: ServeContext) -> list[Procedure]:
    procs = []
    for procedure_id in await ctx.procedures.active_ids():
        proc = await ctx.engine.procedure(procedure_id)
        if proc is not None:
            procs.append(proc)
    return procs


def _waiting_for(proc: Procedure, user_id: str, now_ms: int, ttl: int) -> PendingApproval | None:
    step = proc.current()
    if step is None:
        return None
    record = proc.record(step.key)
    if record.status is not StepStatus.AWAITING_APPROVAL or record.requested_by == user_id:
        return None
    if now_ms > record.requested_at_ms + ttl * 1000:
        return None
    if any(v.user == user_id for v in valid_approvals(record, step, now_ms, ttl)):
        return None
    return PendingApproval(proc, step, record.requested_by)


async def publish_home(ctx: ServeContext, user_id: str, note: str = "") -> None:
    """Build and publish this person's Home tab (incidents only for responders/approvers)."""
    approver = await ctx.is_approver(user_id)
    if not approver and not await ctx.is_responder(user_id):
        view = home_view(
            approver=False, responder=False, pending=[], incidents=[], obligations=[], note=note
        )
    else:
        view = await _view(ctx, user_id, approver, note)
    try:
        await with_slack_retries(
            lambda: ctx.slack.views_publish(user_id=user_id, view=view),
            deadline_seconds=PUBLISH_RETRY_SECONDS,
            what=f"views.publish of {user_id}'s Home",
        )
    except SlackApiError as exc:
        log.warning("Home of %s not published: %s", user_id, exc.response.get("error"))
    except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
        log.warning("Home of %s not published: %s", user_id, type(exc).__name__)


async def _view(ctx: ServeContext, user_id: str, approver: bool, note: str) -> dict[str, Any]:
    now = int(time.time() * 1000)
    ttl = ctx.settings.file.approvals.ttl_seconds
    procs = await _live(ctx)
    pending = [p for proc in procs if approver and (p := _waiting_for(proc, user_id, now, ttl))]
    by_incident = {proc.incident_id: proc for proc in procs}
    incidents = [(inc, by_incident.get(inc.id)) for inc in await ctx.store.list_open()]
    owed = sorted(
        ((proc, o) for proc in procs for o in proc.open_obligations()),
        key=lambda pair: pair[1].deadline_ms,
    )
    return home_view(
        approver=approver, pending=pending, incidents=incidents, obligations=owed, note=note
    )


def from_home(body: dict[str, Any]) -> bool:
    """The click came from the clicker's Home tab."""
    view = body.get("view")
    container = body.get("container")
    return (
        isinstance(view, dict)
        and view.get("type") == "home"
        and isinstance(container, dict)
        and container.get("type") == "view"
    )


def register(app: AsyncApp, ctx: ServeContext) -> None:
    """Attach the app_home_opened listener."""

    @app.event("app_home_opened")
    async def on_home(event: dict[str, Any]) -> None:
        if event.get("tab", "home") != "home":
            return
        user = str(event.get("user", ""))
        if user:
            ctx.spawn(publish_home(ctx, user))
