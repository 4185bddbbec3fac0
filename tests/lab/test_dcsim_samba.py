"""repadmin through real WinRM on simulated DCs takes real effect on the Samba lab forest."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import ldap3
import pytest

from bot.remote.winrm import WinrmExecutor
from bot.windows import commands
from bot.windows.commands import DistinguishedName, Fqdn
from bot.windows.output import CommandOutput, WindowsCommandError
from bot.windows.repadmin import (
    AddLinkOutcome,
    ShowRepl,
    parse_repadmin_add,
    parse_repadmin_kcc,
    parse_repadmin_options,
    parse_replsummary,
    parse_showrepl,
    parse_showrepl_csv,
)
from lab.dcsim.samba_repadmin import SambaRepadmin, drop_inbound_link, samba_repadmin
from lab.dcsim.simulator import DcLab, SimulatedDc
from lab.samba import DcInfo, SambaForest, SambaLabError
from tests.fixtures_dcsim import DCSIM_PASSWORD, DCSIM_USER, executor_for

pytestmark = [pytest.mark.samba, pytest.mark.winrm]

XLATE = "DISABLE_NTDSCONN_XLATE"


@dataclass
class SambaSim:
    """Simulated DCs named like the Samba DCs, whose repadmin runs against Samba."""

    forest: SambaForest
    lab: DcLab
    sims: dict[str, SimulatedDc]
    executor: WinrmExecutor

    def run(self, on: DcInfo, command: commands.RemoteCommand) -> CommandOutput:
        """Run a bot command on `on` over WinRM (NTLM) and return what it printed."""
        return self.executor.run(on.fqdn, command, check=False).output

    def showrepl(self, of: DcInfo) -> ShowRepl:
        return parse_showrepl(self.run(of, commands.repadmin_showrepl(Fqdn(of.fqdn))))


@pytest.fixture
def sim(healthy_forest: SambaForest, tmp_path: Path) -> Iterator[SambaSim]:
    lab = DcLab(healthy_forest.forest, tmp_path / "dcsim", repadmin=samba_repadmin(healthy_forest))
    try:
        sims = {
            dc.fqdn: lab.add_dc(dc.fqdn, auth="ntlm", user=DCSIM_USER, password=DCSIM_PASSWORD)
            for dc in healthy_forest.dcs
        }
        first, *others = sims.values()
        yield SambaSim(healthy_forest, lab, sims, executor_for(first, also=tuple(others)))
    finally:
        lab.stop()


def _ntdsdsa(forest: SambaForest, dc: DcInfo, attribute: str) -> bytes:
    """One attribute of the DC's nTDSDSA object, read over LDAPS from the DC itself."""
    conn = forest.connect(dc)
    try:
        conn.search(
            dc.ntds_settings_dn, "(objectClass=nTDSDSA)", ldap3.BASE, attributes=[attribute]
        )
        value: bytes = conn.entries[0][attribute].raw_values[0]
        return value
    finally:
        conn.unbind()


def _options(forest: SambaForest, dc: DcInfo) -> int:
    return int(_ntdsdsa(forest, dc, "options"))


def test_showrepl_names_the_real_partner_and_its_dsa_guid(sim: SambaSim) -> None:
    dc1, dc2 = sim.forest.dcs
    sim.forest.settle_replication()  # the healthy state this test reads back
    report = parse_showrepl(sim.run(dc1, commands.repadmin_showrepl()))
    assert (report.site, report.dc) == (dc1.site, "DC1")
    assert report.dsa_guid == uuid.UUID(dc1.dsa_guid)
    assert "IS_GC" in report.dsa_options
    assert report.invocation_id == uuid.UUID(bytes_le=_ntdsdsa(sim.forest, dc1, "invocationId"))
    assert {n.naming_context.lower() for n in report.inbound} == {
        nc.lower() for nc in sim.forest.naming_contexts
    }
    for neighbor in report.inbound:
        assert (neighbor.source_site, neighbor.source_dc) == (dc2.site, "DC2")
        assert neighbor.source_dsa_guid == uuid.UUID(dc2.dsa_guid)
        assert neighbor.ok and neighbor.last_success is not None

    rows = parse_showrepl_csv(sim.run(dc1, commands.repadmin_showrepl(Fqdn(dc2.fqdn), csv=True)))
    assert {(r.destination_dc, r.source_dc, r.failures) for r in rows} == {("DC2", "DC1", 0)}
    assert len(rows) == len(sim.forest.naming_contexts)


def test_options_round_trip_changes_the_real_ntdsdsa(sim: SambaSim) -> None:
    dc1 = sim.forest.dcs[0]
    target = Fqdn(dc1.fqdn)
    try:
        shown = parse_repadmin_options(sim.run(dc1, commands.repadmin_options(target)))
        assert shown.current == {"IS_GC"} and shown.new is None

        set_ = parse_repadmin_options(sim.run(dc1, commands.repadmin_options(target, f"+{XLATE}")))
        assert (set_.current, set_.new) == (frozenset({"IS_GC"}), frozenset({"IS_GC", XLATE}))
        assert _options(sim.forest, dc1) == 0x1 | 0x8

        undo = parse_repadmin_options(sim.run(dc1, commands.repadmin_options(target, f"-{XLATE}")))
        assert (undo.current, undo.new) == (frozenset({"IS_GC", XLATE}), frozenset({"IS_GC"}))
        assert _options(sim.forest, dc1) == 0x1
    finally:
        if _options(sim.forest, dc1) != 0x1:
            sim.forest.mark_dirty()


def test_kcc_rebuilds_a_link_unless_connection_translation_is_disabled(sim: SambaSim) -> None:
    dc1, dc2 = sim.forest.dcs
    nc = f"DC=DomainDnsZones,{sim.forest.base_dn}"
    target = Fqdn(dc2.fqdn)

    def has_link() -> bool:
        return any(n.naming_context.lower() == nc.lower() for n in sim.showrepl(dc2).inbound)

    try:
        sim.run(dc2, commands.repadmin_options(target, f"+{XLATE}"))
        assert drop_inbound_link(sim.forest, nc, dc2, dc1)
        assert not has_link()
        assert parse_repadmin_kcc(sim.run(dc2, commands.repadmin_kcc(target))) == dc2.fqdn
        assert not has_link()  # Samba's KCC honours DISABLE_NTDSCONN_XLATE as Windows does

        sim.run(dc2, commands.repadmin_options(target, f"-{XLATE}"))
        assert parse_repadmin_kcc(sim.run(dc2, commands.repadmin_kcc())) == "localhost"
        assert has_link()  # translated back from DC2's connection object from DC1
    finally:
        if not has_link() or _options(sim.forest, dc2) != 0x1:
            sim.forest.mark_dirty()


def test_add_creates_a_link_visible_in_showrepl(sim: SambaSim) -> None:
    dc1, dc2 = sim.forest.dcs
    nc = f"DC=ForestDnsZones,{sim.forest.base_dn}"
    add = commands.repadmin_add(DistinguishedName(nc), Fqdn(dc1.fqdn), Fqdn(dc2.fqdn))
    try:
        assert drop_inbound_link(sim.forest, nc, dc1, dc2)
        assert not sim.showrepl(dc1).neighbors_for(nc)

        assert parse_repadmin_add(sim.run(dc1, add)) is AddLinkOutcome.ADDED
        (neighbor,) = sim.showrepl(dc1).neighbors_for(nc)
        assert neighbor.source_dc == "DC2" and neighbor.source_dsa_guid == uuid.UUID(dc2.dsa_guid)
        assert neighbor.ok and neighbor.last_success is not None

        assert parse_repadmin_add(sim.run(dc1, add)) is AddLinkOutcome.ALREADY_EXISTS
    finally:
        if not sim.showrepl(dc1).neighbors_for(nc):
            sim.forest.mark_dirty()


def test_showrepl_reports_8453_once_the_server_reference_is_gone(sim: SambaSim) -> None:
    dc1, dc2 = sim.forest.dcs
    zones = f"DC=ForestDnsZones,{sim.forest.base_dn}"
    try:
        sim.forest.remove_server_reference(dc2)
        assert sim.forest.try_replicate(dc2, dc1).returncode != 0

        output = sim.run(dc2, commands.repadmin_showrepl(Fqdn(dc2.fqdn)))
        assert "Replication access was denied." in output.stdout
        (neighbor,) = parse_showrepl(output).neighbors_for(sim.forest.base_dn)
        assert neighbor.source_dc == "DC1" and neighbor.result == 8453
        assert neighbor.consecutive_failures >= 1 and neighbor.last_success is not None

        summary = parse_replsummary(sim.run(dc1, commands.repadmin_replsummary()))
        (dest,) = [row for row in summary.destinations if row.dsa == "DC2"]
        assert dest.fails >= 1 and dest.error == 8453
        assert not summary.healthy

        # KB938704's /add meets the same denial while the reference is missing
        assert drop_inbound_link(sim.forest, zones, dc2, dc1)
        add = sim.run(
            dc1, commands.repadmin_add(DistinguishedName(zones), Fqdn(dc2.fqdn), Fqdn(dc1.fqdn))
        )
        assert add.exit_code == 8453
        with pytest.raises(WindowsCommandError) as failure:
            parse_repadmin_add(add)
        assert failure.value.code == 8453
    finally:
        sim.forest.reset()
        # a fresh sync clears the failure the /add left on the link
        if sim.forest.try_replicate(dc2, dc1, zones).returncode != 0:
            sim.forest.mark_dirty()


def test_an_unknown_dc_is_unreachable_like_windows_says(sim: SambaSim) -> None:
    dc1 = sim.forest.dcs[0]
    stranger = Fqdn(f"dc9.{sim.forest.forest}")
    with pytest.raises(WindowsCommandError) as failure:
        parse_showrepl(sim.run(dc1, commands.repadmin_showrepl(stranger)))
    assert failure.value.code == 1722
    with pytest.raises(WindowsCommandError) as failure:
        parse_repadmin_kcc(sim.run(dc1, commands.repadmin_kcc(stranger)))
    assert failure.value.code == 1722


def test_a_simulated_dc_must_be_a_samba_dc(samba_forest: SambaForest) -> None:
    with pytest.raises(SambaLabError, match=r"not a DC of the Samba forest"):
        SambaRepadmin(samba_forest, local_dc="dc1.corp.example.com")
