"""Several replicas against one Redis: three `ad1411 serve` and two `ad1411 worker` processes,
alerts and diagnosis requests spread over the serve processes, one serve and one worker killed
(SIGKILL) while diagnoses are in flight. Nothing is lost and nothing happens twice: one incident
per problem, counts equal to the alerts acknowledged, one message per incident, every queued
diagnosis finished once and said once in its thread.

Written for the flows that exist now (alerts, incidents, diagnoses); the procedure engine's
steps, approvals and obligations join the same phases when they land.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis

from lab.alert_samples import FORMATS, alert_body, dsa_guid
from lab.slack_driver import SlackDriver
from lab.slack_emulator import SlackEmulator
from state.keys import GLOBAL_AUDIT, JOBS_GROUP, JOBS_STREAM
from tests.handlers.serve_config import FOREST
from tests.procs import LISTENING, BotProcess, http_env
from tests.waiting import until

pytestmark = [pytest.mark.slack, pytest.mark.e2e, pytest.mark.slow]
TOKEN = "multiprocess-token"
LDAP_TIMEOUT_SECONDS = 3  # each diagnosis waits this long on a DC that never answers


def _config(path: Path, ldap_port: int) -> Path:
    path.write_text(
        f"""
[slack]
channel = "C0INCIDENT"
responders = ["U0ONCALL1"]
[alerts]
coalesce_seconds = 0.5
[worker]
diagnosis_deadline_seconds = 30
heartbeat_seconds = 1
heartbeat_stale_seconds = 5
reclaim_idle_seconds = 4
[[forests]]
name = "{FOREST}"
ldap_hosts = ["dc1.{FOREST}"]
[forests.ldap]
tls = "none"
timeout_seconds = {LDAP_TIMEOUT_SECONDS}
[[forests.dcs]]
fqdn = "dc1.{FOREST}"
address = "127.0.0.1"
ldap_port = {ldap_port}
""",
        encoding="utf-8",
    )
    return path


@contextlib.asynccontextmanager
async def silent_dc() -> AsyncIterator[int]:
    """A TCP port that accepts LDAP connections and never answers: jobs stay in flight."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        for writer in held:
            writer.close()
        await server.wait_closed()


class Cluster:
    """The bot's processes, started and stopped by PID."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.serves: list[tuple[BotProcess, str]] = []
        self.workers: list[BotProcess] = []

    def start(self, serves: int, workers: int) -> Cluster:
        for i in range(serves):
            proc = BotProcess(["serve"], {"PORT": "0", **self.env}, self.logs / f"serve{i}.log")
            self.serves.append((proc, proc.wait_for_line(LISTENING).group(1)))
        for i in range(workers):
            proc = BotProcess(["worker"], self.env, self.logs / f"worker{i}.log")
            proc.wait_for_line(re.compile("worker .* ready"))
            self.workers.append(proc)
        return self

    def stop(self) -> None:
        for proc, _ in self.serves:
            proc.stop()
        for proc in self.workers:
            proc.stop()

    def alive_serves(self) -> list[str]:
        return [url for proc, url in self.serves if proc.proc.poll() is None]

    def stderr(self) -> str:
        return "\n".join(p.stderr() for p, _ in self.serves) + "\n".join(
            w.stderr() for w in self.workers
        )


@pytest.fixture
def env(tmp_path: Path, redis_url: str, slack_env: dict[str, str]) -> dict[str, str]:
    return http_env(slack_env, REDIS_URL=redis_url, ALERT_WEBHOOK_TOKEN=TOKEN)


@pytest.fixture
def db(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


async def _alert(url: str, n: int, problem: int) -> str:
    """One alert (format and reporting DC vary) for `problem`; returns the incident id."""
    fmt = FORMATS[n % len(FORMATS)]
    body, ctype = alert_body(fmt, f"dc{n % 3 + 2}.{FOREST}", dsa_guid(900 + problem), FOREST)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": ctype}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as s,
        s.post(url + "/alerts", data=body, headers=headers) as r,
    ):
        reply = json.loads(await r.text())
        assert r.status == 202, reply
        return str(reply["incidents"][0]["incident_id"])


def _driver(emulator: SlackEmulator, env: dict[str, str], url: str) -> SlackDriver:
    return SlackDriver(
        emulator, signing_secret=env["SLACK_SIGNING_SECRET"], bot_url=url + "/slack/events"
    )


def _messages_of(emulator: SlackEmulator) -> Counter[str]:
    """Incident id -> number of top-level incident messages that show it."""
    found: Counter[str] = Counter()
    for m in emulator.messages("C0INCIDENT"):
        if m.get("thread_ts") not in (None, m.get("ts")):
            continue
        ids = set(re.findall(r"[0-9a-f]{10}-\d+", json.dumps(m.get("blocks", []))))
        found.update(ids)
    return found


def _said(emulator: SlackEmulator) -> Counter[str]:
    """Incident id -> diagnosis results said in its thread."""
    said: Counter[str] = Counter()
    for m in emulator.messages("C0INCIDENT"):
        hit = re.search(r"Diagnosis of `([0-9a-f]{10}-\d+)`", str(m.get("text", "")))
        if hit and m.get("thread_ts") not in (None, m.get("ts")):
            said[hit.group(1)] += 1
    return said


def _audit(db: redis.Redis) -> list[dict[str, Any]]:
    return [fields for _sid, fields in db.xrange(GLOBAL_AUDIT)]


async def _queue_diagnosis(
    emulator: SlackEmulator, env: dict[str, str], url: str, iid: str
) -> None:
    reply = await _driver(emulator, env, url).slash_command("/ad1411", f"diagnose {iid}")
    assert reply.status == 200 and "queued" in reply.body, reply.body


def _check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.app.cli", "worker", "--check", "--this-host"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_three_serve_two_workers_kill_one_of_each_nothing_lost_or_doubled(
    tmp_path: Path,
    env: dict[str, str],
    db: redis.Redis,
    slack_emulator: SlackEmulator,
) -> None:
    async with silent_dc() as ldap_port:
        env = {**env, "AD1411_CONFIG": str(_config(tmp_path / "c.toml", ldap_port))}
        cluster = Cluster(env, tmp_path).start(serves=3, workers=2)
        try:
            await _run(cluster, env, db, slack_emulator)
        finally:
            cluster.stop()


async def _run(
    cluster: Cluster, env: dict[str, str], db: redis.Redis, emulator: SlackEmulator
) -> None:
    urls = [url for _, url in cluster.serves]
    acked: Counter[str] = Counter()

    # Phase 1: three problems, each reported by three DCs, each alert through another serve.
    sends = [(urls[(p + n) % 3], 3 * p + n, p) for p in range(3) for n in range(3)]
    for iid in await asyncio.gather(*(_alert(u, n, p) for u, n, p in sends)):
        acked[iid] += 1
    incidents = sorted(acked)
    assert len(incidents) == 3 and set(acked.values()) == {3}
    await until(lambda: _all_posted(emulator, incidents), timeout=60, what="incident messages")

    # Phase 2: a diagnosis of each, each asked through another serve; they hang on the DC.
    for i, iid in enumerate(incidents):
        await _queue_diagnosis(emulator, env, urls[i], iid)
    assert _check(env).returncode == 0
    await until(lambda: _in_flight(db, 2), timeout=30, what="two diagnoses in flight")

    # Midway: SIGKILL one worker (its job in flight) and one serve.
    cluster.workers[0].kill()
    cluster.serves[1][0].kill()
    alive = cluster.alive_serves()
    assert len(alive) == 2

    # Phase 3: the flow goes on through the two serves that are left.
    for n in range(4):
        acked[await _alert(alive[n % 2], 20 + n, 3)] += 1
    fourth = next(i for i in acked if i not in incidents)
    await until(lambda: _all_posted(emulator, [fourth]), timeout=60, what="4th message")
    await _queue_diagnosis(emulator, env, alive[1], fourth)
    incidents.append(fourth)

    # Every queued diagnosis finishes exactly once (the dead worker's is reclaimed) and is said
    # exactly once; every acknowledged alert is counted once; one message per incident.
    await until(lambda: _finished(db, len(incidents)), timeout=120, what="every diagnosis finished")
    audit = _audit(db)
    requested = Counter(e["job_id"] for e in audit if e["event"] == "diagnosis_requested")
    finished = Counter(
        e["job_id"] for e in audit if e["event"] in ("diagnosis_done", "diagnosis_failed")
    )
    assert len(requested) == len(incidents) and set(finished) == set(requested)
    assert set(finished.values()) == {1}, finished
    await until(lambda: _said_all(emulator, incidents), timeout=60, what="results in threads")
    assert set(_said(emulator).values()) == {1}, _said(emulator)
    assert _messages_of(emulator) == Counter(dict.fromkeys(incidents, 1))
    for iid, count in acked.items():
        tag = iid.split("-")[0]
        assert int(db.hget(f"ad1411:{{{tag}}}:incident", "count") or 0) == count, iid
    assert db.xpending(JOBS_STREAM, JOBS_GROUP)["pending"] == 0
    reclaimed = "\n".join(w.stderr() for w in cluster.workers[1:])
    assert "outcome=" in reclaimed
    assert TOKEN not in cluster.stderr()

    # The probe: the surviving worker is alive on this host; with none left, it says so.
    assert _check(env).returncode == 0
    for worker in cluster.workers:
        worker.stop()
    done = _check({**env})
    assert done.returncode == 1 and "no worker on" in done.stdout


async def _all_posted(emulator: SlackEmulator, incidents: list[str]) -> bool:
    shown = _messages_of(emulator)
    return all(shown[i] >= 1 for i in incidents)


async def _in_flight(db: redis.Redis, n: int) -> bool:
    return bool(db.xpending(JOBS_STREAM, JOBS_GROUP)["pending"] >= n)


async def _finished(db: redis.Redis, n: int) -> bool:
    audit = await asyncio.to_thread(_audit, db)
    return sum(e["event"] in ("diagnosis_done", "diagnosis_failed") for e in audit) >= n


async def _said_all(emulator: SlackEmulator, incidents: list[str]) -> bool:
    said = _said(emulator)
    return all(said[i] >= 1 for i in incidents)
