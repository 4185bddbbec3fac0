"""Every step's command through the real executor against the DC simulator, both transports.

Each test reads before, applies, verifies through the parsers and the DC's own state, then
undoes and checks the value read before is back.
"""

from __future__ import annotations

import pytest

from bot.remote.winrm import CommandExitedNonZero, get_ntds_parameter
from bot.windows import commands
from bot.windows.commands import Fqdn, NtdsValue
from bot.windows.reg import parse_reg_add, parse_reg_delete, parse_reg_query
from bot.windows.repadmin import (
    AddLinkOutcome,
    parse_repadmin_add,
    parse_repadmin_kcc,
    parse_repadmin_options,
    parse_replsummary,
    parse_showrepl,
    parse_showrepl_csv,
)
from lab.dcsim.simulator import DcLab
from lab.dcsim.state import RegistryValue
from tests.fixtures_dcsim import *  # noqa: F403
from tests.fixtures_dcsim import DCSIM_PASSWORD, DCSIM_USER, SimForest, executor_for

pytestmark = pytest.mark.winrm

FOREST = Fqdn("corp.example.com")
REPS_TO = NtdsValue.REPS_TO_FAILURE_TIME
FALLBACK = NtdsValue.ALLOW_SPN_FALLBACK


def test_step1_reps_to_failure_time_set_and_undone_to_absent(dcsim_forest: SimForest) -> None:
    ex, dc = dcsim_forest.executor(), dcsim_forest.root
    before = ex.run(dc.fqdn, commands.reg_query(REPS_TO), check=False)
    assert parse_reg_query(before.output, REPS_TO.value) is None

    parse_reg_add(ex.run(dc.fqdn, commands.reg_add_dword(REPS_TO, 60)).output)

    after = parse_reg_query(ex.run(dc.fqdn, commands.reg_query(REPS_TO)).output, REPS_TO.value)
    assert after is not None and after.data == 60 and after.type == "REG_DWORD"
    assert dc.registry_value(REPS_TO.value) == RegistryValue(REPS_TO.value, "REG_DWORD", 60)

    assert parse_reg_delete(ex.run(dc.fqdn, commands.reg_delete(REPS_TO)).output) is True
    assert dc.registry_value(REPS_TO.value) is None
    gone = ex.run(dc.fqdn, commands.reg_query(REPS_TO), check=False)
    assert gone.exit_code == 1 and parse_reg_query(gone.output, REPS_TO.value) is None


def test_step1_undo_restores_the_previous_value(dcsim_forest: SimForest) -> None:
    ex, dc = dcsim_forest.executor(), dcsim_forest.dc2
    with dcsim_forest.lab.forest.lock:
        dc.state.set_registry_value(RegistryValue(REPS_TO.value, "REG_DWORD", 300))
    previous = parse_reg_query(ex.run(dc.fqdn, commands.reg_query(REPS_TO)).output, REPS_TO.value)
    assert previous is not None and previous.data == 300

    ex.run(dc.fqdn, commands.reg_add_dword(REPS_TO, 60))
    assert dc.registry_value(REPS_TO.value).data == 60  # type: ignore[union-attr]

    assert isinstance(previous.data, int)
    parse_reg_add(ex.run(dc.fqdn, commands.reg_add_dword(REPS_TO, previous.data)).output)
    restored = parse_reg_query(ex.run(dc.fqdn, commands.reg_query(REPS_TO)).output, REPS_TO.value)
    assert restored == previous


def test_steps_4_and_10_spn_fallback_applied_then_removed(dcsim_forest: SimForest) -> None:
    ex, root = dcsim_forest.executor(), dcsim_forest.root
    assert (
        parse_reg_query(
            ex.run(root.fqdn, commands.reg_query(FALLBACK), check=False).output, FALLBACK.value
        )
        is None
    )
    ex.run(root.fqdn, commands.reg_add_dword(FALLBACK, 1))
    read = parse_reg_query(ex.run(root.fqdn, commands.reg_query(FALLBACK)).output, FALLBACK.value)
    assert read is not None and read.data == 1

    # The PSRP path reads the same value with a cmdlet (Get-ItemProperty, no script text).
    cmdlet = ex.run_cmdlet(root.fqdn, get_ntds_parameter(FALLBACK))
    assert cmdlet.output[0][FALLBACK.value] == 1

    assert parse_reg_delete(ex.run(root.fqdn, commands.reg_delete(FALLBACK)).output) is True
    assert root.registry_value(FALLBACK.value) is None
    # Deleting again is reg's not-found error: exit 1, never success.
    with pytest.raises(CommandExitedNonZero) as again:
        ex.run(root.fqdn, commands.reg_delete(FALLBACK))
    assert parse_reg_delete(again.value.result.output) is False


def test_steps_2_and_11_kcc_runs_on_the_dc_asked(dcsim_forest: SimForest) -> None:
    ex, root, dc2 = dcsim_forest.executor(), dcsim_forest.root, dcsim_forest.dc2
    assert parse_repadmin_kcc(ex.run(root.fqdn, commands.repadmin_kcc()).output) == "localhost"
    assert len(root.state.kcc_runs) == 1

    named = ex.run(root.fqdn, commands.repadmin_kcc(Fqdn(dc2.fqdn)))
    assert parse_repadmin_kcc(named.output) == dc2.fqdn
    assert len(dc2.state.kcc_runs) == 1 and len(root.state.kcc_runs) == 1


def test_steps_6_and_9_connection_translation_disabled_then_restored(
    dcsim_forest: SimForest,
) -> None:
    ex, root = dcsim_forest.executor(), dcsim_forest.root
    target = Fqdn(root.fqdn)
    before = parse_repadmin_options(ex.run(root.fqdn, commands.repadmin_options(target)).output)
    assert "DISABLE_NTDSCONN_XLATE" not in before.effective

    applied = parse_repadmin_options(
        ex.run(root.fqdn, commands.repadmin_options(target, "+DISABLE_NTDSCONN_XLATE")).output
    )
    assert applied.new is not None and "DISABLE_NTDSCONN_XLATE" in applied.new
    assert "DISABLE_NTDSCONN_XLATE" in root.state.dsa_options

    undone = parse_repadmin_options(
        ex.run(root.fqdn, commands.repadmin_options(target, "-DISABLE_NTDSCONN_XLATE")).output
    )
    assert undone.new == before.effective
    assert frozenset(root.state.dsa_options) == before.effective


def test_steps_7_and_8_link_added_and_seen_by_showrepl(dcsim_forest: SimForest) -> None:
    ex, root, dc3 = dcsim_forest.executor(), dcsim_forest.root, dcsim_forest.dc3
    config = commands.configuration_nc(FOREST)
    before = parse_showrepl(ex.run(root.fqdn, commands.repadmin_showrepl()).output)
    assert not [n for n in before.neighbors_for(config.value) if n.source_dc == "DC3"]

    add = commands.repadmin_add(config, Fqdn(root.fqdn), Fqdn(dc3.fqdn))
    assert parse_repadmin_add(ex.run(root.fqdn, add).output) is AddLinkOutcome.ADDED
    assert root.state.link(config.value, dc3.fqdn) is not None

    after = parse_showrepl(ex.run(root.fqdn, commands.repadmin_showrepl(Fqdn(root.fqdn))).output)
    from_dc3 = [n for n in after.neighbors_for(config.value) if n.source_dc == "DC3"]
    assert len(from_dc3) == 1 and from_dc3[0].ok
    assert from_dc3[0].source_dsa_guid == dc3.state.dsa_guid

    rows = parse_showrepl_csv(ex.run(root.fqdn, commands.repadmin_showrepl(csv=True)).output)
    assert any(r.source_dc == "DC3" and r.naming_context == config.value for r in rows)

    # Adding it again is repadmin's 8441: reported as already there, not as a new link.
    again = ex.run(root.fqdn, add, check=False)
    assert again.exit_code != 0
    assert parse_repadmin_add(again.output) is AddLinkOutcome.ALREADY_EXISTS


def test_step12_replsummary_shows_the_failing_link_until_fixed(dcsim_forest: SimForest) -> None:
    ex, root = dcsim_forest.executor(), dcsim_forest.root
    summary = parse_replsummary(ex.run(root.fqdn, commands.repadmin_replsummary()).output)
    assert not summary.healthy
    dc3_row = next(r for r in summary.destinations if r.dsa == "DC3")
    assert dc3_row.fails == 3 and dc3_row.error == 8589

    showrepl = parse_showrepl(
        ex.run(root.fqdn, commands.repadmin_showrepl(Fqdn(dcsim_forest.dc3.fqdn))).output
    )
    assert {n.result for n in showrepl.inbound if n.source_dc == "DC1"} == {8589}


def test_every_command_is_logged_with_user_and_exit_code(dcsim_forest: SimForest) -> None:
    ex, root = dcsim_forest.executor(), dcsim_forest.root
    ex.run(root.fqdn, commands.reg_query(REPS_TO), check=False)
    ex.run(root.fqdn, commands.repadmin_kcc())
    log = root.commands()
    assert [r.exit_code for r in log] == [1, 0]
    assert log[0].command_line == commands.reg_query(REPS_TO).command_line()
    assert all(r.user.lower().endswith("svc-ad1411") and r.outcome == "exited" for r in log)


@pytest.mark.parametrize("encryption", ["auto", "always"])
def test_ntlm_over_https_with_channel_binding(dcsim_lab: DcLab, encryption: str) -> None:
    dc = dcsim_lab.add_dc(
        "dc4.corp.example.com", https=True, user=DCSIM_USER, password=DCSIM_PASSWORD
    )
    ex = executor_for(dc, auth="negotiate", encryption=encryption)
    ex.run(dc.fqdn, commands.reg_add_dword(REPS_TO, 60))
    assert dc.registry_value(REPS_TO.value) == RegistryValue(REPS_TO.value, "REG_DWORD", 60)
