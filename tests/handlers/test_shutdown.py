"""SIGTERM during every kind of pending work (issue 9, item 3 and the fault suite): serve and
worker exit within their limit, and what was pending is done by the next process."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio

from lab.alert_samples import alert_body, dsa_guid, event_text
from lab.slack_driver import SlackDriver
from lab.slack_emulator import SlackEmulator
from state.diagnoses import DiagnosisStore
from state.incidents import AlertRecord, IncidentStore
from state.keys import JOBS_GROUP, JOBS_STREAM
from tests.handlers.serve_config import FOREST, write_config
from tests.procs import LISTENING, BotProcess, http_env
from tests.rawhttp import request_head
from tests.waiting import until

pytestmark = [pytest.mark.slack, pytest.mark.e2e]
TOKEN = "shutdown-token"
LIMIT = 3.0
EXIT_MARGIN = 3.0  # interpreter exit after the limit, on a loaded machine


async def _post(url: str, body: bytes) -> tuple[int, dict[str, object]]:
    async with (
        aiohttp.ClientSession() as s,
        s.post(url + "/alerts", data=body, headers={"Authorization": f"Bearer {TOKEN}"}) as r,
    ):
        return r.status, json.loads(await r.text())


async def _not(probe: Callable[[], Awaitable[bool]]) -> bool:
    return not await probe()


async def _zero(count: Awaitable[int]) -> bool:
    return await count == 0


def _top(emulator: SlackEmulator) -> list[dict[str, object]]:
    # A parent message carries thread_ts (its own ts) once it has replies, as in Slack.
    return [
        m
        for m in emulator.messages("C0INCIDENT")
        if "thread_ts" not in m or m.get("thread_ts") == m.get("ts")
    ]


async def test_serve_stops_promptly_while_slack_refuses_an_incident_message(
    tmp_path: Path, redis_url: str, slack_env: dict[str, str], slack_emulator: SlackEmulator
) -> None:
    # Item 3 as reported, on default limits: Slack rate-limits the message, another alert
    # arrives for the incident, then SIGTERM. Serve must stop within its default limit (10 s).
    cfg = write_config(tmp_path / "c.toml", coalesce_seconds=1)
    env = http_env(
        slack_env, REDIS_URL=redis_url, AD1411_CONFIG=str(cfg), ALERT_WEBHOOK_TOKEN=TOKEN
    )
    proc = BotProcess(["serve"], {"PORT": "0", **env}, tmp_path / "serve.log")
    url = (await asyncio.to_thread(proc.wait_for_line, LISTENING)).group(1)
    try:
        slack_emulator.fail_next("chat.postMessage", times=1000, status=429, retry_after=1)
        for dc in ("dc1", "dc2"):
            body = alert_body("generic_json", f"{dc}.{FOREST}", dsa_guid(4), FOREST)[0]
            assert (await _post(url, body))[0] == 202
        await slack_emulator.wait_for_async(
            lambda: len(slack_emulator.calls("chat.postMessage")) >= 4, timeout=20
        )
        began = time.monotonic()
        code = await asyncio.to_thread(proc.stop, 60)
        took = time.monotonic() - began
    finally:
        proc.kill()
    assert code == 0 and took <= 10 + EXIT_MARGIN, (took, proc.stderr()[-2000:])


async def test_serve_sigterm_with_pending_work_exits_in_time_and_loses_nothing(
    tmp_path: Path, redis_url: str, slack_env: dict[str, str], slack_emulator: SlackEmulator
) -> None:
    cfg = write_config(
        tmp_path / "c.toml",
        coalesce_seconds=3,
        extra="max_new_incidents_per_request = 1",
        sections=f"[serve]\nshutdown_seconds = {LIMIT}\nbody_read_seconds = 30",
    )
    env = http_env(
        slack_env, REDIS_URL=redis_url, AD1411_CONFIG=str(cfg), ALERT_WEBHOOK_TOKEN=TOKEN
    )
    first = BotProcess(["serve"], {"PORT": "0", **env}, tmp_path / "first.log")
    url = (await asyncio.to_thread(first.wait_for_line, LISTENING)).group(1)
    try:
        # 1. An incident whose message is posted; then an alert makes an update pending.
        assert (
            await _post(url, alert_body("generic_json", f"dc1.{FOREST}", dsa_guid(1), FOREST)[0])
        )[0] == 202
        msg = (await slack_emulator.wait_for_async(lambda: _top(slack_emulator), timeout=20))[0]
        await slack_emulator.wait_for_async(
            lambda: len(slack_emulator.calls("chat.postMessage")) >= 2, timeout=20
        )
        assert (
            await _post(url, alert_body("event_text", f"dc2.{FOREST}", dsa_guid(1), FOREST)[0])
        )[0] == 202
        # 2. Slack rate-limits posting: a new incident and an alert flood wait for Retry-After.
        slack_emulator.fail_next("chat.postMessage", times=100, status=429, retry_after=2)
        two = "\n".join(event_text(f"dc3.{FOREST}", dsa_guid(n), FOREST) for n in (2, 3))
        status, reply = await _post(url, two.encode())
        assert status == 202 and reply["flood"]["grouped"] == 1  # type: ignore[index]
        await slack_emulator.wait_for_async(
            lambda: [c for c in slack_emulator.calls("chat.postMessage") if c.status == 429],
            timeout=20,
        )
        # 3. A reply to a click is in flight to a slow response_url.
        slack_emulator.faults.slow_next("response_url", delay=30)
        driver = SlackDriver(
            slack_emulator,
            signing_secret=env["SLACK_SIGNING_SECRET"],
            bot_url=url + "/slack/events",
        )
        assert (await driver.click(msg, action_id="incident_diagnose")).status == 200
        # 4. A client is halfway through uploading an alert.
        host, port = url.removeprefix("http://").split(":")
        _, upload = await asyncio.open_connection(host, int(port))
        upload.write(
            request_head(url, "/alerts", {"Authorization": f"Bearer {TOKEN}"}, content_length=9000)
            + b"x" * 100
        )
        await upload.drain()

        began = time.monotonic()
        code = await asyncio.to_thread(first.stop, LIMIT + EXIT_MARGIN + 10)
        took = time.monotonic() - began
        upload.close()
    finally:
        first.kill()
    assert code == 0, first.stderr()[-3000:]
    assert took <= LIMIT + EXIT_MARGIN, (took, first.stderr()[-3000:])
    log = first.stderr()
    assert "reply(ies) not sent" in log, log[-5000:]
    assert "Traceback" not in log

    # What was pending is in Redis; the next serve does it, once.
    slack_emulator.faults.clear()
    second = BotProcess(["serve"], {"PORT": "0", **env}, tmp_path / "second.log")
    try:
        await asyncio.to_thread(second.wait_for_line, LISTENING)

        def done() -> bool:
            tops = json.dumps(_top(slack_emulator))
            return f"dc2.{FOREST}" in tops and dsa_guid(2) in tops and "Alert flood" in tops

        await slack_emulator.wait_for_async(done, timeout=30)
        from state.keys import OUTBOX

        client = redis.asyncio.Redis.from_url(redis_url)
        await until(lambda: _zero(client.zcard(OUTBOX)), what="outbox empty", timeout=10)
        await client.aclose()
    finally:
        second.stop()
    posted = [
        c
        for c in slack_emulator.calls("chat.postMessage")
        if c.status == 200 and "thread_ts" not in c.params
    ]
    assert len(posted) == 3  # incident 1, incident 2, the flood: each once


@pytest.fixture
async def silent_ldap() -> AsyncIterator[int]:
    """An LDAP port that accepts connections and never answers (a hung DC)."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield int(server.sockets[0].getsockname()[1])
    server.close()
    for writer in held:
        writer.close()


async def test_worker_sigterm_during_a_hung_job_exits_in_time_and_the_job_is_reclaimed(
    tmp_path: Path, redis_url: str, slack_env: dict[str, str], silent_ldap: int
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[slack]\nchannel = "C0INCIDENT"\nresponders = ["U0ONCALL1"]\n'
        f"[worker]\nshutdown_seconds = {LIMIT}\nreclaim_idle_seconds = 1\n"
        "diagnosis_deadline_seconds = 120\n"
        f'[[forests]]\nname = "{FOREST}"\nldap_hosts = ["dc1.{FOREST}"]\n'
        '[forests.ldap]\ntls = "none"\ntimeout_seconds = 100\nuser = "CN=x"\n'
        'password = { env = "LDAP_PW" }\n'
        f'[[forests.dcs]]\nfqdn = "dc1.{FOREST}"\naddress = "127.0.0.1"\n'
        f"ldap_port = {silent_ldap}\n"
    )
    env = http_env(slack_env, REDIS_URL=redis_url, AD1411_CONFIG=str(cfg), LDAP_PW="pw")
    client = redis.asyncio.Redis.from_url(redis_url)
    store = IncidentStore(client)
    intake = await store.record(AlertRecord(FOREST, dsa_guid(9), f"dc1.{FOREST}", 8589, None, "x"))
    # As if serve had posted it: the worker reports the failure in its thread at once.
    await store.set_message(intake.incident_id, "C0INCIDENT", "1.000100")
    first = BotProcess(["worker"], env, tmp_path / "w1.log")
    try:
        await asyncio.to_thread(first.wait_for_line, re.compile("ready"))
        await DiagnosisStore(client).request(intake.incident_id, "U0ONCALL1", pending_seconds=600)

        async def taken() -> bool:
            info = await client.xinfo_groups(JOBS_STREAM)
            return any(int(g["pending"]) == 1 for g in info if g["name"] == JOBS_GROUP.encode())

        await until(taken, what="the job taken by the first worker", timeout=30)
        began = time.monotonic()
        code = await asyncio.to_thread(first.stop, LIMIT + EXIT_MARGIN + 10)
        took = time.monotonic() - began
    finally:
        first.kill()
    assert took <= LIMIT + EXIT_MARGIN, (took, first.stderr()[-2000:])
    assert code == 0
    assert "stays queued" in first.stderr()
    assert await taken()  # not acknowledged: still the group's to run

    # The next worker reclaims it and runs it to an outcome (the DC still does not answer).
    cfg.write_text(cfg.read_text().replace("timeout_seconds = 100", "timeout_seconds = 1"))
    second = BotProcess(["worker"], env, tmp_path / "w2.log")
    try:
        await asyncio.to_thread(second.wait_for_line, re.compile("ready"))
        await until(lambda: _not(taken), what="the job done by the second worker", timeout=60)

        # The outcome is logged after the job is acknowledged: wait for the line as well.
        async def outcome() -> bool:
            return re.search(r"outcome=(failed|timed-out)", second.stderr()) is not None

        await until(outcome, what="the job's outcome in the second worker's log", timeout=30)
    finally:
        second.stop()
        await client.aclose()
