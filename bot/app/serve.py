"""`ad1411 serve`: HTTP (and Socket Mode when SLACK_APP_TOKEN is set). Never waits on a DC."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from aiohttp import web
from redis.asyncio import Redis
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_sdk.web.async_client import AsyncWebClient

from bot.app.slack import slack_client
from bot.config import Settings
from handlers.app import build_bolt_app, build_web_app
from handlers.context import ServeContext
from handlers.metrics import ServeMetrics
from handlers.notifier import IncidentNotifier
from handlers.procedure_messages import ProcedureMessages
from handlers.thread import IncidentThread
from handlers.transitions import ProcedureEngine
from state.connection import async_client, resolve_redis_url
from state.diagnoses import DiagnosisStore
from state.incidents import IncidentStore
from state.jobs import JobQueue
from state.procedures import ProcedureStore
from state.seen import SeenOnce
from state.workers import WorkerRegistry

log = logging.getLogger(__name__)


def build_context(settings: Settings, client: Redis, slack: AsyncWebClient) -> ServeContext:
    """Wire the stores, the thread poster and the notifier around one Redis and one Slack."""
    metrics = ServeMetrics()
    store = IncidentStore(client)
    thread = IncidentThread(slack)
    notifier = IncidentNotifier(
        store,
        client=slack,
        thread=thread,
        channel=settings.file.slack.channel,
        coalesce_seconds=settings.file.alerts.coalesce_seconds,
        metrics=metrics,
    )
    procedures = ProcedureStore(client)
    ttl = settings.file.approvals.ttl_seconds
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
    )


class ServeRuntime:
    """The running serve process: HTTP site, optional Socket Mode, Redis client."""

    # How often serve posts the messages of open incidents that have none (a replica died
    # between recording an incident and posting it, or Slack refused the post).
    missing_sweep_seconds = 30.0

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = 0
        self._stop_sweep = asyncio.Event()
        self._sweep: asyncio.Task[None] | None = None
        self._redis: Redis | None = None
        self._runner: web.AppRunner | None = None
        self._socket: AsyncSocketModeHandler | None = None
        self.ctx: ServeContext | None = None

    @property
    def url(self) -> str:
        """Base URL of the HTTP endpoints."""
        return f"http://{self.settings.env.HOST}:{self.port}"

    async def start(self) -> ServeRuntime:
        """Connect to Redis, bind the port, and connect Socket Mode when configured."""
        env = self.settings.env
        self._redis = async_client(resolve_redis_url(env.REDIS_URL, env.AD1411_DATA_DIR))
        self.ctx = build_context(self.settings, self._redis, slack_client(self.settings))
        await self.ctx.jobs.ensure_group()
        bolt = build_bolt_app(self.ctx)
        self._runner = web.AppRunner(build_web_app(self.ctx, bolt), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, env.HOST, env.PORT).start()
        addresses = self._runner.addresses
        self.port = int(addresses[0][1]) if addresses else env.PORT
        if env.SLACK_APP_TOKEN is not None:
            self._socket = AsyncSocketModeHandler(bolt, env.SLACK_APP_TOKEN.get_secret_value())
            await self._socket.connect_async()  # type: ignore[no-untyped-call]
        self._sweep = asyncio.create_task(self._sweep_missing(self.ctx))
        return self

    async def _sweep_missing(self, ctx: ServeContext) -> None:
        """Post missing incident messages at start, then every missing_sweep_seconds."""
        while not self._stop_sweep.is_set():
            try:
                await ctx.notifier.post_missing()
            except Exception:
                log.exception("posting missing incident messages failed; next try later")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_sweep.wait(), self.missing_sweep_seconds)

    async def stop(self) -> None:
        """Finish background Slack work, close sockets and Redis."""
        self._stop_sweep.set()
        if self._sweep is not None:
            await self._sweep
        if self._socket is not None:
            await self._socket.close_async()  # type: ignore[no-untyped-call]
        if self.ctx is not None:
            await self.ctx.drain()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._redis is not None:
            await self._redis.aclose()


async def run_serve(settings: Settings) -> None:
    """Run until SIGTERM/SIGINT."""
    runtime = await ServeRuntime(settings).start()
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
        await runtime.stop()
