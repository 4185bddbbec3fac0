"""Parsers for repadmin.exe output: /options, /kcc, /add, /showrepl (text and CSV), /replsummary.

The shapes are those of real Windows (published transcripts and repadmin's own message
strings; tests/bot/windows/outputs/README.md says where each comes from). Each parser returns
typed data or raises `WindowsCommandError` (repadmin reported a status) or `UnrecognizedOutput`
(text it does not know, with the line it stopped at). None of them ever infers success from
silence, and a status is always the signed decimal repadmin prints, checked against its hex.
"""

from __future__ import annotations

import csv
import enum
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.windows.output import (
    CommandOutput,
    UnrecognizedOutput,
    WindowsCommandError,
    find_api_failure,
    lines_of,
    shown_line,
    status_code,
)
from bot.windows.win32 import ERROR_DS_DRA_DN_EXISTS, as_signed, hex_code

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
NEVER = "(never)"
NONE_OPTIONS = "(none)"
# DSA option names in the order repadmin prints them (their bit order in nTDSDSA options).
DSA_OPTION_ORDER = (
    "IS_GC",
    "DISABLE_INBOUND_REPL",
    "DISABLE_OUTBOUND_REPL",
    "DISABLE_NTDSCONN_XLATE",
    "DISABLE_SPN_REGISTRATION",
)
_BANNER = re.compile(
    r"^Repadmin: running command (?P<cmd>/\w+) against (?:full|read-only) DC (?P<dc>\S+)\s*$"
)
_OPTION_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
# A status as repadmin prints it: "%1!d! (0x%2!x!)", so HRESULTs come out negative.
_CODE = r"(?P<code>-?\d{1,10}) \(0x(?P<hex>[0-9a-fA-F]{1,8})\)"
_WHEN = r"(?P<when>\(never\)|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)"


def format_status(code: int) -> str:
    """A status as repadmin prints it: `-2146893022 (0x80090322)`, `8589 (0x218d)`."""
    return f"{code} ({hex_code(code)})"


def _parse_time(text: str, cur: _Lines) -> datetime | None:
    if text == NEVER:
        return None
    try:
        return datetime.strptime(text, TIME_FORMAT)
    except ValueError:
        raise cur.fail("a time as YYYY-MM-DD hh:mm:ss or (never)", at=cur.i - 1) from None


def _raise_reported_failure(command: str, output: CommandOutput) -> None:
    failure = find_api_failure(output)
    if failure is not None:
        raise WindowsCommandError(command, failure.code, failure.message, output)


def _content(output: CommandOutput) -> list[str]:
    """stdout lines, right-stripped, with the "Repadmin: running command" banner blanked
    (blanked, not removed, so line numbers stay those of the output)."""
    return ["" if _BANNER.match(line) else line.rstrip() for line in lines_of(output.stdout)]


def banner_dc(output: CommandOutput) -> str | None:
    """The DC named in the "Repadmin: running command /x against full DC NAME" banner."""
    for line in lines_of(output.stdout):
        match = _BANNER.match(line)
        if match is not None:
            return match["dc"]
    return None


def order_dsa_options(options: frozenset[str] | set[str]) -> list[str]:
    """Options in repadmin's print order: known bits first, then the rest alphabetically."""
    known = [name for name in DSA_OPTION_ORDER if name in options]
    return known + sorted(set(options) - set(DSA_OPTION_ORDER))


def _parse_option_list(text: str, cur: _Lines) -> frozenset[str]:
    """The option names after "...Options:" on the line just taken."""
    text = text.strip()
    # repadmin names "no options" in words; an empty list is a cut line, never "none".
    if text.lower() in (NONE_OPTIONS, "<none>"):
        return frozenset()
    if not text:
        raise cur.fail("option names or (none) after the colon", at=cur.i - 1)
    names = text.split()
    if not all(_OPTION_NAME.match(n) for n in names):
        expected = "option names in capitals (IS_GC DISABLE_NTDSCONN_XLATE) or (none)"
        raise cur.fail(expected, at=cur.i - 1)
    return frozenset(names)


class _Lines:
    """A cursor over output lines that reports where reading stopped making sense."""

    def __init__(self, lines: list[str], command: str, output: CommandOutput) -> None:
        self.lines = lines
        self.i = 0
        self.command = command
        self.output = output

    def peek(self) -> str | None:
        return self.lines[self.i] if self.i < len(self.lines) else None

    def take(self) -> str:
        line = self.peek()
        if line is None:
            raise self.fail("more lines (the output ends too early)")
        self.i += 1
        return line

    def skip_blank(self) -> None:
        while (line := self.peek()) is not None and not line.strip():
            self.i += 1

    def expect(self, pattern: re.Pattern[str], expected: str) -> re.Match[str]:
        line = self.take()
        match = pattern.match(line)
        if match is None:
            raise self.fail(expected, at=self.i - 1)
        return match

    def fail(self, expected: str, *, at: int | None = None) -> UnrecognizedOutput:
        """Unrecognized output at line `at` (default: the next line), saying what was expected."""
        index = self.i if at is None else at
        if any(line.strip() for line in self.lines[index:]):
            why = f"line {index + 1}: expected {expected}, got {shown_line(self.lines[index])}"
        else:
            why = f"line {index + 1}: expected {expected}, but the output ends there"
        return UnrecognizedOutput(self.command, self.output, why, line=index + 1, expected=expected)


def _nonblank(output: CommandOutput, command: str) -> tuple[_Lines, list[int]]:
    """The cursor over an output and the indexes of its non-blank lines."""
    cur = _Lines(_content(output), command, output)
    return cur, [i for i, line in enumerate(cur.lines) if line.strip()]


def _status(match: re.Match[str], cur: _Lines) -> int:
    code = status_code(match["code"], match["hex"])
    if code is None:
        raise cur.fail("a status whose decimal and hex forms are one 32-bit value", at=cur.i - 1)
    return code


def _message_lines(cur: _Lines, indent: int) -> str:
    """Continuation lines indented deeper than `indent`, joined (an error's text)."""
    parts: list[str] = []
    while (line := cur.peek()) is not None and line.strip() and _indent(line) > indent:
        parts.append(cur.take().strip())
    return " ".join(parts)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


# --- /options -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DsaOptions:
    """`repadmin /options DC [+|-OPTION]`: options before, and after when a change was asked."""

    current: frozenset[str]
    new: frozenset[str] | None = None

    @property
    def effective(self) -> frozenset[str]:
        """The options in force once the command returned."""
        return self.current if self.new is None else self.new


def parse_repadmin_options(output: CommandOutput) -> DsaOptions:
    """Read "Current DSA Options:" (and "New DSA Options:" after a change)."""
    command = "repadmin /options"
    _raise_reported_failure(command, output)
    cur, _ = _nonblank(output, command)
    current: frozenset[str] | None = None
    new: frozenset[str] | None = None
    while (line := cur.peek()) is not None:
        if not line.strip():
            cur.take()
            continue
        head, sep, rest = cur.take().partition(":")
        key = head.strip().lower()
        if sep and key == "current dsa options" and current is None:
            current = _parse_option_list(rest, cur)
        elif sep and key == "new dsa options" and current is not None and new is None:
            new = _parse_option_list(rest, cur)
        else:
            wanted = "'New DSA Options: ...'" if current is not None else "'Current DSA Options:'"
            raise cur.fail(wanted, at=cur.i - 1)
    if current is None:
        raise cur.fail("'Current DSA Options: ...'")
    if output.exit_code != 0:
        raise UnrecognizedOutput(
            command, output, f"exit code {output.exit_code} without a failure report"
        )
    return DsaOptions(current=current, new=new)


# --- /kcc -----------------------------------------------------------------------------------

_KCC_OK = re.compile(r"^Consistency check on (?P<dc>\S+) successful\.$")
_KCC_SITE = re.compile(r"^(?P<site>[^\s:][^:]*)$")
_KCC_SITE_OPTIONS = re.compile(r"^Current Site Options: (?P<options>\S.*)$")
KCC_EXPECTED = "'Consistency check on DC successful.'"


@dataclass(frozen=True)
class KccReport:
    """`repadmin /kcc [DC]`: success (with the site lines current Windows prints before it),
    or the status repadmin reported."""

    ok: bool
    dc: str | None
    site: str | None = None
    site_options: str | None = None
    status: int = 0
    message: str = ""


def read_repadmin_kcc(output: CommandOutput) -> KccReport:
    """What `repadmin /kcc` reported: a reported failure is a reading, not an error."""
    command = "repadmin /kcc"
    failure = find_api_failure(output)
    if failure is not None:
        return KccReport(
            ok=False,
            dc=banner_dc(output) or failure.target,
            status=failure.code,
            message=failure.message,
        )
    cur, shown = _nonblank(output, command)
    site = options = None
    if len(shown) == 3:
        # Windows Server 2008 and later (and Samba's clone): site, its options, then success.
        cur.i = shown[0]
        site = cur.expect(_KCC_SITE, "the site name on its own line")["site"].strip()
        cur.i = shown[1]
        options = cur.expect(_KCC_SITE_OPTIONS, "'Current Site Options: ...'")["options"]
    elif len(shown) != 1:
        at = shown[1] if len(shown) > 1 else None
        raise cur.fail(KCC_EXPECTED + " alone, or after the site lines", at=at)
    cur.i = shown[-1] if shown else 0
    match = cur.expect(_KCC_OK, KCC_EXPECTED)
    if output.exit_code != 0:
        raise UnrecognizedOutput(
            command, output, f"success printed with exit code {output.exit_code}"
        )
    return KccReport(ok=True, dc=match["dc"], site=site, site_options=options)


def parse_repadmin_kcc(output: CommandOutput) -> str:
    """The DC name from "Consistency check on DC successful."; raises on any failure."""
    report = read_repadmin_kcc(output)
    if not report.ok:
        raise WindowsCommandError("repadmin /kcc", report.status, report.message, output)
    return report.dc or ""


# --- /add -----------------------------------------------------------------------------------


class AddLinkOutcome(enum.Enum):
    """What `repadmin /add` did."""

    ADDED = "added"
    ALREADY_EXISTS = "already_exists"
    FAILED = "failed"


@dataclass(frozen=True)
class AddLinkReport:
    """`repadmin /add NC DEST SOURCE`: the outcome, the link's ends as repadmin named them
    (None when it printed only a failure), and the status (0 when added)."""

    outcome: AddLinkOutcome
    source: str | None
    destination: str | None
    status: int
    message: str = ""


# repadmin's REPADMIN_ADD_ONE_WAY_REPL_ESTABLISHED; some transcripts have a space after the colons.
_ADD_OK = re.compile(
    r"^One-way replication from source: ?(?P<source>\S+) to dest: ?(?P<dest>\S+) established\.$"
)
_ADD_ENQUEUED = re.compile(r"^Successfully enqueued operation to establish one-way replication ")
ADD_EXPECTED = "'One-way replication from source:SRC to dest:DST established.'"


def read_repadmin_add(output: CommandOutput) -> AddLinkReport:
    """What `repadmin /add` reported: added, already there (8441), or a reported failure."""
    command = "repadmin /add"
    failure = find_api_failure(output)
    if failure is not None:
        exists = failure.code == ERROR_DS_DRA_DN_EXISTS
        outcome = AddLinkOutcome.ALREADY_EXISTS if exists else AddLinkOutcome.FAILED
        return AddLinkReport(outcome, None, None, failure.code, failure.message)
    cur, shown = _nonblank(output, command)
    stray = [i for i in shown if not _ADD_OK.match(cur.lines[i])]
    if len(shown) > 1:
        raise cur.fail(ADD_EXPECTED + " alone", at=stray[0] if stray else shown[1])
    cur.i = shown[0] if shown else 0
    if _ADD_ENQUEUED.match(cur.lines[cur.i]):
        raise cur.fail(ADD_EXPECTED + " (an enqueued /async add is not confirmed)", at=cur.i)
    match = cur.expect(_ADD_OK, ADD_EXPECTED)
    if output.exit_code != 0:
        raise UnrecognizedOutput(
            command, output, f"success printed with exit code {output.exit_code}"
        )
    return AddLinkReport(AddLinkOutcome.ADDED, match["source"], match["dest"], 0)


def parse_repadmin_add(output: CommandOutput) -> AddLinkOutcome:
    """ADDED, ALREADY_EXISTS (status 8441), or raise with the status repadmin reported."""
    report = read_repadmin_add(output)
    if report.outcome is AddLinkOutcome.FAILED:
        raise WindowsCommandError("repadmin /add", report.status, report.message, output)
    return report.outcome


# --- /showrepl (text) -----------------------------------------------------------------------


@dataclass(frozen=True)
class InboundNeighbor:
    """One inbound replication link of one naming context, as /showrepl prints it."""

    naming_context: str
    source_site: str
    source_dc: str
    transport: str
    source_dsa_guid: uuid.UUID
    last_attempt: datetime | None
    result: int
    result_message: str
    consecutive_failures: int
    last_success: datetime | None
    delayed: bool = False

    @property
    def ok(self) -> bool:
        """The last attempt succeeded."""
        return self.result == 0


@dataclass(frozen=True)
class SourceFailure:
    """The trailing "Source: ... CONSECUTIVE FAILURES" block (KCC's failure cache)."""

    source: str
    failures: int
    since: datetime | None
    last_error: int
    last_error_message: str


@dataclass(frozen=True)
class ShowRepl:
    """`repadmin /showrepl DC` for one DC: its identity and inbound neighbors."""

    site: str
    dc: str
    dsa_options: frozenset[str]
    site_options: frozenset[str]
    dsa_guid: uuid.UUID
    invocation_id: uuid.UUID
    inbound: tuple[InboundNeighbor, ...]
    source_failures: tuple[SourceFailure, ...] = ()

    def neighbors_for(self, naming_context: str) -> tuple[InboundNeighbor, ...]:
        """Inbound links of one NC (DN compared case-insensitively)."""
        return tuple(n for n in self.inbound if n.naming_context.lower() == naming_context.lower())


INBOUND_HEADER = "==== INBOUND NEIGHBORS ======================================"
_SOURCE_LINE = re.compile(r"^    (?P<name>\S.*?) via (?P<transport>\S+)$")
_GUID_LINE = re.compile(r"^        DSA object GUID: (?P<guid>[0-9a-fA-F-]{36})$")
_ATTEMPT_LINE = re.compile(
    rf"^        Last attempt @ {_WHEN} "
    r"(?:(?P<ok>was successful\.)|(?P<how>failed|was delayed for a normal reason), "
    rf"result {_CODE}:)$"
)
_FAILURES_LINE = re.compile(r"^        (?P<n>\d+) consecutive failure\(s\)\.$")
_SUCCESS_LINE = re.compile(rf"^        Last success @ {_WHEN}\.$")
_SOURCE_FAILURE_HEAD = re.compile(r"^Source: (?P<source>\S.*)$")
_SOURCE_FAILURE_COUNT = re.compile(rf"^\*+ (?P<n>\d+) CONSECUTIVE FAILURES since {_WHEN}$")
_SOURCE_FAILURE_ERROR = re.compile(rf"^Last error: {_CODE}:$")
_SITE_DC = re.compile(r"^(?P<site>[^\\\s][^\\]*)\\(?P<dc>[^\\\s]+)$")


def _header_field(cur: _Lines, name: str) -> str:
    line = cur.take()
    prefix = f"{name}:"
    if not line.startswith(prefix):
        raise cur.fail(f"'{prefix} ...'", at=cur.i - 1)
    return line[len(prefix) :].strip()


def _guid(text: str, cur: _Lines) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise cur.fail("a GUID", at=cur.i - 1) from None


def parse_showrepl(output: CommandOutput) -> ShowRepl:
    """Parse `repadmin /showrepl [DC]` text output for one DC."""
    command = "repadmin /showrepl"
    _raise_reported_failure(command, output)
    cur = _Lines(_content(output), command, output)
    cur.skip_blank()
    site_dc = cur.expect(_SITE_DC, "'Site\\DC' as the first line")
    dsa_options = _parse_option_list(_header_field(cur, "DSA Options"), cur)
    site_options = _parse_option_list(_header_field(cur, "Site Options"), cur)
    dsa_guid = _guid(_header_field(cur, "DSA object GUID"), cur)
    invocation_id = _guid(_header_field(cur, "DSA invocationID"), cur)
    cur.skip_blank()
    inbound: list[InboundNeighbor] = []
    if cur.peek() == INBOUND_HEADER:
        cur.take()
        cur.skip_blank()
        while (line := cur.peek()) is not None and line.strip() and not line.startswith("Source:"):
            if line.startswith(" ") or "=" not in line:
                raise cur.fail("a naming context (DC=... or CN=...)")
            naming_context = cur.take().strip()
            if not (cur.peek() or "").startswith("    "):
                raise cur.fail("'    Site\\DC via RPC' under the naming context")
            while (line := cur.peek()) is not None and line.startswith("    "):
                inbound.append(_neighbor(cur, naming_context))
            cur.skip_blank()
    failures = _source_failures(cur)
    cur.skip_blank()
    if cur.peek() is not None:
        raise cur.fail("the end of the output")
    if output.exit_code != 0:
        raise UnrecognizedOutput(
            command, output, f"exit code {output.exit_code} without a failure report"
        )
    return ShowRepl(
        site=site_dc["site"],
        dc=site_dc["dc"],
        dsa_options=dsa_options,
        site_options=site_options,
        dsa_guid=dsa_guid,
        invocation_id=invocation_id,
        inbound=tuple(inbound),
        source_failures=tuple(failures),
    )


def _neighbor(cur: _Lines, naming_context: str) -> InboundNeighbor:
    source = cur.expect(_SOURCE_LINE, "'    Site\\DC via RPC'")
    site, _, dc = source["name"].rpartition("\\")
    guid = _guid(cur.expect(_GUID_LINE, "'        DSA object GUID: ...'")["guid"], cur)
    attempt = cur.expect(
        _ATTEMPT_LINE,
        "'        Last attempt @ TIME was successful.' or '... failed, result N (0xN):'",
    )
    when = _parse_time(attempt["when"], cur)
    if attempt["ok"]:
        result, message = 0, ""
    else:
        result = _status(attempt, cur)
        message = _message_lines(cur, 8)
    failures = 0
    if (line := cur.peek()) is not None and _FAILURES_LINE.match(line):
        failures = int(cur.expect(_FAILURES_LINE, "'N consecutive failure(s).'")["n"])
    last_success = when if attempt["ok"] else None
    if (line := cur.peek()) is not None and _SUCCESS_LINE.match(line):
        last_success = _parse_time(
            cur.expect(_SUCCESS_LINE, "'        Last success @ TIME.'")["when"], cur
        )
    elif not attempt["ok"]:
        raise cur.fail("'        Last success @ TIME.' after a failed attempt")
    return InboundNeighbor(
        naming_context=naming_context,
        source_site=site,
        source_dc=dc,
        transport=source["transport"],
        source_dsa_guid=guid,
        last_attempt=when,
        result=result,
        result_message=message,
        consecutive_failures=failures,
        last_success=last_success,
        delayed=attempt["how"] == "was delayed for a normal reason",
    )


def _source_failures(cur: _Lines) -> list[SourceFailure]:
    found: list[SourceFailure] = []
    while (line := cur.peek()) is not None and line.startswith("Source:"):
        source = cur.expect(_SOURCE_FAILURE_HEAD, "'Source: Site\\DC'")["source"].strip()
        count = cur.expect(_SOURCE_FAILURE_COUNT, "'******* N CONSECUTIVE FAILURES since TIME'")
        since = _parse_time(count["when"], cur)
        error = cur.expect(_SOURCE_FAILURE_ERROR, "'Last error: N (0xN):'")
        found.append(
            SourceFailure(
                source=source,
                failures=int(count["n"]),
                since=since,
                last_error=_status(error, cur),
                last_error_message=_message_lines(cur, 0),
            )
        )
        cur.skip_blank()
    return found


# --- /showrepl /csv -------------------------------------------------------------------------

CSV_COLUMNS = (
    "showrepl_COLUMNS",
    "Destination DSA Site",
    "Destination DSA",
    "Naming Context",
    "Source DSA Site",
    "Source DSA",
    "Transport Type",
    "Number of Failures",
    "Last Failure Time",
    "Last Success Time",
    "Last Failure Status",
)
_CSV_COLUMN_ALIASES = {"Source Transport Type": "Transport Type"}
_CSV_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")


@dataclass(frozen=True)
class ReplicationLink:
    """One showrepl_INFO row of `repadmin /showrepl /csv`."""

    destination_site: str
    destination_dc: str
    naming_context: str
    source_site: str
    source_dc: str
    transport: str
    failures: int
    last_failure: datetime | None
    last_success: datetime | None
    last_failure_status: int

    @property
    def ok(self) -> bool:
        """No failure since the last success."""
        return self.failures == 0


def _csv_time(text: str, cur: _Lines) -> datetime | None:
    # repadmin writes 0 for "never" in CSV.
    text = text.strip()
    if text in ("0", "", NEVER):
        return None
    if not _CSV_TIME.match(text):
        raise cur.fail("a time as YYYY-MM-DD hh:mm:ss or 0 in the CSV row", at=cur.i)
    return datetime.strptime(text, TIME_FORMAT)


def _csv_int(text: str, cur: _Lines, *, signed: bool = False) -> int:
    if not re.fullmatch(r"-?\d{1,10}" if signed else r"\d{1,10}", text.strip()):
        what = "a status number" if signed else "a count"
        raise cur.fail(f"{what} in the CSV row", at=cur.i)
    value = int(text)
    if signed:
        # The status column holds the signed decimal alone; read it as a 32-bit value.
        if not -(2**31) <= value < 2**32:
            raise cur.fail("a 32-bit status in the CSV row", at=cur.i)
        return as_signed(value)
    return value


def parse_showrepl_csv(output: CommandOutput) -> tuple[ReplicationLink, ...]:
    """Parse `repadmin /showrepl [DC] /csv` into rows (header checked by name)."""
    command = "repadmin /showrepl /csv"
    _raise_reported_failure(command, output)
    cur = _Lines(_content(output), command, output)
    cur.skip_blank()
    if cur.peek() is None or not cur.lines[cur.i].startswith("showrepl_COLUMNS,"):
        raise cur.fail("the 'showrepl_COLUMNS,...' header")
    header = [_CSV_COLUMN_ALIASES.get(c.strip(), c.strip()) for c in next(csv.reader([cur.take()]))]
    if sorted(header) != sorted(CSV_COLUMNS):
        raise cur.fail("the columns " + ", ".join(CSV_COLUMNS[1:]), at=cur.i - 1)
    links: list[ReplicationLink] = []
    while (line := cur.peek()) is not None:
        if not line.strip():
            cur.take()
            continue
        row = next(csv.reader([line]))
        if row[0] != "showrepl_INFO" or len(row) != len(header):
            raise cur.fail(f"a 'showrepl_INFO,...' row of {len(header)} fields")
        field = dict(zip(header, row, strict=True))
        links.append(
            ReplicationLink(
                destination_site=field["Destination DSA Site"],
                destination_dc=field["Destination DSA"],
                naming_context=field["Naming Context"],
                source_site=field["Source DSA Site"],
                source_dc=field["Source DSA"],
                transport=field["Transport Type"],
                failures=_csv_int(field["Number of Failures"], cur),
                last_failure=_csv_time(field["Last Failure Time"], cur),
                last_success=_csv_time(field["Last Success Time"], cur),
                last_failure_status=_csv_int(field["Last Failure Status"], cur, signed=True),
            )
        )
        cur.take()
    if output.exit_code != 0:
        raise UnrecognizedOutput(
            command, output, f"exit code {output.exit_code} without a failure report"
        )
    return tuple(links)


# --- /replsummary ---------------------------------------------------------------------------

SOURCE_HEADER = "Source DSA          largest delta    fails/total %%   error"
DESTINATION_HEADER = "Destination DSA     largest delta    fails/total %%   error"
OPERATIONAL_ERRORS_HEADER = (
    "Experienced the following operational errors trying to retrieve replication information:"
)
DELTA_UNKNOWN = "(unknown)"
DELTA_OVER_60_DAYS = ">60 days"


@dataclass(frozen=True)
class SummaryRow:
    """One DSA line of /replsummary. `largest_delta` is None when unknown or over 60 days."""

    dsa: str
    largest_delta: timedelta | None
    fails: int
    total: int
    percent: int
    error: int | None = None
    error_message: str = ""
    over_60_days: bool = False


@dataclass(frozen=True)
class ReplSummary:
    """`repadmin /replsummary`: per source and per destination DSA, plus unreachable DCs.
    `start_time` is None when the first line was left out (a pasted excerpt)."""

    start_time: datetime | None
    sources: tuple[SummaryRow, ...]
    destinations: tuple[SummaryRow, ...]
    operational_errors: tuple[tuple[int, str], ...] = ()

    @property
    def reached_no_dc(self) -> bool:
        """Both tables are empty: repadmin could not read any DC, so nothing is known."""
        return not self.sources and not self.destinations

    @property
    def healthy(self) -> bool:
        """Every DC answered, both tables have rows, and no link fails."""
        rows = self.sources + self.destinations
        return (
            bool(self.sources and self.destinations)
            and not self.operational_errors
            and all(r.fails == 0 and r.error is None for r in rows)
        )


# Rows come with or without the leading space, and with trailing spaces.
_SUMMARY_ROW = re.compile(
    r"^\s*(?P<dsa>[^\s(][^\s]*)\s+(?P<delta>\(unknown\)|>60 days|[\d.dhms:]+)\s+"
    r"(?P<fails>\d+)\s*/\s*(?P<total>\d+)\s+(?P<pct>\d+)"
    r"(?:\s+\((?P<code>-?\d{1,10})\)(?:\s+(?P<msg>\S.*?))?)?\s*$"
)
_DELTA = re.compile(r"^(?:(?P<d>\d+)d\.)?(?:(?P<h>\d+)h:)?(?:(?P<m>\d+)m)?:(?P<s>\d+)s$")
_OPERATIONAL_ERROR = re.compile(r"^\s*(?P<code>-?\d{1,10}) - (?P<dc>\S+)\s*$")
_START = re.compile(r"^Replication Summary Start Time: (?P<when>.+)$")


def _words(line: str) -> str:
    return " ".join(line.split())


def format_delta(delta: timedelta) -> str:
    """A delta as repadmin prints it: 15d.03h:04m:05s, 01h:02m:03s, 09m:15s or :51s."""
    seconds = int(delta.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days:02}d.{hours:02}h:{minutes:02}m:{secs:02}s"
    if hours:
        return f"{hours:02}h:{minutes:02}m:{secs:02}s"
    if minutes:
        return f"{minutes:02}m:{secs:02}s"
    return f":{secs:02}s"


def _parse_delta(text: str, cur: _Lines) -> timedelta:
    match = _DELTA.match(text)
    if match is None:
        raise cur.fail("a largest delta such as 09m:15s, 01h:02m:03s or 17d.05h:32m:47s")
    parts = {k: int(v) if v else 0 for k, v in match.groupdict().items()}
    return timedelta(days=parts["d"], hours=parts["h"], minutes=parts["m"], seconds=parts["s"])


def _summary_status(text: str | None, cur: _Lines) -> int | None:
    # /replsummary prints HRESULTs unsigned ("(2148074274)"), /showrepl signed: one value here.
    if text is None:
        return None
    value = int(text)
    if not -(2**31) <= value < 2**32:
        raise cur.fail("a 32-bit status in parentheses")
    return as_signed(value)


def _is_table_end(line: str) -> bool:
    words = _words(line)
    return (
        not words
        or words in (_words(SOURCE_HEADER), _words(DESTINATION_HEADER))
        or line.startswith("Experienced the following operational errors")
        or _OPERATIONAL_ERROR.match(line) is not None
    )


def _summary_rows(cur: _Lines) -> tuple[SummaryRow, ...]:
    rows: list[SummaryRow] = []
    while (line := cur.peek()) is not None and not _is_table_end(line):
        match = _SUMMARY_ROW.match(line)
        if match is None:
            raise cur.fail("a DSA row (name, largest delta, fails / total, %%, error)")
        delta_text = match["delta"]
        fails, total, pct = int(match["fails"]), int(match["total"]), int(match["pct"])
        if fails > total or pct > 100:
            raise cur.fail("fails not above total and a percentage up to 100")
        known = delta_text not in (DELTA_UNKNOWN, DELTA_OVER_60_DAYS)
        rows.append(
            SummaryRow(
                dsa=match["dsa"],
                largest_delta=_parse_delta(delta_text, cur) if known else None,
                fails=fails,
                total=total,
                percent=pct,
                error=_summary_status(match["code"], cur),
                error_message=(match["msg"] or "").strip(),
                over_60_days=delta_text == DELTA_OVER_60_DAYS,
            )
        )
        cur.take()
    return tuple(rows)


def parse_replsummary(output: CommandOutput) -> ReplSummary:
    """Parse `repadmin /replsummary` (both tables and the operational errors list)."""
    command = "repadmin /replsummary"
    _raise_reported_failure(command, output)
    cur = _Lines(_content(output), command, output)
    cur.skip_blank()
    start: datetime | None = None
    if not _words(cur.peek() or "").startswith("Source DSA"):
        when = cur.expect(_START, "'Replication Summary Start Time: YYYY-MM-DD hh:mm:ss'")
        start = _parse_time(when["when"].strip(), cur)
        if start is None:
            raise cur.fail("a start time, not (never)", at=cur.i - 1)
    cur.skip_blank()
    if (cur.peek() or "").startswith("Beginning data collection"):
        cur.take()
        while (line := cur.peek()) is not None and re.fullmatch(r"\s*\.*\s*", line):
            cur.take()
    sources: tuple[SummaryRow, ...] = ()
    destinations: tuple[SummaryRow, ...] = ()
    errors: list[tuple[int, str]] = []
    seen: set[str] = set()
    while (line := cur.peek()) is not None:
        words = _words(line)
        if not words:
            cur.take()
        elif words == _words(SOURCE_HEADER) and "src" not in seen:
            cur.take()
            seen.add("src")
            sources = _summary_rows(cur)
        elif words == _words(DESTINATION_HEADER) and "dst" not in seen:
            cur.take()
            seen.add("dst")
            destinations = _summary_rows(cur)
        elif words == _words(OPERATIONAL_ERRORS_HEADER) and "err" not in seen:
            cur.take()
            seen.add("err")
            while (line := cur.peek()) is not None and _OPERATIONAL_ERROR.match(line):
                match = cur.expect(_OPERATIONAL_ERROR, "'  N - dc'")
                errors.append((int(match["code"]), match["dc"]))
        else:
            expected = "the 'Destination DSA' table" if "src" in seen else "the 'Source DSA' table"
            raise cur.fail(expected if seen != {"src", "dst"} else "the end of the summary")
    if not {"src", "dst"} <= seen:
        raise cur.fail("both the 'Source DSA' and the 'Destination DSA' tables")
    if output.exit_code != 0:
        raise UnrecognizedOutput(
            command, output, f"exit code {output.exit_code} without a failure report"
        )
    return ReplSummary(
        start_time=start,
        sources=sources,
        destinations=destinations,
        operational_errors=tuple(errors),
    )
