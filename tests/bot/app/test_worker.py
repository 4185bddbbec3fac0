"""The worker's guard: every job under a deadline, every failure said in the thread and audited,
and the next job still runs. In-process worker, real redis-server, real Slack emulator."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis.asyncio

from bot.app.slack import slack_client
from bot.app.worker import JobKind, Worker
from bot.config import Settings
from lab.alert_samples import dsa_guid
from lab.slack_emulator import SlackEmulator
from state.audit import AuditLog
from state.diagnoses import DiagnosisRequest, DiagnosisStore
from state.incidents import AlertRecord, IncidentStore
from state.jobs import Job, JobQueue
from state.keys import GLOBAL_AUDIT, IncidentKeys, parse_incident_id
from state.workers import WorkerRegistry
from tests.handlers.serve_config import FOREST, write_config
from tests.inprocess import settings_for
from tests.waiting import until

pytestmark = [pytest.mark.slack]


@dataclass
class Running:
    worker: Worker
    client: redis.asyncio.Redis
    emulator: SlackEmulator
    incident_id: str
    ts: str

    def thread(self) -> list[str]:
        return [
            str(m.get("text", ""))
            for m in self.emulator.messages("C0INCIDENT")
            if m.get("thread_ts") == self.ts and m["ts"] != self.ts
        ]

    async def audit(self) -> list[dict[str, str]]:
        return [json.loads(line) async for line in AuditLog(self.client).export(GLOBAL_AUDIT)]


async def _incident(client: redis.asyncio.Redis, settings: Settings) -> tuple[str, str]:
    """An open incident whose message exists in the emulator's #incidents."""
    store = IncidentStore(client)
    intake = await store.record(
        AlertRecord(FOREST, dsa_guid(41), "dc1.corp.example.com", 8589, None, "event_text")
    )
    slack = slack_client(settings)
    posted = await slack.chat_postMessage(channel="C0INCIDENT", text="incident")
    ts = str(posted["ts"])
    await store.set_message(intake.incident_id, "C0INCIDENT", ts)
    return intake.incident_id, ts


@contextlib.asynccontextmanager
async def running_worker(settings: Settings, emulator: SlackEmulator) -> AsyncIterator[Running]:
    client = redis.asyncio.Redis.from_url(settings.env.REDIS_URL or "")
    incident_id, ts = await _incident(client, settings)
    worker = Worker(settings, client, slack_client(settings))
    yield Running(worker, client, emulator, incident_id, ts)
    await client.aclose()


@contextlib.asynccontextmanager
async def loop_of(worker: Worker) -> AsyncIterator[asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


@pytest.fixture
def settings(
    tmp_path: Path, redis_url: str, slack_emulator: SlackEmulator, slack_signing_secret: str
) -> Settings:
    cfg = write_config(tmp_path / "c.toml", extra="[worker]\nheartbeat_seconds = 0.2")
    return settings_for(slack_emulator, slack_signing_secret, redis_url, cfg)


async def test_a_job_that_raises_is_reported_and_the_next_job_runs(
    settings: Settings, slack_emulator: SlackEmulator
) -> None:
    async with running_worker(settings, slack_emulator) as r:
        ran: list[str] = []

        async def explode(job: Job) -> None:
            raise RuntimeError("boom in the handler")

        async def count(job: Job) -> None:
            ran.append(job.job_id)

        r.worker.kinds["explode"] = JobKind("Exploding job", explode, 5.0, "try again")
        r.worker.kinds["count"] = JobKind("Counting job", count, 5.0, "try again")
        jobs = JobQueue(r.client)
        await jobs.ensure_group()
        bad = await jobs.enqueue("explode", r.incident_id, "U0ONCALL1")
        good = await jobs.enqueue("count", r.incident_id, "U0ONCALL1")
        async with loop_of(r.worker) as task:
            await slack_emulator.wait_for_async(lambda: ran, timeout=30)
            assert not task.done()  # the same worker carried on
        assert ran == [good]
        said = [t for t in r.thread() if "failed" in t]
        assert len(said) == 1
        assert f"Exploding job of `{r.incident_id}` failed" in said[0]
        assert "RuntimeError: boom in the handler" in said[0]
        assert "What to do:" in said[0] and "bug" in said[0]
        failures = [e for e in await r.audit() if e["event"] == "job_failed"]
        assert [(e["job_id"], e["kind"], e["incident"]) for e in failures] == [
            (bad, "explode", r.incident_id)
        ]
        # Both jobs are acknowledged: nothing is left pending for another worker.
        assert (await r.client.xpending("ad1411:jobs", "workers"))["pending"] == 0


class SilentDirectory:
    """A TCP listener on loopback that accepts connections and never says a word."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.writers.append(writer)

        self.server = await asyncio.start_server(hold, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        for w in self.writers:
            w.close()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def test_a_directory_that_never_answers_ends_at_the_deadline(
    tmp_path: Path, redis_url: str, slack_emulator: SlackEmulator, slack_signing_secret: str
) -> None:
    silent = SilentDirectory()
    port = await silent.start()
    extra = "\n".join(
        [
            "[worker]",
            "diagnosis_deadline_seconds = 1.5",
            f'[[forests]]\nname = "{FOREST}"\nldap_hosts = ["dc1.{FOREST}"]',
            '[forests.ldap]\ntls = "none"\ntimeout_seconds = 60',
            f'[[forests.dcs]]\nfqdn = "dc1.{FOREST}"\naddress = "127.0.0.1"\nldap_port = {port}',
        ]
    )
    cfg = write_config(tmp_path / "c.toml", forests=(), extra=extra)
    settings = settings_for(slack_emulator, slack_signing_secret, redis_url, cfg)
    try:
        async with running_worker(settings, slack_emulator) as r:
            outcome, _ = await DiagnosisStore(r.client).request(
                r.incident_id, "U0ONCALL1", pending_seconds=600
            )
            assert outcome is DiagnosisRequest.QUEUED
            async with loop_of(r.worker):
                said = await slack_emulator.wait_for_async(
                    lambda: [t for t in r.thread() if "failed" in t], timeout=30
                )
            assert silent.writers, "the worker never reached the directory"
            assert f"Diagnosis of `{r.incident_id}` failed" in said[0]
            assert "deadline of 1.5 s" in said[0]
            assert "Check that the DCs answer" in said[0]
            events = [e["event"] for e in await r.audit()]
            assert "diagnosis_failed" in events
            tag, _ = parse_incident_id(r.incident_id)
            assert await r.client.get(IncidentKeys(tag).diagnosis_pending) is None
    finally:
        await silent.stop()


async def test_heartbeat_is_fresh_while_running_and_gone_after(
    settings: Settings, slack_emulator: SlackEmulator
) -> None:
    async with running_worker(settings, slack_emulator) as r:
        registry = WorkerRegistry(r.client)
        async with loop_of(r.worker):
            alive = await until(lambda: registry.alive(5), what="a fresh heartbeat")
            assert alive[0].consumer == r.worker.consumer
        assert await registry.alive(5) == []
