"""The worker's run of one procedure step: claim, lock, precheck, apply, verify, report.

The rules of what a reading means are pure (`bot.procedure.outcomes`); this module only does
the I/O: commands over WinRM (pypsrp, from the fixed templates), directory operations over
LDAP, the DC's change lock, and the reports (transitions, audit, thread).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bot.config import ForestSection, Settings
from bot.directory.client import DirectoryClient
from bot.directory.gather import diagnose
from bot.directory.model import Diagnosis
from bot.errors import Ad1411Error
from bot.procedure import outcomes
from bot.procedure.approval import Actor
from bot.procedure.model import Procedure, ProcedureStatus, StepStatus
from bot.procedure.operations import LdapAction, LdapOp, Op, Prior, Reads, RemoteOp, ops_for
from bot.procedure.plan import ApprovalPolicy, Plan, PlannedStep, resolved
from bot.procedure.planner import PlanRefused, build_plan
from bot.procedure.readings import (
    AddLinkReading,
    DiagnosisReading,
    KccReading,
    Neighbor,
    OptionsReading,
    Reading,
    RegistryReading,
    ReplSummaryReading,
    RestartReading,
    ServerReferenceReading,
    ShowReplReading,
    WriteReading,
)
from bot.procedure.rules import Act, Intent, StepResult
from bot.procedure.steps import StepKind
from bot.remote.restart import restart_and_wait
from bot.remote.winrm import CommandResult, WinrmExecutor
from bot.windows.reg import parse_reg_add, parse_reg_delete, parse_reg_query
from bot.windows.repadmin import (
    AddLinkOutcome,
    parse_repadmin_add,
    parse_repadmin_kcc,
    parse_repadmin_options,
    parse_replsummary,
    parse_showrepl,
)
from handlers.procedure_messages import ProcedureMessages
from handlers.render.procedure import result_blocks
from handlers.render.text import mrkdwn_escape
from handlers.report_poster import post_report
from handlers.thread import IncidentThread
from handlers.transitions import Acted, ProcedureEngine, Refused
from state.audit import AuditLog
from state.durability import until_durable
from state.incidents import IncidentStore
from state.jobs import Job
from state.procedures import AuditEntry, DcLocks, ProcedureStore

log = logging.getLogger(__name__)
LOCK_POLL_SECONDS = 0.5
# A held lock is renewed every third of this; a dead holder's lapses within it.
LOCK_TTL_SECONDS = 60.0
EXCERPT_CHARS = 500


class StepAborted(Ad1411Error):
    """The procedure ended while the step waited."""


@dataclass
class RunLog:
    """What one run did: readings in order, command outputs, the last exit code."""

    applied: list[Reading] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    exit_code: int | None = None
    diagnosis: Diagnosis | None = None

    def text(self) -> str:
        """Every command's output, one after the other."""
        return "\n".join(self.outputs)


class OperationRunner:
    """Runs one procedure's operations: WinRM commands and directory operations (in threads)."""

    def __init__(
        self,
        forest: ForestSection,
        settings: Settings,
        record: Callable[[RemoteOp, CommandResult], Awaitable[None]],
    ) -> None:
        self.forest = forest
        self.settings = settings
        self.record = record
        self.executor = WinrmExecutor.for_forest(forest)

    async def run(self, op: Op, log_: RunLog) -> Reading:
        """One operation, read through its parser."""
        if isinstance(op, LdapOp):
            return await asyncio.to_thread(self._ldap, op, log_)
        if op.reads is Reads.RESTART:
            started = datetime.now(UTC)
            reading = await asyncio.to_thread(self._restart, op)
            story = (
                f"restart issued; WinRM went down, came back, LDAP answers: {reading.seconds:.0f} s"
            )
            # restart_and_wait raises unless shutdown exited 0 and the DC came back.
            await self.record(
                op,
                CommandResult(
                    op.dc, op.command.command_line(), story, "", 0, started, reading.seconds
                ),
            )
            log_.outputs.append(f"> {op.line}\n{story}")
            log_.exit_code = 0
            return reading
        result = await asyncio.to_thread(self.executor.run, op.dc, op.command, check=False)
        await self.record(op, result)
        log_.outputs.append(f"> {op.line}\n{result.stdout}{result.stderr}")
        log_.exit_code = result.exit_code
        return _read(op, result)

    def _restart(self, op: RemoteOp) -> RestartReading:
        def probe() -> bool:
            with DirectoryClient.for_forest(self.forest) as client:
                client.root_dse(dc=op.dc)
            return True

        outcome = restart_and_wait(
            self.executor,
            op.dc,
            op.command,
            ldap_probe=probe,
            deadline_seconds=self.forest.winrm.restart_deadline_seconds,
            poll_interval_seconds=1.0,
        )
        return RestartReading(outcome.total_seconds)

    def _ldap(self, op: LdapOp, log_: RunLog) -> Reading:
        with DirectoryClient.for_forest(self.forest) as client:
            if op.action is LdapAction.READ_SERVER_REFERENCE:
                entry = client.read(op.dn or "", ["serverReference"])
                return ServerReferenceReading(entry.text("serverReference"))
            if op.action in (LdapAction.SET_SERVER_REFERENCE, LdapAction.CLEAR_SERVER_REFERENCE):
                client.replace_attribute(op.dn or "", "serverReference", op.value)
                log_.outputs.append(f"> {op.line}\nsuccess")
                return WriteReading(op.line)
            raise ValueError(f"{op.action} is run by the caller")


def _read(op: RemoteOp, result: CommandResult) -> Reading:
    """The reading of a command's output (parsers raise on anything they do not know)."""
    out = result.output
    if op.reads is Reads.REG_VALUE:
        name = op.command.arguments[3]
        value = parse_reg_query(out, name)
        if value is None:
            return RegistryReading(False)
        return RegistryReading(True, value.type, value.data)
    if op.reads is Reads.REG_WRITE:
        if op.command.arguments[0] == "delete":
            parse_reg_delete(out)
        else:
            parse_reg_add(out)
        return WriteReading(op.line)
    if op.reads is Reads.KCC:
        return KccReading(parse_repadmin_kcc(out))
    if op.reads is Reads.OPTIONS:
        return OptionsReading(parse_repadmin_options(out).effective)
    if op.reads is Reads.ADD_LINK:
        outcome = parse_repadmin_add(out)
        return AddLinkReading(
            "already_exists" if outcome is AddLinkOutcome.ALREADY_EXISTS else "added"
        )
    if op.reads is Reads.SHOWREPL:
        show = parse_showrepl(out)
        neighbors = tuple(
            Neighbor(n.naming_context, n.source_dc.lower(), n.result, n.consecutive_failures)
            for n in show.inbound
        )
        return ShowReplReading(op.dc, neighbors)
    if op.reads is Reads.REPLSUMMARY:
        summary = parse_replsummary(out)
        problems = tuple(
            f"{r.dsa}: {r.fails}/{r.total} failed"
            for r in (*summary.sources, *summary.destinations)
            if r.fails
        ) + tuple(f"{dc}: error {code}" for code, dc in summary.operational_errors)
        return ReplSummaryReading(summary.healthy, problems)
    raise ValueError(f"no reader for {op.reads}")


class StepRunner:
    """Runs step jobs: one object per worker, one `run` per job."""

    def __init__(
        self,
        settings: Settings,
        *,
        engine: ProcedureEngine,
        procedures: ProcedureStore,
        incidents: IncidentStore,
        messages: ProcedureMessages,
        thread: IncidentThread,
        locks: DcLocks,
        consumer: str,
        is_alive: Callable[[str], Awaitable[bool]],
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.procedures = procedures
        self.incidents = incidents
        self.messages = messages
        self.thread = thread
        self.locks = locks
        self.consumer = consumer
        self.is_alive = is_alive
        self.tasks: set[asyncio.Task[None]] = set()

    def _spawn_update(self, procedure_id: str) -> None:
        task = asyncio.ensure_future(self.messages.changed(procedure_id))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def policy(self) -> ApprovalPolicy:
        """The approval counts of the configuration (for re-planning)."""
        cfg = self.settings.file.approvals
        return ApprovalPolicy(cfg.change, cfg.temporary, cfg.disruptive, cfg.ttl_seconds)

    async def run(self, job: Job) -> None:
        """Run one step job to its end (done, already done, or failed), reporting each stage."""
        pid, key = job.extra.get("procedure", ""), job.extra.get("step", "")
        actor = Actor(job.requested_by, worker=self.consumer)
        claimed = await self.engine.act(pid, Intent(Act.CLAIM, key, job_id=job.job_id), actor)
        if not isinstance(claimed, Acted):
            why = claimed.refusal.code if isinstance(claimed, Refused) else type(claimed).__name__
            log.info("step job %s (%s step %s) not claimed: %s", job.job_id, pid, key, why)
            return
        self._spawn_update(pid)
        proc = claimed.procedure
        step = proc.planned(key)
        forest = self.settings.file.forest(proc.plan.forest)
        if forest is None:
            await self.fail(job, f"forest {proc.plan.forest} is no longer configured; add it back.")
            return
        token = f"{self.consumer}|{pid}|{key}|{uuid.uuid4().hex[:8]}"
        lock = step.lock_name if step.kind not in (StepKind.READ, StepKind.SAFE) else None
        keeper: asyncio.Task[None] | None = None
        try:
            if lock is not None:
                await self._take_lock(proc, step, lock, token)
                keeper = asyncio.create_task(self._hold_lock(lock, token))
            await self._run_locked(job, proc, step, forest, actor)
        except Ad1411Error as exc:
            await self.fail(job, str(exc))
        finally:
            if keeper is not None:
                keeper.cancel()
            if lock is not None:
                await self.locks.release(lock, token)

    async def _take_lock(self, proc: Procedure, step: PlannedStep, lock: str, token: str) -> None:
        """Wait for the DC's change lock; take it over from a worker whose heartbeat stopped."""
        cfg = self.settings.file.procedure
        deadline = time.monotonic() + cfg.lock_wait_seconds
        told = False
        while not await self.locks.acquire(lock, token, LOCK_TTL_SECONDS):
            holder = await self.locks.holder(lock) or ""
            owner = holder.split("|", 1)[0]
            if holder and not await self.is_alive(owner):
                if await self.locks.steal(lock, holder, token, LOCK_TTL_SECONDS):
                    log.warning("took the lock of %s from %s, whose heartbeat stopped", lock, owner)
                    return
                continue
            if not told:
                told = True
                inc = await self.incidents.get(proc.incident_id)
                if inc is not None:
                    busy = holder.split("|")[1:3] if "|" in holder else ["another run"]
                    await self.thread.say(
                        inc,
                        f":lock: Step {step.key} waits: `{mrkdwn_escape(lock)}` is busy with "
                        f"`{mrkdwn_escape(' step '.join(busy))}` (one change at a time per DC).",
                    )
            if time.monotonic() > deadline:
                raise StepAborted(
                    f"{lock} stayed busy ({holder.split('|', 1)[-1]}) for "
                    f"{cfg.lock_wait_seconds:g} s; nothing was changed. Retry when the other "
                    "change is done."
                )
            await asyncio.sleep(LOCK_POLL_SECONDS)

    async def _hold_lock(self, lock: str, token: str) -> None:
        """Keep the lock while the step works (a dead worker's lock then expires soon)."""
        while True:
            await asyncio.sleep(LOCK_TTL_SECONDS / 3)
            if not await self.locks.extend(lock, token, LOCK_TTL_SECONDS):
                log.error("lost the lock of %s while a step held it", lock)
                return

    async def _run_locked(
        self, job: Job, proc: Procedure, step: PlannedStep, forest: ForestSection, actor: Actor
    ) -> None:
        record = proc.record(step.key)
        attempt = record.last_attempt
        applied_before = attempt is not None and attempt.applied_at_ms > 0
        priors = {
            p.key: r.prior for p, r in zip(proc.plan.steps, proc.steps, strict=True) if r.prior
        }
        ops = ops_for(proc.plan, step, priors)
        run_log = RunLog()
        runner = OperationRunner(forest, self.settings, self._recorder(proc, step, job))
        before = [await self._do(runner, op, run_log, proc) for op in ops.precheck]
        pre = outcomes.precheck(proc, step, before)
        if pre.satisfied and not applied_before:
            await self._report(
                job, Act.SATISFIED, proc, step, run_log, note=pre.note, prior=pre.prior
            )
            return
        redo = not (applied_before and (pre.satisfied or step.kind is StepKind.DISRUPTIVE))
        if redo:
            intent = Intent(Act.APPLYING, step.key, job_id=job.job_id, prior=pre.prior)
            await self.engine.act(proc.id, intent, actor)
            for op in ops.apply:
                run_log.applied.append(await self._do(runner, op, run_log, proc))
        checked = [await self._do(runner, op, run_log, proc) for op in ops.verify]
        verdict = outcomes.verify(proc, step, run_log.applied, checked)
        note = verdict.note if redo else f"{verdict.note} (the earlier run had applied it)"
        new_plan = None
        if verdict.ok and verdict.replan and run_log.diagnosis is not None:
            try:
                new_plan = build_plan(run_log.diagnosis, self.policy())
            except PlanRefused as exc:
                await self.fail(job, f"the forest changed and cannot be re-planned: {exc}")
                return
        act = Act.COMPLETE if verdict.ok else Act.FAIL
        await self._report(job, act, proc, step, run_log, note=note, new_plan=new_plan)

    async def _do(
        self, runner: OperationRunner, op: Op, run_log: RunLog, proc: Procedure
    ) -> Reading:
        if isinstance(op, LdapOp) and op.action is LdapAction.DIAGNOSE:
            forest = runner.forest
            inc = await self.incidents.get(proc.incident_id)
            reporters = sorted(inc.reporters) if inc else []

            def read() -> Diagnosis:
                with DirectoryClient.for_forest(forest) as client:
                    return diagnose(
                        client,
                        forest=proc.plan.forest,
                        target_dsa_guid=proc.plan.target_dsa_guid,
                        reporting_dcs=reporters,
                    )

            d = await asyncio.to_thread(read)
            run_log.diagnosis = d
            run_log.outputs.append(f"> {op.line}\ncause: {d.cause.value}")
            return DiagnosisReading(
                resolved(d), d.cause.value, tuple(s.fqdn for s in d.missing_links), d.cause.value
            )
        return await runner.run(op, run_log)

    def _recorder(
        self, proc: Procedure, step: PlannedStep, job: Job
    ) -> Callable[[RemoteOp, CommandResult], Awaitable[None]]:
        """Every command run goes to the audit: where, what, exit code and output digest."""

        async def record(op: RemoteOp, result: CommandResult) -> None:
            digest = hashlib.sha256((result.stdout + result.stderr).encode()).hexdigest()[:32]
            entry = AuditEntry(
                "command_run",
                {
                    "procedure": proc.id,
                    "incident": proc.incident_id,
                    "step": step.key,
                    "user": job.requested_by,
                    "worker": self.consumer,
                    "dc": op.dc,
                    "command": op.command.command_line(),
                    "exit_code": str(result.exit_code),
                    "output_sha256": digest,
                    "seconds": f"{result.duration_seconds:.2f}",
                },
            )
            await self.procedures.note(proc.incident_id, [entry])

        return record

    async def _report(
        self,
        job: Job,
        act: Act,
        proc: Procedure,
        step: PlannedStep,
        run_log: RunLog,
        *,
        note: str = "",
        prior: Prior | None = None,
        new_plan: Plan | None = None,
        detail: str = "",
    ) -> None:
        text = run_log.text()
        ref = ""
        if text:
            ref = await self.procedures.save_output(proc.id, f"{step.key}:{job.job_id[:8]}", text)
            if not ref:
                detail = " ".join(
                    x
                    for x in (
                        detail,
                        "Output not kept: this procedure's output budget is used "
                        "up (its SHA-256 is in the audit).",
                    )
                    if x
                )
        result = StepResult(
            outcome=act.value,
            exit_code=run_log.exit_code,
            excerpt=text[-EXCERPT_CHARS:],
            detail=detail,
            output_ref=ref,
            note=note,
        )
        intent = Intent(
            act,
            step.key,
            job_id=job.job_id,
            result=result,
            prior=prior,
            new_plan=new_plan,
        )
        done = await self.engine.act(proc.id, intent, Actor(job.requested_by, worker=self.consumer))
        if isinstance(done, Acted):
            await self._announce(done.procedure, step)
            if done.procedure.status is ProcedureStatus.ABORTED:
                # The last undo the abort offered is done: the record is complete.
                await post_report(
                    self.thread, self.incidents, AuditLog(self.procedures.client), done.procedure
                )
        self._spawn_update(proc.id)

    async def _announce(self, proc: Procedure, step: PlannedStep) -> None:
        # The result is recorded: say it, through a failover if one is under way.
        inc = await until_durable(
            lambda: self.incidents.get(proc.incident_id), what=f"incident of {proc.id}"
        )
        if inc is None or inc.channel is None or inc.ts is None:
            return
        text, blocks = result_blocks(proc, step)
        await self.thread.post(inc.channel, inc.ts, text, blocks)

    async def fail(self, job: Job, reason: str) -> None:
        """The step failed (known failure, the guard's timeout, a crash): say so, offer Retry."""
        pid, key = job.extra.get("procedure", ""), job.extra.get("step", "")
        actor = Actor(job.requested_by, worker=self.consumer)
        stored = await self.engine.procedure(pid)
        if stored is None:
            return
        result = StepResult(outcome="failed", detail=reason, note="")
        intent = Intent(Act.FAIL, key, job_id=job.job_id, result=result)
        done = await self.engine.act(pid, intent, actor)
        if isinstance(done, Acted):
            await self._announce(done.procedure, done.procedure.planned(key))
        elif stored.record(key).status is StepStatus.QUEUED:
            log.warning("step %s of %s could not be marked failed: %s", key, pid, done)
        self._spawn_update(pid)

    async def drain(self) -> None:
        """Wait for message updates in flight (shutdown)."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)
