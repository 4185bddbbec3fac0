"""A whole KB938704 procedure for one incident: real Samba forest for LDAP (diagnosis, step 3b,
the final diagnosis), simulated DCs over real WinRM for the commands, the bot in-process, the
Slack emulator with signed clicks by a responder and two approvers.

The forest: DC2's serverReference removed (the 1411 cause), two more DCs (PH1, PH2) that LDAP
sees alive but that have no connection object on DC1, so the KB's links are needed. Alerts come
from DC1 and PH1: two reporting DCs, two missing source DCs.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from lab.alert_samples import alert_body
from lab.dcsim.simulator import DcLab
from lab.samba import SambaForest
from lab.slack_driver import SlackDriver
from lab.slack_emulator import SlackEmulator
from tests.fixtures_dcsim import DCSIM_PASSWORD, DCSIM_USER
from tests.inprocess import running_bot, settings_for
from tests.procedure_lab import (
    APPROVER1,
    APPROVER2,
    RESPONDER,
    ProcedureLab,
    buttons,
    reason_values,
    step_state,
)

pytestmark = [
    pytest.mark.samba,
    pytest.mark.winrm,
    pytest.mark.slack,
    pytest.mark.e2e,
    pytest.mark.slow,
]
SPN_FALLBACK = "Replicator Allow SPN Fallback"
REPS_TO = "RepsTo Failure Time (sec)"


def _config(path: Path, forest: SambaForest, sims: dict[str, int], phantoms: list[str]) -> Path:
    dcs = []
    for dc in forest.dcs:
        lines = [f'fqdn = "{dc.fqdn}"', f'address = "{dc.address}"', f"ldap_port = {dc.ldaps_port}"]
        if dc.fqdn in sims:
            lines += ['winrm_address = "127.0.0.1"', f"winrm_port = {sims[dc.fqdn]}"]
        dcs.append("[[forests.dcs]]\n" + "\n".join(lines))
    for fqdn in phantoms:
        dcs.append(
            f'[[forests.dcs]]\nfqdn = "{fqdn}"\naddress = "127.0.0.1"\nwinrm_port = {sims[fqdn]}'
        )
    path.write_text(
        f"""
[slack]
channel = "C0INCIDENT"
responders = ["{RESPONDER}", "{APPROVER1}"]
approvers = ["{APPROVER1}", "{APPROVER2}"]
[alerts]
coalesce_seconds = 0.5
[procedure]
message_update_seconds = 0.2
sweep_seconds = 0.5
[[forests]]
name = "{forest.forest}"
ldap_hosts = ["{forest.dcs[0].fqdn}"]
[forests.ldap]
tls = "ldaps"
ca_file = "{forest.ca_file}"
user = "{forest.admin_dn}"
password = {{ env = "LAB_LDAP_PASSWORD" }}
timeout_seconds = 20
[forests.winrm]
scheme = "http"
auth = "ntlm"
encryption = "always"
user = "{DCSIM_USER.replace(chr(92), chr(92) * 2)}"
password = {{ env = "LAB_WINRM_PASSWORD" }}
operation_timeout_seconds = 5
command_deadline_seconds = 60
restart_deadline_seconds = 60
{chr(10).join(dcs)}
""",
        encoding="utf-8",
    )
    return path


async def _drive(lab: ProcedureLab, incident_ts: str) -> dict[str, Any]:
    """Click through every step as on-call would, until the procedure can be closed."""
    for _ in range(120):
        msg = await lab.wait_message(incident_ts, lambda m: bool(buttons(m)), 180)
        labels = buttons(msg)
        if "Close procedure" in labels:
            return msg
        key = _current_key(msg)
        state = step_state(msg, key)
        if state == "failed":
            raise AssertionError(f"step {key} failed: {_step_line(msg, key)}")
        if "Run" in labels:
            await lab.click(msg, "Run", RESPONDER)
        elif "Request approval" in labels and state != "awaiting approval":
            await _approve(lab, incident_ts, msg, key)
        elif state == "satisfied":
            await lab.click(msg, "Skip", RESPONDER)
            modal = (await lab.emulator.wait_for_async(lab.emulator.views, timeout=20))[-1]
            await lab.driver.submit_view(
                modal["id"], reason_values("already done"), user_id=RESPONDER
            )
        else:
            raise AssertionError(f"no way forward at step {key} ({state}): {labels}")
        await lab.wait_message(incident_ts, partial(_moved_on, key=key), 180)
    raise AssertionError("the procedure did not reach its end")


def _moved_on(message: dict[str, Any], *, key: str) -> bool:
    return step_state(message, key) in ("done", "skipped", "satisfied", "failed")


def _approved_once(message: dict[str, Any], *, key: str) -> bool:
    return "approved by" in _step_line(message, key)


async def _approve(lab: ProcedureLab, incident_ts: str, msg: dict[str, Any], key: str) -> None:
    """The responder requests, approver 2 approves, and approver 1 too when two are needed."""
    await lab.click(msg, "Request approval", RESPONDER)
    msg = await lab.wait_message(incident_ts, lambda m: "Approve" in buttons(m), 60)
    await lab.click(msg, "Approve", APPROVER2)
    if "needs 2 approval" in _step_line(msg, key):
        msg = await lab.wait_message(incident_ts, partial(_approved_once, key=key), 60)
        await lab.click(msg, "Approve", APPROVER1)


def _current_key(msg: dict[str, Any]) -> str:
    button = next(b for b in SlackDriver.buttons(msg) if b["action_id"] != "proc_abort")
    return str(json.loads(button["value"])["s"])


def _step_line(msg: dict[str, Any], key: str) -> str:
    for block in msg.get("blocks", []):
        text = block.get("text", {}).get("text", "") if block.get("type") == "section" else ""
        if f"*{key}. " in text:
            return str(text)
    return ""


async def test_the_whole_procedure_on_a_real_forest(
    tmp_path: Path,
    redis_url: str,
    healthy_forest: SambaForest,
    slack_emulator: SlackEmulator,
    slack_signing_secret: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    forest = healthy_forest
    dc1, dc2 = forest.dcs[0], forest.dcs[1]
    ph1 = forest.add_live_phantom_dc("PH1")
    ph2 = forest.add_live_phantom_dc("PH2")
    forest.remove_server_reference(dc2)
    forest.try_replicate(dc2, dc1, forest.configuration_dn)
    monkeypatch.setenv("LAB_LDAP_PASSWORD", forest.admin_password)
    monkeypatch.setenv("LAB_WINRM_PASSWORD", DCSIM_PASSWORD)
    sim = DcLab(forest.forest, tmp_path / "dcsim")
    try:
        sims = {
            fqdn: sim.add_dc(fqdn, auth="ntlm", user=DCSIM_USER, password=DCSIM_PASSWORD).port
            for fqdn in (dc1.fqdn, dc2.fqdn, ph1.fqdn, ph2.fqdn)
        }
        sim.forest.connect_all(except_pairs=frozenset({(dc1.fqdn, ph1.fqdn), (dc1.fqdn, ph2.fqdn)}))
        cfg = _config(tmp_path / "c.toml", forest, sims, [ph1.fqdn, ph2.fqdn])
        settings = settings_for(
            slack_emulator, slack_signing_secret, redis_url, cfg, ALERT_WEBHOOK_TOKEN="full-run"
        )
        async with running_bot(settings, slack_emulator, slack_signing_secret) as bot:
            lab = ProcedureLab(bot, sim, settings, redis_url)
            lab.start_worker()
            try:
                for reporter in (dc1.fqdn, ph1.fqdn):
                    body, _ = alert_body("event_text", reporter, dc2.dsa_guid, forest.forest)
                    assert (await bot.post(body))[0] == 202
                incident = (await slack_emulator.wait_for_async(bot.incident_messages, timeout=30))[
                    0
                ]
                ts = str(incident["ts"])
                await lab.driver.click(incident, text="Start procedure", user_id=RESPONDER)
                plan = await lab.wait_message(ts, lambda m: "3b" in json.dumps(m), 180)
                text = json.dumps(plan["blocks"])
                assert ph1.fqdn in text and ph2.fqdn in text  # one step 7 per missing source DC
                assert "7.1" in text and "7.2" in text and "1.2" in text
                final = await _drive(lab, ts)
                assert step_state(final, "12") == "done"
                await lab.click(final, "Close procedure", RESPONDER)
                closed = await lab.wait_message(
                    ts, lambda m: "closed" in json.dumps(m["blocks"]), 60
                )
                assert buttons(closed) == []
                await _check_report(lab, ts, redis_url)
            finally:
                lab.stop.set()
                for task in lab.workers:
                    await task
        _assert_end_state(sim, forest, [ph1.fqdn, ph2.fqdn])
        # The record: every click, vote, command and exit code, with user IDs.
        audit = await lab.audit()
        events = {e["event"] for e in audit}
        assert {
            "procedure_started",
            "approval_requested",
            "approved",
            "step_done",
            "command_run",
            "procedure_closed",
        } <= events
        votes = [(e["user"], e["step"]) for e in audit if e["event"] == "approved"]
        assert (APPROVER2, "5") in votes and (APPROVER1, "5") in votes
        commands = [e for e in audit if e["event"] == "command_run"]
        assert all(e["user"] and e["exit_code"] != "" for e in commands)
        ran = " ".join(e["command"] for e in commands)
        for needed in (
            "/options",
            "+DISABLE_NTDSCONN_XLATE",
            "-DISABLE_NTDSCONN_XLATE",
            "repadmin.exe /add",
            "shutdown.exe /r",
            "/replsummary",
            "reg.exe delete",
        ):
            assert needed in ran, needed
        assert forest.admin_password not in json.dumps(audit) + bot.stderr()
    finally:
        sim.stop()


def _assert_end_state(sim: DcLab, forest: SambaForest, phantoms: list[str]) -> None:
    """What the DCs ended with: the KB's values, fallback removed, XLATE cleared, links made,
    and serverReference restored in the real directory, so replication heals."""
    dc1, dc2 = forest.dcs[0], forest.dcs[1]
    for fqdn in (dc1.fqdn, phantoms[0]):
        value = sim.dc(fqdn).registry_value(REPS_TO)
        assert value is not None and value.data == 60, fqdn
    assert sim.dc(dc1.fqdn).registry_value(SPN_FALLBACK) is None
    with sim.forest.lock:
        root_state = sim.forest.dc(dc1.fqdn)
        assert root_state is not None
        assert "DISABLE_NTDSCONN_XLATE" not in root_state.dsa_options
        links = {(lk.naming_context.lower(), lk.source) for lk in root_state.inbound}
    for fqdn in phantoms:
        assert (forest.configuration_dn.lower(), fqdn) in links
    assert (forest.server_reference(dc2) or "").lower() == dc2.computer_dn.lower()
    assert forest.try_replicate(dc2, dc1, forest.configuration_dn).returncode == 0


async def _check_report(lab: ProcedureLab, ts: str, redis_url: str) -> None:
    """The report in the thread and `ad1411 audit report` name every person and step, with
    the durations the procedure's own record gives."""
    posted = await lab.emulator.wait_for_async(
        lambda: [
            m
            for m in lab.emulator.messages("C0INCIDENT")
            if m.get("thread_ts") == ts and "Post-incident report" in json.dumps(m)
        ],
        timeout=60,
    )
    slack_text = json.dumps(posted[0]["blocks"])
    stored = await lab.bot.ctx.procedures.ids_for(_incident_of(ts, lab))
    proc = await lab.bot.ctx.engine.procedure(stored[0])
    assert proc is not None
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "bot.app.cli", "audit", "report", proc.incident_id],
        capture_output=True,
        text=True,
        timeout=120,
        env={"REDIS_URL": redis_url, "PATH": "/usr/bin:/bin"},
        check=True,
    )
    markdown = done.stdout
    for user in (RESPONDER, APPROVER1, APPROVER2):
        assert f"<@{user}>" in slack_text and user in markdown
    for planned, record in zip(proc.plan.steps, proc.steps, strict=True):
        runs = [a for a in record.attempts if a.started_at_ms and a.ended_at_ms]
        assert f"*{planned.key}*" in slack_text and f"| {planned.key} |" in markdown
        if runs:
            seconds = f"{sum(a.ended_at_ms - a.started_at_ms for a in runs) / 1000:.1f}"
            assert f"*{planned.key}* " in slack_text and f", {seconds} s" in slack_text
            row = next(
                line for line in markdown.splitlines() if line.startswith(f"| {planned.key} |")
            )
            assert f"| {seconds} |" in row, (row, seconds)


def _incident_of(ts: str, lab: ProcedureLab) -> str:
    incident = next(
        m for m in lab.emulator.messages("C0INCIDENT") if m["ts"] == ts and "blocks" in m
    )
    found = re.search(r"([0-9a-f]{10}-[0-9]+)", json.dumps(incident["blocks"]))
    assert found is not None
    return found.group(1)
