"""Messages: 1411 events posted by other integrations in alert channels open incidents;
replies in an incident's thread go to `handlers.paste` (pasted repadmin output)."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext

from bot.alerts.formats import find_alerts_in_text
from bot.errors import AlertRejected
from handlers import paste
from handlers.context import ServeContext
from handlers.intake import check_forests, take_alerts
from handlers.render.text import mrkdwn_escape

log = logging.getLogger(__name__)
SEEN_EVENT_SECONDS = 86_400


def message_text(event: dict[str, Any]) -> str:
    """All text a message carries: body, attachments and section blocks."""
    parts = [str(event.get("text", ""))]
    for att in event.get("attachments") or []:
        parts += [str(att.get(k, "")) for k in ("pretext", "title", "text", "fallback")]
    for block in event.get("blocks") or []:
        text = block.get("text")
        if isinstance(text, dict):
            parts.append(str(text.get("text", "")))
    return "\n".join(p for p in parts if p)


def register(app: AsyncApp, ctx: ServeContext) -> None:
    """Attach the message listener."""

    @app.event("message")
    async def on_message(
        event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        if await paste.take(ctx, event, body, context):
            return
        channel = str(event.get("channel", ""))
        if channel not in ctx.settings.file.slack.alert_channels:
            return
        if context.bot_id is not None and event.get("bot_id") == context.bot_id:
            return  # our own incident messages quote the event text
        event_id = str(body.get("event_id", ""))
        if event_id and await ctx.seen.seen("slack-event", event_id):
            return  # a Slack retry of an event we already took
        try:
            alerts = find_alerts_in_text(message_text(event))
            check_forests(ctx, alerts)
        except AlertRejected as exc:
            ctx.metrics.alerts.labels("rejected").inc()
            log.info("message %s in %s: 1411 event not accepted: %s", event.get("ts"), channel, exc)
            # Say why in the message's thread, so the integration's owner can fix the source.
            ctx.spawn(
                ctx.thread.post(
                    channel,
                    str(event.get("ts", "")),
                    "This looks like Event 1411 but no incident was opened: "
                    + mrkdwn_escape(str(exc)),
                )
            )
        else:
            if alerts:
                # A Redis failure here answers 503 and Slack delivers the event again: it is
                # marked taken only once recorded, so that delivery is recorded, not dropped.
                await take_alerts(ctx, alerts)
        if event_id:
            await ctx.seen.mark("slack-event", event_id, SEEN_EVENT_SECONDS)
