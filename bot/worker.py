"""`ad1411 worker`: takes jobs from Redis, runs them against the DCs, reports in the thread."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import signal
import socket
import time

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings
from bot.diagnosis import Diagnosis, diagnose
from bot.directory import DirectoryClient
from bot.errors import ConfigError, DirectoryError
from bot.serve import slack_client
from handlers.blocks import mrkdwn_escape
from state.connection import async_client, resolve_redis_url
from state.incidents import Incident, IncidentStore
from state.jobs import Job, JobQueue
from state.keys import IncidentKeys

log = logging.getLogger(__name__)
RECLAIM_IDLE_MS = 60_000
DIAGNOSIS_TTL_SECONDS = 7 * 86_400


class Worker:
    """One consumer of the job stream."""

    def __init__(self, settings: Settings, store: IncidentStore, slack: AsyncWebClient) -> None:
        self.settings = settings
        self.store = store
        self.jobs = JobQueue(store.client)
        self.slack = slack
        self.consumer = f"{socket.gethostname()}-{os.getpid()}"

    async def run(self, stop: asyncio.Event) -> None:
        """Take jobs until stop is set; reclaim those of dead workers first."""
        await self.jobs.ensure_group()
        print(f"ad1411 worker {self.consumer} ready", flush=True)
        while not stop.is_set():
            for job in await self.jobs.reclaim(self.consumer, RECLAIM_IDLE_MS):
                await self.handle(job)
            taken = await self.jobs.take(self.consumer, block_ms=500)
            if taken is not None:
                await self.handle(taken)

    async def handle(self, job: Job) -> None:
        """Run one job; a job that cannot run is reported, acked and never retried blindly."""
        try:
            if job.kind == "diagnose":
                await self._diagnose(job)
            else:
                log.error("job %s has unknown kind %r; dropped", job.job_id, job.kind)
        finally:
            await self.jobs.ack(job)

    async def _say(self, inc: Incident, text: str) -> None:
        if inc.channel is None or inc.ts is None:
            log.warning("incident %s has no Slack message yet; not posted: %s", inc.id, text)
            return
        try:
            await self.slack.chat_postMessage(
                channel=inc.channel,
                thread_ts=inc.ts,
                text=text[:3000],
                blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": text[:2900]}}],
            )
        except SlackApiError as exc:
            log.error("posting to incident %s failed: %s", inc.id, exc.response.get("error"))

    async def _diagnose(self, job: Job) -> None:
        inc = await self.store.get(job.incident_id)
        if inc is None:
            log.error("diagnosis job for unknown incident %s", job.incident_id)
            return
        keys = IncidentKeys(inc.tag)
        try:
            forest = self.settings.file.forest(inc.forest)
            if forest is None:
                await self._say(
                    inc, f"Diagnosis impossible: forest `{inc.forest}` is not configured."
                )
                return
            started = time.monotonic()
            try:
                directory = DirectoryClient.for_forest(forest)
                try:
                    result: Diagnosis = await asyncio.to_thread(
                        diagnose,
                        directory,
                        forest=inc.forest,
                        target_dsa_guid=inc.dsa_guid,
                        reporting_dcs=sorted(inc.reporters),
                    )
                finally:
                    directory.close()
            except (DirectoryError, ConfigError) as exc:
                await self.store.audit.append_global(
                    "diagnosis_failed",
                    incident=inc.id,
                    user=job.requested_by,
                    error=type(exc).__name__,
                )
                await self._say(
                    inc,
                    f":x: Diagnosis of `{inc.id}` failed: {mrkdwn_escape(str(exc))}\n"
                    "Nothing was changed. Fix the directory access, then press *Diagnose* again.",
                )
                return
            summary = result.summary_text()
            await self.store.client.set(keys.diagnosis, summary.encode(), ex=DIAGNOSIS_TTL_SECONDS)
            await self.store.audit.append_global(
                "diagnosis_done",
                incident=inc.id,
                user=job.requested_by,
                cause=str(result.cause),
                ldap_queries=str(result.queries),
                digest=hashlib.sha256(summary.encode()).hexdigest()[:16],
                seconds=f"{time.monotonic() - started:.3f}",
            )
            await self._say(
                inc, f"*Diagnosis of `{inc.id}`* (requested by <@{job.requested_by}>)\n{summary}"
            )
        finally:
            await self.store.client.delete(keys.diagnosis_pending)


async def run_worker(settings: Settings) -> None:
    """Run a worker until SIGTERM/SIGINT."""
    url = resolve_redis_url(settings.env.REDIS_URL, settings.env.AD1411_DATA_DIR)
    redis = async_client(url)
    worker = Worker(settings, IncidentStore(redis), slack_client(settings))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await worker.run(stop)
    finally:
        await redis.aclose()
