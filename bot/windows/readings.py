"""What the parsers read, as JSON-ready data: the contract of `ad1411 output parse`.

A transcript is the text a command printed, without its exit code: it is read as if the
command exited as its text says (reg's "unable to find" answer exits 1, anything else 0).
A failure repadmin reported is a valid reading for `add` and `kcc` (their outcome says
"failed"); for the listings (`showrepl`, `showrepl-csv`, `replsummary`, `options`) it is not
a listing, and the parsers raise `WindowsCommandError`. Text no parser knows raises
`UnrecognizedOutput` with the line it stopped at.

Times are ISO 8601 without a zone (repadmin prints the DC's local time) or None for never;
status codes are the signed decimals repadmin prints (0 for success).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.windows.output import CommandOutput, lines_of
from bot.windows.reg import REG_NOT_FOUND, read_reg_query
from bot.windows.repadmin import (
    ReplicationLink,
    ShowRepl,
    SummaryRow,
    order_dsa_options,
    parse_repadmin_options,
    parse_replsummary,
    parse_showrepl,
    parse_showrepl_csv,
    read_repadmin_add,
    read_repadmin_kcc,
)

Reading = dict[str, Any]

# KIND -> the command whose output it is (for messages).
KINDS: dict[str, str] = {
    "showrepl": "repadmin /showrepl",
    "showrepl-csv": "repadmin /showrepl /csv",
    "replsummary": "repadmin /replsummary",
    "options": "repadmin /options",
    "add": "repadmin /add",
    "kcc": "repadmin /kcc",
    "reg-query": "reg query",
}
MAX_TRANSCRIPT_BYTES = 8 * 1024 * 1024
_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))


class TranscriptTooLarge(ValueError):
    """More text than any output of these commands."""


def decode_transcript(data: bytes) -> str:
    """Saved command output as text: UTF-8, UTF-16 with a byte-order mark (PowerShell 5's
    `>`), or else the OEM code page 437 cmd.exe's `>` writes."""
    if len(data) > MAX_TRANSCRIPT_BYTES:
        raise TranscriptTooLarge(
            f"{len(data)} bytes; expected at most {MAX_TRANSCRIPT_BYTES} bytes of command output"
        )
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data[len(bom) :].decode(encoding, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp437")


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _as_printed(text: str) -> CommandOutput:
    """A transcript with the exit code its text implies."""
    failed = REG_NOT_FOUND in lines_of(text) or any(
        line.startswith("ERROR: ") for line in lines_of(text)
    )
    return CommandOutput(text, "", 1 if failed else 0)


def read_output(kind: str, text: str) -> Reading:
    """The reading of one transcript of KIND (a key of KINDS)."""
    output = CommandOutput(text, "", 0)
    if kind == "showrepl":
        return showrepl_reading(parse_showrepl(output))
    if kind == "showrepl-csv":
        return showrepl_csv_reading(parse_showrepl_csv(output))
    if kind == "replsummary":
        summary = parse_replsummary(output)
        return {
            "healthy": summary.healthy,
            "reached_no_dc": summary.reached_no_dc,
            "start_time": _time(summary.start_time),
            "sources": [_summary_row(r) for r in summary.sources],
            "destinations": [_summary_row(r) for r in summary.destinations],
            "operational_errors": [
                {"code": code, "dc": dc} for code, dc in summary.operational_errors
            ],
        }
    if kind == "options":
        options = parse_repadmin_options(output)
        return {
            "current": order_dsa_options(options.current),
            "new": None if options.new is None else order_dsa_options(options.new),
        }
    if kind == "add":
        add = read_repadmin_add(output)
        return {
            "outcome": add.outcome.value,
            "source": add.source,
            "destination": add.destination,
            "status": add.status,
            "message": add.message,
        }
    if kind == "kcc":
        kcc = read_repadmin_kcc(output)
        return {
            "outcome": "ok" if kcc.ok else "failed",
            "dc": kcc.dc,
            "site": kcc.site,
            "site_options": kcc.site_options,
            "status": kcc.status,
            "message": kcc.message,
        }
    if kind == "reg-query":
        value = read_reg_query(_as_printed(text))
        if value is None:
            return {"present": False, "name": None, "type": None, "data": None, "key": None}
        return {
            "present": True,
            "name": value.name,
            "type": value.type,
            "data": value.data,
            "key": value.key,
        }
    raise ValueError(f"unknown output kind {kind!r}; expected one of {', '.join(KINDS)}")


def showrepl_reading(report: ShowRepl) -> Reading:
    """`repadmin /showrepl` of one DC as data."""
    return {
        "dc": report.dc,
        "site": report.site,
        "dsa_guid": str(report.dsa_guid),
        "neighbors": [
            {
                "naming_context": n.naming_context,
                "source": n.source_dc,
                "source_site": n.source_site,
                "source_dsa_guid": str(n.source_dsa_guid),
                "last_result": n.result,
                "result_message": n.result_message,
                "consecutive_failures": n.consecutive_failures,
                "last_attempt": _time(n.last_attempt),
                "last_success": _time(n.last_success),
            }
            for n in report.inbound
        ],
    }


def csv_last_attempt(link: ReplicationLink) -> datetime | None:
    """The CSV has no attempt column: the later of the last failure and the last success."""
    known = [t for t in (link.last_failure, link.last_success) if t is not None]
    return max(known) if known else None


def showrepl_csv_reading(links: tuple[ReplicationLink, ...]) -> Reading:
    """`repadmin /showrepl /csv` as data; `dc` is None when the rows are of several DCs."""
    destinations = {link.destination_dc for link in links}
    return {
        "dc": next(iter(destinations)) if len(destinations) == 1 else None,
        "neighbors": [
            {
                "destination": link.destination_dc,
                "naming_context": link.naming_context,
                "source": link.source_dc,
                "source_site": link.source_site,
                "last_result": link.last_failure_status,
                "consecutive_failures": link.failures,
                "last_attempt": _time(csv_last_attempt(link)),
                "last_success": _time(link.last_success),
            }
            for link in links
        ],
    }


def _summary_row(row: SummaryRow) -> Reading:
    delta = row.largest_delta
    return {
        "dc": row.dsa,
        "largest_delta_seconds": None if delta is None else int(delta.total_seconds()),
        "over_60_days": row.over_60_days,
        "fails": row.fails,
        "total": row.total,
        "percent": row.percent,
        "error": row.error,
        "error_message": row.error_message,
    }
