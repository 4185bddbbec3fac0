"""The serve process's two faces: the Bolt app and the aiohttp routes around it."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError

from handlers import actions, events, home, procedure, slash
from handlers.context import ServeContext
from handlers.webhook import CTX_KEY, post_alerts

log = logging.getLogger(__name__)
BOLT_KEY: web.AppKey[AsyncApp] = web.AppKey("bolt", AsyncApp)
AUTH_CACHE_SECONDS = 30.0


def build_bolt_app(ctx: ServeContext) -> AsyncApp:
    """Bolt app whose listeners ack at once and only touch Redis before acking."""
    secret = ctx.settings.env.SLACK_SIGNING_SECRET
    app = AsyncApp(
        client=ctx.slack,
        signing_secret=secret.get_secret_value() if secret is not None else "",
        process_before_response=True,
        raise_error_for_unhandled_request=False,
    )
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


def build_web_app(ctx: ServeContext, bolt: AsyncApp) -> web.Application:
    """aiohttp routes: /slack/events, /alerts, /healthz, /readyz, /metrics."""
    readiness = Readiness(ctx)

    async def slack_events(request: web.Request) -> web.Response:
        bolt_resp = await bolt.async_dispatch(await to_bolt_request(request))
        ctx.metrics.slack_requests.labels(str(bolt_resp.status)).inc()
        return await to_aiohttp_response(bolt_resp)

    async def healthz(_: web.Request) -> web.Response:
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

    app = web.Application(middlewares=[timing], client_max_size=1024 * 1024)
    app[CTX_KEY] = ctx
    app[BOLT_KEY] = bolt
    app.router.add_post("/slack/events", slack_events)
    app.router.add_post("/alerts", post_alerts)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app
