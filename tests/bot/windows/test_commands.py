"""Command templates: what reaches a DC's cmd.exe, and what never can."""

from __future__ import annotations

import re
import shlex

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.errors import Ad1411Error
from bot.windows.commands import (
    CMD_METACHARACTERS,
    NTDS_PARAMETERS_KEY,
    OPTION_CHANGES,
    DistinguishedName,
    DsaOption,
    Fqdn,
    IncidentId,
    InvalidParameter,
    NtdsValue,
    RemoteCommand,
    RestartReason,
    configuration_nc,
    reg_add_dword,
    reg_delete,
    reg_query,
    repadmin_add,
    repadmin_kcc,
    repadmin_options,
    repadmin_replsummary,
    repadmin_showrepl,
    restart,
)

META = "".join(sorted(CMD_METACHARACTERS))

# --- strategies -----------------------------------------------------------------------------

label = st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?\Z")
tld = st.from_regex(r"\A[a-z][a-z0-9]{0,5}\Z")
fqdns = st.builds(
    lambda labels, last: Fqdn(".".join([*labels, last])),
    st.lists(label, min_size=1, max_size=4),
    tld,
)
dn_value = st.from_regex(r"\A[A-Za-z0-9-]([A-Za-z0-9 -]{0,20}[A-Za-z0-9-])?\Z")
dns = st.builds(
    lambda pairs: DistinguishedName(",".join(f"{a}={v}" for a, v in pairs)),
    st.lists(st.tuples(st.sampled_from(["CN", "OU", "DC", "cn", "dc"]), dn_value), min_size=1),
)
incidents = st.from_regex(r"\A[A-Za-z0-9-]{1,40}\Z").map(IncidentId)


@st.composite
def with_metacharacter(draw: st.DrawFn) -> str:
    """Any text that holds at least one cmd.exe metacharacter somewhere."""
    before = draw(st.text(max_size=20))
    after = draw(st.text(max_size=20))
    return before + draw(st.sampled_from(META)) + after


@st.composite
def commands(draw: st.DrawFn) -> RemoteCommand:
    """Every template, fed with arbitrary valid values."""
    which = draw(st.integers(0, 9))
    value = draw(st.sampled_from(list(NtdsValue)))
    if which == 0:
        return reg_query(value)
    if which == 1:
        return reg_add_dword(value, draw(st.integers(0, 2**32 - 1)))
    if which == 2:
        return reg_delete(value)
    if which == 3:
        return repadmin_kcc(draw(st.none() | fqdns))
    if which == 4:
        return repadmin_options(draw(fqdns), draw(st.sampled_from([None, *OPTION_CHANGES])))
    if which == 5:
        return repadmin_add(draw(dns), draw(fqdns), draw(fqdns))
    if which == 6:
        return repadmin_showrepl(draw(st.none() | fqdns), draw(st.booleans()))
    if which == 7:
        return repadmin_replsummary()
    if which == 8:
        return repadmin_add(configuration_nc(draw(fqdns)), draw(fqdns), draw(fqdns))
    return restart(
        RestartReason.SPN_FALLBACK, draw(st.none() | incidents), draw(st.integers(0, 3600))
    )


# --- the property: no metacharacter from input can reach a command line ---------------------


@given(with_metacharacter())
def test_no_value_type_accepts_a_metacharacter(text: str) -> None:
    for build in (Fqdn, DistinguishedName, IncidentId):
        with pytest.raises(InvalidParameter):
            build(text)


@given(with_metacharacter(), fqdns)
def test_option_change_and_raw_strings_with_metacharacters_are_refused(text: str, dc: Fqdn) -> None:
    with pytest.raises(InvalidParameter):
        repadmin_options(dc, text)
    with pytest.raises(InvalidParameter):
        RemoteCommand("repadmin.exe", ("/kcc", text.replace("(", "&").replace(")", "|")), "x")


@given(commands())
def test_rendered_command_lines_hold_no_metacharacter_outside_the_renderers_quotes(
    command: RemoteCommand,
) -> None:
    line = command.command_line()
    # Split on the renderer's own quotes: even parts are unquoted, odd parts quoted.
    parts = line.split('"')
    assert len(parts) % 2 == 1, f"unbalanced quotes in {line!r}"
    for unquoted in parts[0::2]:
        assert not set(unquoted) & CMD_METACHARACTERS, line
    for quoted in parts[1::2]:
        # Only the fixed value name "RepsTo Failure Time (sec)" brings parentheses.
        assert not set(quoted) & (CMD_METACHARACTERS - set("()")), line
        if set(quoted) & set("()"):
            assert quoted == NtdsValue.REPS_TO_FAILURE_TIME.value
    # WinRS joins Command and Arguments with spaces: the two renderings must agree.
    assert line == " ".join((command.executable, *command.quoted_arguments()))
    # A Windows argv split (posix shlex is the same for these inputs) gives back the arguments.
    assert tuple(shlex.split(line)) == (command.executable, *command.arguments)


# --- value types ------------------------------------------------------------------------------


def test_fqdn_is_lower_cased_and_split() -> None:
    dc = Fqdn("DC1.Corp.Example.COM.")
    assert dc.value == "dc1.corp.example.com"
    assert (dc.host, dc.domain) == ("dc1", "corp.example.com")
    assert dc == Fqdn("dc1.corp.example.com")


@pytest.mark.parametrize(
    "bad",
    [
        "dc1",  # single label
        "",
        "10.0.0.1",
        "-dc.corp.com",
        "dc-.corp.com",
        "dc_1.corp.com",
        "dc1..corp.com",
        "a" * 64 + ".com",
        ".".join(["abcdefgh"] * 30),  # > 253
        "dc1.corp.com /f",
        "dc1.corp.com\n",
    ],
)
def test_fqdn_refuses(bad: str) -> None:
    with pytest.raises(InvalidParameter, match="not a valid DNS name"):
        Fqdn(bad)


def test_fqdn_refuses_non_text() -> None:
    with pytest.raises(InvalidParameter):
        Fqdn(42)  # type: ignore[arg-type]


def test_invalid_parameter_is_a_value_error_and_a_bot_error() -> None:
    assert issubclass(InvalidParameter, ValueError)
    assert issubclass(InvalidParameter, Ad1411Error)


def test_distinguished_name_canonical_form_and_case_insensitive_equality() -> None:
    dn = DistinguishedName("cn=NTDS Settings,CN=DC1,cn=Servers,DC=corp,DC=example,DC=com")
    assert dn.value == "CN=NTDS Settings,CN=DC1,CN=Servers,DC=corp,DC=example,DC=com"
    assert dn.rdns[0] == ("CN", "NTDS Settings")
    assert dn == DistinguishedName("CN=ntds settings,CN=dc1,CN=servers,DC=CORP,DC=example,DC=com")
    assert len({dn, DistinguishedName(dn.value.upper())}) == 1


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "CN=Configuration,",
        "CN=Configuration, DC=corp",
        "CN = Configuration",
        "CN=Config\\,uration,DC=corp",
        'CN="Configuration",DC=corp',
        "CN=a+OU=b,DC=corp",
        "CN=#04024869",
        "CN= leading,DC=corp",
        "Configuration",
        "1CN=x",
        "CN=x" + ",DC=y" * 300,
    ],
)
def test_distinguished_name_refuses(bad: str) -> None:
    with pytest.raises(InvalidParameter):
        DistinguishedName(bad)


def test_incident_id() -> None:
    assert str(IncidentId("INC-2024-0611")) == "INC-2024-0611"
    for bad in ("", "a" * 41, "INC 1", "INC_1"):
        with pytest.raises(InvalidParameter, match="incident id"):
            IncidentId(bad)


def test_enumerations_hold_exactly_the_allowed_names() -> None:
    assert {v.value for v in NtdsValue} == {
        "RepsTo Failure Time (sec)",
        "Replicator Allow SPN Fallback",
    }
    assert DsaOption.DISABLE_NTDSCONN_XLATE.value == "DISABLE_NTDSCONN_XLATE"
    assert {"+DISABLE_NTDSCONN_XLATE", "-DISABLE_NTDSCONN_XLATE"} == OPTION_CHANGES


# --- templates, one per row of DESIGN.md section 1 ---------------------------------------------

ROOT = Fqdn("dc1.corp.example.com")
SOURCE = Fqdn("dc2.corp.example.com")


def test_step1_shorten_repsto_failure_time() -> None:
    cmd = reg_add_dword(NtdsValue.REPS_TO_FAILURE_TIME, 60)
    assert cmd.command_line() == (
        'reg.exe add "HKLM\\SYSTEM\\CurrentControlSet\\Services\\NTDS\\Parameters" '
        '/v "RepsTo Failure Time (sec)" /t REG_DWORD /d 60 /f'
    )
    assert cmd.executable == "reg.exe"
    assert cmd.arguments[1] == NTDS_PARAMETERS_KEY
    assert "60" in cmd.description


def test_step2_and_11_kcc() -> None:
    assert repadmin_kcc().command_line() == "repadmin.exe /kcc"
    assert repadmin_kcc(ROOT).command_line() == "repadmin.exe /kcc dc1.corp.example.com"


def test_step4_and_10_spn_fallback_and_its_undo() -> None:
    assert reg_add_dword(NtdsValue.ALLOW_SPN_FALLBACK, 1).arguments == (
        "add",
        NTDS_PARAMETERS_KEY,
        "/v",
        "Replicator Allow SPN Fallback",
        "/t",
        "REG_DWORD",
        "/d",
        "1",
        "/f",
    )
    assert reg_delete(NtdsValue.ALLOW_SPN_FALLBACK).command_line() == (
        'reg.exe delete "HKLM\\SYSTEM\\CurrentControlSet\\Services\\NTDS\\Parameters" '
        '/v "Replicator Allow SPN Fallback" /f'
    )
    assert reg_query(NtdsValue.ALLOW_SPN_FALLBACK).arguments[0] == "query"


def test_reg_dword_range() -> None:
    assert reg_add_dword(NtdsValue.ALLOW_SPN_FALLBACK, 2**32 - 1).arguments[7] == "4294967295"
    for bad in (-1, 2**32, True, "60", 1.0):
        with pytest.raises(InvalidParameter, match="REG_DWORD"):
            reg_add_dword(NtdsValue.REPS_TO_FAILURE_TIME, bad)  # type: ignore[arg-type]


def test_registry_templates_refuse_a_plain_string_value_name() -> None:
    with pytest.raises(InvalidParameter):
        reg_query('Replicator Allow SPN Fallback" & calc')  # type: ignore[arg-type]
    with pytest.raises(InvalidParameter):
        reg_delete("DSA Database file")  # type: ignore[arg-type]


def test_step5_restart() -> None:
    cmd = restart()
    assert cmd.executable == "shutdown.exe"
    assert cmd.arguments[:6] == ("/r", "/t", "30", "/d", "p:2:4", "/c")
    assert cmd.command_line().endswith(f'/c "{RestartReason.SPN_FALLBACK.value}"')
    with_incident = restart(incident=IncidentId("INC-42"), delay_seconds=0)
    assert with_incident.arguments[2] == "0"
    assert with_incident.arguments[-1].endswith("incident INC-42")
    for bad in (-1, 3601, True):
        with pytest.raises(InvalidParameter, match="delay"):
            restart(delay_seconds=bad)
    with pytest.raises(InvalidParameter):
        restart(incident="INC & x")  # type: ignore[arg-type]
    with pytest.raises(InvalidParameter):
        restart("free text")  # type: ignore[arg-type]


def test_step6_and_9_connection_translation() -> None:
    assert repadmin_options(ROOT).command_line() == "repadmin.exe /options dc1.corp.example.com"
    assert repadmin_options(ROOT, "+DISABLE_NTDSCONN_XLATE").arguments == (
        "/options",
        "dc1.corp.example.com",
        "+DISABLE_NTDSCONN_XLATE",
    )
    assert repadmin_options(ROOT, "-DISABLE_NTDSCONN_XLATE").description.startswith("Re-enable")
    for bad in ("+IS_GC", "+DISABLE_OUTBOUND_REPL", "DISABLE_NTDSCONN_XLATE", ""):
        with pytest.raises(InvalidParameter, match="not an allowed DSA option change"):
            repadmin_options(ROOT, bad)
    with pytest.raises(InvalidParameter):
        repadmin_options("dc1.corp.example.com")  # type: ignore[arg-type]


def test_step7_add_replication_link() -> None:
    nc = configuration_nc(Fqdn("corp.example.com"))
    assert nc.value == "CN=Configuration,DC=corp,DC=example,DC=com"
    assert repadmin_add(nc, ROOT, SOURCE).command_line() == (
        "repadmin.exe /add CN=Configuration,DC=corp,DC=example,DC=com "
        "dc1.corp.example.com dc2.corp.example.com"
    )
    with pytest.raises(InvalidParameter):
        repadmin_add("CN=Configuration,DC=corp", ROOT, SOURCE)  # type: ignore[arg-type]


def test_step8_and_12_verification_reads() -> None:
    assert repadmin_showrepl().command_line() == "repadmin.exe /showrepl"
    assert repadmin_showrepl(ROOT, csv=True).arguments == (
        "/showrepl",
        "dc1.corp.example.com",
        "/csv",
    )
    assert repadmin_replsummary().command_line() == "repadmin.exe /replsummary"


def test_dn_with_spaces_is_quoted_as_one_argument() -> None:
    nc = DistinguishedName("CN=NTDS Settings,CN=DC1,DC=corp,DC=com")
    line = repadmin_add(nc, ROOT, SOURCE).command_line()
    assert '"CN=NTDS Settings,CN=DC1,DC=corp,DC=com"' in line


def test_remote_command_refuses_odd_executables_and_is_immutable() -> None:
    with pytest.raises(InvalidParameter):
        RemoteCommand("C:\\Windows\\System32\\cmd.exe", (), "x")
    with pytest.raises(InvalidParameter):
        RemoteCommand("powershell", (), "x")
    cmd = repadmin_kcc()
    with pytest.raises(AttributeError):
        cmd.executable = "cmd.exe"  # type: ignore[misc]
    assert re.fullmatch(r"repadmin\.exe /kcc", str(cmd))
