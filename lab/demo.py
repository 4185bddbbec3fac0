"""`ad1411 demo`: a real Event 1411 incident on one machine, shown on a local Slack page.

One command starts, in this process: an embedded Redis, the lab forest (two real Samba DCs
when this machine allows it, else the DC simulator alone, and it says so), one simulated DC
per forest DC for WinRM (repadmin backed by Samba, a restart stopping and starting the Samba
DC), the Slack emulator with its web page, the bot (serve and worker), and the lab event
source. It then breaks the forest (DC2 loses its serverReference); DC1 refuses DC2, the event
source forwards Event 1411 to /alerts, and the page shows the incident. Ctrl-C stops all of it.
`--once` (CI) also clicks Diagnose on the page as the responder, waits for the diagnosis in
the thread, and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import SecretStr

from bot.app.serve import ServeRuntime
from bot.app.slack import slack_client
from bot.app.worker import Worker
from bot.config import EnvSettings, FileConfig, Settings
from lab.alert_samples import EVENT_XML, alert_body
from lab.demo_forest import (
    DEMO_REPLICATION_SECONDS,
    DemoForest,
    open_samba_forest,
    samba_unavailable_reason,
    start_forest,
)
from lab.demo_walkthrough import PageWalk, current_key, step_line, walk_procedure
from lab.event_source import EventSource
from lab.slack_driver import SlackDriver
from lab.slack_emulator import LAB_BOT_TOKEN, SlackEmulator
from state.connection import async_client, resolve_redis_url, stop_embedded

CHANNEL = "C0INCIDENT"
RESPONDER = "U0ONCALL1"
APPROVERS = ("U0APPROV1", "U0APPROV2")
DEFAULT_PAGE_PORT = 8411
INCIDENT_TIMEOUT = 60.0
DIAGNOSIS_TIMEOUT = 120.0


class DemoStopped(Exception):
    """Ctrl-C (or SIGTERM) arrived while the demo was starting."""


def _say(text: str) -> None:
    print(f"demo: {text}", flush=True)


def demo_config(forest: dict[str, Any]) -> FileConfig:
    """The demo's config: one responder, two approvers (the page's three visitors)."""
    return FileConfig.model_validate(
        {
            "slack": {
                "channel": CHANNEL,
                "alert_channels": ["C0ALERTS"],
                "responders": [RESPONDER],
                "approvers": list(APPROVERS),
            },
            "alerts": {"coalesce_seconds": 2},
            "worker": {"heartbeat_seconds": 2},
            "forests": [forest],
        }
    )


def _start_emulator(port: int) -> SlackEmulator:
    """The emulator on the usual page port, or any free one when that is taken."""
    try:
        return SlackEmulator(port=port).start()
    except RuntimeError:
        return SlackEmulator(port=0).start()


def incident_message(emulator: SlackEmulator, guid: str) -> dict[str, Any] | None:
    """The top-level incident message about DSA `guid`, once posted."""
    return next(
        (
            m
            for m in emulator.messages(CHANNEL)
            if m.get("thread_ts") in (None, m["ts"]) and guid in str(m.get("text", ""))
        ),
        None,
    )


class Demo:
    """Everything the demo started, stopped in reverse order by one exit stack."""

    def __init__(
        self, data_dir: Path, lab_dir: Path, page_port: int, *, simulator_only: bool = False
    ) -> None:
        self.simulator_only = simulator_only
        self.data_dir = data_dir
        self.lab_dir = lab_dir
        self.page_port = page_port
        self.stop = asyncio.Event()
        self.stack = contextlib.AsyncExitStack()
        self.webhook_token = secrets.token_hex(16)
        self.signing_secret = secrets.token_hex(16)

    def check(self) -> None:
        """Between phases: give up when the person pressed Ctrl-C."""
        if self.stop.is_set():
            raise DemoStopped

    async def start(self) -> tuple[DemoForest, SlackEmulator, ServeRuntime]:
        """Every piece, one short line per phase."""
        redis_url = resolve_redis_url(None, self.data_dir)
        self.stack.callback(stop_embedded)
        _say(f"embedded Redis: {redis_url}")
        self.check()
        forest = await asyncio.to_thread(
            lambda: start_forest(
                self.lab_dir, self.data_dir, _say, simulator_only=self.simulator_only
            )
        )
        self.stack.push_async_callback(asyncio.to_thread, forest.stop)
        sims = ", ".join(f"{f} {s.scheme}://{s.host}:{s.port}" for f, s in forest.sims.items())
        _say(f"DC simulator (WinRM): {sims}")
        self.check()
        emulator = _start_emulator(self.page_port)
        self.stack.callback(emulator.stop)
        settings = Settings(
            env=EnvSettings(
                SLACK_BOT_TOKEN=SecretStr(LAB_BOT_TOKEN),
                SLACK_SIGNING_SECRET=SecretStr(self.signing_secret),
                SLACK_API_URL=emulator.api_url,
                REDIS_URL=redis_url,
                ALERT_WEBHOOK_TOKEN=SecretStr(self.webhook_token),
                PORT=0,
                AD1411_DATA_DIR=self.data_dir,
            ),
            file=demo_config(forest.config()),
        )
        serve = await ServeRuntime(settings).start()
        self.stack.push_async_callback(serve.stop)
        emulator.driver = SlackDriver(
            emulator, signing_secret=self.signing_secret, bot_url=serve.url + "/slack/events"
        )
        worker_redis = async_client(redis_url)
        self.stack.push_async_callback(worker_redis.aclose)
        worker = Worker(settings, worker_redis, slack_client(settings))
        worker_stop = asyncio.Event()
        worker_task = asyncio.create_task(worker.run(worker_stop))
        self.stack.push_async_callback(_finish, worker_stop, worker_task)
        _say(f"bot: serve {serve.url} (POST /alerts, /slack/events), worker running")
        _say(f"Slack emulator page: {emulator.web.url(RESPONDER)}")
        return forest, emulator, serve

    async def start_event_source(self, forest: DemoForest, alerts_url: str) -> EventSource | None:
        """Watch the Samba DCs' logs (and showrepl now and then) for 1411 conditions."""
        if forest.samba is None:
            return None
        source = EventSource(forest.samba, alerts_url, self.webhook_token, showrepl_seconds=60)
        source_stop = asyncio.Event()
        task = asyncio.create_task(source.run(source_stop))
        self.stack.push_async_callback(_finish, source_stop, task)
        _say("event source: watching DC1's and DC2's logs for refused replication partners")
        return source

    async def trigger(self, forest: DemoForest, source: EventSource | None, url: str) -> None:
        """Break the forest; the alert arrives from the event source (or, without Samba, the
        demo sends the Event 1411 a forwarder would)."""
        _say(f"breaking the forest: removing {forest.target_fqdn}'s serverReference")
        await asyncio.to_thread(forest.break_forest)
        if source is not None:
            return
        body, ctype = alert_body(EVENT_XML, forest.reporter_fqdn, forest.target_guid, forest.name)
        headers = {"Authorization": f"Bearer {self.webhook_token}", "Content-Type": ctype}
        async with (
            aiohttp.ClientSession() as session,
            session.post(url + "/alerts", data=body, headers=headers) as resp,
        ):
            _say(f"no Samba logs to watch: sent Event 1411 as a forwarder would -> {resp.status}")


async def _finish(stop: asyncio.Event, task: asyncio.Task[None]) -> None:
    stop.set()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=30)


async def _click_through_page(emulator: SlackEmulator, message: dict[str, Any]) -> str:
    """Click Diagnose as the responder through the page's own endpoint (signed by the driver)."""
    spec = {
        "as": RESPONDER,
        "channel": CHANNEL,
        "ts": message["ts"],
        "block_id": "incident_actions",
        "action_id": "incident_diagnose",
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(emulator.base_url + "/_web/click", json=spec) as resp,
    ):
        answer = await resp.json()
    if resp.status != 200 or answer.get("status") != 200:
        raise RuntimeError(f"the page could not click Diagnose: {resp.status} {answer}")
    return str(answer.get("status"))


async def _walkthrough(
    emulator: SlackEmulator, message: dict[str, Any], forest: DemoForest
) -> None:
    """--once: Diagnose from the page, the diagnosis in the thread the page shows, then (with a
    directory to plan from) the whole procedure clicked through by the page's three visitors."""
    await _click_through_page(emulator, message)
    _say("page: the responder clicked Diagnose (a signed block_actions request)")

    def diagnosis() -> dict[str, Any] | None:
        return next(
            (
                m
                for m in emulator.messages(CHANNEL)
                if m.get("thread_ts") == message["ts"] and "Diagnosis" in str(m.get("text"))
            ),
            None,
        )

    found = await emulator.wait_for_async(diagnosis, timeout=DIAGNOSIS_TIMEOUT)
    assert found is not None  # wait_for_async returns only a truthy value
    first = str(found.get("text", "")).splitlines()
    _say("diagnosis in the thread: " + " ".join(first[:2])[:200])
    snapshot = emulator.web.snapshot(RESPONDER, CHANNEL, message["ts"])
    if "Diagnosis" not in snapshot["thread_html"]:
        raise RuntimeError("the page's thread does not show the diagnosis")
    _say("page: the thread shows the diagnosis")
    if forest.samba is None:
        _say("no directory, so no plan: the procedure's steps target only DCs that LDAP knows")
        return
    walk = PageWalk(
        emulator, CHANNEL, message["ts"], _say, responder=RESPONDER, approvers=APPROVERS
    )
    closed = await walk_procedure(walk, message, retry_wait=DEMO_REPLICATION_SECONDS)
    last = step_line(closed, current_key(closed) or "12").rsplit("\n", 1)[-1]
    _say(f"page: procedure closed; final verification: {last[:200]}")


def _on_signals(stop: asyncio.Event) -> Callable[[], None]:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def restore() -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)

    return restore


def _seconds_since_process_start() -> float:
    """How long this process has run (interpreter start and imports included), from /proc;
    0 where /proc does not tell: the demo's clock then starts at run_demo."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0
    return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))


async def run_demo(
    *,
    once: bool,
    data_dir: Path,
    lab_dir: Path,
    page_port: int = DEFAULT_PAGE_PORT,
    simulator_only: bool = False,
) -> int:
    """Run the incident; keep serving the page until Ctrl-C unless `once`."""
    began = time.monotonic() - _seconds_since_process_start()
    demo = Demo(data_dir, lab_dir, page_port, simulator_only=simulator_only)
    restore = _on_signals(demo.stop)
    try:
        async with demo.stack:
            forest, emulator, serve = await demo.start()
            demo.check()
            source = await demo.start_event_source(forest, serve.url + "/alerts")
            await demo.trigger(forest, source, serve.url)
            message = await emulator.wait_for_async(
                lambda: incident_message(emulator, forest.target_guid), timeout=INCIDENT_TIMEOUT
            )
            assert message is not None  # wait_for_async returns only a truthy value
            if source is not None and source.forwarded:
                sent = source.forwarded[0]
                _say(
                    f"event source: Event 1411 from {sent.denial.reporter.fqdn} about "
                    f"{forest.target_fqdn} ({sent.denial.evidence}) -> HTTP {sent.status}"
                )
            _say(
                f"incident open after {time.monotonic() - began:.0f} s: "
                f"{emulator.web.url(RESPONDER)}"
            )
            if once:
                await _walkthrough(emulator, message, forest)
            else:
                _say(
                    "choose who you are on the page (responder, approver 1, approver 2); "
                    "Ctrl-C stops everything"
                )
                await demo.stop.wait()
            _say("stopping")
    except DemoStopped:
        _say("stopped")
    finally:
        restore()
    return 0


async def prepare_lab(lab_dir: Path) -> int:
    """Provision (or check) the cached Samba forest, for the set-up script."""
    reason = samba_unavailable_reason()
    if reason is not None:
        _say(f"no Samba lab to prepare: {reason}; the demo will run the DC simulator alone")
        return 0
    forest, claim = await asyncio.to_thread(open_samba_forest, lab_dir, _say)
    await asyncio.to_thread(forest.stop)
    claim.release()
    _say("Samba AD forest ready")
    return 0
