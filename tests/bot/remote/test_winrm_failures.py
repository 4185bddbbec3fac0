"""WinRM faults give their own failure type with an actionable message, never a success."""

from __future__ import annotations

import logging
import socket
import time

import pytest

from bot.errors import ConfigError
from bot.remote.winrm import (
    CmdletFailed,
    CommandExitedNonZero,
    CommandTimedOut,
    DcAuthFailed,
    DcCertificateRejected,
    DcUnreachable,
    WinrmEndpoint,
    get_ntds_parameter,
)
from bot.windows import commands
from bot.windows.commands import NtdsValue, RemoteCommand
from lab.dcsim.simulator import DcLab
from tests.fixtures_dcsim import *  # noqa: F403
from tests.fixtures_dcsim import DCSIM_PASSWORD, DCSIM_USER, SimForest, executor_for

pytestmark = pytest.mark.winrm

KCC = commands.repadmin_kcc()
REPS_TO = NtdsValue.REPS_TO_FAILURE_TIME


def test_hanging_command_is_terminated_at_its_deadline(dcsim_forest: SimForest) -> None:
    root = dcsim_forest.root
    root.faults.hang("repadmin")
    started = time.monotonic()
    with pytest.raises(CommandTimedOut) as failure:
        dcsim_forest.executor().run(root.fqdn, KCC, deadline_seconds=2)
    assert time.monotonic() - started >= 2
    assert "did not finish within 2 s and was terminated" in str(failure.value)
    assert failure.value.partial.exit_code == -1
    # The DC saw the Terminate signal and never ran the KCC.
    assert [r.outcome for r in root.commands()] == ["terminated"]
    assert root.state.kcc_runs == []


def test_slow_command_and_operation_timeouts_still_give_the_real_result(
    dcsim_forest: SimForest,
) -> None:
    root = dcsim_forest.root
    root.faults.slow(1.5, "repadmin")
    root.faults.operation_timeouts(2)
    ex = dcsim_forest.executor(operation_timeout_seconds=1)
    result = ex.run(root.fqdn, KCC, deadline_seconds=30)
    assert result.exit_code == 0 and "successful" in result.stdout
    assert len(root.state.kcc_runs) == 1


def test_wrong_password_is_an_auth_failure_and_nothing_runs(dcsim_forest: SimForest) -> None:
    root = dcsim_forest.root
    ex = dcsim_forest.executor(password="not-the-password")
    with pytest.raises(DcAuthFailed) as failure:
        ex.run(root.fqdn, commands.reg_add_dword(REPS_TO, 60))
    text = str(failure.value)
    assert "refused WinRM authentication" in text and "Nothing ran" in text
    assert "not-the-password" not in text and DCSIM_PASSWORD not in text
    assert root.commands() == [] and root.registry_value(REPS_TO.value) is None


def test_injected_auth_failure_is_an_auth_failure(dcsim_forest: SimForest) -> None:
    dcsim_forest.root.faults.reject_auth()
    with pytest.raises(DcAuthFailed):
        dcsim_forest.executor().run(dcsim_forest.root.fqdn, KCC)


def test_refused_connection_is_unreachable_and_nothing_ran(dcsim_forest: SimForest) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    ex = dcsim_forest.executor(port=closed_port)
    with pytest.raises(DcUnreachable) as failure:
        ex.run(dcsim_forest.root.fqdn, KCC)
    assert failure.value.may_have_run is False
    assert "Nothing ran" in str(failure.value)


def test_dc_going_down_is_unreachable(dcsim_forest: SimForest) -> None:
    root = dcsim_forest.root
    root.go_down(None)
    with pytest.raises(DcUnreachable):
        dcsim_forest.executor().run(root.fqdn, KCC)
    root.come_up()
    assert dcsim_forest.executor().run(root.fqdn, KCC).exit_code == 0


def test_connection_dropped_mid_command_says_it_may_have_run(dcsim_forest: SimForest) -> None:
    root = dcsim_forest.root
    root.faults.drop_connection("reg")
    with pytest.raises(DcUnreachable) as failure:
        dcsim_forest.executor().run(root.fqdn, commands.reg_add_dword(REPS_TO, 60))
    assert failure.value.may_have_run is True
    assert "may or may not have taken effect" in str(failure.value)
    # It did run on the DC: exactly why the step must re-check before retrying.
    assert root.registry_value(REPS_TO.value) is not None


def test_non_zero_exit_carries_the_output(dcsim_forest: SimForest) -> None:
    root = dcsim_forest.root
    root.faults.exit_code(5, "/kcc", stderr="Access is denied.\r\n")
    with pytest.raises(CommandExitedNonZero) as failure:
        dcsim_forest.executor().run(root.fqdn, KCC)
    result = failure.value.result
    assert result.exit_code == 5 and result.stderr == "Access is denied.\r\n"
    assert "exited with code 5" in str(failure.value) and "Access is denied." in str(failure.value)
    assert root.state.kcc_runs == []


def test_unknown_program_is_not_recognized_by_cmd(dcsim_forest: SimForest) -> None:
    with pytest.raises(CommandExitedNonZero) as failure:
        dcsim_forest.executor().run(
            dcsim_forest.root.fqdn, RemoteCommand("whoami.exe", (), "who am I")
        )
    assert failure.value.result.exit_code == 1
    assert "'whoami.exe' is not recognized" in failure.value.result.stderr


def test_cmdlet_error_is_a_failure_not_an_empty_success(dcsim_forest: SimForest) -> None:
    ex, root = dcsim_forest.executor(), dcsim_forest.root
    with pytest.raises(CmdletFailed) as failure:
        ex.run_cmdlet(root.fqdn, get_ntds_parameter(REPS_TO))
    assert "does not exist" in str(failure.value)


def test_self_signed_certificate_is_refused_by_default(dcsim_lab: DcLab) -> None:
    dc = dcsim_lab.add_dc(
        "dc9.corp.example.com",
        auth="basic",
        https=True,
        self_signed=True,
        user=DCSIM_USER,
        password=DCSIM_PASSWORD,
    )
    with pytest.raises(DcCertificateRejected) as failure:
        executor_for(dc, ca_file=None).run(dc.fqdn, KCC)
    assert "not trusted" in str(failure.value) and dc.commands() == []


def test_certificate_from_another_ca_is_refused(dcsim_lab: DcLab) -> None:
    trusted = dcsim_lab.add_dc(
        "dc7.corp.example.com", auth="basic", https=True, user=DCSIM_USER, password=DCSIM_PASSWORD
    )
    assert executor_for(trusted).run(trusted.fqdn, KCC).exit_code == 0
    stranger = dcsim_lab.add_dc(
        "dc8.corp.example.com",
        auth="basic",
        https=True,
        self_signed=True,
        user=DCSIM_USER,
        password=DCSIM_PASSWORD,
    )
    ex = executor_for(stranger, ca_file=trusted.ca_file)
    with pytest.raises(DcCertificateRejected):
        ex.run(stranger.fqdn, KCC)


def test_turning_validation_off_works_but_warns_every_time(
    dcsim_lab: DcLab, caplog: pytest.LogCaptureFixture
) -> None:
    dc = dcsim_lab.add_dc(
        "dc9.corp.example.com",
        auth="basic",
        https=True,
        self_signed=True,
        user=DCSIM_USER,
        password=DCSIM_PASSWORD,
    )
    ex = executor_for(dc, ca_file=None, validate_certificates=False)
    with caplog.at_level(logging.WARNING, logger="bot.remote.winrm"):
        ex.run(dc.fqdn, KCC)
        ex.run(dc.fqdn, KCC)
    warnings = [r for r in caplog.records if "certificate validation is OFF" in r.getMessage()]
    assert len(warnings) == 2
    assert DCSIM_PASSWORD not in caplog.text


def test_basic_over_http_is_refused_before_connecting() -> None:
    with pytest.raises(ConfigError) as failure:
        WinrmEndpoint(
            host="dc1.corp.example.com",
            address="127.0.0.1",
            port=5985,
            scheme="http",
            auth="basic",
            user=DCSIM_USER,
            password=DCSIM_PASSWORD,
            ca_file=None,
            validate_certificates=True,
            encryption="auto",
            operation_timeout_seconds=20,
        )
    assert "clear text" in str(failure.value) and DCSIM_PASSWORD not in str(failure.value)


def test_password_never_in_reprs(dcsim_forest: SimForest) -> None:
    ex = dcsim_forest.executor()
    endpoint = ex.endpoint(dcsim_forest.root.fqdn)
    assert DCSIM_PASSWORD not in repr(endpoint) and DCSIM_PASSWORD not in repr(ex)
