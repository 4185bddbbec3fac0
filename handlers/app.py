"""The serve process's two faces: the Bolt app and the aiohttp routes around it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError

from handlers import actions, events, home, procedure, slash
from handlers.context import ServeContext
from handlers.failures import register_failure_handler
from handlers.slack_requests import (
    SLACK_BODY_KEY,
    SLACK_PATH,
    SLACK_PAYLOAD_KEY,
    SLACK_STARTED_KEY,
    CheckedBoltRequest,
    SlackRequestGate,
)
from handlers.webhook import CTX_KEY, AlertWebhook

log = logging.getLogger(__name__)
BOLT_KEY: web.AppKey[AsyncApp] = web.AppKey("bolt", AsyncApp)
AUTH_CACHE_SECONDS = 30.0
# When serve answers a Slack request at the latest, counted from its arrival (Slack gives up
# at 3 s, network included).
ACK_BUDGET_SECONDS = 2.5


def build_bolt_app(ctx: ServeContext) -> AsyncApp:
    """Bolt app whose listeners ack at once and only touch Redis before acking.

    Signatures are checked by SlackRequestGate before Bolt sees a body, so Bolt's own
    verification is off; the workspace check is Bolt's authorize (HTTP and Socket Mode).
    """
    app = AsyncApp(
        client=ctx.slack,
        authorize=ctx.workspace.bolt_authorize(),
        request_verification_enabled=False,
        process_before_response=True,
        raise_error_for_unhandled_request=False,
    )
    register_failure_handler(app, ctx.reply_ephemeral)
    slash.register(app, ctx)
    actions.register(app, ctx)
    procedure.register(app, ctx)
    home.register(app, ctx)
    events.register(app, ctx)
    return app


class Readiness:
    """/readyz: Redis answers and Slack auth.test succeeds (cached briefly)."""

    def __init__(self, ctx: ServeContext) -> None:
        self.ctx = ctx
        self._slack_ok_at = 0.0

    async def check(self) -> dict[str, str]:
        problems: dict[str, str] = {}
        try:
            await self.ctx.store.ping()
        except Exception as exc:
            problems["redis"] = f"not reachable: {type(exc).__name__}"
        if time.monotonic() - self._slack_ok_at > AUTH_CACHE_SECONDS:
            try:
                resp = await self.ctx.slack.auth_test()
                if resp.get("ok"):
                    self._slack_ok_at = time.monotonic()
                else:
                    problems["slack"] = f"auth.test: {resp.get('error')}"
            except SlackApiError as exc:
                problems["slack"] = f"auth.test: {exc.response.get('error')}"
            except Exception as exc:
                problems["slack"] = f"auth.test failed: {type(exc).__name__}"
        return problems


def build_web_app(
    ctx: ServeContext,
    bolt: AsyncApp,
    liveness: Callable[[], dict[str, str]] | None = None,
) -> web.Application:
    """aiohttp routes: /slack/events, /alerts, /healthz, /readyz, /metrics.

    `liveness` names what is broken beyond repair in this process (the embedded Redis that
    could not be restarted); /healthz fails while it names something.
    """
    readiness = Readiness(ctx)
    serve_cfg = ctx.settings.file.serve
    secret = ctx.settings.env.SLACK_SIGNING_SECRET
    gate = SlackRequestGate(
        signing_secret=secret.get_secret_value() if secret is not None else None,
        seen=ctx.seen,
        metrics=ctx.metrics,
        reply=ctx.reply_ephemeral,
        max_concurrent=serve_cfg.max_concurrent_uploads,
        body_read_seconds=serve_cfg.body_read_seconds,
    )

    async def slack_events(request: web.Request) -> web.Response:
        payload = request[SLACK_PAYLOAD_KEY]
        bolt_req = CheckedBoltRequest(
            raw_body=request[SLACK_BODY_KEY],
            payload=payload,
            query=request.query_string,
            headers=dict(request.headers),
        )
        # Slack waits 3 s for the answer. A listener normally takes milliseconds (one Redis
        # transition, never a DC); one that waits out a Redis failover is answered empty at
        # the budget and finishes afterwards, its text going through response_url.
        dispatch = asyncio.ensure_future(bolt.async_dispatch(bolt_req))
        left = ACK_BUDGET_SECONDS - (time.monotonic() - request[SLACK_STARTED_KEY])
        done, _ = await asyncio.wait({dispatch}, timeout=max(0.1, left))
        if not done:
            log.warning("Slack request still running at the ack budget; acknowledged, goes on")
            ctx.finish_after_ack(dispatch, payload)
            return web.json_response({})
        return await to_aiohttp_response(dispatch.result())

    async def healthz(_: web.Request) -> web.Response:
        problems = liveness() if liveness is not None else {}
        if problems:
            return web.json_response({"status": "failing", "problems": problems}, status=503)
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        problems = await readiness.check()
        if problems:
            return web.json_response({"status": "not ready", "problems": problems}, status=503)
        return web.json_response({"status": "ready"})

    async def metrics(_: web.Request) -> web.Response:
        resp = web.Response(body=generate_latest(ctx.metrics.registry))
        resp.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return resp

    @web.middleware
    async def timing(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        start = time.perf_counter()
        try:
            return await handler(request)
        finally:
            route = request.match_info.route.resource
            name = route.canonical if route is not None else "unmatched"
            ctx.metrics.request_seconds.labels(name).observe(time.perf_counter() - start)

    app = web.Application(middlewares=[timing, gate.middleware], client_max_size=1024 * 1024)
    app[CTX_KEY] = ctx
    app[BOLT_KEY] = bolt
    app.router.add_post(SLACK_PATH, slack_events)
    app.router.add_post("/alerts", AlertWebhook(ctx).__call__)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app
