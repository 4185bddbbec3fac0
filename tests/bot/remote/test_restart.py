"""Restart-and-wait against a simulated DC that really closes and reopens its ports."""

from __future__ import annotations

import pytest

from bot.remote.restart import (
    DcDidNotComeBack,
    DcDidNotGoDown,
    PhaseEvent,
    RestartPhase,
    restart_and_wait,
)
from bot.remote.winrm import CommandExitedNonZero
from bot.windows import commands
from lab.dcsim.simulator import DcLab, RestartTiming
from tests.fixtures_dcsim import *  # noqa: F403
from tests.fixtures_dcsim import build_forest, directory_probe

pytestmark = pytest.mark.winrm

RESTART = commands.restart(delay_seconds=30)


def test_restart_waits_for_winrm_then_directory(dcsim_lab: DcLab) -> None:
    forest = build_forest(dcsim_lab, "ntlm-http", RestartTiming(downtime_seconds=2.0))
    root = forest.root
    seen: list[PhaseEvent] = []
    outcome = restart_and_wait(
        forest.executor(),
        root.fqdn,
        RESTART,
        ldap_probe=lambda: directory_probe(root),
        deadline_seconds=30,
        poll_interval_seconds=0.2,
        probe_timeout_seconds=1,
        on_phase=seen.append,
    )
    assert [e.phase for e in seen] == [
        RestartPhase.ISSUED,
        RestartPhase.WINRM_DOWN,
        RestartPhase.WINRM_UP,
        RestartPhase.DIRECTORY_UP,
    ]
    assert list(outcome.events) == seen
    elapsed = [e.elapsed_seconds for e in seen]
    assert elapsed == sorted(elapsed)
    # WinRM cannot be back before the simulated downtime is over; the DC recorded one restart.
    assert seen[2].elapsed_seconds >= 2.0
    assert len(root.state.restarts) == 1 and root.is_up
    assert directory_probe(root)


def test_restart_fails_clearly_when_the_dc_never_comes_back(dcsim_lab: DcLab) -> None:
    forest = build_forest(dcsim_lab, "basic-https", RestartTiming(downtime_seconds=None))
    seen: list[RestartPhase] = []
    with pytest.raises(DcDidNotComeBack) as failure:
        restart_and_wait(
            forest.executor(),
            forest.root.fqdn,
            RESTART,
            ldap_probe=lambda: directory_probe(forest.root),
            deadline_seconds=3,
            poll_interval_seconds=0.2,
            probe_timeout_seconds=1,
            on_phase=lambda e: seen.append(e.phase),
        )
    assert "did not come back within 3 s" in str(failure.value)
    assert "console" in str(failure.value)
    assert seen == [RestartPhase.ISSUED, RestartPhase.WINRM_DOWN]


def test_restart_that_never_happens_is_reported(dcsim_lab: DcLab) -> None:
    forest = build_forest(dcsim_lab, "ntlm-http", RestartTiming(grace_seconds=60))
    with pytest.raises(DcDidNotGoDown) as failure:
        restart_and_wait(
            forest.executor(),
            forest.root.fqdn,
            RESTART,
            ldap_probe=lambda: directory_probe(forest.root),
            deadline_seconds=2,
            poll_interval_seconds=0.2,
            probe_timeout_seconds=1,
        )
    assert "still answers WinRM" in str(failure.value)


def test_second_restart_while_one_is_pending_is_refused(dcsim_lab: DcLab) -> None:
    forest = build_forest(dcsim_lab, "ntlm-http", RestartTiming(grace_seconds=60))
    ex = forest.executor()
    assert ex.run(forest.root.fqdn, RESTART).exit_code == 0
    with pytest.raises(CommandExitedNonZero) as failure:
        ex.run(forest.root.fqdn, RESTART)
    assert failure.value.result.exit_code == 1190
