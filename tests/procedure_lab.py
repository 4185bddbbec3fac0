"""A procedure lab without Samba: simulated DCs over real WinRM, a seeded diagnosis, and the bot
(serve and worker) in the test's loop. For the Slack flow: approvals, clicks, races, runs of
the steps that touch only the DCs (1, 2, ...). Steps that need a real directory are tested
against the Samba lab elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pytest

from bot.app.slack import slack_client
from bot.app.worker import Worker
from bot.config import Settings
from bot.directory.model import Diagnosis, diagnosis_to_json
from lab import diagnosis_samples
from lab.alert_samples import alert_body
from lab.dcsim.simulator import DcLab, SimulatedDc
from lab.slack_driver import BotResponse, SlackDriver
from lab.slack_emulator import SlackEmulator
from state.audit import AuditLog
from state.connection import async_client
from state.diagnoses import DiagnosisStore
from state.keys import GLOBAL_AUDIT
from tests.fixtures_dcsim import DCSIM_PASSWORD, DCSIM_USER
from tests.inprocess import InProcessBot, running_bot, settings_for

# The lab forest and its diagnosis, as lab/diagnosis_samples.py has them (tests import them here).
FOREST, CONFIG_NC = diagnosis_samples.FOREST, diagnosis_samples.CONFIG_NC
ROOT, REPORTER = diagnosis_samples.ROOT, diagnosis_samples.REPORTER
MISSING = diagnosis_samples.MISSING
TARGET_GUID = diagnosis_samples.TARGET_GUID
seeded_diagnosis = diagnosis_samples.seeded_diagnosis

RESPONDER, APPROVER1, APPROVER2 = "U0ONCALL1", "U0APPROV1", "U0APPROV2"
# An approver who is also a responder (U0APPROV1 is listed in both), for self-approval.
RESPONDER_APPROVER = APPROVER1


def write_procedure_config(
    path: Path,
    dcs: list[SimulatedDc],
    extra: str = "",
    *,
    approvers: tuple[str, ...] = (APPROVER1, APPROVER2),
    update_seconds: float = 0.2,
) -> Path:
    """The config of a bot whose forest is the simulated DCs (approvers: user or group IDs)."""
    overrides = "\n".join(
        f'[[forests.dcs]]\nfqdn = "{d.fqdn}"\naddress = "127.0.0.1"\nwinrm_port = {d.port}'
        for d in dcs
    )
    path.write_text(
        f"""
[slack]
channel = "C0INCIDENT"
responders = ["{RESPONDER}", "{APPROVER1}"]
approvers = {json.dumps(list(approvers))}
[alerts]
coalesce_seconds = 0.5
[procedure]
message_update_seconds = {update_seconds}
sweep_seconds = 0.5
lock_wait_seconds = 60
{extra}
[[forests]]
name = "{FOREST}"
ldap_hosts = ["{ROOT}"]
[forests.winrm]
scheme = "http"
auth = "ntlm"
encryption = "always"
user = "{DCSIM_USER.replace(chr(92), chr(92) * 2)}"
password = {{ env = "LAB_WINRM_PASSWORD" }}
operation_timeout_seconds = 5
command_deadline_seconds = 30
restart_deadline_seconds = 60
{overrides}
""",
        encoding="utf-8",
    )
    return path


@dataclass
class ProcedureLab:
    """The running bot, its Slack, its DCs, and helpers to click through a procedure."""

    bot: InProcessBot
    dcs: DcLab
    settings: Settings
    redis_url: str
    workers: list[asyncio.Task[None]] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def emulator(self) -> SlackEmulator:
        return self.bot.emulator

    @property
    def driver(self) -> SlackDriver:
        return self.bot.driver

    def start_worker(self) -> Worker:
        """One more in-process worker on this loop."""
        client = async_client(self.redis_url)
        worker = Worker(self.settings, client, slack_client(self.settings))
        self.workers.append(asyncio.create_task(worker.run(self.stop)))
        return worker

    async def open_incident(
        self, reporters: tuple[str, ...] = (ROOT, REPORTER), guid: str = TARGET_GUID
    ) -> tuple[str, dict[str, Any]]:
        """Alerts from the reporting DCs; returns the incident id and its message."""
        iid = ""
        for dc in reporters:
            body, _ = alert_body("event_text", dc, guid, FOREST)
            status, reply = await self.bot.post(body)
            assert status == 202, reply
            iid = str(reply["incidents"][0]["incident_id"])

        def message() -> list[dict[str, Any]]:
            return [m for m in self.bot.incident_messages() if guid in json.dumps(m)]

        msgs = await self.emulator.wait_for_async(message, timeout=30)
        return iid, msgs[0]

    async def seed_diagnosis(self, incident_id: str, diagnosis: Diagnosis | None = None) -> None:
        """Store a fresh diagnosis as the worker would have."""
        client = async_client(self.redis_url)
        await DiagnosisStore(client).finish(
            incident_id,
            "seeded",
            user_id=RESPONDER,
            outcome="done",
            result=diagnosis_to_json(diagnosis or seeded_diagnosis()),
        )
        await client.aclose()

    def procedure_message(self, incident_ts: str) -> dict[str, Any] | None:
        """The procedure message in the incident thread (its latest version)."""
        for m in self.emulator.messages("C0INCIDENT"):
            in_thread = m.get("thread_ts") == incident_ts and m["ts"] != incident_ts
            if in_thread and "KB938704 procedure" in json.dumps(m.get("blocks", [])):
                return m
        return None

    async def wait_message(
        self,
        incident_ts: str,
        predicate: Callable[[dict[str, Any]], bool],
        timeout: float = 60,  # noqa: ASYNC109 - a hang guard
    ) -> dict[str, Any]:
        """Wait until the procedure message satisfies predicate."""

        def probe() -> dict[str, Any] | None:
            m = self.procedure_message(incident_ts)
            return m if m is not None and predicate(m) else None

        found = await self.emulator.wait_for_async(probe, timeout=timeout)
        assert found is not None
        return found

    async def wait_home(
        self,
        user: str,
        words: str,
        timeout: float = 30,  # noqa: ASYNC109 - a hang guard
    ) -> dict[str, Any]:
        """Wait until `user`'s Home tab (as published) mentions `words`; the view."""

        def probe() -> dict[str, Any] | None:
            home = self.emulator.home(user)
            return home if home is not None and words in json.dumps(home) else None

        found = await self.emulator.wait_for_async(probe, timeout=timeout)
        assert isinstance(found, dict)
        return found

    def ephemeral_texts(self, words: str) -> list[str]:
        """Texts of the response_url answers (to a clicker) that contain `words`."""
        return [
            str(c.params.get("text"))
            for c in self.emulator.calls("response_url")
            if words in str(c.params.get("text"))
        ]

    async def click(self, message: dict[str, Any], label: str, user: str) -> BotResponse:
        """Press the button with this label in the procedure message, as this user."""
        return await self.driver.click(message, text=label, user_id=user)

    async def audit(self) -> list[dict[str, str]]:
        """Every global audit entry so far."""
        client = async_client(self.redis_url)
        entries = [json.loads(x) async for x in AuditLog(client).export(GLOBAL_AUDIT)]
        await client.aclose()
        return entries


def step_state(message: dict[str, Any], key: str) -> str:
    """The state word the procedure message shows for a step (e.g. 'done')."""
    for block in message.get("blocks", []):
        text = block.get("text", {}).get("text", "") if block.get("type") == "section" else ""
        if text.split("*", 2)[1:2] and text.split("*", 2)[1].startswith(f"{key}. "):
            return text.split("· _", 1)[1].split("_", 1)[0] if "· _" in text else ""
    return ""


def buttons(message: dict[str, Any]) -> list[str]:
    """Labels of the procedure message's buttons."""
    return [b["text"]["text"] for b in SlackDriver.buttons(message)]


@contextlib.asynccontextmanager
async def procedure_lab(
    tmp_path: Path,
    redis_url: str,
    emulator: SlackEmulator,
    signing_secret: str,
    monkeypatch: Any,
    *,
    extra_config: str = "",
    workers: int = 1,
    approvers: tuple[str, ...] = (APPROVER1, APPROVER2),
    update_seconds: float = 0.2,
) -> AsyncIterator[ProcedureLab]:
    """DCs dc1 (root), dc2 (reporting), dc3 (missing on dc1), the bot and its workers."""
    monkeypatch.setenv("LAB_WINRM_PASSWORD", DCSIM_PASSWORD)
    lab = DcLab(FOREST, tmp_path / "dcsim")
    try:
        dcs = [
            lab.add_dc(f"dc{i}.{FOREST}", auth="ntlm", user=DCSIM_USER, password=DCSIM_PASSWORD)
            for i in (1, 2, 3)
        ]
        lab.forest.connect_all(except_pairs=frozenset({(ROOT, MISSING)}))
        cfg = write_procedure_config(
            tmp_path / "c.toml",
            dcs,
            extra_config,
            approvers=approvers,
            update_seconds=update_seconds,
        )
        settings = settings_for(
            emulator, signing_secret, redis_url, cfg, ALERT_WEBHOOK_TOKEN="procedure-lab-token"
        )
        async with running_bot(settings, emulator, signing_secret) as bot:
            plab = ProcedureLab(bot, lab, settings, redis_url)
            for _ in range(workers):
                plab.start_worker()
            try:
                yield plab
            finally:
                plab.stop.set()
                await asyncio.wait_for(asyncio.gather(*plab.workers, return_exceptions=True), 60)
    finally:
        lab.stop()


class LabFactory(Protocol):
    """`procedure_lab` with the test's own paths, Redis, Slack emulator and environment."""

    def __call__(
        self,
        *,
        extra_config: str = ...,
        workers: int = ...,
        approvers: tuple[str, ...] = ...,
        update_seconds: float = ...,
    ) -> AbstractAsyncContextManager[ProcedureLab]: ...


@pytest.fixture
def new_lab(
    tmp_path: Path,
    redis_url: str,
    slack_emulator: SlackEmulator,
    slack_signing_secret: str,
    monkeypatch: pytest.MonkeyPatch,
) -> LabFactory:
    """`async with new_lab(extra_config=...) as lab:` in a test: its procedure lab."""
    return functools.partial(
        procedure_lab, tmp_path, redis_url, slack_emulator, slack_signing_secret, monkeypatch
    )


def current_key(message: dict[str, Any]) -> str:
    """The step the procedure message's buttons act on."""
    for button in SlackDriver.buttons(message):
        value = json.loads(button.get("value", "{}"))
        if value.get("s"):
            return str(value["s"])
    return ""


def step_line(message: dict[str, Any], key: str) -> str:
    """The text the procedure message shows for one step."""
    for block in message.get("blocks", []):
        text = block.get("text", {}).get("text", "") if block.get("type") == "section" else ""
        if f"*{key}. " in text:
            return str(text)
    return ""


def reason_values(text: str) -> dict[str, Any]:
    """The state.values of the reason modal with `text` typed in."""
    return {"reason": {"reason": {"type": "plain_text_input", "value": text}}}


async def submit_reason(lab: ProcedureLab, user: str, reason: str) -> None:
    """Fill the reason modal the last click opened, as `user`."""
    modal = (await lab.emulator.wait_for_async(lab.emulator.views, timeout=20))[-1]
    await lab.driver.submit_view(modal["id"], reason_values(reason), user_id=user)


async def advance(
    lab: ProcedureLab,
    incident_ts: str,
    *,
    until: str,
    skip: frozenset[str] = frozenset(),
    approvers: tuple[str, ...] = (APPROVER2, APPROVER1),
) -> dict[str, Any]:
    """Click through the steps as on-call would until step `until` is current (skipping the
    steps in `skip` with a reason); returns the message at that point."""
    for _ in range(100):
        msg = await lab.wait_message(incident_ts, lambda m: bool(buttons(m)), 120)
        key = current_key(msg)
        if key == until:
            return msg
        labels = buttons(msg)
        state = step_state(msg, key)
        if key in skip or state == "satisfied":
            await lab.click(msg, "Skip", RESPONDER)
            await submit_reason(lab, RESPONDER, "not part of this test")
        elif "Run" in labels:
            await lab.click(msg, "Run", RESPONDER)
        elif "Request approval" in labels:
            await lab.click(msg, "Request approval", RESPONDER)
            msg = await lab.wait_message(incident_ts, lambda m: "Approve" in buttons(m), 60)
            needed = 2 if "needs 2 approval" in step_line(msg, key) else 1
            for approver in approvers[:needed]:
                await lab.click(msg, "Approve", approver)
                if needed == 2 and approver == approvers[0]:

                    def approved_once(m: dict[str, Any], k: str = key) -> bool:
                        return "approved by" in step_line(m, k)

                    msg = await lab.wait_message(incident_ts, approved_once, 60)
        else:
            raise AssertionError(f"stuck at step {key} ({state}): {labels}")

        def moved_on(m: dict[str, Any], k: str = key) -> bool:
            return (
                step_state(m, k) in ("done", "skipped", "satisfied", "failed")
                or current_key(m) != k
            )

        await lab.wait_message(incident_ts, moved_on, 120)
    raise AssertionError(f"step {until} never became current")
