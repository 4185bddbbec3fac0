"""Issue 13's end-to-end run: a real 1411 on the Samba forest, from the lab event source's alert
to step 12, every step driven through the Slack emulator with signed clicks, and every command
taking real effect where Samba can act on it.

The commands reach the DCs as Windows would run them: real pypsrp over WinRM (NTLM, encrypted)
to simulated DCs listening on the Samba DCs' own addresses, whose repadmin is
`samba-tool drs` against those DCs (lab/dcsim/samba_repadmin.py) and whose restart really stops
and starts that DC's samba (lab/dcsim/machine.py). The directory reads and step 3b's write go
straight to Samba over LDAPS.

What Samba cannot do, said plainly: it has no registry and ignores the two values the KB sets
('RepsTo Failure Time (sec)', 'Replicator Allow SPN Fallback'); they live in the simulator's
registry, and this test checks them there and nowhere else. Samba never fails as the *client*
of a partner with no serverReference (Windows does, that is Event 1411); it refuses such a
partner as the *source* instead (DC1 refuses DC2's pulls, 8453), which is what the event
source forwards as the Event 1411 a forwarder would deliver.

Why the site's automatic intra-site topology is off in the first scenario: Samba's KCC, like
Windows', puts back a deleted intra-site connection object the next time it runs, and step 2
runs it on DC1, so the procedure would re-plan without steps 4 to 10. A DC stays missing from
the root DC's NTDS Settings after `repadmin /kcc` where connection objects are managed by hand
(NTDS Site Settings option IS_AUTO_TOPOLOGY_DISABLED): that is this forest. There the KCC of
step 11 creates no connection object either, step 12 says so, the administrator creates the
connection as manual topology requires, and step 12, retried, finds the problem gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import ldap3
import pytest

from bot.directory.reps import RepsFromTo, decode_all
from lab.alert_samples import event_xml
from lab.dcsim.machine import PowerEvent, SambaMachine, samba_machines
from lab.dcsim.samba_repadmin import drop_inbound_link, samba_repadmin
from lab.dcsim.simulator import DcLab, RestartTiming
from lab.event_source import EventSource
from lab.samba import DcInfo, SambaForest
from lab.slack_emulator import SlackEmulator
from tests.fixtures_dcsim import DCSIM_PASSWORD, DCSIM_USER
from tests.inprocess import running_bot, settings_for
from tests.procedure_lab import (
    APPROVER1,
    APPROVER2,
    RESPONDER,
    ProcedureLab,
    buttons,
    current_key,
    step_line,
    step_state,
)

pytestmark = [
    pytest.mark.samba,
    pytest.mark.winrm,
    pytest.mark.slack,
    pytest.mark.e2e,
    pytest.mark.slow,
]

TOKEN = "forest-e2e-token"
SPN_FALLBACK = "Replicator Allow SPN Fallback"
REPS_TO = "RepsTo Failure Time (sec)"
# nTDSDSA options bit repadmin calls DISABLE_NTDSCONN_XLATE (MS-ADTS 6.1.1.2.2.1.2.1.1;
# Samba's dsdb.DS_NTDSDSA_OPT_DISABLE_NTDSCONN_XLATE). 0x10 is DISABLE_SPN_REGISTRATION.
NTDSDSA_OPT_DISABLE_NTDSCONN_XLATE = 0x8
NTDSSETTINGS_OPT_IS_AUTO_TOPOLOGY_DISABLED = 0x1
FINISHED = ("done", "skipped", "satisfied", "failed")


def _config(path: Path, forest: SambaForest, winrm_ports: dict[str, int]) -> Path:
    """The bot's config: LDAPS to the Samba DCs, WinRM to the simulated DCs on their addresses."""
    dcs = "\n".join(
        f'[[forests.dcs]]\nfqdn = "{dc.fqdn}"\naddress = "{dc.address}"\n'
        f"ldap_port = {dc.ldaps_port}\nwinrm_port = {winrm_ports[dc.fqdn]}"
        for dc in forest.dcs
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
ldap_hosts = ["{forest.root_dc.fqdn}"]
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
operation_timeout_seconds = 10
command_deadline_seconds = 90
restart_deadline_seconds = 90
{dcs}
""",
        encoding="utf-8",
    )
    return path


@dataclass
class ForestRun:
    """The bot, its worker, the Samba-backed simulated DCs and the event source."""

    forest: SambaForest
    lab: ProcedureLab
    dcs: DcLab
    source: EventSource

    def incident(self, guid: str) -> dict[str, Any] | None:
        """The incident message about DSA `guid`, once posted."""
        found = [m for m in self.lab.bot.incident_messages() if guid in str(m.get("text"))]
        return found[0] if found else None


@contextlib.asynccontextmanager
async def forest_run(
    tmp_path: Path,
    forest: SambaForest,
    emulator: SlackEmulator,
    signing_secret: str,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[ForestRun]:
    """Simulated DCs backed by the Samba DCs, the bot in this loop, a worker, the event source."""
    monkeypatch.setenv("LAB_LDAP_PASSWORD", forest.admin_password)
    monkeypatch.setenv("LAB_WINRM_PASSWORD", DCSIM_PASSWORD)
    dcs = DcLab(forest.forest, tmp_path / "dcsim", repadmin=samba_repadmin(forest))
    machines = samba_machines(forest)
    try:
        ports = {
            dc.fqdn: dcs.add_dc(
                dc.fqdn,
                auth="ntlm",
                user=DCSIM_USER,
                password=DCSIM_PASSWORD,
                host=dc.address,
                machine=machines[dc.fqdn],
                restart=RestartTiming(grace_seconds=0.3, downtime_seconds=2.0),
            ).port
            for dc in forest.dcs
        }
        cfg = _config(tmp_path / "c.toml", forest, ports)
        settings = settings_for(emulator, signing_secret, redis_url, cfg, ALERT_WEBHOOK_TOKEN=TOKEN)
        async with running_bot(settings, emulator, signing_secret) as bot:
            lab = ProcedureLab(bot, dcs, settings, redis_url)
            lab.start_worker()
            source = EventSource(forest, bot.url + "/alerts", TOKEN, poll_seconds=0.2)
            source_stop = asyncio.Event()
            source_task = asyncio.create_task(source.run(source_stop))
            try:
                yield ForestRun(forest, lab, dcs, source)
            finally:
                source_stop.set()
                lab.stop.set()
                await asyncio.wait_for(
                    asyncio.gather(source_task, *lab.workers, return_exceptions=True), 60
                )
    finally:
        dcs.stop()  # boots a DC a failed test left down
        if not all(forest.is_running(dc) for dc in forest.dcs):
            forest.mark_dirty()


# --- the forest, read and changed over LDAP as an administrator would ------------------------


def _site_settings_dn(forest: SambaForest) -> str:
    return f"CN=NTDS Site Settings,CN={forest.site},CN=Sites,{forest.configuration_dn}"


def _read_one(forest: SambaForest, dc: DcInfo, dn: str, attribute: str) -> list[Any]:
    conn = forest.connect(dc)
    try:
        conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=[attribute])
        return list(conn.entries[0][attribute].raw_values) if conn.entries else []
    finally:
        conn.unbind()


def dsa_options(forest: SambaForest, dc: DcInfo) -> int:
    """The `options` of the DC's nTDSDSA (NTDS Settings), as that DC has it."""
    values = _read_one(forest, dc, dc.ntds_settings_dn, "options")
    return int(values[0]) if values else 0


def config_reps_from(forest: SambaForest, dc: DcInfo) -> list[RepsFromTo]:
    """The DC's repsFrom on the configuration NC, decoded as the bot decodes it."""
    links, bad = decode_all(
        [bytes(v) for v in _read_one(forest, dc, forest.configuration_dn, "repsFrom")]
    )
    assert not bad, bad
    return links


def connections_from(forest: SambaForest, dest: DcInfo, source: DcInfo) -> list[str]:
    """DNs of the nTDSConnection objects under DEST's NTDS Settings whose fromServer is SOURCE."""
    conn = forest.connect(dest)
    try:
        conn.search(
            dest.ntds_settings_dn,
            "(objectClass=nTDSConnection)",
            ldap3.LEVEL,
            attributes=["fromServer"],
        )
        return [
            e.entry_dn
            for e in conn.entries
            if str(e.fromServer.value).lower() == source.ntds_settings_dn.lower()
        ]
    finally:
        conn.unbind()


def _modify(forest: SambaForest, dc: DcInfo, dn: str, changes: dict[str, Any]) -> None:
    conn = forest.connect(dc)
    try:
        assert conn.modify(dn, changes), conn.result
    finally:
        conn.unbind()


def manage_topology_by_hand(forest: SambaForest) -> None:
    """The site's intra-site connections are the administrators' (the KCC makes none)."""
    _modify(
        forest,
        forest.root_dc,
        _site_settings_dn(forest),
        {"options": [(ldap3.MODIFY_REPLACE, [str(NTDSSETTINGS_OPT_IS_AUTO_TOPOLOGY_DISABLED)])]},
    )


def delete_connections(forest: SambaForest, dest: DcInfo, source: DcInfo) -> None:
    """DEST's connection objects from SOURCE, deleted (SOURCE leaves DEST's NTDS Settings)."""
    conn = forest.connect(dest)
    try:
        for dn in connections_from(forest, dest, source):
            assert conn.delete(dn), conn.result
    finally:
        conn.unbind()


def create_connection(forest: SambaForest, dest: DcInfo, source: DcInfo) -> None:
    """What an administrator of a hand-managed topology does: a connection object on DEST."""
    conn = forest.connect(dest)
    try:
        added = conn.add(
            f"CN=Manual from {source.name},{dest.ntds_settings_dn}",
            ["nTDSConnection"],
            {"fromServer": source.ntds_settings_dn, "enabledConnection": "TRUE", "options": "0"},
        )
        assert added, conn.result
    finally:
        conn.unbind()


def _shown(message: dict[str, Any]) -> str:
    texts = [str(message.get("text", ""))]
    texts += [str(b.get("text", {}).get("text", "")) for b in message.get("blocks") or []]
    return "\n".join(t for t in texts if t)


async def wait_for(
    run: ForestRun,
    ts: str,
    predicate: Callable[[dict[str, Any]], bool],
    timeout: float = 180,  # noqa: ASYNC109 - a hang guard
) -> dict[str, Any]:
    """The procedure message once `predicate` holds it; on a timeout, what the thread shows."""
    try:
        return await run.lab.wait_message(ts, predicate, timeout)
    except TimeoutError as exc:
        thread = "\n---\n".join(_shown(m) for m in run.lab.bot.thread(ts))
        raise AssertionError(f"{exc}\nthe incident thread:\n{thread[-8000:]}") from None


# --- driving the procedure message -----------------------------------------------------------


def _finished(message: dict[str, Any], *, key: str) -> bool:
    return step_state(message, key) in FINISHED


def _approved_once(message: dict[str, Any], *, key: str) -> bool:
    return "approved by" in step_line(message, key)


async def _approve(run: ForestRun, ts: str, message: dict[str, Any], key: str) -> None:
    """The responder asks; approver 2 approves, and approver 1 too where two are needed."""
    lab = run.lab
    await lab.click(message, "Request approval", RESPONDER)
    message = await wait_for(run, ts, lambda m: "Approve" in buttons(m), 60)
    await lab.click(message, "Approve", APPROVER2)
    if "needs 2 approval" in step_line(message, key):
        message = await wait_for(run, ts, partial(_approved_once, key=key), 60)
        assert "Approve" in buttons(message)
        await lab.click(message, "Approve", APPROVER1)


async def drive(
    run: ForestRun,
    ts: str,
    *,
    until: Callable[[dict[str, Any]], bool],
    after: dict[str, Callable[[], None]] | None = None,
) -> dict[str, Any]:
    """Click through the steps as on-call would until `until(message)`; after a step in `after`
    finishes, call its check (blocking LDAP reads, off the loop). A failed step stops here."""
    lab, checks = run.lab, dict(after or {})
    for _ in range(60):
        message = await wait_for(run, ts, lambda m: bool(buttons(m)), 180)
        if until(message):
            return message
        key = current_key(message)
        state, labels = step_state(message, key), buttons(message)
        if state == "failed":
            raise AssertionError(f"step {key} failed: {step_line(message, key)}")
        if state == "satisfied":
            raise AssertionError(f"step {key} found nothing to do: {step_line(message, key)}")
        if "Run" in labels:
            await lab.click(message, "Run", RESPONDER)
        elif "Request approval" in labels:
            await _approve(run, ts, message, key)
        else:
            raise AssertionError(f"no way forward at step {key} ({state}): {labels}")
        done = await wait_for(run, ts, partial(_finished, key=key), 180)
        if key in checks and step_state(done, key) == "done":
            await asyncio.to_thread(checks.pop(key))
    raise AssertionError("the procedure did not get there")


def _plan_text(message: dict[str, Any]) -> str:
    return json.dumps(message.get("blocks", []))


async def open_incident(run: ForestRun, guid: str) -> dict[str, Any]:
    """Wait for the alert about DSA `guid` to become the incident message."""
    found = await run.lab.emulator.wait_for_async(lambda: run.incident(guid), 60)
    assert found is not None
    return found


def leave_out_of_ntds_settings(forest: SambaForest, root: DcInfo, source: DcInfo) -> None:
    """SOURCE is missing from ROOT's NTDS Settings, and the KCC will not put it back."""
    forest.mark_dirty()  # site options, connections and repsFrom: reset() sees none of them
    manage_topology_by_hand(forest)
    delete_connections(forest, root, source)
    # Windows' KCC drops the link of a deleted connection; Samba's, with the topology managed
    # by hand, leaves it: drop it as Windows would have (the forest restarts, ~7 s).
    assert drop_inbound_link(forest, forest.configuration_dn, root, source)
    assert not any(lk.names_dsa(source.dsa_guid) for lk in config_reps_from(forest, root))


def assert_end_state(run: ForestRun, audit: list[dict[str, str]]) -> None:
    """What the forest, the simulator's registry and the audit hold once the procedure closed."""
    forest = run.forest
    dc1, dc2 = forest.dcs
    # DSA options: set by step 6 (checked over LDAP right after it), cleared by step 9.
    assert not dsa_options(forest, dc1) & NTDSDSA_OPT_DISABLE_NTDSCONN_XLATE
    # Step 7's link (there since step 7) is still in DC1's real repsFrom, and works.
    from_dc2 = [lk for lk in config_reps_from(forest, dc1) if lk.names_dsa(dc2.dsa_guid)]
    assert len(from_dc2) == 1 and from_dc2[0].result_last_attempt == 0
    # The registry values live in the simulator (Samba has no registry and ignores them).
    reps_to = run.dcs.dc(dc1.fqdn).registry_value(REPS_TO)
    assert reps_to is not None and reps_to.data == 60
    assert run.dcs.dc(dc1.fqdn).registry_value(SPN_FALLBACK) is None
    # Step 3b restored serverReference (on every DC by now), so DC1 serves DC2 again.
    for holder in forest.dcs:
        assert (forest.server_reference(dc2, on=holder) or "").lower() == dc2.computer_dn.lower()
    assert forest.try_replicate(dc2, dc1, forest.configuration_dn).returncode == 0
    # Who did what: two different approvers for the restart, the responder asked.
    votes = {(e["user"], e["step"]) for e in audit if e["event"] == "approved"}
    assert {(APPROVER2, "5"), (APPROVER1, "5"), (APPROVER2, "6"), (APPROVER2, "7")} <= votes
    asked = {e["user"] for e in audit if e["event"] == "approval_requested"}
    assert asked == {RESPONDER}
    ran = " ".join(e["command"] for e in audit if e["event"] == "command_run")
    for needed in ("+DISABLE_NTDSCONN_XLATE", "-DISABLE_NTDSCONN_XLATE", "repadmin.exe /add"):
        assert needed in ran, needed


# --- scenario 1: DC2's serverReference lost, and DC2 missing from DC1's NTDS Settings ---------


async def test_a_real_1411_from_alert_to_final_verification(
    tmp_path: Path,
    redis_url: str,
    healthy_forest: SambaForest,
    slack_emulator: SlackEmulator,
    slack_signing_secret: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    forest = healthy_forest
    dc1, dc2 = forest.dcs
    leave_out_of_ntds_settings(forest, dc1, dc2)

    async with forest_run(
        tmp_path, forest, slack_emulator, slack_signing_secret, redis_url, monkeypatch
    ) as run:
        lab = run.lab
        await asyncio.to_thread(forest.remove_server_reference, dc2)
        # DC2's scheduled pull from DC1, now: DC1 refuses it and logs why.
        refused = await asyncio.to_thread(forest.try_replicate, dc2, dc1, forest.configuration_dn)
        assert refused.returncode != 0 and "8453" in refused.output

        incident = await open_incident(run, dc2.dsa_guid)
        sent = run.source.forwarded[0]
        assert (sent.denial.reporter, sent.denial.target_guid, sent.status) == (
            dc1,
            dc2.dsa_guid,
            202,
        )
        ts = str(incident["ts"])
        await lab.driver.click(incident, text="Start procedure", user_id=RESPONDER)
        plan = await wait_for(run, ts, lambda m: "*12. " in _plan_text(m), 180)
        text = _plan_text(plan)
        assert "server reference missing" in text, text
        for key in ("1", "2", "3", "3b", "4", "5", "6", "7", "8", "9", "10", "11", "12"):
            assert f"*{key}. " in text, key
        assert dc2.fqdn in step_line(plan, "7")  # the link from DC2, on DC1

        def xlate_set() -> None:
            assert dsa_options(forest, dc1) & NTDSDSA_OPT_DISABLE_NTDSCONN_XLATE

        def xlate_cleared() -> None:
            assert not dsa_options(forest, dc1) & NTDSDSA_OPT_DISABLE_NTDSCONN_XLATE

        def link_added() -> None:
            links = [lk for lk in config_reps_from(forest, dc1) if lk.names_dsa(dc2.dsa_guid)]
            assert len(links) == 1 and links[0].result_last_attempt == 0, links

        def restarted() -> None:
            assert [p.what for p in samba_power(run, dc1)] == ["shut_down", "boot"]
            assert forest.is_running(dc1)

        failed_12 = await drive(
            run,
            ts,
            until=lambda m: current_key(m) == "12" and step_state(m, "12") == "failed",
            after={"5": restarted, "6": xlate_set, "7": link_added, "9": xlate_cleared},
        )
        # Step 11's KCC made no connection (topology by hand), and step 12 says so.
        assert "no_connection_object" in step_line(failed_12, "12"), step_line(failed_12, "12")
        assert not connections_from(forest, dc1, dc2)

        # The administrator creates the connection, and replication runs as it would by
        # itself within minutes (the KB: "let replication occur throughout the forest").
        await asyncio.to_thread(create_connection, forest, dc1, dc2)
        for nc in forest.naming_contexts:
            for dest, src in ((dc2, dc1), (dc1, dc2)):
                pulled = await asyncio.to_thread(forest.try_replicate, dest, src, nc)
                assert pulled.returncode == 0, (dest.name, src.name, nc, pulled.output[-500:])

        await lab.click(failed_12, "Retry", RESPONDER)
        final = await wait_for(
            run, ts, lambda m: "run 2 " in step_line(m, "12") and _finished(m, key="12"), 180
        )
        line_12 = step_line(final, "12")
        assert step_state(final, "12") == "done", line_12
        assert "no longer reproduces" in line_12
        # Its fresh diagnosis, as the step's output in the thread shows it.
        said = await lab.emulator.wait_for_async(
            lambda: [m for m in lab.bot.thread(ts) if "cause: not_reproduced" in json.dumps(m)],
            30,
        )
        assert "Final verification" in json.dumps(said[-1])
        await lab.click(final, "Close procedure", RESPONDER)
        closed = await wait_for(run, ts, lambda m: "closed" in _plan_text(m), 60)
        assert buttons(closed) == []
        audit = await lab.audit()

    assert_end_state(run, audit)


def samba_power(run: ForestRun, dc: DcInfo) -> list[PowerEvent]:
    """Shutdowns and boots of the DC's real samba, by its simulated DC's restarts."""
    machine = run.dcs.dc(dc.fqdn).machine
    assert isinstance(machine, SambaMachine)
    return list(machine.events)


# --- scenario 2: the DC is gone for good --------------------------------------------------


async def test_a_dc_gone_for_good_gets_metadata_clean_up_and_no_links(
    tmp_path: Path,
    redis_url: str,
    healthy_forest: SambaForest,
    slack_emulator: SlackEmulator,
    slack_signing_secret: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    forest = healthy_forest
    dc1 = forest.root_dc
    # A server object and NTDS Settings with no serverReference and no computer object: a DC
    # demoted by force long ago. And a live DC with no connection on DC1, so links are planned.
    gone = forest.add_phantom_server("OLDDC9")
    live = forest.add_live_phantom_dc("NEWDC8")
    async with forest_run(
        tmp_path, forest, slack_emulator, slack_signing_secret, redis_url, monkeypatch
    ) as run:
        lab = run.lab
        # Nothing of a DC that is gone ever calls Samba, so no log line names it: this is the
        # Event 1411 a Windows DC1 logs and its forwarder delivers.
        body = event_xml(f"{dc1.name}.{forest.forest}", gone.dsa_guid, forest.forest)
        status, answer = await lab.bot.post(body.encode(), {"Authorization": f"Bearer {TOKEN}"})
        assert status == 202, answer
        incident = await open_incident(run, gone.dsa_guid)
        ts = str(incident["ts"])
        await lab.driver.click(incident, text="Start procedure", user_id=RESPONDER)
        plan = await wait_for(run, ts, lambda m: "*12. " in _plan_text(m), 180)

    text = _plan_text(plan)
    assert "dc orphaned" in text and "computer object is gone" in text
    assert "metadata clean-up" in text and "no links are made to it" in text
    assert "*3b. " not in text  # nothing to restore: the DC is gone
    assert "*7. " in text and live.fqdn in step_line(plan, "7")
    sources = [step_line(plan, k) for k in ("3", "7", "8", "11", "12")]
    assert all(gone.fqdn not in line for line in sources), sources
    diagnosis = next(
        m
        for m in lab.bot.thread(ts)
        if "DC ORPHANED" in str(m.get("text")) or "DC ORPHANED" in json.dumps(m.get("blocks"))
    )
    said = json.dumps(diagnosis)
    assert "do NOT add replication links to this DC" in said
    assert "ntdsutil metadata cleanup" in said
