"""`shutdown /r` on a simulated DC backed by the Samba lab really stops and starts that DC.

Real pypsrp talks to the simulated DC (listening on the Samba DC's own loopback address);
bot.remote.restart.restart_and_wait must see WinRM go down, come back, and the real Samba
directory answer again. The registry values the KB sets live in the simulator: Samba has no
registry and does not act on them.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import ldap3
import pytest

from bot.config import DcOverride, WinrmSection
from bot.remote.restart import PhaseEvent, RestartPhase, restart_and_wait
from bot.remote.winrm import WinrmExecutor
from bot.windows import commands
from bot.windows.commands import Fqdn, NtdsValue
from bot.windows.reg import parse_reg_query
from bot.windows.repadmin import parse_showrepl
from lab.dcsim.machine import SambaMachine, samba_machines
from lab.dcsim.samba_repadmin import samba_repadmin
from lab.dcsim.simulator import DcLab, RestartTiming, SimulatedDc
from lab.samba import DcInfo, SambaForest
from tests.fixtures_dcsim import DCSIM_PASSWORD, DCSIM_USER

pytestmark = [pytest.mark.samba, pytest.mark.winrm, pytest.mark.slow]

DOWNTIME_SECONDS = 2.0


@dataclass
class SambaBackedDcs:
    """Simulated DCs on the Samba DCs' addresses, each with its Samba DC as its machine."""

    forest: SambaForest
    lab: DcLab
    sims: dict[str, SimulatedDc]
    machines: dict[str, SambaMachine]
    executor: WinrmExecutor


@pytest.fixture
def backed(healthy_forest: SambaForest, tmp_path: Path) -> Iterator[SambaBackedDcs]:
    lab = DcLab(healthy_forest.forest, tmp_path / "dcsim", repadmin=samba_repadmin(healthy_forest))
    machines = samba_machines(healthy_forest)
    try:
        sims = {
            dc.fqdn: lab.add_dc(
                dc.fqdn,
                auth="ntlm",
                user=DCSIM_USER,
                password=DCSIM_PASSWORD,
                host=dc.address,
                machine=machines[dc.fqdn],
                restart=RestartTiming(grace_seconds=0.3, downtime_seconds=DOWNTIME_SECONDS),
            )
            for dc in healthy_forest.dcs
        }
        section = WinrmSection(
            scheme="http", port=5985, auth="ntlm", user=DCSIM_USER, operation_timeout_seconds=5
        )
        overrides = [
            DcOverride(fqdn=dc.fqdn, address=dc.address, winrm_port=sims[dc.fqdn].port)
            for dc in healthy_forest.dcs
        ]
        executor = WinrmExecutor(section, password=DCSIM_PASSWORD, overrides=overrides)
        yield SambaBackedDcs(healthy_forest, lab, sims, machines, executor)
    finally:
        lab.stop()  # boots a DC a failed test left down
        if not all(healthy_forest.is_running(dc) for dc in healthy_forest.dcs):
            healthy_forest.mark_dirty()


def ldap_answers(dc: DcInfo) -> bool:
    """The real Samba directory reads its rootDSE (anonymous, no TLS, short timeouts)."""
    try:
        conn = ldap3.Connection(
            ldap3.Server(dc.address, port=dc.ldap_port, get_info=ldap3.NONE, connect_timeout=2),
            auto_bind=True,
            receive_timeout=5,
        )
    except ldap3.core.exceptions.LDAPException:
        return False
    try:
        return bool(conn.search("", "(objectClass=*)", ldap3.BASE, attributes=["dsServiceName"]))
    finally:
        conn.unbind()


def port_refused(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1.0):
            return False
    except OSError:
        return True


def test_restart_really_stops_and_starts_the_samba_dc(backed: SambaBackedDcs) -> None:
    root = backed.forest.root_dc
    sim = backed.sims[root.fqdn]
    ex = backed.executor
    spn = commands.reg_add_dword(NtdsValue.ALLOW_SPN_FALLBACK, 1)
    assert ex.run(root.fqdn, spn).exit_code == 0
    pid_before = backed.forest.pid(root)

    seen: list[PhaseEvent] = []
    while_down: dict[str, bool] = {}

    def on_phase(event: PhaseEvent) -> None:
        seen.append(event)
        if event.phase is RestartPhase.WINRM_DOWN:
            # Observed from outside while WinRM is gone: Samba is really stopped too.
            while_down["ldap_refused"] = port_refused(root.address, root.ldap_port)
            while_down["winrm_refused"] = port_refused(root.address, sim.port)
            while_down["samba_running"] = backed.forest.is_running(root)

    outcome = restart_and_wait(
        ex,
        root.fqdn,
        commands.restart(delay_seconds=30),
        ldap_probe=lambda: ldap_answers(root),
        deadline_seconds=90,
        poll_interval_seconds=0.2,
        probe_timeout_seconds=1,
        on_phase=on_phase,
    )

    assert [e.phase for e in seen] == [
        RestartPhase.ISSUED,
        RestartPhase.WINRM_DOWN,
        RestartPhase.WINRM_UP,
        RestartPhase.DIRECTORY_UP,
    ]
    assert list(outcome.events) == seen
    assert while_down == {"ldap_refused": True, "winrm_refused": True, "samba_running": False}
    assert seen[2].elapsed_seconds >= DOWNTIME_SECONDS
    # A new samba process: the DC was really restarted, not only its simulated ports.
    assert backed.forest.is_running(root)
    assert backed.forest.pid(root) != pid_before
    assert [e.what for e in backed.machines[root.fqdn].events] == ["shut_down", "boot"]
    assert len(sim.state.restarts) == 1

    # The registry survives the restart in the simulator's state (Samba has none).
    query = ex.run(root.fqdn, commands.reg_query(NtdsValue.ALLOW_SPN_FALLBACK))
    value = parse_reg_query(query.output, NtdsValue.ALLOW_SPN_FALLBACK)
    assert value is not None and value.data == 1
    # The restarted DC replicates again: repadmin runs against the real Samba DC.
    other = backed.forest.dcs[1]
    assert backed.forest.try_replicate(root, other).returncode == 0
    report = parse_showrepl(ex.run(root.fqdn, commands.repadmin_showrepl(Fqdn(root.fqdn))).output)
    assert report.inbound and all(n.ok for n in report.inbound)


def test_a_dc_that_is_down_has_no_directory_and_no_winrm(backed: SambaBackedDcs) -> None:
    dc2 = backed.forest.dcs[1]
    sim = backed.sims[dc2.fqdn]
    sim.go_down(None)
    assert not backed.forest.is_running(dc2)
    assert not backed.executor.is_answering(dc2.fqdn, 1)
    assert not ldap_answers(dc2)
    sim.come_up()
    assert backed.forest.is_running(dc2) and sim.is_up
    assert backed.executor.is_answering(dc2.fqdn, 2)
    assert ldap_answers(dc2)
