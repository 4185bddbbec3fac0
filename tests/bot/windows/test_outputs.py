"""Output parsers, fed with Windows output as it is printed (tests/bot/windows/outputs/, CRLF),
and with the same text saved with LF line ends (a transcript copied off a DC)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from bot.errors import RemoteCommandFailed
from bot.windows.output import (
    CommandOutput,
    UnrecognizedOutput,
    WindowsCommandError,
    find_api_failure,
)
from bot.windows.reg import (
    parse_reg_add,
    parse_reg_delete,
    parse_reg_query,
    parse_shutdown,
)
from bot.windows.repadmin import (
    AddLinkOutcome,
    AddLinkReport,
    parse_repadmin_add,
    parse_repadmin_kcc,
    parse_repadmin_options,
    parse_replsummary,
    parse_showrepl,
    parse_showrepl_csv,
    read_repadmin_add,
    read_repadmin_kcc,
)
from bot.windows.win32 import SEC_E_WRONG_PRINCIPAL, as_signed, win32_message

SAMPLES = Path(__file__).parent / "outputs"
REPS_TO = "RepsTo Failure Time (sec)"
FALLBACK = "Replicator Allow SPN Fallback"
CONFIG_NC = "CN=Configuration,DC=corp,DC=example,DC=com"


def sample(name: str) -> str:
    """A sample byte-exact (newline='' keeps Windows' CRLF)."""
    text = (SAMPLES / name).read_bytes().decode("utf-8")
    assert "\r\n" in text, f"{name} lost its CRLF line ends"
    return text


def out(name: str, exit_code: int = 0, eol: str = "\r\n") -> CommandOutput:
    """A sample as stdout (or stderr, by its name) with an exit code, its line ends `eol`."""
    text = sample(name).replace("\r\n", eol)
    if ".stderr" in name:
        return CommandOutput("", text, exit_code)
    return CommandOutput(text, "", exit_code)


EOLS = pytest.mark.parametrize("eol", ["\r\n", "\n"], ids=["crlf", "lf"])


# --- reg.exe ----------------------------------------------------------------------------------


def test_reg_query_reads_a_dword() -> None:
    value = parse_reg_query(out("reg_query_repsto.stdout.txt"), REPS_TO)
    assert value is not None
    assert (value.name, value.type, value.data) == (REPS_TO, "REG_DWORD", 60)
    assert value.key == "HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Services\\NTDS\\Parameters"
    fallback = parse_reg_query(out("reg_query_spn_fallback.stdout.txt"), FALLBACK)
    assert fallback is not None
    assert fallback.data == 1


def test_reg_query_absent_value_is_none() -> None:
    assert parse_reg_query(out("reg_not_found.stderr.txt", 1), FALLBACK) is None


def test_reg_query_for_another_value_is_not_read_as_the_asked_one() -> None:
    with pytest.raises(UnrecognizedOutput, match="line of value") as refused:
        parse_reg_query(out("reg_query_repsto.stdout.txt"), FALLBACK)
    assert refused.value.line == 3


def test_reg_query_access_denied_reports_windows_message() -> None:
    with pytest.raises(WindowsCommandError, match="Access is denied"):
        parse_reg_query(out("reg_access_denied.stderr.txt", 1), REPS_TO)


@pytest.mark.parametrize(
    "garbled",
    [
        CommandOutput("", "", 0),
        CommandOutput("\r\nHKEY_LOCAL_MACHINE\\X\r\n", "", 0),
        CommandOutput(
            "\r\nHKEY_LOCAL_MACHINE\\X\r\n    RepsTo Failure Time (sec)    REG_DWORD    sixty\r\n",
            "",
            0,
        ),
        CommandOutput("", "", 1),
        CommandOutput("The operation completed successfully.\r\n", "", 0),
    ],
)
def test_reg_query_garbled_is_refused(garbled: CommandOutput) -> None:
    with pytest.raises(UnrecognizedOutput):
        parse_reg_query(garbled, REPS_TO)


def test_reg_add_and_delete() -> None:
    parse_reg_add(out("reg_success.stdout.txt"))
    assert parse_reg_delete(out("reg_success.stdout.txt")) is True
    assert parse_reg_delete(out("reg_not_found.stderr.txt", 1)) is False
    with pytest.raises(WindowsCommandError, match="Access is denied"):
        parse_reg_add(out("reg_access_denied.stderr.txt", 1))
    # Exit 0 with nothing printed is not success.
    with pytest.raises(UnrecognizedOutput):
        parse_reg_add(CommandOutput("", "", 0))
    with pytest.raises(UnrecognizedOutput):
        parse_reg_add(CommandOutput("The operation completed successfully.\r\n", "", 5))


def test_shutdown() -> None:
    parse_shutdown(CommandOutput("", "", 0))
    with pytest.raises(WindowsCommandError) as caught:
        parse_shutdown(out("shutdown_already_scheduled.stderr.txt", 1190))
    assert caught.value.code == 1190
    with pytest.raises(UnrecognizedOutput):
        parse_shutdown(CommandOutput("", "", 1))
    with pytest.raises(UnrecognizedOutput):
        parse_shutdown(CommandOutput("something odd\r\n", "", 0))


# --- repadmin /options --------------------------------------------------------------------------


def test_options_read_and_change() -> None:
    read = parse_repadmin_options(out("repadmin_options_read.stdout.txt"))
    assert read.current == {"IS_GC"}
    assert read.new is None
    assert read.effective == {"IS_GC"}
    change = parse_repadmin_options(out("repadmin_options_disable_xlate.stdout.txt"))
    assert change.current == {"IS_GC"}
    assert change.effective == {"IS_GC", "DISABLE_NTDSCONN_XLATE"}
    undo = parse_repadmin_options(out("repadmin_options_enable_xlate.stdout.txt"))
    assert "DISABLE_NTDSCONN_XLATE" in undo.current
    assert undo.effective == {"IS_GC"}
    to_none = parse_repadmin_options(out("repadmin_options_to_none.stdout.txt"))
    assert to_none.current == {"DISABLE_INBOUND_REPL"}
    assert to_none.new == frozenset()


def test_options_failures() -> None:
    with pytest.raises(WindowsCommandError) as caught:
        parse_repadmin_options(out("repadmin_unreachable.stdout.txt", 1722))
    assert caught.value.code == 1722
    assert "RPC server is unavailable" in str(caught.value)
    for garbled in (
        "",
        "New DSA Options: IS_GC\r\n",
        "Current DSA Options: is_gc!\r\n",
        "Current DSA Options: IS_GC\r\nSomething else\r\n",
    ):
        with pytest.raises(UnrecognizedOutput):
            parse_repadmin_options(CommandOutput(garbled, "", 0))


# --- repadmin /kcc ------------------------------------------------------------------------------


@EOLS
def test_kcc_reads_current_windows_with_its_site_lines(eol: str) -> None:
    assert parse_repadmin_kcc(out("repadmin_kcc_local.stdout.txt", eol=eol)) == "localhost"
    remote = read_repadmin_kcc(out("repadmin_kcc_remote.stdout.txt", eol=eol))
    assert (remote.ok, remote.dc, remote.site) == (
        True,
        "dc2.corp.example.com",
        "Default-First-Site-Name",
    )
    assert remote.site_options == "(none)"
    houston = read_repadmin_kcc(out("repadmin_kcc_site_options.stdout.txt", eol=eol))
    assert (houston.site, houston.site_options) == ("Houston", "(None)")


@EOLS
def test_kcc_reads_the_bare_success_line_of_windows_2003(eol: str) -> None:
    assert parse_repadmin_kcc(out("repadmin_kcc_w2003.stdout.txt", eol=eol)) == "netdc1.net.dom"


@EOLS
def test_kcc_failure_is_a_reading_and_an_error(eol: str) -> None:
    denied = read_repadmin_kcc(out("repadmin_kcc_denied.stdout.txt", 8453, eol))
    assert (denied.ok, denied.dc, denied.status) == (False, "dc2.corp.example.com", 8453)
    with pytest.raises(WindowsCommandError) as caught:
        parse_repadmin_kcc(out("repadmin_kcc_denied.stdout.txt", 8453, eol))
    assert caught.value.code == 8453
    assert caught.value.message == "Replication access was denied."


def test_kcc_refuses_site_lines_without_the_success_line() -> None:
    text = sample("repadmin_kcc_remote.stdout.txt")
    for garbled in (
        "Repadmin: running command /kcc against full DC x\r\n",
        text.rsplit("Consistency", 1)[0],
        text.replace("Current Site Options: (none)\r\n", ""),
        text.replace("Default-First-Site-Name\r\n", ""),
        text + "Something else\r\n",
    ):
        with pytest.raises(UnrecognizedOutput) as refused:
            parse_repadmin_kcc(CommandOutput(garbled, "", 0))
        assert refused.value.expected is not None
    with pytest.raises(UnrecognizedOutput, match="exit code 1"):
        parse_repadmin_kcc(CommandOutput(text, "", 1))


# --- repadmin /add ------------------------------------------------------------------------------


@EOLS
def test_add_reads_windows_success_line(eol: str) -> None:
    assert parse_repadmin_add(out("repadmin_add_success.stdout.txt", eol=eol)) is (
        AddLinkOutcome.ADDED
    )
    assert read_repadmin_add(out("repadmin_add_success.stdout.txt", eol=eol)) == AddLinkReport(
        AddLinkOutcome.ADDED, "dc2.corp.example.com", "dc1.corp.example.com", 0
    )
    spaced = read_repadmin_add(out("repadmin_add_success_spaced.stdout.txt", eol=eol))
    assert (spaced.source, spaced.destination) == (
        "LONEMEADC.Emea.contoso.com",
        "ContosoDC1.contoso.com",
    )


@EOLS
def test_add_failures_windows_2003_and_2000(eol: str) -> None:
    assert parse_repadmin_add(out("repadmin_add_exists.stdout.txt", 8441, eol)) is (
        AddLinkOutcome.ALREADY_EXISTS
    )
    with pytest.raises(WindowsCommandError) as caught:
        parse_repadmin_add(out("repadmin_add_bad_nc.stdout.txt", 8440, eol))
    assert caught.value.code == 8440
    old = read_repadmin_add(out("repadmin_add_bad_nc_w2000.stdout.txt", 8440, eol))
    assert (old.outcome, old.status) == (AddLinkOutcome.FAILED, 8440)
    assert old.message == win32_message(8440)
    unreachable = read_repadmin_add(out("repadmin_unreachable.stdout.txt", 1722, eol))
    assert (unreachable.outcome, unreachable.status) == (AddLinkOutcome.FAILED, 1722)


def test_add_refuses_the_line_no_windows_prints_and_unconfirmed_adds() -> None:
    for garbled in (
        "",
        "Successfully added replica link from dc2 to dc1 for CN=Configuration,DC=x.\r\n",
        "Successfully enqueued operation to establish one-way replication from source:dc2 to "
        "dest:dc1.\r\n",
        "One-way replication from source:dc2 to dest:dc1 established.\r\nand more\r\n",
        "One-way replication from source:dc2 to dest:dc1\r\n",
    ):
        with pytest.raises(UnrecognizedOutput):
            parse_repadmin_add(CommandOutput(garbled, "", 0))
    with pytest.raises(UnrecognizedOutput, match="exit code 5"):
        parse_repadmin_add(CommandOutput(sample("repadmin_add_success.stdout.txt"), "", 5))


# --- repadmin /showrepl -------------------------------------------------------------------------


@EOLS
def test_showrepl_healthy(eol: str) -> None:
    report = parse_showrepl(out("showrepl_healthy.stdout.txt", eol=eol))
    assert (report.site, report.dc) == ("Default-First-Site-Name", "DC1")
    assert report.dsa_options == {"IS_GC"}
    assert report.site_options == frozenset()
    assert report.dsa_guid == uuid.UUID("8e294159-140d-41f8-b041-23896e86cb00")
    assert report.invocation_id == uuid.UUID("9789f50b-6b9f-4632-ba93-dccf617325a2")
    assert len(report.inbound) == 5
    assert all(n.ok and n.source_dc == "DC2" and n.transport == "RPC" for n in report.inbound)
    config = report.neighbors_for(CONFIG_NC.upper())
    assert len(config) == 1
    assert config[0].last_success == datetime(2024, 6, 11, 15, 38, 1)
    assert report.source_failures == ()


@EOLS
def test_showrepl_with_8589_failures(eol: str) -> None:
    report = parse_showrepl(out("showrepl_8589.stdout.txt", eol=eol))
    config = report.neighbors_for(CONFIG_NC)
    assert [(n.source_site, n.source_dc, n.result) for n in config] == [
        ("Houston", "HOUDC01", 8589),
        ("Charlotte", "ROOTDC1", 1256),
    ]
    broken = config[0]
    assert not broken.ok
    assert broken.consecutive_failures == 1700
    assert broken.last_success is None
    assert broken.result_message == win32_message(8589)
    assert broken.source_dsa_guid == uuid.UUID("3dab7f9b-92e7-4391-b8db-71df532c1493")
    assert config[1].last_success == datetime(2024, 6, 10, 15, 59, 13)
    (failure,) = report.source_failures
    assert (failure.source, failure.failures, failure.last_error) == (
        "Houston\\HOUDC01",
        1700,
        8589,
    )
    assert failure.since == datetime(2024, 5, 2, 8, 0, 0)


@EOLS
def test_showrepl_reads_signed_security_results(eol: str) -> None:
    report = parse_showrepl(out("showrepl_kerberos.stdout.txt", eol=eol))
    assert {n.result for n in report.inbound} == {-2146893022}
    assert as_signed(SEC_E_WRONG_PRINCIPAL) == -2146893022
    first = report.inbound[0]
    assert first.result_message == "The target principal name is incorrect."
    assert (first.consecutive_failures, first.last_success) == (
        3,
        datetime(2019, 11, 16, 14, 48, 34),
    )
    (failure,) = report.source_failures
    assert failure.last_error == -2146893022


def test_showrepl_refuses_a_status_whose_forms_disagree() -> None:
    text = sample("showrepl_kerberos.stdout.txt")
    for garbled in (
        text.replace("(0x80090322)", "(0x80090323)", 1),
        text.replace("-2146893022 (", "2146893022 (", 1),
        text.replace("-2146893022 (", "-99999999999 (", 1),
    ):
        with pytest.raises(UnrecognizedOutput, match=r"32-bit|expected"):
            parse_showrepl(CommandOutput(garbled, "", 0))
    # The unsigned decimal of the same 32-bit value is the same status.
    unsigned = text.replace("-2146893022 (", "2148074274 (")
    assert {n.result for n in parse_showrepl(CommandOutput(unsigned, "", 0)).inbound} == {
        -2146893022
    }


def test_showrepl_link_never_attempted_and_dc_without_partners() -> None:
    fresh = parse_showrepl(out("showrepl_new_link.stdout.txt"))
    assert fresh.dsa_options == {"IS_GC", "DISABLE_NTDSCONN_XLATE"}
    (link,) = fresh.inbound
    assert link.ok
    assert link.last_attempt is None
    alone = parse_showrepl(out("showrepl_no_partners.stdout.txt"))
    assert alone.inbound == ()


def test_showrepl_refuses_truncated_or_failed_output() -> None:
    with pytest.raises(UnrecognizedOutput, match="Last success"):
        parse_showrepl(out("showrepl_truncated.stdout.txt"))
    with pytest.raises(WindowsCommandError):
        parse_showrepl(out("repadmin_unreachable.stdout.txt", 1722))
    healthy = sample("showrepl_healthy.stdout.txt")
    for garbled in (
        "",
        healthy.replace("was successful.", "was fine."),
        healthy.replace("DSA object GUID: 0dd8", "DSA object GUID: zzzz"),
        healthy.replace("2024-06-11 15:52:38", "yesterday"),
        healthy + "trailing junk\r\n",
    ):
        with pytest.raises(UnrecognizedOutput):
            parse_showrepl(CommandOutput(garbled, "", 0))
    with pytest.raises(UnrecognizedOutput, match="exit code"):
        parse_showrepl(CommandOutput(healthy, "", 1))


@EOLS
def test_showrepl_csv(eol: str) -> None:
    links = parse_showrepl_csv(out("showrepl.csv.stdout.txt", eol=eol))
    assert len(links) == 2
    good, bad = links
    assert good.ok
    assert good.naming_context == "DC=corp,DC=example,DC=com"
    assert good.last_failure is None
    assert good.last_success == datetime(2024, 6, 11, 15, 52, 38)
    assert (bad.source_site, bad.source_dc, bad.failures) == ("Houston", "HOUDC01", 1700)
    assert bad.last_failure_status == 8589
    assert bad.last_success is None
    assert bad.naming_context == CONFIG_NC


@EOLS
def test_showrepl_csv_reads_signed_last_failure_status(eol: str) -> None:
    links = parse_showrepl_csv(out("showrepl_kerberos.csv.stdout.txt", eol=eol))
    assert [(link.failures, link.last_failure_status) for link in links] == [
        (3, -2146893022),
        (3, -2146893022),
    ]
    assert links[0].last_failure == datetime(2019, 11, 16, 16, 48, 35)


def test_showrepl_csv_refuses_unknown_shapes() -> None:
    text = sample("showrepl.csv.stdout.txt")
    for garbled in (
        "",
        text.replace("Transport Type", "Transport Kind"),
        text.replace(",RPC,1700,", ",RPC,many,"),
        text + "showrepl_ERROR,x\r\n",
        text.replace(",8589", ",-99999999999"),
        text.replace("2024-06-11 15:52:38", "yesterday"),
    ):
        with pytest.raises(UnrecognizedOutput):
            parse_showrepl_csv(CommandOutput(garbled, "", 0))
    renamed = text.replace("Transport Type", "Source Transport Type")
    assert len(parse_showrepl_csv(CommandOutput(renamed, "", 0))) == 2


# --- repadmin /replsummary ----------------------------------------------------------------------


@EOLS
def test_replsummary_healthy(eol: str) -> None:
    summary = parse_replsummary(out("replsummary_healthy.stdout.txt", eol=eol))
    assert summary.healthy
    assert summary.start_time == datetime(2024, 6, 11, 8, 6, 2)
    assert [(r.dsa, r.largest_delta) for r in summary.sources] == [
        ("DC1", timedelta(minutes=8, seconds=56)),
        ("DC2", timedelta(seconds=51)),
    ]
    assert [r.total for r in summary.destinations] == [5, 5]


@EOLS
def test_replsummary_with_errors(eol: str) -> None:
    summary = parse_replsummary(out("replsummary_errors.stdout.txt", eol=eol))
    assert not summary.healthy
    dc02 = summary.sources[1]
    assert (dc02.fails, dc02.total, dc02.percent, dc02.error) == (1, 4, 25, 8524)
    assert dc02.error_message.startswith("The DSA operation is unable to proceed")
    hou = summary.sources[2]
    assert hou.over_60_days
    assert hou.largest_delta is None
    assert hou.error == 8589
    dest = {r.dsa: r for r in summary.destinations}
    assert dest["DC01"].largest_delta == timedelta(hours=1, minutes=2, seconds=3)
    assert dest["DC02"].largest_delta is None
    assert not dest["DC02"].over_60_days
    assert dest["LIVDC01"].largest_delta == timedelta(days=17, hours=5, minutes=32, seconds=47)
    assert summary.operational_errors == ((58, "dc3.corp.example.com"),)


@EOLS
@pytest.mark.parametrize(
    "name", ["replsummary_empty_tables.stdout.txt", "replsummary_reached_no_dc.stdout.txt"]
)
def test_replsummary_with_empty_tables_is_never_healthy(name: str, eol: str) -> None:
    summary = parse_replsummary(out(name, eol=eol))
    assert summary.reached_no_dc
    assert not summary.healthy


@EOLS
def test_replsummary_rows_without_leading_space_and_with_signed_errors(eol: str) -> None:
    summary = parse_replsummary(out("replsummary_kerberos_unindented.stdout.txt", eol=eol))
    assert not summary.healthy
    broken = summary.sources[0]
    assert (broken.dsa, broken.fails, broken.total, broken.error) == (
        "CONTOSODC1",
        6,
        6,
        -2146893022,
    )
    assert broken.error_message == "The target principal name is incorrect."
    assert broken.largest_delta == timedelta(hours=2, minutes=1, seconds=28)
    assert [r.dsa for r in summary.destinations] == ["CONTOSODC1", "CONTOSODC2"]
    assert summary.destinations[1].error_message == "The target principal name is incorrect."


@EOLS
def test_replsummary_of_the_published_kerberos_case(eol: str) -> None:
    # Microsoft Q&A 2337120: rows without indentation, the status unsigned, the unreachable
    # RODC listed between the two tables; on the other DC the first line was left out.
    primary = parse_replsummary(out("replsummary_qna_primary.stdout.txt", eol=eol))
    assert [(r.dsa, r.fails, r.error) for r in primary.sources] == [
        ("Primary-DC", 5, -2146893022),
        ("Secondary-DC", 0, None),
    ]
    assert primary.sources[0].largest_delta == timedelta(days=1, hours=4, minutes=33, seconds=54)
    assert primary.operational_errors == ((58, "RODC.domain.com"),)
    assert [r.dsa for r in primary.destinations] == ["Primary-DC", "Secondary-DC"]
    assert not primary.healthy
    secondary = parse_replsummary(out("replsummary_qna_secondary.stdout.txt", eol=eol))
    assert secondary.start_time is None
    assert secondary.operational_errors == (
        (8341, "Primary-DC.domain.com"),
        (58, "RODC.domain.com"),
    )
    assert secondary.destinations[0].error_message == "The target principal name is incorrect."


@EOLS
def test_showrepl_of_the_published_kerberos_case(eol: str) -> None:
    report = parse_showrepl(out("showrepl_qna_secondary.stdout.txt", eol=eol))
    assert [
        (n.naming_context.split(",")[0], n.result, n.consecutive_failures) for n in report.inbound
    ] == [
        ("DC=domain", -2146893022, 58),
        ("CN=Configuration", -2146893022, 43),
        ("CN=Schema", -2146893022, 34),
        ("DC=DomainDnsZones", 1256, 106),
        ("DC=ForestDnsZones", -2146893022, 198),
    ]
    (failure,) = report.source_failures
    assert (failure.failures, failure.last_error) == (197, -2146893022)


@EOLS
def test_localized_output_is_refused_by_name(eol: str) -> None:
    with pytest.raises(UnrecognizedOutput) as refused:
        parse_replsummary(out("replsummary_russian.stdout.txt", eol=eol))
    assert refused.value.script == "Cyrillic"
    assert "not in English" in str(refused.value)
    assert refused.value.line == 1
    assert refused.value.expected is not None and "Cyrillic" in refused.value.expected
    russian_ok = "Операция успешно завершена.\r\n"
    with pytest.raises(UnrecognizedOutput, match="not in English"):
        parse_reg_add(CommandOutput(russian_ok, "", 0))
    with pytest.raises(UnrecognizedOutput, match="not in English"):
        parse_repadmin_kcc(CommandOutput("Проверка согласованности на dc1 выполнена.\r\n", "", 0))


def test_replsummary_refuses_garbled() -> None:
    text = sample("replsummary_healthy.stdout.txt")
    for garbled in (
        "",
        text.replace("Destination DSA ", "Dest DSA        "),
        text.replace(" 0 /   5", " 7 /   5"),
        text.replace("08m:56s", "8 minutes"),
    ):
        with pytest.raises(UnrecognizedOutput):
            parse_replsummary(CommandOutput(garbled, "", 0))


# --- shared -------------------------------------------------------------------------------------


def test_failures_are_remote_command_failures_with_actionable_text() -> None:
    with pytest.raises(RemoteCommandFailed) as caught:
        parse_repadmin_kcc(CommandOutput("gibberish\r\n", "", 0))
    text = str(caught.value)
    assert "repadmin /kcc" in text
    assert "gibberish" in text
    assert "Treating it as failed" in text


def test_find_api_failure_ignores_mismatched_hex() -> None:
    bogus = CommandOutput("DsReplicaAdd() failed with status 8441 (0x1):\r\n    x\r\n", "", 1)
    assert find_api_failure(bogus) is None
    real = CommandOutput("DsReplicaAdd() failed with status 8441 (0x20f9):\r\n", "", 1)
    found = find_api_failure(real)
    assert found is not None
    assert (found.api, found.code, found.message) == ("DsReplicaAdd", 8441, win32_message(8441))


def test_find_api_failure_reads_signed_codes_and_says_them_as_windows_does() -> None:
    text = "DsBindWithCred to dc2 failed with status -2146893022 (0x80090322):\r\n    x\r\n"
    found = find_api_failure(CommandOutput(text, "", 1))
    assert found is not None
    assert (found.code, found.target) == (-2146893022, "dc2")
    error = WindowsCommandError(
        "repadmin /kcc", found.code, found.message, CommandOutput("", "", 1)
    )
    assert "status -2146893022 (0x80090322)" in str(error)
