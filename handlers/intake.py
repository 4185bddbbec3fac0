"""Alerts into incidents: shared by the webhook and by alert-channel messages."""

from __future__ import annotations

from bot.alerts.model import Alert
from bot.errors import AlertRejected
from handlers.context import ServeContext
from state.incidents import AlertRecord, Intake, OpeningPolicy


def check_forests(ctx: ServeContext, alerts: list[Alert]) -> None:
    """Refuse the whole batch if one alert names a forest the configuration does not know."""
    known = ", ".join(f.name for f in ctx.settings.file.forests) or "none configured"
    for alert in alerts:
        if ctx.settings.file.forest(alert.forest) is None:
            raise AlertRejected(
                f"forest: {alert.forest!r} is not a configured forest; expected one of: {known} "
                "(add it under [[forests]] in the config file)",
                field="forest",
            )


async def take_alerts(ctx: ServeContext, alerts: list[Alert]) -> list[Intake]:
    """Record validated alerts (Redis only) and let the notifier follow up in Slack.

    At most `alerts.max_new_incidents_per_request` new incidents per call and
    `max_new_incidents_per_minute` across replicas; alerts beyond are grouped (Intake.grouped).
    """
    cfg = ctx.settings.file.alerts
    intakes = []
    opened = 0
    for alert in alerts:
        policy = OpeningPolicy(
            may_open=opened < cfg.max_new_incidents_per_request,
            per_minute=cfg.max_new_incidents_per_minute,
            coalesce_seconds=cfg.coalesce_seconds,
        )
        intake = await ctx.store.record(
            AlertRecord(
                forest=alert.forest,
                dsa_guid=alert.target_dsa_guid,
                reporting_dc=alert.reporting_dc,
                error_code=alert.error_code,
                observed_at=alert.observed_at,
                source_format=alert.source_format,
            ),
            policy=policy,
        )
        if intake.created:
            opened += 1
            ctx.metrics.incidents_opened.inc()
        ctx.metrics.alerts.labels("grouped" if intake.grouped else "accepted").inc()
        intakes.append(intake)
    if intakes:
        await ctx.notifier.on_intake(intakes[-1])
    return intakes
