"""Redis round trips of a procedure click through serve, counted in the request's own task.

Run: `python -m bench.bench_clicks`.
The real serve side (Bolt on aiohttp, built by `bot.app.serve.build_context`) runs in this
process against a real redis-server and the Slack emulator; signed clicks on the procedure
message's buttons go through HTTP exactly as Slack sends them. Every request sent to Redis is
counted with the asyncio task that sent it, and the requests of the click's own task (from the
request to its response, the ack) are read when aiohttp prepares the response; what the click
leaves to background tasks (the message update, the reply) is not the click's cost. The
worker's side of each run (claim, apply, report) is driven through its own engine and client,
so serve's last state goes stale exactly as it does in production.
Prints a markdown table.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Coroutine, Iterable
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio
from aiohttp import web
from pydantic import SecretStr

from bench.bench_procedure import APPROVERS, RESPONDER, TTL_SECONDS, diagnosis, free_port
from bench.results import Measure, RunResult
from bot.app.serve import build_context
from bot.app.slack import slack_client
from bot.config import EnvSettings, Settings, load_file_config
from bot.directory.model import diagnosis_to_json
from bot.procedure.approval import Actor
from bot.procedure.model import StepStatus
from bot.procedure.operations import Prior, ops_for
from bot.procedure.rules import Act, Intent, StepResult
from handlers.app import build_bolt_app, build_web_app
from handlers.context import ServeContext
from handlers.transitions import Acted, ProcedureEngine
from lab.alert_samples import alert_body
from lab.slack_driver import SlackDriver
from lab.slack_emulator import LAB_BOT_TOKEN, SlackEmulator
from state.diagnoses import DiagnosisStore
from state.procedures import ProcedureStore
from state.redis_server import RedisServer
from state.seen import SeenOnce

SIGNING_SECRET = "bench-clicks-secret"
WEBHOOK_TOKEN = "bench-clicks-token"
FOREST = "corp.example.com"


# The request a Redis command is sent for: set by a middleware in front of serve's, so the
# tasks a request starts (Bolt's dispatch runs in one) count against it. Follow-ups spawned
# after the ack (the message update) are not the click's cost: they run without it.
REQUEST: ContextVar[object | None] = ContextVar("bench_request", default=None)


class TaskTrips:
    """Requests sent to Redis, by the HTTP request (or else the asyncio task) that sent them."""

    def __init__(self) -> None:
        # Keyed by the object itself (kept alive), not id(): a finished one's id is reused.
        self.by_task: Counter[object | None] = Counter()

    def client(self, url: str) -> redis.asyncio.Redis:
        """An async client whose connections count each request against its request."""
        trips = self

        class CountingConnection(redis.asyncio.Connection):
            async def send_packed_command(
                self, command: bytes | str | Iterable[bytes], check_health: bool = True
            ) -> None:
                trips.by_task[REQUEST.get() or asyncio.current_task()] += 1
                await super().send_packed_command(command, check_health)

        pool = redis.asyncio.ConnectionPool.from_url(url, connection_class=CountingConnection)
        return redis.asyncio.Redis.from_pool(pool)


def _detached(coro: Coroutine[Any, Any, Any]) -> Coroutine[Any, Any, Any]:
    async def run() -> Any:
        REQUEST.set(None)
        return await coro

    return run()


def _config(path: Path) -> Path:
    path.write_text(
        f"""
[slack]
channel = "C0INCIDENT"
responders = ["{RESPONDER.user_id}"]
approvers = ["{APPROVERS[0].user_id}", "{APPROVERS[1].user_id}"]
[alerts]
coalesce_seconds = 0.2
[procedure]
message_update_seconds = 0.05
[[forests]]
name = "{FOREST}"
ldap_hosts = ["dc1.{FOREST}"]
""",
        encoding="utf-8",
    )
    return path


def _procedure_message(emulator: SlackEmulator, incident_ts: str) -> dict[str, Any] | None:
    for m in emulator.messages("C0INCIDENT"):
        in_thread = m.get("thread_ts") == incident_ts and m["ts"] != incident_ts
        if in_thread and "KB938704 procedure" in json.dumps(m.get("blocks", [])):
            return m
    return None


def _current_key(message: dict[str, Any]) -> str:
    for button in SlackDriver.buttons(message):
        value = json.loads(button.get("value", "{}") or "{}")
        if isinstance(value, dict) and value.get("s"):
            return str(value["s"])
    return ""


def _labels(message: dict[str, Any]) -> list[str]:
    return [b["text"]["text"] for b in SlackDriver.buttons(message)]


class ClickBench:
    """serve in this loop, a worker engine beside it, and the counts per click."""

    def __init__(self, work: Path, redis_url: str, emulator: SlackEmulator) -> None:
        self.work = work
        self.redis_url = redis_url
        self.emulator = emulator
        self.trips = TaskTrips()
        self.gate_trips = TaskTrips()
        # (act, after whom, round trips of the handler, of the request gate's replay check)
        self.per_click: list[tuple[str, str, int, int]] = []
        self._label = ""
        self._after = "Start (the first click reads the incident once)"

    async def start(self) -> None:
        env = EnvSettings(
            SLACK_API_URL=self.emulator.api_url,
            SLACK_BOT_TOKEN=SecretStr(LAB_BOT_TOKEN),
            SLACK_SIGNING_SECRET=SecretStr(SIGNING_SECRET),
            REDIS_URL=self.redis_url,
            AD1411_CONFIG=_config(self.work / "c.toml"),
            ALERT_WEBHOOK_TOKEN=SecretStr(WEBHOOK_TOKEN),
            PORT=0,
            HOST="127.0.0.1",
        )
        settings = Settings(env=env, file=load_file_config(Path(env.AD1411_CONFIG or "")))
        self.client = self.trips.client(self.redis_url)
        self.ctx: ServeContext = build_context(settings, self.client, slack_client(settings))
        # The gate's replay check on its own counted client (it is not the transition's cost).
        self.gate_client = self.gate_trips.client(self.redis_url)
        self.ctx.seen = SeenOnce(self.gate_client)
        await self.ctx.jobs.ensure_group()
        # As ServeRuntime.start does: the Slack delivery loop (the outbox) and auth.test.
        self.delivery = asyncio.create_task(self.ctx.notifier.run())
        await self.ctx.workspace.warm_up()
        spawn = self.ctx.spawn
        self.ctx.spawn = lambda coro: spawn(_detached(coro))  # type: ignore[method-assign]
        app = build_web_app(self.ctx, build_bolt_app(self.ctx))
        app.middlewares.insert(0, self._per_request)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"
        self.driver = SlackDriver(
            self.emulator, signing_secret=SIGNING_SECRET, bot_url=self.url + "/slack/events"
        )
        self.worker_client = redis.asyncio.Redis.from_url(self.redis_url)
        self.worker = ProcedureEngine(ProcedureStore(self.worker_client), TTL_SECONDS)

    async def stop(self) -> None:
        self.ctx.notifier.stop()
        await self.runner.cleanup()
        await asyncio.wait_for(self.delivery, 30)
        await self.ctx.drain(30)
        await self.client.aclose()
        await self.gate_client.aclose()
        await self.worker_client.aclose()

    @web.middleware
    async def _per_request(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Counts the Redis requests made for this HTTP request, in every task it starts."""
        key = object()
        token = REQUEST.set(key)
        try:
            return await handler(request)  # type: ignore[no-any-return]
        finally:
            REQUEST.reset(token)
            sent = self.trips.by_task.pop(key, 0)
            gate = self.gate_trips.by_task.pop(key, 0)
            if request.path == "/slack/events" and self._label:
                self.per_click.append((self._label, self._after, sent, gate))
                self._label = ""

    async def _click(self, message: dict[str, Any], label: str, user: str, after: str) -> None:
        self._label, self._after = label, after
        reply = await self.driver.click(message, text=label, user_id=user)
        if reply.status != 200:
            raise RuntimeError(f"click {label}: HTTP {reply.status} {reply.body[:200]}")

    async def _message(self, incident_ts: str, key: str, want: str) -> dict[str, Any]:
        """The procedure message once it shows step `key` current and offers `want`."""

        def probe() -> dict[str, Any] | None:
            m = _procedure_message(self.emulator, incident_ts)
            ok = m is not None and _current_key(m) == key and want in _labels(m)
            return m if ok else None

        found = await self.emulator.wait_for_async(probe, timeout=30)
        if found is None:
            raise RuntimeError(f"the procedure message never offered {want} on step {key!r}")
        return found

    async def run(self) -> None:
        """One procedure: incident, diagnosis, Start, then every step by clicks and the worker."""
        guid = diagnosis(7).target.dsa_guid
        body, ctype = alert_body("event_text", f"dc1.{FOREST}", guid, FOREST)
        async with (
            aiohttp.ClientSession() as s,
            s.post(
                self.url + "/alerts",
                data=body,
                headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}", "Content-Type": ctype},
            ) as r,
        ):
            iid = str((await r.json())["incidents"][0]["incident_id"])
        incident = await self.emulator.wait_for_async(
            lambda: next((m for m in self.emulator.messages("C0INCIDENT") if "blocks" in m), None),
            timeout=30,
        )
        assert incident is not None
        await DiagnosisStore(self.worker_client).finish(
            iid,
            "seeded",
            user_id=RESPONDER.user_id,
            outcome="done",
            result=diagnosis_to_json(diagnosis(7)),
        )
        await self.driver.click(incident, action_id="incident_start", user_id=RESPONDER.user_id)
        pid = ""
        for _ in range(300):
            pid = await self.ctx.procedures.current_id(iid) or ""
            if pid:
                break
            await asyncio.sleep(0.02)
        for _ in range(60):
            proc = await self.worker.procedure(pid)
            assert proc is not None
            step = proc.current()
            if step is None:
                msg = await self._message(incident["ts"], "", "Close procedure")
                await self._click(msg, "Close procedure", RESPONDER.user_id, self._after)
                return
            if step.approvals:
                msg = await self._message(incident["ts"], step.key, "Request approval")
                await self._click(msg, "Request approval", RESPONDER.user_id, self._after)
                for i, approver in enumerate(APPROVERS[: step.approvals]):
                    msg = await self._message(incident["ts"], step.key, "Approve")
                    await self._click(msg, "Approve", approver.user_id, "serve")
                    if i + 1 < step.approvals:
                        await self._settle(pid, step.key, StepStatus.AWAITING_APPROVAL, i + 1)
            else:
                msg = await self._message(incident["ts"], step.key, "Run")
                await self._click(msg, "Run", RESPONDER.user_id, self._after)
            await self._settle(pid, step.key, StepStatus.QUEUED)
            await self._worker_runs(pid, step.key)
            await self.ctx.procedure_messages.changed(pid)
            self._after = "worker"
        raise RuntimeError(f"procedure {pid} did not finish")

    async def _settle(self, pid: str, key: str, status: StepStatus, votes: int = 0) -> None:
        """Wait until the stored step shows the click (and the message was updated)."""
        for _ in range(300):
            stored = await ProcedureStore(self.worker_client).load(pid)
            if stored is not None:
                rec = self.ctx.engine.parsed(stored).record(key)
                if rec.status is status and len(rec.votes) >= votes:
                    await asyncio.sleep(0.1)  # the message update of this click
                    return
            await asyncio.sleep(0.02)
        raise RuntimeError(f"step {key} never became {status}")

    async def _worker_runs(self, pid: str, key: str) -> None:
        """The worker's side of the run, through its own engine (serve's state goes stale)."""
        actor = Actor(RESPONDER.user_id, worker="bench-worker")
        stored = await self.worker.procedure(pid)
        assert stored is not None
        attempt = stored.record(key).last_attempt
        assert attempt is not None
        job = attempt.job_id
        for intent in (
            Intent(Act.CLAIM, key, job_id=job),
            Intent(Act.APPLYING, key, job_id=job, prior=Prior(present=False)),
            Intent(Act.COMPLETE, key, job_id=job, result=StepResult("complete", exit_code=0)),
        ):
            proc = await self.worker.procedure(pid)
            assert proc is not None
            if intent.act is Act.APPLYING and not ops_for(proc.plan, proc.planned(key), {}).apply:
                continue
            out = await self.worker.act(pid, intent, actor)
            if not isinstance(out, Acted):
                raise RuntimeError(f"worker {intent.act} on {key}: {out}")


async def _measure(work: Path, redis_url: str, emulator: SlackEmulator) -> ClickBench:
    bench = ClickBench(work, redis_url, emulator)
    await bench.start()
    try:
        await bench.run()
    finally:
        await bench.stop()
    return bench


def run() -> RunResult:
    """One procedure clicked through serve; the round trips of each click's own task."""
    work = Path(tempfile.mkdtemp(prefix="bench-clicks-"))
    # TCP, not the unix socket: redis-py picks its own connection class for unix:// URLs.
    server = RedisServer(work / "redis", port=free_port()).start()
    emulator = SlackEmulator().start()
    try:
        bench = asyncio.run(_measure(work, server.url, emulator))
    finally:
        emulator.stop()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    rows: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for label, after, trips, gate in bench.per_click:
        rows.setdefault((label, after), []).append((trips, gate))
    steady = [t for _, after, t, _ in bench.per_click if after == "serve"]
    stale = [t for _, after, t, _ in bench.per_click if after == "worker"]
    gates = [g for *_, g in bench.per_click]
    lines = [
        "| click | the last change was made by | clicks | Redis round trips of the handler "
        "before the ack | and of the request gate (replay check) |",
        "|---|---|---|---|---|",
    ]
    for (label, after), counts in sorted(rows.items()):
        lines.append(
            f"| {label} | {after} | {len(counts)} | {_span([c[0] for c in counts])} | "
            f"{_span([c[1] for c in counts])} |"
        )
    measures = [
        Measure(
            "click_trips",
            "Redis round trips of a procedure click's handler in serve (steady state)",
            "round trips",
            statistics.mean(steady),
            None,
            "",
        ),
        Measure(
            "click_trips_after_worker",
            "the same after the worker moved the procedure",
            "round trips",
            statistics.mean(stale) if stale else 0.0,
            None,
            "",
        ),
        Measure(
            "click_gate_trips",
            "Redis round trips of the request gate per click (replay check)",
            "round trips",
            statistics.mean(gates),
            None,
            "",
        ),
    ]
    return RunResult(measures, lines)


def _span(values: list[int]) -> str:
    return f"{min(values)}..{max(values)}" if min(values) != max(values) else f"{values[0]}"


def main() -> None:
    start = time.perf_counter()
    result = run()
    print("\n".join(result.table))
    for m in result.measures:
        print(f"{m.key}: {m.value:.2f}")
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
