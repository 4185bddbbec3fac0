"""`ad1411 worker`: takes jobs from Redis, runs each under a deadline, reports in the thread.

Every job runs inside one guard: whatever happens (a DC that never answers, a bug), the
failure is audited, the incident thread says what failed and what to do next, the job is
acked, and the worker carries on with the next one. A heartbeat in Redis tells serve (and
`ad1411 worker --check`) that someone will run what is queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import redis.asyncio
from redis.exceptions import RedisError
from slack_sdk.web.async_client import AsyncWebClient

from bot.app.slack import slack_client
from bot.app.step_runner import StepRunner
from bot.config import ForestSection, Settings
from bot.directory.client import DirectoryClient
from bot.directory.gather import diagnose
from bot.directory.model import Diagnosis, diagnosis_to_json
from bot.errors import Ad1411Error, ConfigError, DirectoryError
from bot.procedure.approval import Actor
from bot.procedure.planner import PlanRefused, build_plan
from bot.procedure.rules import Act, Intent, due_obligation_acts
from handlers.procedure_messages import ProcedureMessages
from handlers.render.diagnosis import diagnosis_headline, diagnosis_text
from handlers.render.procedure import mention
from handlers.render.text import mrkdwn_escape
from handlers.thread import IncidentThread
from handlers.transitions import Acted, Busy, ProcedureEngine
from state.audit import AuditLog
from state.connection import async_client, resolve_redis_url
from state.diagnoses import DiagnosisStore
from state.durability import is_transient, until_durable
from state.incidents import Incident, IncidentStore
from state.jobs import Job, JobQueue
from state.procedures import DcLocks, ProcedureStore
from state.workers import WorkerRegistry

log = logging.getLogger(__name__)
T = TypeVar("T")
# How long to wait before the next try when Redis itself fails.
REDIS_RETRY_SECONDS = 1.0
MAX_DETAIL_CHARS = 300
# How long a result waits for its incident's message to be recorded before it is said anyway.
MESSAGE_WAIT_SECONDS = 60.0


class JobFailed(Ad1411Error):
    """A job ended without its result, for a reason the operator can act on."""

    def __init__(self, reason: str, next_step: str) -> None:
        self.reason = reason
        self.next_step = next_step
        super().__init__(f"{reason} {next_step}")


@dataclass(frozen=True)
class JobKind:
    """How to run one kind of job: its handler, its deadline, and what it is called.

    `failed` records a failure in the job's own state (a step goes to failed, so Retry
    shows); without it the failure is audited as a job failure.
    """

    title: str
    run: Callable[[Job], Awaitable[None]]
    deadline_seconds: float
    retry_hint: str
    failed: Callable[[Job, str], Awaitable[None]] | None = None


def worker_name() -> str:
    """This process's consumer name: host and PID."""
    return f"{socket.gethostname()}-{os.getpid()}"


class Worker:
    """One consumer of the job stream."""

    def __init__(self, settings: Settings, client: redis.asyncio.Redis, slack: AsyncWebClient):
        self.settings = settings
        self.incidents = IncidentStore(client)
        self.diagnoses = DiagnosisStore(client)
        self.jobs = JobQueue(client)
        self.registry = WorkerRegistry(client)
        self.audit = AuditLog(client)
        self.thread = IncidentThread(slack)
        self.consumer = worker_name()
        self.procedures = ProcedureStore(client)
        ttl = settings.file.approvals.ttl_seconds
        self.engine = ProcedureEngine(
            self.procedures, ttl, settings.file.approvals.obligation_deadline_seconds
        )
        self.messages = ProcedureMessages(
            self.procedures,
            self.incidents,
            slack,
            self.thread,
            window_seconds=settings.file.procedure.message_update_seconds,
            ttl_seconds=ttl,
        )
        self.steps = StepRunner(
            settings,
            engine=self.engine,
            procedures=self.procedures,
            incidents=self.incidents,
            messages=self.messages,
            thread=self.thread,
            locks=DcLocks(client),
            consumer=self.consumer,
            is_alive=self._alive,
        )
        cfg = settings.file.worker
        self.kinds: dict[str, JobKind] = {
            "diagnose": JobKind(
                title="Diagnosis",
                run=self._diagnose,
                deadline_seconds=cfg.diagnosis_deadline_seconds,
                retry_hint="press *Diagnose* again (or `/ad1411 diagnose <incident>`)",
            ),
            "step": JobKind(
                title="A procedure step",
                run=self.steps.run,
                deadline_seconds=settings.file.procedure.step_deadline_seconds,
                retry_hint="press *Retry* on the step in the procedure message",
                failed=self.steps.fail,
            ),
        }
        self.jobs_done = 0

    # -- the loop ------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Take jobs until stop is set; reclaim those of dead workers first."""
        cfg = self.settings.file.worker
        await self.jobs.ensure_group()
        heartbeat = asyncio.create_task(self._heartbeat(stop))
        sweeper = asyncio.create_task(self._sweep(stop))
        print(f"ad1411 worker {self.consumer} ready", flush=True)
        try:
            while not stop.is_set():
                try:
                    reclaimed = await self.jobs.reclaim(
                        self.consumer, int(cfg.reclaim_idle_seconds * 1000)
                    )
                    for job in reclaimed:
                        await self.handle(job)
                    taken = await self.jobs.take(self.consumer, block_ms=500)
                except RedisError as exc:
                    log.error("Redis failed (%s); retrying in %.0f s", exc, REDIS_RETRY_SECONDS)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), REDIS_RETRY_SECONDS)
                    continue
                if taken is not None:
                    await self.handle(taken)
        finally:
            for task in (heartbeat, sweeper):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self.steps.drain()
            with contextlib.suppress(RedisError):
                await self.registry.leave(self.consumer)

    async def _alive(self, consumer: str) -> bool:
        """Whether a worker's heartbeat is fresh (this worker always is)."""
        if consumer == self.consumer:
            return True
        stale = self.settings.file.worker.heartbeat_stale_seconds
        return any(b.consumer == consumer for b in await self.registry.alive(stale))

    async def _heartbeat(self, stop: asyncio.Event) -> None:
        interval = self.settings.file.worker.heartbeat_seconds
        while not stop.is_set():
            try:
                await self.registry.beat(self.consumer)
            except RedisError as exc:
                log.warning("heartbeat not written: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

    async def _sweep(self, stop: asyncio.Event) -> None:
        """Show what a dead process left unshown, and chase temporary changes still in place."""
        interval = self.settings.file.procedure.sweep_seconds
        while not stop.is_set():
            try:
                for procedure_id in await self.procedures.active_ids():
                    await self._obligations(procedure_id)
                    if await self.procedures.is_dirty(procedure_id):
                        await self.messages.changed(procedure_id)
            except RedisError as exc:
                log.warning("sweep skipped: %s", exc)
            except Exception:
                log.exception("sweep failed; it runs again in %.0f s", interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

    async def _obligations(self, procedure_id: str) -> None:
        """Remind halfway, escalate at the deadline (one worker does it: a transition)."""
        proc = await self.engine.procedure(procedure_id)
        if proc is None:
            return
        actor = Actor("", worker=self.consumer)
        for act, step in due_obligation_acts(proc, int(time.time() * 1000)):
            outcome = await self.engine.act(procedure_id, Intent(act, step), actor)
            if not isinstance(outcome, Acted):
                continue
            inc = await self.incidents.get(proc.incident_id)
            if inc is None:
                continue
            await self.thread.say(inc, outcome.change.say)
            if act is Act.ESCALATE and inc.channel:
                approvers = mention(self.settings.file.slack.approvers)
                await self.thread.announce(inc.channel, f"{approvers} {outcome.change.say}")
            await self.messages.changed(procedure_id)

    # -- the guard -----------------------------------------------------------------------

    async def handle(self, job: Job) -> str:
        """Run one job under its deadline; report any failure; always ack. Returns the outcome."""
        begin = time.monotonic()
        kind = self.kinds.get(job.kind)
        outcome = "done"
        try:
            if kind is None:
                outcome = "unknown-kind"
                log.error("job %s has unknown kind %r; dropped", job.job_id, job.kind[:40])
                await self.audit.append_global(
                    "job_dropped", job_id=job.job_id, kind=job.kind[:40], incident=job.incident_id
                )
            else:
                outcome = await self._guarded(kind, job)
        except RedisError as exc:
            # The report itself could not be written: leave the job pending for a retry.
            log.error("job %s: Redis failed (%s); left for reclaim", job.job_id, exc)
            outcome = "redis-error"
            return outcome
        except asyncio.CancelledError:
            outcome = "cancelled"  # shutdown: not acknowledged, another worker reclaims it
            raise
        finally:
            log.info(
                "job %s kind=%s incident=%s outcome=%s duration=%.3fs",
                job.job_id,
                job.kind[:40],
                job.incident_id[:40],
                outcome,
                time.monotonic() - begin,
            )
        try:
            await self.jobs.ack(job)
        except RedisError as exc:
            # Harmless: a reclaimed run finds the job already finished and says nothing again.
            log.error("job %s: ack failed (%s); it will be reclaimed", job.job_id, exc)
        self.jobs_done += 1
        return outcome

    async def _guarded(self, kind: JobKind, job: Job) -> str:
        try:
            await asyncio.wait_for(kind.run(job), kind.deadline_seconds)
        except TimeoutError:
            await self._failed(
                kind,
                job,
                f"it did not finish within its deadline of {kind.deadline_seconds:g} s "
                "(a DC that accepts connections but does not answer?).",
                "Check that the DCs answer LDAP/WinRM from the worker's host, then "
                + kind.retry_hint
                + ".",
            )
            return "timed-out"
        except JobFailed as exc:
            await self._failed(kind, job, exc.reason, exc.next_step)
            return "failed"
        except Exception as exc:
            if isinstance(exc, RedisError) and is_transient(exc):
                # Redis could not take or confirm a report even through its retries: the job
                # stays pending, and its next run (reclaimed) finds what had taken effect.
                raise
            log.exception("job %s (%s) raised", job.job_id, job.kind)
            detail = f"{type(exc).__name__}: {exc}"[:MAX_DETAIL_CHARS]
            await self._failed(
                kind,
                job,
                f"the worker hit an unexpected error ({detail}). Nothing further was done "
                "for this job.",
                "This is a bug in the bot: tell its maintainers (the worker's log has the "
                f"traceback of job {job.job_id}), then {kind.retry_hint}.",
            )
            return "crashed"
        return "done"

    async def _failed(self, kind: JobKind, job: Job, reason: str, next_step: str) -> None:
        """Audit the failure and say in the incident thread what failed and what to do next."""
        if kind.failed is not None:
            await kind.failed(job, f"{reason} {next_step}")
            return
        # Read before finishing: once the finish is recorded, nothing may stop the saying.
        inc = await until_durable(lambda: self._incident(job), what=f"incident of {job.job_id}")
        if job.kind == "diagnose":
            first = await self.diagnoses.finish(
                job.incident_id,
                job.job_id,
                user_id=job.requested_by,
                outcome="failed",
                result=None,
                detail=reason[:MAX_DETAIL_CHARS],
                stream_id=job.stream_id,
            )
            if not first:
                return  # another run of this job already finished and said so
        else:
            await self.audit.append_global(
                "job_failed",
                job_id=job.job_id,
                kind=job.kind,
                incident=job.incident_id,
                user=job.requested_by,
                detail=reason[:MAX_DETAIL_CHARS],
            )
        if inc is not None:
            await self.thread.say(
                await self._with_message(inc),
                f":x: {kind.title} of `{inc.id}` failed: {mrkdwn_escape(reason)}\n"
                f"*What to do:* {next_step}",
            )

    async def _with_message(self, inc: Incident) -> Incident:
        """The incident once its Slack message is recorded (its poster may still be at it, or
        waiting out a Redis failover); as it is after MESSAGE_WAIT_SECONDS otherwise."""
        deadline = time.monotonic() + MESSAGE_WAIT_SECONDS
        while inc.ts is None and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            with contextlib.suppress(RedisError):
                inc = await self.incidents.get(inc.id) or inc
        return inc

    async def _incident(self, job: Job) -> Incident | None:
        try:
            return await self.incidents.get(job.incident_id)
        except ValueError:
            return None

    # -- job kinds -----------------------------------------------------------------------

    async def _diagnose(self, job: Job) -> None:
        inc = await until_durable(lambda: self._incident(job), what=f"incident of {job.job_id}")
        if inc is None:
            raise JobFailed(
                f"incident {job.incident_id[:40]!r} does not exist.", "See `/ad1411 list`."
            )
        forest = self.settings.file.forest(inc.forest)
        if forest is None:
            raise JobFailed(
                f"forest `{inc.forest}` is not configured.",
                "Add it under [[forests]] in the config file, restart the worker, then "
                "press *Diagnose* again.",
            )
        try:
            result = await in_daemon_thread(_run_diagnosis, forest, inc)
        except (DirectoryError, ConfigError) as exc:
            raise JobFailed(
                f"{exc} Nothing was changed.",
                "Fix the directory access, then press *Diagnose* again.",
            ) from None
        first = await self.diagnoses.finish(
            inc.id,
            job.job_id,
            user_id=job.requested_by,
            outcome="done",
            result=diagnosis_to_json(result),
            detail=f"cause={result.cause.value} ldap_queries={result.queries}",
            stream_id=job.stream_id,
        )
        if not first:
            log.info("job %s had already finished (a reclaimed run); not posted again", job.job_id)
            return
        await self.thread.say(
            await self._with_message(inc),
            f"*Diagnosis of `{inc.id}`* (requested by <@{job.requested_by}>)\n"
            + diagnosis_text(result),
        )
        if job.extra.get("then") == "start":
            await self._start_procedure(inc, job, result)

    async def _start_procedure(self, inc: Incident, job: Job, result: Diagnosis) -> None:
        """Start the procedure someone asked for, now that a fresh diagnosis is in."""
        try:
            plan = build_plan(result, self.steps.policy())
        except PlanRefused as exc:
            await self.thread.say(inc, f"The procedure cannot start: {mrkdwn_escape(str(exc))}")
            return
        outcome = await self.engine.start(
            incident_id=inc.id,
            plan=plan,
            # The roles were checked when the person pressed Start procedure.
            actor=Actor(job.requested_by, responder=True),
            diagnosis_at_ms=int(time.time() * 1000),
            diagnosis_summary=diagnosis_headline(result),
            once=f"start:{job.job_id}",
        )
        if isinstance(outcome, Acted):
            await self.messages.changed(outcome.procedure.id)
        elif isinstance(outcome, Busy):
            await self.thread.say(inc, f"Procedure `{outcome.procedure_id}` is already running.")


def in_daemon_thread(fn: Callable[..., T], *args: object) -> Awaitable[T]:
    """Run blocking work (LDAP) in a daemon thread: a worker stopping at its shutdown limit
    must not wait for a DC that never answers (the default executor would hold the exit)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def run() -> None:
        try:
            outcome: tuple[T | None, BaseException | None] = (fn(*args), None)
        except BaseException as exc:  # handed to the awaiting task
            outcome = (None, exc)
        # The loop is gone when the worker stopped meanwhile: nobody waits for the result.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle, future, *outcome)

    threading.Thread(target=run, name="worker-blocking", daemon=True).start()
    return future


def _settle(future: asyncio.Future[T], result: T | None, exc: BaseException | None) -> None:
    if future.done():
        return  # the job was cancelled meanwhile (shutdown)
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)  # type: ignore[arg-type]


def _run_diagnosis(forest: ForestSection, inc: Incident) -> Diagnosis:
    """The LDAP part, in a worker thread; the client is closed whatever happens."""
    directory = DirectoryClient.for_forest(forest)
    try:
        return diagnose(
            directory,
            forest=inc.forest,
            target_dsa_guid=inc.dsa_guid,
            reporting_dcs=sorted(inc.reporters),
        )
    finally:
        directory.close()


async def run_worker(settings: Settings) -> None:
    """Run a worker until SIGTERM/SIGINT; the job in progress then gets
    worker.shutdown_seconds, after which it is cancelled and stays queued (unacknowledged)
    for the next worker to reclaim."""
    url = resolve_redis_url(settings.env.REDIS_URL, settings.env.AD1411_DATA_DIR)
    client = async_client(url)
    worker = Worker(settings, client, slack_client(settings))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    running = asyncio.create_task(worker.run(stop))
    try:
        await asyncio.wait(
            {running, asyncio.create_task(stop.wait())}, return_when="FIRST_COMPLETED"
        )
        _, pending = await asyncio.wait({running}, timeout=settings.file.worker.shutdown_seconds)
        if pending:
            log.warning(
                "shutdown limit reached: the job in progress stays queued for another worker"
            )
            running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    finally:
        await client.aclose()


async def check_workers(settings: Settings, *, this_host_only: bool = False) -> int:
    """`ad1411 worker --check`: 0 when a worker heartbeat is fresh, else 1 (prints which).

    With `this_host_only`, only workers of this host (a pod, a container) count.
    """
    url = resolve_redis_url(settings.env.REDIS_URL, settings.env.AD1411_DATA_DIR)
    client = async_client(url)
    stale = settings.file.worker.heartbeat_stale_seconds
    try:
        alive = await WorkerRegistry(client).alive(stale)
    except RedisError as exc:
        print(f"ad1411: cannot read worker heartbeats from Redis: {exc}")
        return 1
    finally:
        await client.aclose()
    if this_host_only:
        prefix = socket.gethostname() + "-"
        alive = [beat for beat in alive if beat.consumer.startswith(prefix)]
    if not alive:
        where = f" on {socket.gethostname()}" if this_host_only else ""
        print(
            f"ad1411: no worker{where} has reported in the last {stale:g} s; queued diagnoses and "
            "steps will not run. Start `ad1411 worker` (and read its log if it stopped)."
        )
        return 1
    for beat in alive:
        print(f"worker {beat.consumer}: alive, last heartbeat {beat.age_seconds:.1f} s ago")
    return 0
