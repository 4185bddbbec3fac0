"""Failover: serve and a worker reach Redis through Sentinel (a primary, two replicas, three
Sentinels: real processes); the primary is killed.

- While alerts and diagnosis requests flow: after the failover the flow goes on, and every write
  the bot acknowledged (a 202 for an alert, "queued" for a diagnosis) is on the new primary,
  with each diagnosis finished and said in its thread exactly once.
- Mid-procedure, while a step's change is in flight on a simulated DC and a person clicks: the
  procedure goes on to Close; every acknowledged click and the step's report are on the new
  primary exactly once, and each change ran once on its DC.
- A click no replica confirms is said to be unconfirmed; pressed again, it is found applied.

The durability setting that makes this true: transitions wait for one replica (`WAIT 1`, the
default behind Sentinel; state/durability.py) before anything is acknowledged, and a procedure
transition is retried with its request token and attempt nonce until confirmed
(state/procedures.py), so a retry neither doubles it nor loses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import re
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis

from bot.app.slack import slack_client
from bot.app.worker import Worker
from handlers.procedure import UNCONFIRMED
from handlers.texts import REDIS_DOWN_TEXT
from lab.alert_samples import alert_body, dsa_guid
from lab.slack_driver import SlackDriver
from lab.slack_emulator import SlackEmulator
from state.connection import async_client
from state.keys import GLOBAL_AUDIT
from state.procedures import RETRY_SECONDS
from tests.conftest import free_port
from tests.handlers.serve_config import FOREST
from tests.inprocess import InProcessBot, running_bot, settings_for
from tests.procedure_lab import (
    APPROVER1,
    APPROVER2,
    RESPONDER,
    ROOT,
    ProcedureLab,
    buttons,
    procedure_lab,
)
from tests.procedure_run import Clicks, drive, each_change_once
from tests.redis_ha import RedisHA
from tests.streams import raw_entries
from tests.waiting import until

pytestmark = [pytest.mark.slack, pytest.mark.slow]
TOKEN = "failover-token"
ROUNDS_BEFORE, ROUNDS_AFTER = 3, 3


def _config(path: Path, closed_port: int) -> Path:
    # The directory is unreachable on purpose: each diagnosis fails fast, and says so once.
    path.write_text(
        f"""
[slack]
channel = "C0INCIDENT"
responders = ["U0ONCALL1"]
[alerts]
coalesce_seconds = 0.5
[worker]
diagnosis_deadline_seconds = 20
heartbeat_seconds = 1
reclaim_idle_seconds = 3
[[forests]]
name = "{FOREST}"
ldap_hosts = ["dc1.{FOREST}"]
[forests.ldap]
tls = "none"
timeout_seconds = 2
[[forests.dcs]]
fqdn = "dc1.{FOREST}"
address = "127.0.0.1"
ldap_port = {closed_port}
""",
        encoding="utf-8",
    )
    return path


@dataclass
class Ledger:
    """What the bot acknowledged, and what it refused (to be retried, as a sender would)."""

    alerts: Counter[str] = field(default_factory=Counter)  # incident id -> alerts acknowledged
    diagnoses: list[str] = field(default_factory=list)  # incident ids with a queued diagnosis
    refused: int = 0
    rounds: int = 0


async def _post(bot: InProcessBot, body: bytes) -> tuple[int, dict[str, object]]:
    """POST /alerts as a monitoring sender would: with a deadline, retried by the caller."""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as s,
        s.post(bot.url + "/alerts", data=body, headers={"Authorization": f"Bearer {TOKEN}"}) as r,
    ):
        text = await r.text()
        return r.status, json.loads(text) if text.startswith("{") else {}


async def _post_until_acknowledged(bot: InProcessBot, n: int, ledger: Ledger) -> str:
    body, _ = alert_body("generic_json", f"dc{n % 3 + 1}.{FOREST}", dsa_guid(700 + n), FOREST)
    for _ in range(200):
        try:
            status, reply = await _post(bot, body)
        except (OSError, TimeoutError):
            status, reply = 0, {}
        if status == 202:
            iid = str(reply["incidents"][0]["incident_id"])  # type: ignore[index]
            ledger.alerts[iid] += 1
            return iid
        assert status in (0, 503), (status, reply)  # never a 500 or a 4xx for a good alert
        ledger.refused += 1
        await asyncio.sleep(0.2)
    raise AssertionError(f"alert {n} never acknowledged")


async def _diagnose_until_queued(bot: InProcessBot, iid: str, ledger: Ledger) -> None:
    for _ in range(200):
        reply = await bot.driver.slash_command("/ad1411", f"diagnose {iid}", user_id="U0ONCALL1")
        text = reply.body
        if "queued" in text and "could not be confirmed" not in text:
            ledger.diagnoses.append(iid)
            return
        if "already queued or running" in text:
            # A refused-but-applied request from before: it is queued, and must run once.
            ledger.diagnoses.append(iid)
            return
        # Refused while Redis fails over: before anything was done, or not confirmed.
        assert reply.status == 200 and (
            "could not be confirmed" in text or "cannot reach its database" in text
        ), (reply.status, text)
        ledger.refused += 1
        await asyncio.sleep(0.2)
    raise AssertionError(f"diagnosis of {iid} never queued")


async def _flow(bot: InProcessBot, ledger: Ledger, stop: asyncio.Event) -> None:
    """Rounds of: a new alert, then a diagnosis of its incident; until told to stop."""
    n = 0
    while not stop.is_set():
        iid = await _post_until_acknowledged(bot, n, ledger)
        # As a person would: ask for the diagnosis once the incident message is there.
        await until(
            functools.partial(_has_message, bot, iid),
            timeout=60,
            what=f"message of {iid}",
        )
        await _diagnose_until_queued(bot, iid, ledger)
        n += 1
        ledger.rounds = n


async def _storm(bot: InProcessBot, ledger: Ledger, stop: asyncio.Event) -> None:
    """Repeated alerts for the first incidents, back to back: alerts flow through the kill."""
    n = 0
    while not stop.is_set():
        await _post_until_acknowledged(bot, n % ROUNDS_BEFORE, ledger)
        n += 1


async def _has_message(bot: InProcessBot, iid: str) -> bool:
    return any(iid in json.dumps(m.get("blocks", [])) for m in bot.incident_messages())


@contextlib.asynccontextmanager
async def _worker(settings_url: str, bot: InProcessBot) -> AsyncIterator[asyncio.Task[None]]:
    client = async_client(settings_url)
    worker = Worker(bot.runtime.settings, client, slack_client(bot.runtime.settings))
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield task
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 30)
        await client.aclose()


@pytest.fixture
def ha(tmp_path: Path) -> Iterator[RedisHA]:
    # Two replicas: after the failover the new primary still has one to confirm writes (WAIT 1).
    cluster = RedisHA(tmp_path / "ha", replica_count=2).start()
    yield cluster
    cluster.stop()


def _audit(client: redis.Redis) -> list[dict[str, str]]:
    return [
        {k.decode(): v.decode() for k, v in fields.items()}
        for _sid, fields in raw_entries(client, GLOBAL_AUDIT)
    ]


async def test_primary_killed_mid_flow_loses_no_acknowledged_write(
    tmp_path: Path, ha: RedisHA, slack_emulator: SlackEmulator, slack_signing_secret: str
) -> None:
    url = ha.url("wait_timeout_ms=1000")
    settings = settings_for(
        slack_emulator,
        slack_signing_secret,
        url,
        _config(tmp_path / "c.toml", free_port()),
        ALERT_WEBHOOK_TOKEN=TOKEN,
    )
    ledger = Ledger()
    stop = asyncio.Event()
    async with (
        running_bot(settings, slack_emulator, slack_signing_secret) as bot,
        _worker(url, bot) as worker,
    ):
        tasks = [asyncio.create_task(_flow(bot, ledger, stop)), worker]
        try:
            await until(
                lambda: _ready(ledger.rounds >= ROUNDS_BEFORE, tasks), timeout=60, what="rounds"
            )
            tasks.append(asyncio.create_task(_storm(bot, ledger, stop)))
            old_primary = ha.primary.port
            await asyncio.to_thread(ha.primary.kill)
            new_primary = await until(
                lambda: _promoted(ha, old_primary, tasks),
                timeout=60,
                what="Sentinel promoted a replica",
            )
            # The other replica follows the new primary, so writes can be confirmed again.
            await asyncio.to_thread(ha.wait_replicated, new_primary, 1, 60.0)
            rounds_at_failover = ledger.rounds
            await until(
                lambda: _ready(ledger.rounds >= rounds_at_failover + ROUNDS_AFTER, tasks),
                timeout=120,
                what="rounds after the failover",
            )
            stop.set()
            await asyncio.wait_for(asyncio.gather(tasks[0], tasks[2]), 120)
        finally:
            stop.set()
            for task in (tasks[0], *tasks[2:]):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

        # Every queued diagnosis finishes exactly once, on the new primary.
        client = redis.Redis(host="127.0.0.1", port=new_primary)
        try:
            try:
                await until(lambda: _finished_all(client, ledger), timeout=60, what="all finished")
            except TimeoutError:
                raise AssertionError(_explain(client, ledger)) from None
            audit = _audit(client)
            _assert_nothing_lost_or_doubled(client, audit, ledger)
        finally:
            client.close()
        await bot.ctx.drain()
        await _assert_each_diagnosis_said_once(bot, audit)
    assert ledger.refused > 0, "the failover was never felt: the test proved nothing"


async def _new_primary(ha: RedisHA, old: int) -> bool:
    port = await asyncio.to_thread(ha.master_port)
    return port is not None and port != old


async def _promoted(ha: RedisHA, old: int, tasks: list[asyncio.Task[None]]) -> int | None:
    port = await asyncio.to_thread(ha.master_port)
    return port if await _ready(port not in (None, old), tasks) else None


async def _ready(condition: bool, tasks: list[asyncio.Task[None]]) -> bool:
    for task in tasks:
        if task.done():
            task.result()  # surface a failure (flow or worker) instead of waiting for a timeout
            raise AssertionError(f"{task.get_coro()} ended early")
    return condition


async def _finished_all(client: redis.Redis, ledger: Ledger) -> bool:
    audit = await asyncio.to_thread(_audit, client)
    finished = {
        e["incident"]
        for e in audit
        if e["event"].startswith("diagnosis_") and "requested" not in e["event"]
    }
    return set(ledger.diagnoses) <= finished


def _assert_nothing_lost_or_doubled(
    client: redis.Redis, audit: list[dict[str, str]], ledger: Ledger
) -> None:
    opened = {e["incident"] for e in audit if e["event"] == "incident_opened"}
    assert set(ledger.alerts) <= opened, "an acknowledged alert's incident is missing"
    for iid, acked in ledger.alerts.items():
        tag, _seq = iid.split("-")
        stored = client.hget(f"ad1411:{{{tag}}}:incident", "count")
        assert stored is not None and int(stored) >= acked, iid
    requested = Counter(e["job_id"] for e in audit if e["event"] == "diagnosis_requested")
    finished = Counter(
        e["job_id"] for e in audit if e["event"] in ("diagnosis_done", "diagnosis_failed")
    )
    assert all(n == 1 for n in finished.values()), f"a job finished twice: {finished}"
    by_incident = Counter(
        e["incident"] for e in audit if e["event"] in ("diagnosis_done", "diagnosis_failed")
    )
    for iid in ledger.diagnoses:
        assert by_incident[iid] >= 1, f"queued diagnosis of {iid} never finished"
    assert set(finished) <= set(requested)
    pending = client.xpending("ad1411:jobs", "workers")
    assert pending["pending"] == 0, pending


async def _assert_each_diagnosis_said_once(bot: InProcessBot, audit: list[dict[str, str]]) -> None:
    """Each finished job is said once in its incident's thread: never twice, never lost."""
    finished = Counter(
        e["incident"] for e in audit if e["event"] in ("diagnosis_done", "diagnosis_failed")
    )
    said: Counter[str] = Counter()
    for message in bot.emulator.messages("C0INCIDENT"):
        m = re.search(r"Diagnosis of `([0-9a-f]{10}-\d+)` failed", str(message.get("text", "")))
        if m:
            said[m.group(1)] += 1
    assert said == finished, f"said {dict(said)}, finished {dict(finished)}"


def _explain(client: redis.Redis, ledger: Ledger) -> str:
    audit = _audit(client)
    lines = [f"queued: {ledger.diagnoses}"]
    lines += [json.dumps(e) for e in audit if "diagnosis" in e["event"]]
    lines.append(f"stream: {client.xrange('ad1411:jobs')}")
    lines.append(f"pending: {client.xpending_range('ad1411:jobs', 'workers', '-', '+', 100)}")
    return "\n".join(lines)


# -- the procedure through a failover --------------------------------------------------------

PROCEDURE_CONFIG = """
[worker]
heartbeat_seconds = 0.3
heartbeat_stale_seconds = 5
reclaim_idle_seconds = 3
"""
APPROVERS = {
    "1.1": (APPROVER2,),
    "1.2": (APPROVER1,),
    "4": (APPROVER2,),
    "6": (APPROVER1,),
    "7": (APPROVER2,),
}
KILL_AT = "6"  # the primary dies while this step's change is in flight on dc1
XLATE_ON = "+DISABLE_NTDSCONN_XLATE"


def _clicks_metric(lab: ProcedureLab, outcome: str) -> float:
    """ad1411_procedure_clicks_total{outcome} as serve's /metrics shows it."""
    registry = lab.bot.ctx.metrics.registry
    return registry.get_sample_value("ad1411_procedure_clicks_total", {"outcome": outcome}) or 0.0


class PrimaryKill:
    """At step KILL_AT: its change is slow on dc1; once it runs, SIGKILL the Redis primary, and
    at once the approver clicks Approve again (a double click), through the failover."""

    def __init__(self, ha: RedisHA, lab: ProcedureLab, clicks: Clicks) -> None:
        self.ha = ha
        self.lab = lab
        self.clicks = clicks
        self.old_primary = ha.primary.port
        self.in_flight: list[str] = []  # the change's state on dc1 right after the kill
        self.door_refusals = 0  # clicks told "Redis unavailable, nothing done" by the gate

    async def before_run(self, key: str, _msg: dict[str, Any]) -> None:
        if key == KILL_AT:
            self.lab.dcs.dc(ROOT).faults.slow(2.0, match=XLATE_ON, times=1)

    async def after_run(self, key: str, msg: dict[str, Any]) -> None:
        if key != KILL_AT:
            return
        root = self.lab.dcs.dc(ROOT)

        async def running() -> bool:
            return any(XLATE_ON in c.command_line for c in root.commands())

        await until(running, timeout=30, what="the change running on dc1")
        await asyncio.to_thread(self.ha.primary.kill)
        self.in_flight = [c.outcome for c in root.commands() if XLATE_ON in c.command_line]
        # Refused (the step runs already), and said to the approver, once Sentinel has promoted
        # a replica: the click's reads and its audit go through the failover. A click that
        # meets Redis down at serve's door (its replay check) is told so at once, within
        # Slack's 3 s, with nothing done; the approver presses again, as a person would.
        approver = APPROVERS[KILL_AT][-1]
        for _ in range(60):
            told = len(self.lab.emulator.ephemerals(user=approver))
            await self.clicks.click(msg, "Approve", approver)

            def answers_since(told: int = told) -> list[dict[str, Any]]:
                return self.lab.emulator.ephemerals(user=approver)[told:]

            answers = await self.lab.emulator.wait_for_async(answers_since, timeout=90)
            if REDIS_DOWN_TEXT not in str(answers[0].get("text")):
                self.clicks.expected[("refused", KILL_AT, approver)] += 1
                return
            self.door_refusals += 1
            await until(
                lambda: _new_primary(self.ha, self.old_primary), timeout=60, what="a new primary"
            )
        raise AssertionError("the double click never reached the procedure")


async def test_primary_killed_mid_procedure_it_goes_on_and_loses_no_acknowledged_transition(
    tmp_path: Path,
    ha: RedisHA,
    slack_emulator: SlackEmulator,
    slack_signing_secret: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with procedure_lab(
        tmp_path,
        ha.url("wait_timeout_ms=500"),
        slack_emulator,
        slack_signing_secret,
        monkeypatch,
        extra_config=PROCEDURE_CONFIG,
    ) as lab:
        iid, incident = await lab.open_incident()
        await lab.seed_diagnosis(iid)
        driver = SlackDriver(
            slack_emulator,
            signing_secret=slack_signing_secret,
            bot_url=lab.bot.url + "/slack/events",
            timeout=90,  # a click during the failover waits for the new primary
        )
        clicks = Clicks(lambda: driver, slack_emulator, incident["ts"])
        await clicks.click(incident, "Start procedure", RESPONDER, "procedure_started")
        kill = PrimaryKill(ha, lab, clicks)
        closed = await drive(
            clicks, APPROVERS, before_run=kill.before_run, after_run=kill.after_run
        )
        assert buttons(closed) == []
        new_primary = await asyncio.to_thread(ha.master_port)
        assert new_primary not in (None, kill.old_primary), "no failover happened"

        # On the new primary: every acknowledged click took effect once, and the step in
        # flight at the kill was reported once, after the kill.
        client = redis.Redis(host="127.0.0.1", port=new_primary)
        try:
            audit = _audit(client)
        finally:
            client.close()
        clicks.took_effect_once(audit)
        # The double click was refused (no second run), and the approver was told why.
        (refused,) = [e for e in audit if e["event"] == "refused"]
        told = [str(e.get("text")) for e in lab.emulator.ephemerals(user=APPROVERS[KILL_AT][-1])]
        assert refused["reason"] in told, told
        assert _clicks_metric(lab, "refused") == 1 and _clicks_metric(lab, "unconfirmed") == 0
        by_step = Counter(
            (e["event"], e.get("step", ""))
            for e in audit
            if e.get("worker") or "step_" in e["event"]
        )
        for step in ("1.1", "1.2", "2.1", "2.2", "4", "6", "7", "8", "9", "10", "11.1", "11.2"):
            assert by_step[("step_started", step)] + by_step[("step_reclaimed", step)] >= 1, step
            assert by_step[("step_done", step)] + by_step[("step_already_done", step)] == 1, step
        # The step's change was still running when the primary died: its report came after.
        assert kill.in_flight == ["running"]
        each_change_once(lab.dcs)
        assert lab.dcs.dc(ROOT).registry_value("Replicator Allow SPN Fallback") is None


async def test_a_click_no_replica_confirms_is_said_so_and_pressing_again_does_not_double_it(
    tmp_path: Path,
    slack_emulator: SlackEmulator,
    slack_signing_secret: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ha = RedisHA(tmp_path / "ha1", replica_count=1).start()
    try:
        async with procedure_lab(
            tmp_path,
            ha.url("wait_timeout_ms=200"),
            slack_emulator,
            slack_signing_secret,
            monkeypatch,
            workers=0,
        ) as lab:
            iid, incident = await lab.open_incident()
            await lab.seed_diagnosis(iid)
            await lab.driver.click(incident, text="Start procedure", user_id=RESPONDER)
            msg = await lab.wait_message(incident["ts"], lambda m: "Request approval" in buttons(m))
            lab.bot.ctx.procedures.retry_seconds = 1.0  # how long a click waits for a replica
            await asyncio.to_thread(ha.replica.stop)

            # The primary applies it, no replica confirms it: the person is told, not misled.
            await lab.click(msg, "Request approval", RESPONDER)
            told = await lab.emulator.wait_for_async(
                lambda: [
                    e for e in lab.emulator.ephemerals(user=RESPONDER) if e["text"] == UNCONFIRMED
                ],
                timeout=30,
            )
            assert told
            await asyncio.to_thread(ha.replica.start)
            await asyncio.to_thread(ha.wait_replicated, ha.primary.port, 1)
            lab.bot.ctx.procedures.retry_seconds = RETRY_SECONDS
            # Pressed again once Redis is whole: what had taken effect is found, not doubled.
            await lab.click(msg, "Request approval", RESPONDER)
            again = await lab.emulator.wait_for_async(
                lambda: [
                    e
                    for e in lab.emulator.ephemerals(user=RESPONDER)
                    if "already requested" in str(e["text"])
                ],
                timeout=30,
            )
            assert again
            events = [e["event"] for e in await lab.audit()]
            assert events.count("approval_requested") == 1 and events.count("refused") == 1
            assert _clicks_metric(lab, "unconfirmed") == _clicks_metric(lab, "refused") == 1
    finally:
        ha.stop()
