"""What must survive crashes and restarts: workers and serve as real processes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio

from bot.directory.model import diagnosis_to_json
from lab.alert_samples import alert_body, dsa_guid
from lab.dcsim.simulator import DcLab
from lab.slack_driver import SlackDriver
from lab.slack_emulator import SlackEmulator
from state.diagnoses import DiagnosisStore
from tests.fixtures_dcsim import DCSIM_PASSWORD, DCSIM_USER
from tests.procedure_lab import (
    FOREST,
    MISSING,
    REPORTER,
    RESPONDER,
    ROOT,
    TARGET_GUID,
    LabFactory,
    ProcedureLab,
    buttons,
    seeded_diagnosis,
    step_state,
    write_procedure_config,
)
from tests.procs import BotProcess, http_env, serve

pytestmark = [pytest.mark.e2e, pytest.mark.winrm, pytest.mark.slack, pytest.mark.slow]
FAST = """
[approvals]
change = 0
[worker]
heartbeat_seconds = 0.3
heartbeat_stale_seconds = 2
reclaim_idle_seconds = 3
shutdown_seconds = 1
"""
READY = re.compile(r"worker .* ready")


def _worker_env(lab: ProcedureLab, slack_env: dict[str, str], cfg: str) -> dict[str, str]:
    return http_env(
        slack_env,
        REDIS_URL=lab.redis_url,
        AD1411_CONFIG=cfg,
        LAB_WINRM_PASSWORD=DCSIM_PASSWORD,
    )


async def _start(
    lab: ProcedureLab, guid: str = TARGET_GUID
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    iid, incident = await lab.open_incident(guid=guid)
    await lab.seed_diagnosis(iid, seeded_diagnosis(guid))
    await lab.driver.click(incident, text="Start procedure", user_id=RESPONDER)
    msg = await lab.wait_message(incident["ts"], lambda m: "Run" in buttons(m))
    return iid, incident, msg


@pytest.fixture
async def lab(
    new_lab: LabFactory,
) -> AsyncIterator[ProcedureLab]:
    async with new_lab(
        extra_config=FAST,
        workers=0,
    ) as running:
        yield running


async def test_a_worker_killed_mid_step_is_reclaimed_and_nothing_runs_twice(
    lab: ProcedureLab, tmp_path: Path, slack_env: dict[str, str]
) -> None:
    env = _worker_env(lab, slack_env, str(lab.settings.env.AD1411_CONFIG))
    first = BotProcess(["worker"], env, tmp_path / "worker-a.log")
    first.wait_for_line(READY)
    second: BotProcess | None = None
    try:
        _, incident, msg = await _start(lab)
        root = lab.dcs.dc(ROOT)
        # The change takes a while on the DC: long enough to kill the worker in the middle.
        root.faults.slow(1.5, match="reg.exe add", times=1)
        await lab.click(msg, "Run", RESPONDER)
        await lab.emulator.wait_for_async(
            lambda: [c for c in root.commands() if "reg.exe add" in c.command_line], timeout=30
        )
        first.kill()
        second = BotProcess(["worker"], env, tmp_path / "worker-b.log")
        second.wait_for_line(READY)
        done = await lab.wait_message(incident["ts"], lambda m: step_state(m, "1.1") == "done", 90)
        adds = [c for c in root.commands() if "reg.exe add" in c.command_line]
        assert len(adds) == 1, [c.command_line for c in root.commands()]
        assert "the earlier run had applied it" in json.dumps(done["blocks"])
        events = [e["event"] for e in await lab.audit()]
        assert "step_reclaimed" in events
    finally:
        first.stop()
        if second is not None:
            second.stop()


async def test_sigterm_mid_step_ends_the_worker_in_its_limit_and_the_step_runs_once(
    lab: ProcedureLab, tmp_path: Path, slack_env: dict[str, str]
) -> None:
    """SIGTERM while a step's change is in flight on the DC and takes longer than the
    worker's shutdown limit: the worker exits (code 0) leaving the job queued; another worker
    takes it over and the change is applied once."""
    env = _worker_env(lab, slack_env, str(lab.settings.env.AD1411_CONFIG))
    first = BotProcess(["worker"], env, tmp_path / "worker-a.log")
    first.wait_for_line(READY)
    second: BotProcess | None = None
    try:
        _, incident, msg = await _start(lab)
        root = lab.dcs.dc(ROOT)
        root.faults.slow(3.0, match="reg.exe add", times=1)  # past the 1 s shutdown limit
        await lab.click(msg, "Run", RESPONDER)

        def adds() -> list[Any]:
            return [c for c in root.commands() if "reg.exe add" in c.command_line]

        await lab.emulator.wait_for_async(adds, timeout=30)
        code = await asyncio.to_thread(first.stop, 60)  # a hang guard, not the limit
        assert code == 0, first.stderr()[-2000:]
        assert "shutdown limit reached" in first.stderr(), first.stderr()[-2000:]
        # The DC finishes (or drops) the command on its own; then another worker comes.
        await lab.emulator.wait_for_async(
            lambda: all(c.outcome != "running" for c in adds()), timeout=30
        )
        second = BotProcess(["worker"], env, tmp_path / "worker-b.log")
        second.wait_for_line(READY)
        await lab.wait_message(incident["ts"], lambda m: step_state(m, "1.1") == "done", 90)
        applied = [c for c in adds() if c.outcome == "exited" and c.exit_code == 0]
        assert len(applied) == 1, [(c.command_line, c.outcome) for c in root.commands()]
        events = [e["event"] for e in await lab.audit()]
        assert events.count("step_done") + events.count("step_already_done") == 1, events
    finally:
        first.stop()
        if second is not None:
            second.stop()


async def test_serve_and_worker_restarted_mid_procedure_the_old_buttons_still_work(
    tmp_path: Path,
    redis_url: str,
    slack_env: dict[str, str],
    slack_emulator: SlackEmulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lab = DcLab(FOREST, tmp_path / "dcsim")
    stack = contextlib.ExitStack()
    try:
        dcs = [
            lab.add_dc(f"dc{i}.{FOREST}", auth="ntlm", user=DCSIM_USER, password=DCSIM_PASSWORD)
            for i in (1, 2, 3)
        ]
        lab.forest.connect_all(except_pairs=frozenset({(ROOT, MISSING)}))
        cfg = write_procedure_config(tmp_path / "c.toml", dcs, FAST)
        env = http_env(
            slack_env,
            REDIS_URL=redis_url,
            AD1411_CONFIG=str(cfg),
            LAB_WINRM_PASSWORD=DCSIM_PASSWORD,
            ALERT_WEBHOOK_TOKEN="restart-token",
        )
        secret = env["SLACK_SIGNING_SECRET"]

        async def alert(url: str, dc: str) -> str:
            import aiohttp

            body, _ = alert_body("event_text", dc, TARGET_GUID, FOREST)
            async with (
                aiohttp.ClientSession() as s,
                s.post(
                    url + "/alerts", data=body, headers={"Authorization": "Bearer restart-token"}
                ) as r,
            ):
                return str((await r.json())["incidents"][0]["incident_id"])

        def proc_msg(ts: str) -> dict[str, Any] | None:
            for m in slack_emulator.messages("C0INCIDENT"):
                if m.get("thread_ts") == ts and "KB938704 procedure" in json.dumps(m.get("blocks")):
                    return m
            return None

        async def wait_step(ts: str, key: str, state: str) -> dict[str, Any]:
            try:
                found = await slack_emulator.wait_for_async(
                    lambda: (m := proc_msg(ts)) is not None and step_state(m, key) == state and m,
                    timeout=90,
                )
            except TimeoutError:
                thread = [str(m.get("text")) for m in slack_emulator.messages("C0INCIDENT")]
                raise AssertionError(f"step {key} never {state}; the channel: {thread}") from None
            assert isinstance(found, dict)
            return found

        worker = BotProcess(["worker"], env, tmp_path / "worker-1.log")
        stack.callback(worker.stop)
        worker.wait_for_line(READY)
        with serve(env, tmp_path, "serve-1") as (_, url):
            iid = await alert(url, ROOT)
            await alert(url, REPORTER)
            incident = (
                await slack_emulator.wait_for_async(
                    lambda: [
                        m
                        for m in slack_emulator.messages("C0INCIDENT")
                        if m.get("thread_ts") in (None, m["ts"])  # a parent with replies has one
                    ],
                    timeout=30,
                )
            )[0]
            client = redis.asyncio.Redis.from_url(redis_url)
            await DiagnosisStore(client).finish(
                iid,
                "seeded",
                user_id=RESPONDER,
                outcome="done",
                result=diagnosis_to_json(seeded_diagnosis()),
            )
            await client.aclose()
            driver = SlackDriver(
                slack_emulator, signing_secret=secret, bot_url=url + "/slack/events"
            )
            started = await driver.click(incident, text="Start procedure", user_id=RESPONDER)
            assert started.status == 200, started.body
            posted = await slack_emulator.wait_for_async(
                lambda: proc_msg(incident["ts"]), timeout=30
            )
            assert posted is not None
            await driver.click(posted, text="Run", user_id=RESPONDER)
            msg = await wait_step(incident["ts"], "1.1", "done")
        worker.stop()
        # Both processes are new; the message in Slack is the one posted before.
        worker = BotProcess(["worker"], env, tmp_path / "worker-2.log")
        stack.callback(worker.stop)
        worker.wait_for_line(READY)
        try:
            with serve(env, tmp_path, "serve-2") as (_, url):
                driver = SlackDriver(
                    slack_emulator, signing_secret=secret, bot_url=url + "/slack/events"
                )
                answer = await driver.click(msg, text="Run", user_id=RESPONDER)
                assert answer.status == 200
                await wait_step(incident["ts"], "1.2", "done")
        finally:
            worker.stop()
        reporter = lab.dc(REPORTER).registry_value("RepsTo Failure Time (sec)")
        assert reporter is not None and reporter.data == 60
    finally:
        stack.close()  # every worker process this test started, whatever happened
        lab.stop()


async def test_two_incidents_never_change_one_dc_at_the_same_time(lab: ProcedureLab) -> None:
    lab.start_worker()
    lab.start_worker()
    root = lab.dcs.dc(ROOT)
    root.faults.slow(1.0, match="reg.exe add")
    _, inc1, msg1 = await _start(lab)
    _, inc2, msg2 = await _start(lab, dsa_guid(77))
    await asyncio.gather(lab.click(msg1, "Run", RESPONDER), lab.click(msg2, "Run", RESPONDER))
    await lab.wait_message(inc1["ts"], lambda m: step_state(m, "1.1") in ("done", "satisfied"), 90)
    await lab.wait_message(inc2["ts"], lambda m: step_state(m, "1.1") in ("done", "satisfied"), 90)
    changes = sorted(
        (c for c in root.commands() if "reg.exe" in c.command_line), key=lambda c: c.started_at
    )
    # Each run is query, add, query; with the lock the two runs never interleave.
    runs = [changes[i : i + 3] for i in range(0, len(changes), 3)]
    assert [len(r) for r in runs] in ([3, 1], [3, 3], [3, 2])
    first_end = runs[0][-1].finished_at
    assert first_end is not None and all(c.started_at >= first_end for c in runs[1])
    waited = [
        m
        for m in lab.emulator.messages("C0INCIDENT")
        if "waits" in str(m.get("text")) and "busy" in str(m.get("text"))
    ]
    assert waited
