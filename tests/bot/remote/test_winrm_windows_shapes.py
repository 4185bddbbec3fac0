"""The DC simulator prints what Windows prints, and the executor's output goes through the same
parsers (and `ad1411 output parse` readings) the procedure uses: /add and /kcc success lines,
a Kerberos (SSPI) failure as repadmin's signed status, /replsummary with a DC that is down.
"""

from __future__ import annotations

import pytest

from bot.windows import commands
from bot.windows.commands import Fqdn
from bot.windows.output import lines_of
from bot.windows.readings import read_output
from bot.windows.repadmin import (
    OPERATIONAL_ERRORS_HEADER,
    AddLinkOutcome,
    parse_replsummary,
    parse_showrepl,
    parse_showrepl_csv,
    read_repadmin_add,
    read_repadmin_kcc,
)
from bot.windows.win32 import SEC_E_WRONG_PRINCIPAL
from lab.dcsim.repadmin_backend import fail_link
from tests.fixtures_dcsim import *  # noqa: F403
from tests.fixtures_dcsim import SimForest

pytestmark = pytest.mark.winrm

FOREST = Fqdn("corp.example.com")
WRONG_PRINCIPAL_AS_PRINTED = "-2146893022 (0x80090322)"


def test_add_prints_windows_one_way_replication_line(dcsim_forest: SimForest) -> None:
    ex, root, dc3 = dcsim_forest.executor(), dcsim_forest.root, dcsim_forest.dc3
    add = commands.repadmin_add(commands.configuration_nc(FOREST), Fqdn(root.fqdn), Fqdn(dc3.fqdn))
    result = ex.run(root.fqdn, add)
    assert result.output.stdout == (
        f"One-way replication from source:{dc3.fqdn} to dest:{root.fqdn} established.\r\n"
    )
    report = read_repadmin_add(result.output)
    assert (report.outcome, report.source, report.destination) == (
        AddLinkOutcome.ADDED,
        dc3.fqdn,
        root.fqdn,
    )
    again = ex.run(root.fqdn, add, check=False)
    assert lines_of(again.output.stdout)[0] == "DsReplicaAdd() failed with status 8441 (0x20f9):"
    assert read_output("add", again.output.stdout)["outcome"] == "already_exists"


def test_kcc_prints_the_site_lines_before_success(dcsim_forest: SimForest) -> None:
    ex, dc2 = dcsim_forest.executor(), dcsim_forest.dc2
    result = ex.run(dc2.fqdn, commands.repadmin_kcc(Fqdn(dc2.fqdn)))
    assert lines_of(result.output.stdout) == [
        f"Repadmin: running command /kcc against full DC {dc2.fqdn}",
        dc2.state.site,
        "Current Site Options: (none)",
        f"Consistency check on {dc2.fqdn} successful.",
        "",
    ]
    report = read_repadmin_kcc(result.output)
    assert (report.ok, report.dc, report.site) == (True, dc2.fqdn, dc2.state.site)
    assert len(dc2.state.kcc_runs) == 1


def test_showrepl_and_csv_print_a_kerberos_failure_as_a_signed_status(
    dcsim_forest: SimForest,
) -> None:
    ex, root, dc2 = dcsim_forest.executor(), dcsim_forest.root, dcsim_forest.dc2
    fail_link(dcsim_forest.lab.forest, root.fqdn, dc2.fqdn, SEC_E_WRONG_PRINCIPAL)
    text = ex.run(root.fqdn, commands.repadmin_showrepl()).output
    assert f"failed, result {WRONG_PRINCIPAL_AS_PRINTED}:" in text.stdout
    assert "            The target principal name is incorrect.\r\n" in text.stdout
    failing = [n for n in parse_showrepl(text).inbound if not n.ok]
    assert {(n.source_dc, n.result) for n in failing} == {("DC2", -2146893022)}
    assert all(n.result_message == "The target principal name is incorrect." for n in failing)

    rows = ex.run(root.fqdn, commands.repadmin_showrepl(csv=True)).output
    assert ",-2146893022\r\n" in rows.stdout
    statuses = {r.last_failure_status for r in parse_showrepl_csv(rows) if r.source_dc == "DC2"}
    assert statuses == {-2146893022}
    reading = read_output("showrepl-csv", rows.stdout)
    assert {n["last_result"] for n in reading["neighbors"] if n["source"] == "DC2"} == {-2146893022}


def test_replsummary_lists_a_dc_that_is_down_and_is_not_healthy(dcsim_forest: SimForest) -> None:
    ex, root, dc2 = dcsim_forest.executor(), dcsim_forest.root, dcsim_forest.dc2
    dc2.go_down(None)
    try:
        output = ex.run(root.fqdn, commands.repadmin_replsummary()).output
    finally:
        dc2.come_up()
    lines = lines_of(output.stdout)
    at = lines.index(OPERATIONAL_ERRORS_HEADER)
    assert lines[at + 1] == f"          1722 - {dc2.fqdn}"
    summary = parse_replsummary(output)
    assert summary.operational_errors == ((1722, dc2.fqdn),)
    assert not summary.healthy
    assert "DC2" not in {r.dsa for r in summary.destinations}
    assert {"DC1", "DC3"} <= {r.dsa for r in summary.destinations}
    reading = read_output("replsummary", output.stdout)
    assert reading["healthy"] is False
    assert reading["operational_errors"] == [{"code": 1722, "dc": dc2.fqdn}]
