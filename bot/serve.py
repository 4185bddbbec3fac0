"""`ad1411 serve`: HTTP (and Socket Mode when SLACK_APP_TOKEN is set). Never waits on a DC."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings
from handlers.app import build_bolt_app, build_web_app
from handlers.context import ServeContext
from state.connection import async_client, resolve_redis_url

log = logging.getLogger(__name__)


def slack_client(settings: Settings) -> AsyncWebClient:
    """The bot's Web API client, with 429 and 5xx retries, pointed at SLACK_API_URL."""
    token = settings.env.SLACK_BOT_TOKEN
    client = AsyncWebClient(
        token=token.get_secret_value() if token is not None else None,
        base_url=settings.env.SLACK_API_URL,
        timeout=10,
    )
    client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=3))
    client.retry_handlers.append(AsyncServerErrorRetryHandler(max_retry_count=3))
    return client


async def run_serve(settings: Settings, ready: asyncio.Event | None = None) -> None:
    """Run until SIGTERM/SIGINT."""
    url = resolve_redis_url(settings.env.REDIS_URL, settings.env.AD1411_DATA_DIR)
    redis = async_client(url)
    ctx = ServeContext.build(settings, redis, slack_client(settings))
    await ctx.jobs.ensure_group()
    bolt = build_bolt_app(ctx)
    runner = web.AppRunner(build_web_app(ctx, bolt), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.env.HOST, settings.env.PORT)
    await site.start()
    port = runner.addresses[0][1] if runner.addresses else settings.env.PORT
    print(f"ad1411 serve listening on http://{settings.env.HOST}:{port}", flush=True)
    socket_handler: AsyncSocketModeHandler | None = None
    app_token = settings.env.SLACK_APP_TOKEN
    if app_token is not None:
        socket_handler = AsyncSocketModeHandler(bolt, app_token.get_secret_value())
        await socket_handler.connect_async()  # type: ignore[no-untyped-call]
        print("ad1411 serve connected in Socket Mode", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        if socket_handler is not None:
            await socket_handler.close_async()  # type: ignore[no-untyped-call]
        await ctx.drain()
        await runner.cleanup()
        await redis.aclose()
