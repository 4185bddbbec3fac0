"""Parsers for repadmin.exe output: /options, /kcc, /add, /showrepl (text and CSV), /replsummary.

Each returns typed data or raises `WindowsCommandError` (repadmin reported a status) or
`UnrecognizedOutput` (text it does not know). None of them ever infers success from silence.
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
)
from bot.windows.win32 import ERROR_DS_DRA_DN_EXISTS

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
_BANNER = re.compile(r"^Repadmin: running command (?P<cmd>/\w+) against (?:full|read-only) DC ")
_OPTION_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


def _parse_time(text: str, command: str, output: CommandOutput) -> datetime | None:
    if text == NEVER:
        return None
    try:
        return datetime.strptime(text, TIME_FORMAT)
    except ValueError:
        why = f"time {text!r} is not YYYY-MM-DD hh:mm:ss"
        raise UnrecognizedOutput(command, output, why) from None


def _raise_reported_failure(command: str, output: CommandOutput) -> None:
    failure = find_api_failure(output)
    if failure is not None:
        raise WindowsCommandError(command, failure[0], failure[1], output)


def _content(output: CommandOutput) -> list[str]:
    """stdout lines without the "Repadmin: running command" banner, right-stripped."""
    return [line.rstrip() for line in lines_of(output.stdout) if not _BANNER.match(line)]


def order_dsa_options(options: frozenset[str] | set[str]) -> list[str]:
    """Options in repadmin's print order: known bits first, then the rest alphabetically."""
    known = [name for name in DSA_OPTION_ORDER if name in options]
    return known + sorted(set(options) - set(DSA_OPTION_ORDER))


def _parse_option_list(text: str, command: str, output: CommandOutput) -> frozenset[str]:
    text = text.strip()
    if text in ("", NONE_OPTIONS, "<none>"):
        return frozenset()
    names = text.split()
    bad = [n for n in names if not _OPTION_NAME.match(n)]
    if bad:
        raise UnrecognizedOutput(command, output, f"unexpected DSA option names {bad}")
    return frozenset(names)


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
    current: frozenset[str] | None = None
    new: frozenset[str] | None = None
    for line in _content(output):
        if not line.strip():
            continue
        head, sep, rest = line.partition(":")
        key = head.strip().lower()
        if sep and key == "current dsa options" and current is None:
            current = _parse_option_list(rest, command, output)
        elif sep and key == "new dsa options" and current is not None and new is None:
            new = _parse_option_list(rest, command, output)
        else:
            raise UnrecognizedOutput(command, output, f"unexpected line {line.strip()!r}")
    if current is None or output.exit_code != 0:
        raise UnrecognizedOutput(command, output, "no 'Current DSA Options:' line, or exit != 0")
    return DsaOptions(current=current, new=new)


# --- /kcc -----------------------------------------------------------------------------------

_KCC_OK = re.compile(r"^Consistency check on (?P<dc>\S+) successful\.$")


def parse_repadmin_kcc(output: CommandOutput) -> str:
    """The DC name from "Consistency check on DC successful."; raises on any failure."""
    command = "repadmin /kcc"
    _raise_reported_failure(command, output)
    lines = [line for line in _content(output) if line.strip()]
    match = _KCC_OK.match(lines[0].strip()) if len(lines) == 1 else None
    if match is None or output.exit_code != 0:
        raise UnrecognizedOutput(command, output, "no 'Consistency check on ... successful.'")
    return match["dc"]


# --- /add -----------------------------------------------------------------------------------


class AddLinkOutcome(enum.Enum):
    """What `repadmin /add` did."""

    ADDED = "added"
    ALREADY_EXISTS = "already-exists"


_ADD_OK = re.compile(
    r"^Successfully added replica link from (?P<source>\S+) to (?P<dest>\S+) for (?P<nc>\S.*)\.$"
)


def parse_repadmin_add(output: CommandOutput) -> AddLinkOutcome:
    """ADDED, ALREADY_EXISTS (status 8441), or raise with the status repadmin reported."""
    command = "repadmin /add"
    failure = find_api_failure(output)
    if failure is not None:
        if failure[0] == ERROR_DS_DRA_DN_EXISTS:
            return AddLinkOutcome.ALREADY_EXISTS
        raise WindowsCommandError(command, failure[0], failure[1], output)
    lines = [line for line in _content(output) if line.strip()]
    if output.exit_code == 0 and len(lines) == 1 and _ADD_OK.match(lines[0].strip()):
        return AddLinkOutcome.ADDED
    raise UnrecognizedOutput(command, output, "no 'Successfully added replica link' line")


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
    r"^        Last attempt @ (?P<when>\(never\)|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) "
    r"(?:(?P<ok>was successful\.)|(?P<how>failed|was delayed for a normal reason), "
    r"result (?P<code>\d+) \(0x(?P<hex>[0-9a-fA-F]+)\):)$"
)
_FAILURES_LINE = re.compile(r"^        (?P<n>\d+) consecutive failure\(s\)\.$")
_SUCCESS_LINE = re.compile(
    r"^        Last success @ (?P<when>\(never\)|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\.$"
)
_WHEN = r"(?P<when>\(never\)|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)"
_SOURCE_FAILURE_HEAD = re.compile(r"^Source: (?P<source>\S.*)$")
_SOURCE_FAILURE_COUNT = re.compile(r"^\*+ (?P<n>\d+) CONSECUTIVE FAILURES since " + _WHEN + "$")
_SOURCE_FAILURE_ERROR = re.compile(r"^Last error: (?P<code>\d+) \(0x(?P<hex>[0-9a-fA-F]+)\):$")


class _Lines:
    """A cursor over output lines that reports where parsing stopped making sense."""

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
            raise self.fail("output ends too early")
        self.i += 1
        return line

    def skip_blank(self) -> None:
        while (line := self.peek()) is not None and not line.strip():
            self.i += 1

    def expect(self, pattern: re.Pattern[str], what: str) -> re.Match[str]:
        line = self.take()
        match = pattern.match(line)
        if match is None:
            raise self.fail(f"expected {what}, got {line.strip()!r}")
        return match

    def fail(self, why: str) -> UnrecognizedOutput:
        return UnrecognizedOutput(self.command, self.output, f"line {self.i + 1}: {why}")


def _status(match: re.Match[str], cur: _Lines) -> int:
    code = int(match["code"])
    if int(match["hex"], 16) != code:
        raise cur.fail(f"status {code} does not match 0x{match['hex']}")
    return code


def _message_lines(cur: _Lines, indent: int) -> str:
    """Continuation lines indented deeper than `indent`, joined (an error's text)."""
    parts: list[str] = []
    while (line := cur.peek()) is not None and line.strip() and _indent(line) > indent:
        parts.append(cur.take().strip())
    return " ".join(parts)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _header_field(cur: _Lines, name: str) -> str:
    line = cur.take()
    prefix = f"{name}:"
    if not line.startswith(prefix):
        raise cur.fail(f"expected '{prefix}', got {line.strip()!r}")
    return line[len(prefix) :].strip()


def _guid(text: str, cur: _Lines) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise cur.fail(f"{text!r} is not a GUID") from None


def parse_showrepl(output: CommandOutput) -> ShowRepl:
    """Parse `repadmin /showrepl [DC]` text output for one DC."""
    command = "repadmin /showrepl"
    _raise_reported_failure(command, output)
    if output.exit_code != 0:
        raise UnrecognizedOutput(command, output, "exit code is not 0")
    cur = _Lines(_content(output), command, output)
    cur.skip_blank()
    site, sep, dc = cur.take().strip().rpartition("\\")
    if not sep or not site or not dc or " " in dc:
        raise cur.fail("expected 'Site\\DC' as the first line")
    dsa_options = _parse_option_list(_header_field(cur, "DSA Options"), command, output)
    site_options = _parse_option_list(_header_field(cur, "Site Options"), command, output)
    dsa_guid = _guid(_header_field(cur, "DSA object GUID"), cur)
    invocation_id = _guid(_header_field(cur, "DSA invocationID"), cur)
    cur.skip_blank()
    inbound: list[InboundNeighbor] = []
    if cur.peek() == INBOUND_HEADER:
        cur.take()
        cur.skip_blank()
        while (line := cur.peek()) is not None and line.strip() and not line.startswith("Source:"):
            if line.startswith(" "):
                raise cur.fail(f"expected a naming context, got {line.strip()!r}")
            naming_context = cur.take().strip()
            if "=" not in naming_context or (cur.peek() or "")[:4] != "    ":
                raise cur.fail(f"{naming_context!r} is not a naming context with neighbors")
            while (line := cur.peek()) is not None and line.startswith("    "):
                inbound.append(_neighbor(cur, naming_context))
            cur.skip_blank()
    failures = _source_failures(cur)
    cur.skip_blank()
    if cur.peek() is not None:
        raise cur.fail(f"unexpected line {cur.peek()!r}")
    return ShowRepl(
        site=site,
        dc=dc,
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
    guid = _guid(cur.expect(_GUID_LINE, "'DSA object GUID:'")["guid"], cur)
    attempt = cur.expect(_ATTEMPT_LINE, "'Last attempt @ ...'")
    when = _parse_time(attempt["when"], cur.command, cur.output)
    if attempt["ok"]:
        result, message = 0, ""
    else:
        result = _status(attempt, cur)
        message = _message_lines(cur, 8)
    failures = 0
    if (line := cur.peek()) is not None and _FAILURES_LINE.match(line):
        failures = int(cur.expect(_FAILURES_LINE, "consecutive failures")["n"])
    last_success = when if attempt["ok"] else None
    if (line := cur.peek()) is not None and _SUCCESS_LINE.match(line):
        last_success = _parse_time(
            cur.expect(_SUCCESS_LINE, "'Last success @'")["when"], cur.command, cur.output
        )
    elif not attempt["ok"]:
        raise cur.fail("a failed link must show 'Last success @ ...'")
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
        count = cur.expect(_SOURCE_FAILURE_COUNT, "'******* N CONSECUTIVE FAILURES since'")
        error = cur.expect(_SOURCE_FAILURE_ERROR, "'Last error: N (0xN):'")
        code = _status(error, cur)
        found.append(
            SourceFailure(
                source=source,
                failures=int(count["n"]),
                since=_parse_time(count["when"], cur.command, cur.output),
                last_error=code,
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


def _csv_time(text: str, command: str, output: CommandOutput) -> datetime | None:
    # repadmin writes 0 for "never" in CSV.
    return None if text.strip() in ("0", "", NEVER) else _parse_time(text, command, output)


def _csv_int(text: str, command: str, output: CommandOutput) -> int:
    if not re.fullmatch(r"\d+", text.strip()):
        raise UnrecognizedOutput(command, output, f"{text!r} is not a number")
    return int(text)


def parse_showrepl_csv(output: CommandOutput) -> tuple[ReplicationLink, ...]:
    """Parse `repadmin /showrepl [DC] /csv` into rows (header checked by name)."""
    command = "repadmin /showrepl /csv"
    _raise_reported_failure(command, output)
    if output.exit_code != 0:
        raise UnrecognizedOutput(command, output, "exit code is not 0")
    rows = list(csv.reader([line for line in _content(output) if line.strip()]))
    header_at = next((i for i, r in enumerate(rows) if r and r[0] == "showrepl_COLUMNS"), None)
    if header_at is None:
        raise UnrecognizedOutput(command, output, "no showrepl_COLUMNS header")
    header = [_CSV_COLUMN_ALIASES.get(c.strip(), c.strip()) for c in rows[header_at]]
    if sorted(header) != sorted(CSV_COLUMNS):
        raise UnrecognizedOutput(command, output, f"unexpected CSV columns {header}")
    links: list[ReplicationLink] = []
    for row in rows[header_at + 1 :]:
        if row[0] != "showrepl_INFO" or len(row) != len(header):
            raise UnrecognizedOutput(command, output, f"unexpected CSV row {row[:3]}...")
        field = dict(zip(header, row, strict=True))
        links.append(
            ReplicationLink(
                destination_site=field["Destination DSA Site"],
                destination_dc=field["Destination DSA"],
                naming_context=field["Naming Context"],
                source_site=field["Source DSA Site"],
                source_dc=field["Source DSA"],
                transport=field["Transport Type"],
                failures=_csv_int(field["Number of Failures"], command, output),
                last_failure=_csv_time(field["Last Failure Time"], command, output),
                last_success=_csv_time(field["Last Success Time"], command, output),
                last_failure_status=_csv_int(field["Last Failure Status"], command, output),
            )
        )
    return tuple(links)


# --- /replsummary ---------------------------------------------------------------------------

SOURCE_HEADER = "Source DSA          largest delta    fails/total %%   error"
DESTINATION_HEADER = "Destination DSA     largest delta    fails/total %%   error"
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
    """`repadmin /replsummary`: per source and per destination DSA, plus unreachable DCs."""

    start_time: datetime
    sources: tuple[SummaryRow, ...]
    destinations: tuple[SummaryRow, ...]
    operational_errors: tuple[tuple[int, str], ...] = ()

    @property
    def healthy(self) -> bool:
        """No failing link anywhere and every DC answered."""
        rows = self.sources + self.destinations
        return not self.operational_errors and all(r.fails == 0 for r in rows)


_SUMMARY_ROW = re.compile(
    r"^ (?P<dsa>\S+)\s+(?P<delta>\(unknown\)|>60 days|\S+)\s+(?P<fails>\d+) /\s*(?P<total>\d+)"
    r"\s+(?P<pct>\d+)(?:\s+\((?P<code>\d+)\)(?: (?P<msg>.*))?)?$"
)
_DELTA = re.compile(r"^(?:(?P<d>\d+)d\.)?(?:(?P<h>\d+)h:)?(?:(?P<m>\d+)m)?:(?P<s>\d+)s$")
_OPERATIONAL_ERROR = re.compile(r"^\s+(?P<code>\d+) - (?P<dc>\S+)$")
_START = re.compile(r"^Replication Summary Start Time: (?P<when>.+)$")


def format_delta(delta: timedelta) -> str:
    """A delta as repadmin prints it: 15d.03h:04m:05s, 01h:02m:03s, 09m:15s or :51s."""
    seconds = int(delta.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d.{hours:02}h:{minutes:02}m:{secs:02}s"
    if hours:
        return f"{hours:02}h:{minutes:02}m:{secs:02}s"
    if minutes:
        return f"{minutes:02}m:{secs:02}s"
    return f":{secs:02}s"


def _parse_delta(text: str, cur: _Lines) -> timedelta:
    match = _DELTA.match(text)
    if match is None:
        raise cur.fail(f"largest delta {text!r} is not in repadmin's form")
    parts = {k: int(v) if v else 0 for k, v in match.groupdict().items()}
    return timedelta(days=parts["d"], hours=parts["h"], minutes=parts["m"], seconds=parts["s"])


def _summary_rows(cur: _Lines) -> tuple[SummaryRow, ...]:
    rows: list[SummaryRow] = []
    while (line := cur.peek()) is not None and line.startswith(" ") and line.strip():
        if _OPERATIONAL_ERROR.match(line):
            break
        match = cur.expect(_SUMMARY_ROW, "a DSA row")
        delta_text = match["delta"]
        fails, total, pct = int(match["fails"]), int(match["total"]), int(match["pct"])
        if fails > total or pct > 100:
            raise cur.fail(f"fails/total {fails}/{total} or {pct}% is impossible")
        rows.append(
            SummaryRow(
                dsa=match["dsa"],
                largest_delta=None
                if delta_text in (DELTA_UNKNOWN, DELTA_OVER_60_DAYS)
                else _parse_delta(delta_text, cur),
                fails=fails,
                total=total,
                percent=pct,
                error=int(match["code"]) if match["code"] else None,
                error_message=(match["msg"] or "").strip(),
                over_60_days=delta_text == DELTA_OVER_60_DAYS,
            )
        )
    return tuple(rows)


def parse_replsummary(output: CommandOutput) -> ReplSummary:
    """Parse `repadmin /replsummary` (both tables and the operational errors list)."""
    command = "repadmin /replsummary"
    _raise_reported_failure(command, output)
    if output.exit_code != 0:
        raise UnrecognizedOutput(command, output, "exit code is not 0")
    cur = _Lines(_content(output), command, output)
    cur.skip_blank()
    start = _parse_time(
        cur.expect(_START, "'Replication Summary Start Time:'")["when"].strip(), command, output
    )
    if start is None:
        raise cur.fail("start time is (never)")
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
        stripped = line.strip()
        if not stripped:
            cur.take()
        elif stripped == SOURCE_HEADER and "src" not in seen:
            cur.take()
            seen.add("src")
            sources = _summary_rows(cur)
        elif stripped == DESTINATION_HEADER and "dst" not in seen:
            cur.take()
            seen.add("dst")
            destinations = _summary_rows(cur)
        elif stripped.startswith("Experienced the following operational errors"):
            cur.take()
            while (line := cur.peek()) is not None and _OPERATIONAL_ERROR.match(line):
                match = cur.expect(_OPERATIONAL_ERROR, "'  N - dc'")
                errors.append((int(match["code"]), match["dc"]))
        else:
            raise cur.fail(f"unexpected line {stripped!r}")
    if seen != {"src", "dst"}:
        raise cur.fail("both the Source DSA and the Destination DSA tables are needed")
    return ReplSummary(
        start_time=start,
        sources=sources,
        destinations=destinations,
        operational_errors=tuple(errors),
    )
