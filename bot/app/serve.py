"""`ad1411 serve`: HTTP (and Socket Mode when SLACK_APP_TOKEN is set). Never waits on a DC.

Shutdown (SIGTERM) has a time limit (`serve.shutdown_seconds`): the port closes first, then
requests in progress, deliveries in progress and replies get what is left of the limit;
whatever is still running is cancelled. Nothing durable is lost that way: messages Slack has
not got yet stay in the outbox in Redis for the next replica or start.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import time

import aiohttp
from aiohttp import web
from redis.asyncio import Redis
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_sdk.web.async_client import AsyncWebClient

from bot.app.slack import slack_client, slack_session
from bot.config import Settings, check_serve_secrets
from handlers.app import build_bolt_app, build_web_app
from handlers.context import ServeContext
from handlers.http_log import protocol_logger
from handlers.metrics import ServeMetrics
from handlers.notifier import IncidentNotifier
from handlers.procedure_messages import ProcedureMessages
from handlers.thread import IncidentThread
from handlers.transitions import ProcedureEngine
from handlers.workspace import Workspace
from state.connection import async_client, embedded, resolve_redis_url
from state.diagnoses import DiagnosisStore
from state.floods import FloodStore
from state.incidents import IncidentStore
from state.jobs import JobQueue
from state.outbox import SlackOutbox
from state.procedures import ProcedureStore
from state.seen import SeenOnce
from state.workers import WorkerRegistry

log = logging.getLogger(__name__)
SUPERVISE_SECONDS = 0.5
# An unread body is not drained for long after its answer: the connection closes instead.
LINGERING_SECONDS = 1.0


def build_context(
    settings: Settings,
    client: Redis,
    slack: AsyncWebClient,
    session: aiohttp.ClientSession | None = None,
) -> ServeContext:
    """Wire the stores, the thread poster and the notifier around one Redis and one Slack
    (both Slack clients on `session`'s connections when given)."""
    metrics = ServeMetrics()
    store = IncidentStore(client)
    thread = IncidentThread(slack)
    notifier = IncidentNotifier(
        store,
        SlackOutbox(client),
        FloodStore(client),
        # One Slack call per delivery attempt: the outbox retries, durably, on its own clock.
        client=slack_client(settings, retries=False, session=session),
        channel=settings.file.slack.channel,
        coalesce_seconds=settings.file.alerts.coalesce_seconds,
        metrics=metrics,
    )
    procedures = ProcedureStore(client)
    ttl = settings.file.approvals.ttl_seconds
    token = settings.env.SLACK_BOT_TOKEN
    return ServeContext(
        procedures=procedures,
        engine=ProcedureEngine(
            procedures, ttl, settings.file.approvals.obligation_deadline_seconds
        ),
        procedure_messages=ProcedureMessages(
            procedures,
            store,
            slack,
            thread,
            window_seconds=settings.file.procedure.message_update_seconds,
            ttl_seconds=ttl,
        ),
        settings=settings,
        slack=slack,
        metrics=metrics,
        store=store,
        diagnoses=DiagnosisStore(client),
        workers=WorkerRegistry(client),
        seen=SeenOnce(client),
        jobs=JobQueue(client),
        thread=thread,
        notifier=notifier,
        workspace=Workspace(
            slack,
            bot_token=token.get_secret_value() if token is not None else "",
            configured=settings.file.slack.workspaces,
        ),
    )


class ServeRuntime:
    """The running serve process: HTTP site, optional Socket Mode, Redis client, the delivery
    loop and (with the embedded Redis) its supervisor."""

    def __init__(self, settings: Settings, *, reuse_port: bool = False) -> None:
        self.settings = settings
        self.reuse_port = reuse_port
        self.port = 0
        self._redis: Redis | None = None
        self._runner: web.AppRunner | None = None
        self._socket: AsyncSocketModeHandler | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._warm_up: asyncio.Task[None] | None = None
        self._slack_session: aiohttp.ClientSession | None = None
        self.ctx: ServeContext | None = None

    @property
    def url(self) -> str:
        """Base URL of the HTTP endpoints."""
        return f"http://{self.settings.env.HOST}:{self.port}"

    async def start(self) -> ServeRuntime:
        """Connect to Redis, bind the port, and connect Socket Mode when configured."""
        env = self.settings.env
        check_serve_secrets(self.settings.file)
        self._redis = async_client(resolve_redis_url(env.REDIS_URL, env.AD1411_DATA_DIR))
        self._slack_session = slack_session()
        slack = slack_client(self.settings, session=self._slack_session)
        self.ctx = build_context(self.settings, self._redis, slack, self._slack_session)
        await self.ctx.jobs.ensure_group()
        bolt = build_bolt_app(self.ctx)
        self._runner = web.AppRunner(
            build_web_app(self.ctx, bolt, liveness=self.liveness),
            access_log=None,
            logger=protocol_logger(),
            lingering_time=LINGERING_SECONDS,
            auto_decompress=False,  # handlers/request_body.py decodes, under its own limits
            shutdown_timeout=self.settings.file.serve.shutdown_seconds / 2,
        )
        await self._runner.setup()
        await web.TCPSite(self._runner, env.HOST, env.PORT, reuse_port=self.reuse_port).start()
        addresses = self._runner.addresses
        self.port = int(addresses[0][1]) if addresses else env.PORT
        if env.SLACK_APP_TOKEN is not None:
            self._socket = AsyncSocketModeHandler(bolt, env.SLACK_APP_TOKEN.get_secret_value())
            await self._socket.connect_async()  # type: ignore[no-untyped-call]
        self._tasks.append(asyncio.create_task(self.ctx.notifier.run(), name="slack-delivery"))
        self._warm_up = asyncio.create_task(self.ctx.workspace.warm_up(), name="auth.test")
        if embedded() is not None:
            self._tasks.append(asyncio.create_task(self._supervise(), name="redis-supervisor"))
        return self

    def liveness(self) -> dict[str, str]:
        """What /healthz reports: the embedded Redis that cannot be brought back."""
        server = embedded()
        return server.problems() if server is not None else {}

    async def _supervise(self) -> None:
        server = embedded()
        while server is not None and not self._stopping.is_set():
            try:
                await server.supervise_once()
            except Exception:
                log.exception("embedded Redis supervision failed; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), SUPERVISE_SECONDS)

    async def stop(self) -> None:
        """Stop within serve.shutdown_seconds: close the port, finish or cancel what runs."""
        limit = self.settings.file.serve.shutdown_seconds
        end = time.monotonic() + limit
        self._stopping.set()
        if self._warm_up is not None:
            self._warm_up.cancel()
            await asyncio.gather(self._warm_up, return_exceptions=True)
        if self.ctx is not None:
            self.ctx.notifier.stop()
        if self._socket is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(max(0.1, end - time.monotonic())):
                    await self._socket.close_async()  # type: ignore[no-untyped-call]
        if self._runner is not None:
            await self._runner.cleanup()  # waits at most shutdown_seconds / 2 for requests
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=max(0.1, end - time.monotonic()))
            for task in pending:
                log.warning("shutdown limit reached: cancelling %s", task.get_name())
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.ctx is not None:
            cancelled = await self.ctx.drain(max(0.1, end - time.monotonic()))
            if cancelled:
                log.warning("shutdown limit reached: %d Slack reply(ies) not sent", cancelled)
        if self._slack_session is not None:
            await self._slack_session.close()
        if self._redis is not None:
            await self._redis.aclose()


async def run_serve(settings: Settings, *, reuse_port: bool = False) -> None:
    """Run until SIGTERM/SIGINT, then stop within serve.shutdown_seconds."""
    runtime = await ServeRuntime(settings, reuse_port=reuse_port).start()
    # What start-up built lives as long as the process: kept out of the collector, so a full
    # collection walks only what requests create (it stalled clicks by tens of ms before).
    gc.collect()
    gc.freeze()
    print(f"ad1411 serve listening on {runtime.url}", flush=True)
    if settings.env.SLACK_APP_TOKEN is not None:
        print("ad1411 serve connected in Socket Mode", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        began = time.monotonic()
        await runtime.stop()
        log.info("serve stopped in %.1f s", time.monotonic() - began)
