"""The DC simulator prints what Windows prints: render then parse gives the data back, and
rendering the data of a real sample reproduces the sample byte for byte."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypedDict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.windows.commands import NTDS_PARAMETERS_KEY, NtdsValue
from bot.windows.output import CommandOutput, WindowsCommandError
from bot.windows.reg import (
    parse_reg_add,
    parse_reg_delete,
    parse_reg_query,
    parse_shutdown,
)
from bot.windows.repadmin import (
    DSA_OPTION_ORDER,
    AddLinkOutcome,
    InboundNeighbor,
    ReplicationLink,
    ReplSummary,
    ShowRepl,
    SourceFailure,
    SummaryRow,
    parse_repadmin_add,
    parse_repadmin_kcc,
    parse_repadmin_options,
    parse_replsummary,
    parse_showrepl,
    parse_showrepl_csv,
)
from bot.windows.win32 import STATUSES, as_signed, win32_message
from lab.dcsim.render import (
    render_not_recognized,
    render_reg_access_denied,
    render_reg_add,
    render_reg_delete,
    render_reg_invalid_syntax,
    render_reg_prompt_declined,
    render_reg_query,
    render_repadmin_add,
    render_repadmin_error,
    render_repadmin_kcc,
    render_repadmin_options,
    render_repadmin_unreachable,
    render_repadmin_usage,
    render_replsummary,
    render_showrepl,
    render_showrepl_csv,
    render_shutdown,
    render_shutdown_invalid,
)

SAMPLES = Path(__file__).parents[1] / "bot" / "windows" / "outputs"


def sample(name: str) -> str:
    """A real-shaped Windows sample, CRLF kept."""
    return (SAMPLES / name).read_bytes().decode("utf-8")


# --- strategies -------------------------------------------------------------------------------

names = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9-]{0,14}\Z")
sites = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9-]{0,24}\Z")
hosts = st.from_regex(r"\A[a-z0-9]{1,8}(\.[a-z0-9]{1,8}){1,3}\Z")
ncs = st.lists(st.from_regex(r"\A[A-Za-z0-9-]{1,10}\Z"), min_size=1, max_size=4).map(
    lambda parts: ",".join(f"DC={p}" for p in parts)
) | st.just("CN=Configuration,DC=corp,DC=example,DC=com")
times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)).map(
    lambda t: t.replace(microsecond=0)
)
# Statuses as repadmin prints them: HRESULT and SSPI codes are negative decimals.
codes = st.sampled_from(sorted(as_signed(c) for c in STATUSES if c))
messages = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9 .,()'-]{0,60}[A-Za-z0-9.]\Z")
option_sets = st.frozensets(st.sampled_from(DSA_OPTION_ORDER))


class _Link(TypedDict):
    """What every drawn neighbor has, whatever its last attempt did."""

    naming_context: str
    source_site: str
    source_dc: str
    transport: str
    source_dsa_guid: uuid.UUID


@st.composite
def neighbors(draw: st.DrawFn, nc: str) -> InboundNeighbor:
    common: _Link = {
        "naming_context": nc,
        "source_site": draw(sites),
        "source_dc": draw(names),
        "transport": draw(st.sampled_from(["RPC", "SMTP"])),
        "source_dsa_guid": draw(st.uuids()),
    }
    if draw(st.booleans()):
        when = draw(st.none() | times)
        return InboundNeighbor(
            **common,
            last_attempt=when,
            result=0,
            result_message="",
            consecutive_failures=0,
            last_success=when,
        )
    code = draw(codes)
    return InboundNeighbor(
        **common,
        last_attempt=draw(times),
        result=code,
        result_message=draw(messages | st.just(win32_message(code))),
        consecutive_failures=draw(st.integers(0, 99999)),
        last_success=draw(st.none() | times),
        delayed=draw(st.booleans()),
    )


@st.composite
def showrepls(draw: st.DrawFn) -> ShowRepl:
    inbound: list[InboundNeighbor] = []
    for nc in draw(st.lists(ncs, max_size=4, unique_by=str.lower)):
        inbound += draw(st.lists(neighbors(nc), min_size=1, max_size=3))
    failures = draw(
        st.lists(
            st.builds(
                SourceFailure,
                source=st.builds(lambda s, n: f"{s}\\{n}", sites, names),
                failures=st.integers(1, 99999),
                since=st.none() | times,
                last_error=codes,
                last_error_message=messages,
            ),
            max_size=2,
        )
    )
    return ShowRepl(
        site=draw(sites),
        dc=draw(names),
        dsa_options=draw(option_sets),
        site_options=draw(st.frozensets(st.sampled_from(["IS_INTER_SITE_AUTO_TOPOLOGY_DISABLED"]))),
        dsa_guid=draw(st.uuids()),
        invocation_id=draw(st.uuids()),
        inbound=tuple(inbound),
        source_failures=tuple(failures),
    )


@st.composite
def summary_rows(draw: st.DrawFn) -> SummaryRow:
    total = draw(st.integers(0, 500))
    fails = draw(st.integers(0, total))
    kind = draw(st.sampled_from(["delta", "unknown", "over60"]))
    error = draw(st.none() | codes)
    return SummaryRow(
        dsa=draw(names),
        largest_delta=draw(st.integers(0, 59 * 86400).map(lambda s: timedelta(seconds=s)))
        if kind == "delta"
        else None,
        fails=fails,
        total=total,
        percent=draw(st.integers(0, 100)),
        error=error,
        error_message="" if error is None else draw(messages),
        over_60_days=kind == "over60",
    )


links = st.builds(
    ReplicationLink,
    destination_site=sites,
    destination_dc=names,
    naming_context=ncs,
    source_site=sites,
    source_dc=names,
    transport=st.sampled_from(["RPC", "SMTP"]),
    failures=st.integers(0, 99999),
    last_failure=st.none() | times,
    last_success=st.none() | times,
    last_failure_status=st.integers(0, 20000) | codes,
)


# --- round trips --------------------------------------------------------------------------------


@given(showrepls(), st.none() | hosts)
def test_showrepl_round_trip(report: ShowRepl, dc: str | None) -> None:
    printed = render_showrepl(report, dc)
    assert "\n" not in printed.stdout.replace("\r\n", "")
    assert parse_showrepl(printed) == report


@given(st.lists(links, max_size=6))
def test_showrepl_csv_round_trip(rows: list[ReplicationLink]) -> None:
    assert parse_showrepl_csv(render_showrepl_csv(rows)) == tuple(rows)


@given(
    times,
    st.lists(summary_rows(), max_size=5),
    st.lists(summary_rows(), max_size=5),
    st.lists(st.tuples(codes, hosts), max_size=3),
)
def test_replsummary_round_trip(
    start: datetime,
    sources: list[SummaryRow],
    destinations: list[SummaryRow],
    errors: list[tuple[int, str]],
) -> None:
    summary = ReplSummary(start, tuple(sources), tuple(destinations), tuple(errors))
    assert parse_replsummary(render_replsummary(summary)) == summary


@given(option_sets, st.none() | option_sets)
def test_options_round_trip(current: frozenset[str], new: frozenset[str] | None) -> None:
    parsed = parse_repadmin_options(render_repadmin_options(current, new))
    assert (parsed.current, parsed.new) == (current, new)


@given(st.none() | hosts, st.none() | codes)
def test_kcc_round_trip(dc: str | None, error: int | None) -> None:
    printed = render_repadmin_kcc(dc, error)
    if error is None:
        assert parse_repadmin_kcc(printed) == (dc or "localhost")
    else:
        with pytest.raises(WindowsCommandError) as caught:
            parse_repadmin_kcc(printed)
        assert caught.value.code == error


@given(ncs, hosts, hosts, st.just(0) | codes)
def test_add_round_trip(nc: str, dest: str, source: str, result: int) -> None:
    printed = render_repadmin_add(nc, dest, source, result)
    if result == 0:
        assert parse_repadmin_add(printed) is AddLinkOutcome.ADDED
    elif result == 8441:
        assert parse_repadmin_add(printed) is AddLinkOutcome.ALREADY_EXISTS
    else:
        with pytest.raises(WindowsCommandError) as caught:
            parse_repadmin_add(printed)
        assert caught.value.code == result


@given(st.sampled_from(list(NtdsValue)), st.none() | st.integers(0, 2**32 - 1))
def test_reg_query_round_trip(value: NtdsValue, data: int | None) -> None:
    parsed = parse_reg_query(render_reg_query(NTDS_PARAMETERS_KEY, value.value, data), value.value)
    if data is None:
        assert parsed is None
    else:
        assert parsed is not None
        assert (parsed.name, parsed.type, parsed.data) == (value.value, "REG_DWORD", data)


def test_reg_change_shutdown_and_errors_parse_as_windows_would() -> None:
    parse_reg_add(render_reg_add())
    assert parse_reg_delete(render_reg_delete(True)) is True
    assert parse_reg_delete(render_reg_delete(False)) is False
    parse_shutdown(render_shutdown())
    with pytest.raises(WindowsCommandError) as caught:
        parse_shutdown(render_shutdown(already_scheduled=True))
    assert caught.value.code == 1190
    with pytest.raises(WindowsCommandError) as caught:
        parse_shutdown(render_shutdown_invalid())
    assert caught.value.code == 87
    with pytest.raises(WindowsCommandError, match="Access is denied"):
        parse_reg_add(render_reg_access_denied())
    with pytest.raises(WindowsCommandError, match="Invalid syntax"):
        parse_reg_add(render_reg_invalid_syntax("add"))
    # A declined overwrite prompt must never read as success.
    with pytest.raises(Exception, match="not recognize"):
        parse_reg_add(render_reg_prompt_declined(NtdsValue.ALLOW_SPN_FALLBACK.value, False))
    with pytest.raises(Exception, match="not recognize"):
        parse_reg_delete(render_reg_prompt_declined(NtdsValue.ALLOW_SPN_FALLBACK.value, True))
    with pytest.raises(Exception, match="not recognize"):
        parse_repadmin_kcc(render_repadmin_usage())
    missing = render_not_recognized("repadmin.exe")
    assert missing.exit_code == 9009
    assert "'repadmin.exe' is not recognized" in missing.stderr
    with pytest.raises(WindowsCommandError) as caught:
        parse_showrepl(render_repadmin_unreachable("dc3.corp.example.com"))
    assert caught.value.code == 1722
    custom = render_repadmin_error("DsReplicaAdd", 8440, message="Bad NC.")
    with pytest.raises(WindowsCommandError, match="Bad NC"):
        parse_repadmin_add(custom)


# --- rendered output has the real samples' exact shape -------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "showrepl_healthy.stdout.txt",
        "showrepl_8589.stdout.txt",
        "showrepl_kerberos.stdout.txt",
        "showrepl_qna_secondary.stdout.txt",
    ],
)
def test_showrepl_renders_like_the_sample(name: str) -> None:
    text = sample(name)
    assert render_showrepl(parse_showrepl(CommandOutput(text, "", 0))).stdout == text


def test_new_link_sample_against_a_named_dc() -> None:
    text = sample("showrepl_new_link.stdout.txt")
    report = parse_showrepl(CommandOutput(text, "", 0))
    assert render_showrepl(report, "dc1.corp.example.com").stdout == text


@pytest.mark.parametrize("name", ["showrepl.csv.stdout.txt", "showrepl_kerberos.csv.stdout.txt"])
def test_csv_renders_like_the_sample(name: str) -> None:
    csv_text = sample(name)
    assert render_showrepl_csv(parse_showrepl_csv(CommandOutput(csv_text, "", 0))).stdout == (
        csv_text
    )


@pytest.mark.parametrize(
    "name",
    [
        "replsummary_healthy.stdout.txt",
        "replsummary_errors.stdout.txt",
        "replsummary_reached_no_dc.stdout.txt",
    ],
)
def test_replsummary_renders_like_the_sample(name: str) -> None:
    summary_text = sample(name)
    summary = parse_replsummary(CommandOutput(summary_text, "", 0))
    assert render_replsummary(summary).stdout == summary_text


def test_small_outputs_render_like_the_samples() -> None:
    key = NTDS_PARAMETERS_KEY
    repsto = NtdsValue.REPS_TO_FAILURE_TIME.value
    fallback = NtdsValue.ALLOW_SPN_FALLBACK.value
    assert render_reg_query(key, repsto, 60).stdout == sample("reg_query_repsto.stdout.txt")
    assert render_reg_query(key, fallback, 1).stdout == sample("reg_query_spn_fallback.stdout.txt")
    assert render_reg_query(key, fallback, None) == CommandOutput(
        "", sample("reg_not_found.stderr.txt"), 1
    )
    assert render_reg_add().stdout == sample("reg_success.stdout.txt")
    assert render_reg_access_denied().stderr == sample("reg_access_denied.stderr.txt")
    assert render_shutdown(True).stderr == sample("shutdown_already_scheduled.stderr.txt")
    assert render_repadmin_options({"IS_GC"}).stdout == sample("repadmin_options_read.stdout.txt")
    assert render_repadmin_options({"IS_GC"}, {"DISABLE_NTDSCONN_XLATE", "IS_GC"}).stdout == (
        sample("repadmin_options_disable_xlate.stdout.txt")
    )
    assert render_repadmin_kcc().stdout == sample("repadmin_kcc_local.stdout.txt")
    assert render_repadmin_kcc("dc2.corp.example.com").stdout == sample(
        "repadmin_kcc_remote.stdout.txt"
    )
    assert render_repadmin_kcc("dc2.corp.example.com", 8453).stdout == sample(
        "repadmin_kcc_denied.stdout.txt"
    )
    nc = "CN=Configuration,DC=corp,DC=example,DC=com"
    dc1, dc2 = "dc1.corp.example.com", "dc2.corp.example.com"
    assert render_repadmin_add(nc, dc1, dc2).stdout == sample("repadmin_add_success.stdout.txt")
    assert render_repadmin_add(nc, dc1, dc2, 8441).stdout == sample(
        "repadmin_add_exists.stdout.txt"
    )
    assert render_repadmin_kcc("dc2.corp.example.com", site="Houston", site_options="(None)") == (
        CommandOutput(sample("repadmin_kcc_site_options.stdout.txt"), "", 0)
    )
    assert render_repadmin_unreachable("dc3.corp.example.com").stdout == sample(
        "repadmin_unreachable.stdout.txt"
    )
