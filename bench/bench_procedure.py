"""Procedure transitions in Redis: round trips and rate per transition, memory per procedure.

Run: `python -m bench.bench_procedure [--procedures N] [--output-kib 1,64,1024]`.
A whole KB938704 procedure (the plan of a diagnosis with a lost serverReference and a missing
link: 15 steps) is driven through the real engine (`handlers.transitions.ProcedureEngine`), the
real store and `procedure_commit.lua`, on a real redis-server, the way serve and the worker do
it: one engine for the clicks (serve), another for the runs (worker), each with its own
connection; each click carries a Slack-sized request token; each run audits its commands,
keeps its output (`save_output`) and reports an excerpt, as `bot/app/step_runner.py` does.

- Round trips: counted on the client (every request sent on the connection; a pipeline is one)
  and, independently, on the server (INFO commandstats: EVALSHA calls and the commands the
  scripts ran). Target: exactly 1 per transition in the steady state.
- Rate: transitions per second (decide + commit) at concurrency 1 and 20, against
  `redis-benchmark` EVALSHA of a trivial script on the same server (the floor of one script
  call) and the same EVALSHA from redis-py (the floor of one call from Python).
- Memory: MEMORY USAGE (exact, SAMPLES 0) of every key a finished procedure left, and its
  share of the shared keys (both audit streams, the job stream), for several command output
  sizes. Target: < 32 KB, bounded whatever the output size.
Prints markdown tables and a JSON line of the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import redis.asyncio

from bench.results import Measure, RunResult
from bot.app.step_runner import EXCERPT_CHARS
from bot.directory.model import Diagnosis
from bot.procedure.approval import Actor
from bot.procedure.model import Procedure, StepStatus
from bot.procedure.operations import Prior, RemoteOp, ops_for
from bot.procedure.plan import ApprovalPolicy, Plan
from bot.procedure.planner import build_plan
from bot.procedure.rules import Act, Intent, StepResult
from handlers.transitions import Acted, ProcedureEngine
from lab.diagnosis_samples import seeded_diagnosis
from state.audit import AuditLog
from state.jobs import JobQueue
from state.keys import ACTIVE_PROCEDURES, GLOBAL_AUDIT, JOBS_STREAM, PREFIX
from state.procedures import AuditEntry, ProcedureStore
from state.redis_server import RedisServer

RESPONDER = Actor("U0ONCALL1", responder=True)
APPROVERS = (Actor("U0APPROV1", approver=True), Actor("U0APPROV2", approver=True))
TTL_SECONDS = 900
TARGET_BYTES = 32 * 1024


def diagnosis(n: int) -> Diagnosis:
    """The diagnosis of problem n: DC9's serverReference lost, dc3 has no link on dc1."""
    return seeded_diagnosis(str(uuid.UUID(int=n + 1)))


def _plan(n: int) -> Plan:
    return build_plan(diagnosis(n), ApprovalPolicy(ttl_seconds=TTL_SECONDS))


def _incident_id(n: int) -> str:
    return f"{n:010x}-1"


def slack_token() -> str:
    """A request token of the size serve builds from a real click (trigger_id:action_ts)."""
    trigger = f"{time.time_ns() % 10**13}.{1234567890}.{uuid.uuid4().hex}"
    return f"{trigger}:{time.time():.6f}"


# -- counting round trips -----------------------------------------------------------------


@dataclass
class Trips:
    """Requests sent on the connections of one client (a pipeline is one request)."""

    sent: int = 0


def counting_client(url: str) -> tuple[redis.asyncio.Redis, Trips]:
    """An async client whose connections count every request they send."""
    trips = Trips()

    class CountingConnection(redis.asyncio.Connection):
        async def send_packed_command(
            self, command: bytes | str | Iterable[bytes], check_health: bool = True
        ) -> None:
            trips.sent += 1
            await super().send_packed_command(command, check_health)

    pool = redis.asyncio.ConnectionPool.from_url(url, connection_class=CountingConnection)
    return redis.asyncio.Redis.from_pool(pool), trips


def command_stats(client: redis.Redis) -> Counter[str]:
    """Calls per command since the server started (INFO commandstats)."""
    info: dict[str, Any] = client.info("commandstats")
    return Counter({k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in info.items()})


# -- one procedure, as serve and a worker drive it ----------------------------------------


@dataclass
class Transition:
    """One act and what it cost on the wire."""

    who: str
    act: str
    trips: int


@dataclass
class ProcedureRun:
    """What driving one procedure did."""

    procedure_id: str
    transitions: list[Transition] = field(default_factory=list)
    notes: int = 0
    outputs: int = 0


class Driver:
    """Drives procedures with a serve engine and a worker engine, as the bot does."""

    def __init__(self, url: str, *, output_bytes: int, commands: bool = True) -> None:
        self.serve_client, self.serve_trips = counting_client(url)
        self.worker_client, self.worker_trips = counting_client(url)
        self.serve = ProcedureEngine(ProcedureStore(self.serve_client), TTL_SECONDS)
        self.worker = ProcedureEngine(ProcedureStore(self.worker_client), TTL_SECONDS)
        self.jobs = JobQueue(self.worker_client)
        self.output_bytes = output_bytes
        # False: transitions only (no command audit, output or job consumption between them).
        self.commands = commands

    async def close(self) -> None:
        await self.serve_client.aclose()
        await self.worker_client.aclose()

    async def _act(
        self,
        run: ProcedureRun,
        who: str,
        pid: str,
        intent: Intent,
        actor: Actor,
        *,
        once: str | None = None,
    ) -> Procedure:
        engine, trips = (
            (self.serve, self.serve_trips) if who == "serve" else (self.worker, self.worker_trips)
        )
        before = trips.sent
        out = await engine.act(pid, intent, actor, once=once)
        if not isinstance(out, Acted):
            raise RuntimeError(f"{pid}: {intent.act} by {who} was not committed: {out}")
        run.transitions.append(Transition(who, intent.act.value, trips.sent - before))
        return out.procedure

    def _output(self, lines: list[str], seed: str) -> str:
        """What the commands printed, padded with showrepl-like text to the size under test
        (GUIDs, USNs and times vary, so it compresses about as much as real output: ~4x)."""
        rng = random.Random(seed)
        parts = ["\n".join(lines)]
        size = len(parts[0])
        while size < self.output_bytes:
            block = (
                f"DC=corp,DC=example,DC=com\n    Default-First-Site-Name\\DC{rng.randrange(2, 99)} "
                f"via RPC\n        DSA object GUID: {uuid.UUID(int=rng.getrandbits(128))}\n"
                f"        Last attempt @ 2026-11-25 {rng.randrange(24):02}:{rng.randrange(60):02}:"
                f"{rng.randrange(60):02} was successful (USN {rng.randrange(10**7)}).\n"
            )
            parts.append(block)
            size += len(block)
        return "".join(parts)[: max(self.output_bytes, 1)]

    async def _run_step(
        self, run: ProcedureRun, proc: Procedure, key: str, job_id: str
    ) -> Procedure:
        """The worker's side of one run: claim, audit each command, apply, keep output, report."""
        pid = proc.id
        worker = Actor(RESPONDER.user_id, worker="worker-1")
        job = await self.jobs.take("worker-1", block_ms=1000) if self.commands else None
        if self.commands and (job is None or job.job_id != job_id):
            raise RuntimeError(f"step {key}: the job stream did not hand out job {job_id}")
        proc = await self._act(run, "worker", pid, Intent(Act.CLAIM, key, job_id=job_id), worker)
        step = proc.planned(key)
        priors = {
            p.key: r.prior for p, r in zip(proc.plan.steps, proc.steps, strict=True) if r.prior
        }
        ops = ops_for(proc.plan, step, priors)
        lines: list[str] = []
        for op in (*ops.precheck, *ops.apply, *ops.verify):
            lines.append(f"> {op.line}")
            if isinstance(op, RemoteOp) and self.commands:
                entry = AuditEntry(
                    "command_run",
                    {
                        "procedure": pid,
                        "incident": proc.incident_id,
                        "step": key,
                        "user": RESPONDER.user_id,
                        "worker": "worker-1",
                        "dc": op.dc,
                        "command": op.command.command_line(),
                        "exit_code": "0",
                        "output_sha256": uuid.uuid4().hex,
                        "seconds": "0.42",
                    },
                )
                await self.worker.store.note(proc.incident_id, [entry])
                run.notes += 1
        if ops.apply:
            prior = Prior(present=False)
            proc = await self._act(
                run,
                "worker",
                pid,
                Intent(Act.APPLYING, key, job_id=job_id, prior=prior),
                worker,
            )
        text = self._output(lines, job_id)
        ref = ""
        if self.commands:
            ref = await self.worker.store.save_output(pid, f"{key}:{job_id[:8]}", text)
            run.outputs += 1
        result = StepResult(
            outcome="complete",
            exit_code=0,
            excerpt=text[-EXCERPT_CHARS:],
            output_ref=ref,
            note="verified: the value reads back as set",
        )
        done = await self._act(
            run,
            "worker",
            pid,
            Intent(Act.COMPLETE, key, job_id=job_id, result=result),
            worker,
        )
        if job is not None:
            await self.jobs.ack(job)
        return done

    async def procedure(self, n: int) -> ProcedureRun:
        """Start, run every step (approvals, runs) and close one procedure."""
        iid = _incident_id(n)
        out = await self.serve.start(
            incident_id=iid,
            plan=_plan(n),
            actor=RESPONDER,
            diagnosis_at_ms=int(time.time() * 1000),
            diagnosis_summary="serverReference of DC9 is missing; dc3 has no link on dc1",
            once=slack_token(),
        )
        if not isinstance(out, Acted):
            raise RuntimeError(f"procedure of {iid} did not start: {out}")
        proc = out.procedure
        run = ProcedureRun(proc.id)
        for _ in range(200):
            step = proc.current()
            if step is None:
                await self._act(
                    run, "serve", proc.id, Intent(Act.CLOSE), RESPONDER, once=slack_token()
                )
                return run
            d = step.digest
            if step.approvals:
                proc = await self._act(
                    run,
                    "serve",
                    proc.id,
                    Intent(Act.REQUEST_APPROVAL, step.key, d),
                    RESPONDER,
                    once=slack_token(),
                )
                for approver in APPROVERS[: step.approvals]:
                    proc = await self._act(
                        run,
                        "serve",
                        proc.id,
                        Intent(Act.APPROVE, step.key, d),
                        approver,
                        once=slack_token(),
                    )
            else:
                proc = await self._act(
                    run,
                    "serve",
                    proc.id,
                    Intent(Act.RUN, step.key, d),
                    RESPONDER,
                    once=slack_token(),
                )
            attempt = proc.record(step.key).last_attempt
            if attempt is None or proc.record(step.key).status is not StepStatus.QUEUED:
                raise RuntimeError(f"step {step.key} was not queued")
            proc = await self._run_step(run, proc, step.key, attempt.job_id)
        raise RuntimeError(f"{proc.id}: did not finish")


# -- round trips and rate -----------------------------------------------------------------


class Monitor:
    """MONITOR on the server in a thread: the commands clients sent (not those scripts ran)."""

    END = "bench-monitor-end"

    def __init__(self, url: str) -> None:
        self.url = url
        self.commands: Counter[str] = Counter()
        self._client = redis.Redis.from_url(url)
        self._monitor = self._client.monitor()  # type: ignore[no-untyped-call]
        self._monitor.__enter__()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        for event in self._monitor.listen():
            command = str(event.get("command", ""))
            if self.END in command:
                return
            if event.get("client_type") != "lua":
                self.commands[command.split(" ", 1)[0].upper()] += 1

    def stop(self) -> Counter[str]:
        """Stop listening; the count of client commands by name."""
        with redis.Redis.from_url(self.url) as other:
            other.echo(self.END)
        self._thread.join(30)
        self._monitor.__exit__(None, None, None)
        self._client.close()
        return self.commands


async def round_trips(url: str, procedures: int) -> dict[str, Any]:
    """Drive procedures (transitions only) and count requests per transition on the client
    and, independently, the commands the server received from clients (MONITOR)."""
    driver = Driver(url, output_bytes=0, commands=False)
    try:
        await driver.procedure(10_000)  # warm-up: connections, SCRIPT LOAD, imports
        sent_before = driver.serve_trips.sent + driver.worker_trips.sent
        monitor = Monitor(url)
        runs = [await driver.procedure(n) for n in range(procedures)]
        sent = driver.serve_trips.sent + driver.worker_trips.sent - sent_before
        seen = await asyncio.to_thread(monitor.stop)
    finally:
        await driver.close()
    transitions = [t for r in runs for t in r.transitions]
    pairs = [p for r in runs for p in zip(r.transitions, r.transitions[1:], strict=False)]
    # Steady state: the engine's cached state is current (it made the last change itself).
    steady = [t.trips for prev, t in pairs if prev.who == t.who]
    after_other = [t.trips for prev, t in pairs if prev.who != t.who]
    by_who: dict[str, Counter[int]] = {"serve": Counter(), "worker": Counter()}
    for t in transitions:
        by_who[t.who][t.trips] += 1
    return {
        "procedures": procedures,
        "transitions": len(transitions),
        "transitions_per_procedure": len(transitions) / procedures,
        "steady_trips": statistics.mean(steady),
        "steady_max": max(steady),
        "steady_count": len(steady),
        "after_other_trips": statistics.mean(after_other),
        "after_other_count": len(after_other),
        "whole_procedure_trips": statistics.mean(t.trips for t in transitions),
        "by_who": {w: dict(sorted(c.items())) for w, c in by_who.items()},
        "client_sent": sent,
        "server_client_commands": dict(sorted(seen.items())),
    }


async def _rate_worker(driver: Driver, ns: range) -> int:
    done = 0
    for n in ns:
        run = await driver.procedure(n)
        done += len(run.transitions)
    return done


async def transition_rate(url: str, procedures: int, concurrency: int) -> float:
    """Committed transitions per second with `concurrency` procedures driven at once."""
    driver = Driver(url, output_bytes=0, commands=False)
    try:
        await driver.procedure(20_000)
        per = max(1, procedures // concurrency)
        base = 30_000 + concurrency * 1000
        start = time.perf_counter()
        counts = await asyncio.gather(
            *[
                _rate_worker(driver, range(base + i * per, base + (i + 1) * per))
                for i in range(concurrency)
            ]
        )
        elapsed = time.perf_counter() - start
    finally:
        await driver.close()
    return sum(counts) / elapsed


TRIVIAL = "return 1"


async def redis_py_evalsha_rate(url: str, calls: int, concurrency: int) -> float:
    """EVALSHA of the trivial script from redis-py (asyncio), `concurrency` in flight."""
    client = redis.asyncio.Redis.from_url(url)
    sha = await client.script_load(TRIVIAL)
    per = calls // concurrency

    async def loop() -> None:
        for _ in range(per):
            await client.evalsha(sha, 0)

    start = time.perf_counter()
    await asyncio.gather(*[loop() for _ in range(concurrency)])
    elapsed = time.perf_counter() - start
    await client.aclose()
    return per * concurrency / elapsed


def redis_benchmark_binary() -> str:
    """redis-benchmark: beside the redis-server in use, or on PATH (Debian's redis-tools)."""
    from state.redis_server import find_redis_server  # noqa: PLC0415

    beside = Path(find_redis_server().path).with_name("redis-benchmark")
    if beside.is_file():
        return str(beside)
    found = shutil.which("redis-benchmark")
    if found:
        return found
    raise SystemExit(
        "redis-benchmark is missing: install Debian's redis-tools (apt-get install redis-tools); "
        "./scripts/setup.sh does it when run as root"
    )


def redis_benchmark_evalsha(port: int, calls: int, concurrency: int) -> float:
    """Requests per second of `redis-benchmark` EVALSHA of the trivial script."""
    sync = redis.Redis(host="127.0.0.1", port=port)
    sha = sync.script_load(TRIVIAL)
    sync.close()
    out = subprocess.run(
        [
            redis_benchmark_binary(),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-n",
            str(calls),
            "-c",
            str(concurrency),
            "-q",
            "--csv",
            "EVALSHA",
            sha,
            "0",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    # --csv: a header, then "test","rps",... ; the test's name is the command line.
    for line in out.stdout.splitlines():
        cells = [c.strip('"') for c in line.split(",")]
        if len(cells) > 1 and cells[0].upper().startswith("EVALSHA"):
            return float(cells[1])
    raise RuntimeError(
        f"redis-benchmark printed no result: {out.stdout[-500:]} {out.stderr[-500:]}"
    )


# -- memory per finished procedure --------------------------------------------------------


def _usage(sync: redis.Redis, key: bytes | str) -> int:
    return int(sync.memory_usage(key, samples=0) or 0)


def _kind(key: str) -> str:
    for part, kind in (
        (":proc-current", "current-procedure pointer"),
        (":proc-seq:", "procedure counter"),
        (":proc:", "procedure hash"),
        (":once", "request tokens"),
        (":outputs:", "command outputs"),
        (":audit:head", "incident audit stream"),
        (":audit", "incident audit stream"),
    ):
        if part in key:
            return kind
    return "other: " + key


SHARED = (GLOBAL_AUDIT, GLOBAL_AUDIT + ":head", JOBS_STREAM, ACTIVE_PROCEDURES)


async def memory(url: str, output_bytes: int, procedures: int) -> dict[str, Any]:
    """Bytes a finished procedure leaves in Redis, by kind of key, at one output size."""
    sync = redis.Redis.from_url(url)
    sync.flushall()
    driver = Driver(url, output_bytes=output_bytes)
    try:
        await driver.jobs.ensure_group()
        await driver.procedure(40_000)  # the shared streams exist before we measure shares
        shared_before = sum(_usage(sync, k) for k in SHARED)
        base = 50_000 + output_bytes
        runs = [await driver.procedure(base + n) for n in range(procedures)]
    finally:
        await driver.close()
    by_kind: Counter[str] = Counter()
    keys_per_kind: Counter[str] = Counter()
    for r in runs:
        tag = r.procedure_id.split("-", 1)[0]
        for key in sync.scan_iter(match=f"{PREFIX}:{{{tag}}}:*", count=1000):
            name = key.decode()
            by_kind[_kind(name)] += _usage(sync, key)
            keys_per_kind[_kind(name)] += 1
    shared_after = sum(_usage(sync, k) for k in SHARED)
    by_kind["shared streams (global audit, jobs)"] += shared_after - shared_before
    audit = AuditLog(redis.asyncio.Redis.from_url(url))
    entries = await audit.client.xlen(GLOBAL_AUDIT)
    chain = await audit.verify()
    await audit.client.aclose()
    sync.close()
    per = {k: v / procedures for k, v in sorted(by_kind.items())}
    return {
        "output_bytes": output_bytes,
        "procedures": procedures,
        "bytes_per_procedure": sum(per.values()),
        "by_kind": per,
        "keys_per_procedure": {k: v / procedures for k, v in sorted(keys_per_kind.items())},
        "transitions": len(runs[0].transitions),
        "audit_entries_per_procedure": (entries / (procedures + 1)),
        "chain_ok": chain.ok,
    }


# -- the benchmark ------------------------------------------------------------------------


def run(args: argparse.Namespace | None = None) -> RunResult:
    """One run of every figure; the measures and the run's tables."""
    args = args or parse([])
    work = Path(tempfile.mkdtemp(prefix="bench-procedure-"))
    server = RedisServer(work / "redis", port=free_port()).start()
    try:
        trips = asyncio.run(round_trips(server.url, args.procedures))
        rates = {
            c: asyncio.run(transition_rate(server.url, args.procedures * 4, c)) for c in (1, 20)
        }
        py_rates = {c: asyncio.run(redis_py_evalsha_rate(server.url, 20_000, c)) for c in (1, 20)}
        bench_rates = {c: redis_benchmark_evalsha(server.port, 50_000, c) for c in (1, 20)}
        mem = [
            asyncio.run(memory(server.url, kib * 1024, args.procedures)) for kib in args.output_kib
        ]
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    measures = [
        Measure(
            "procedure_trips",
            "Redis round trips per procedure transition (steady state)",
            "round trips",
            trips["steady_trips"],
            None,
            "",
        ),
        Measure(
            "procedure_trips_after_other",
            "Redis round trips per transition after the other process moved it",
            "round trips",
            trips["after_other_trips"],
            None,
            "",
        ),
    ]
    for c in (1, 20):
        measures.append(
            Measure(
                f"procedure_rate_c{c}",
                f"procedure transitions/s, {c} procedure{'s' if c > 1 else ''} at once",
                "transitions/s",
                rates[c],
                bench_rates[c],
                f"`redis-benchmark` EVALSHA of `return 1`, -c {c}",
                lower_is_better=False,
            )
        )
    for m in mem:
        kib = m["output_bytes"] // 1024
        measures.append(
            Measure(
                f"procedure_memory_{kib}k",
                f"Redis memory per finished procedure, {kib} KiB output per run",
                "bytes",
                m["bytes_per_procedure"],
                None,
                "",
            )
        )
        measures.append(
            Measure(
                f"procedure_record_{kib}k",
                f"the same without its kept outputs, {kib} KiB output per run",
                "bytes",
                m["bytes_per_procedure"] - m["by_kind"].get("command outputs", 0),
                None,
                "",
            )
        )
    return RunResult(measures, _tables(trips, rates, py_rates, bench_rates, mem))


def _tables(
    trips: dict[str, Any],
    rates: dict[int, float],
    py_rates: dict[int, float],
    bench_rates: dict[int, float],
    mem: list[dict[str, Any]],
) -> list[str]:
    lines = [
        f"Round trips, {trips['procedures']} procedures of "
        f"{trips['transitions_per_procedure']:.0f} transitions each (transitions only), counted "
        "on the client:",
        "",
        "| transition | count | round trips (mean) |",
        "|---|---|---|",
        f"| steady state (the same process made the last change) | {trips['steady_count']} | "
        f"{trips['steady_trips']:.2f} (max {trips['steady_max']}) |",
        f"| after the other process (serve or worker) moved it | {trips['after_other_count']} | "
        f"{trips['after_other_trips']:.2f} |",
        f"| every transition of the procedure | {trips['transitions']} | "
        f"{trips['whole_procedure_trips']:.2f} |",
        "",
        f"Server side (MONITOR, commands sent by clients, not those scripts ran): "
        f"{json.dumps(trips['server_client_commands'])}; client side: {trips['client_sent']} "
        "requests.",
        "",
        "| calls/s | concurrency 1 | concurrency 20 |",
        "|---|---|---|",
        f"| procedure transitions (decide + commit, Python) | {rates[1]:.0f} | {rates[20]:.0f} |",
        f"| redis-py EVALSHA `return 1` (asyncio) | {py_rates[1]:.0f} | {py_rates[20]:.0f} |",
        f"| `redis-benchmark` EVALSHA `return 1` (baseline) | {bench_rates[1]:.0f} | "
        f"{bench_rates[20]:.0f} |",
        "",
    ]
    kinds = sorted({k for m in mem for k in m["by_kind"]})
    head = " | ".join(f"{m['output_bytes'] // 1024} KiB" for m in mem)
    lines += [
        "Memory per finished procedure (MEMORY USAGE ... SAMPLES 0, bytes), by command output "
        "size per step run:",
        "",
        f"| key | {head} |",
        "|---|" + "---|" * len(mem),
    ]
    for kind in kinds:
        cells = " | ".join(f"{m['by_kind'].get(kind, 0):.0f}" for m in mem)
        lines.append(f"| {kind} | {cells} |")
    total = " | ".join(f"**{m['bytes_per_procedure']:.0f}**" for m in mem)
    lines.append(f"| **total** | {total} |")
    entries = mem[0]["audit_entries_per_procedure"]
    lines += [
        "",
        f"{mem[0]['transitions']} transitions and {entries:.0f} audit entries per procedure "
        f"(each in both streams); the audit chains verify: {all(m['chain_ok'] for m in mem)}.",
    ]
    return lines


def free_port() -> int:
    """A free loopback TCP port."""
    import socket  # noqa: PLC0415

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--procedures", type=int, default=10)
    parser.add_argument(
        "--output-kib",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 64, 1024],
        help="command output sizes per step run, KiB (comma-separated)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    result = run(parse(argv))
    for m in result.measures:
        print(f"{m.key}: {m.value:.2f} {m.unit} (baseline {m.baseline})")
    print("\n".join(result.table))


if __name__ == "__main__":
    main()
