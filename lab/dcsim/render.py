"""What Windows prints for each command the bot runs, rendered from simulated DC state.

Every function returns a `CommandOutput` (stdout, stderr, exit code) with CRLF line ends,
in the shapes `bot.windows.reg` and `bot.windows.repadmin` parse.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from bot.windows.output import CommandOutput
from bot.windows.reg import REG_NOT_FOUND, REG_SUCCESS, full_key_name
from bot.windows.repadmin import (
    CSV_COLUMNS,
    DELTA_OVER_60_DAYS,
    DELTA_UNKNOWN,
    DESTINATION_HEADER,
    INBOUND_HEADER,
    NEVER,
    NONE_OPTIONS,
    OPERATIONAL_ERRORS_HEADER,
    SOURCE_HEADER,
    TIME_FORMAT,
    InboundNeighbor,
    ReplicationLink,
    ReplSummary,
    ShowRepl,
    SummaryRow,
    format_delta,
    format_status,
    order_dsa_options,
)
from bot.windows.win32 import as_signed, as_u32, win32_message
from lab.dcsim.state import DEFAULT_SITE

CRLF = "\r\n"
LOCALHOST = "localhost"


def _text(lines: Iterable[str]) -> str:
    return "".join(line + CRLF for line in lines)


def _ok(lines: Iterable[str]) -> CommandOutput:
    return CommandOutput(_text(lines), "", 0)


def _time(moment: datetime | None) -> str:
    return NEVER if moment is None else moment.strftime(TIME_FORMAT)


def _banner(command: str, dc: str | None) -> str:
    return f"Repadmin: running command {command} against full DC {dc or LOCALHOST}"


def render_repadmin_error(
    api: str, status: int, target: str | None = None, message: str | None = None
) -> CommandOutput:
    """repadmin's report of a failed API call ("DsReplicaAdd() failed with status ...")."""
    who = f"{api} to {target}" if target else f"{api}()"
    lines = [f"{who} failed with status {format_status(as_signed(status))}:"]
    lines.append(f"    {message or win32_message(status)}")
    return CommandOutput(_text(lines), "", status)


def render_repadmin_usage() -> CommandOutput:
    """repadmin given arguments it does not accept (not Windows' exact help text)."""
    return CommandOutput(
        _text(["Error: invalid command line arguments.", "Type repadmin /? for help."]), "", 87
    )


# --- cmd.exe --------------------------------------------------------------------------------

CMD_NOT_FOUND_EXIT = 9009


def render_not_recognized(program: str) -> CommandOutput:
    """cmd.exe's answer for a program it cannot find."""
    return CommandOutput(
        "",
        f"'{program}' is not recognized as an internal or external command,{CRLF}"
        f"operable program or batch file.{CRLF}",
        CMD_NOT_FOUND_EXIT,
    )


# --- reg.exe --------------------------------------------------------------------------------


def render_reg_query(
    key: str, name: str, data: int | str | None, value_type: str = "REG_DWORD"
) -> CommandOutput:
    """`reg query KEY /v NAME`: the value, or reg's not-found error (exit 1) when data is None."""
    if data is None:
        return CommandOutput("", REG_NOT_FOUND + CRLF, 1)
    shown = f"0x{data:x}" if isinstance(data, int) else data
    return _ok(["", full_key_name(key), f"    {name}    {value_type}    {shown}", ""])


def render_reg_add() -> CommandOutput:
    """`reg add ... /f` succeeded."""
    return _ok([REG_SUCCESS, ""])


def render_reg_delete(found: bool) -> CommandOutput:
    """`reg delete ... /v NAME /f`: success, or not-found (exit 1)."""
    if not found:
        return CommandOutput("", REG_NOT_FOUND + CRLF, 1)
    return _ok([REG_SUCCESS, ""])


def render_reg_invalid_syntax(operation: str | None = None) -> CommandOutput:
    """reg.exe's answer to arguments it cannot parse."""
    usage = f"REG {operation.upper()} /?" if operation else "REG /?"
    return CommandOutput("", f'ERROR: Invalid syntax.{CRLF}Type "{usage}" for usage.{CRLF}', 1)


def render_reg_prompt_declined(name: str, deleting: bool) -> CommandOutput:
    """reg add/delete without /f: it prompts, WinRS gives no input, so the answer is No."""
    prompt = (
        f"Delete the registry value {name} (Yes/No)? "
        if deleting
        else f"Value {name} exists, overwrite(Yes/No)? "
    )
    return CommandOutput(f"{prompt}The operation was canceled by the user.{CRLF}", "", 1)


def render_reg_access_denied() -> CommandOutput:
    """reg.exe run without the rights to the key."""
    return CommandOutput("", "ERROR: Access is denied." + CRLF, 1)


# --- shutdown.exe ---------------------------------------------------------------------------


def render_shutdown_invalid() -> CommandOutput:
    """shutdown.exe's answer to arguments it cannot parse (status 87)."""
    return CommandOutput("", f"The parameter is incorrect.(87){CRLF}", 87)


def render_shutdown(already_scheduled: bool = False) -> CommandOutput:
    """`shutdown /r /t N ...`: silent success, or error 1190 when one is already pending."""
    if already_scheduled:
        return CommandOutput("", f"{win32_message(1190)}(1190){CRLF}", 1190)
    return CommandOutput("", "", 0)


# --- repadmin.exe ---------------------------------------------------------------------------


def _options(options: Iterable[str]) -> str:
    names = order_dsa_options(set(options))
    return " ".join(names) if names else NONE_OPTIONS


def render_repadmin_options(
    current: Iterable[str], new: Iterable[str] | None = None
) -> CommandOutput:
    """`repadmin /options DC [+|-OPTION]`; `new` is given when a change was asked."""
    lines = [f"Current DSA Options: {_options(current)}"]
    if new is not None:
        lines.append(f"New DSA Options: {_options(new)}")
    return _ok(lines)


def render_repadmin_kcc(
    dc: str | None = None,
    error: int | None = None,
    *,
    site: str = DEFAULT_SITE,
    site_options: str = NONE_OPTIONS,
) -> CommandOutput:
    """`repadmin /kcc [DC]`: the DC's site and its options, then the success line; or
    DsReplicaConsistencyCheck's failure status right after the banner."""
    banner = _banner("/kcc", dc)
    if error:
        failure = render_repadmin_error("DsReplicaConsistencyCheck", error)
        return CommandOutput(_text([banner]) + failure.stdout, "", error)
    return _ok(
        [
            banner,
            site,
            f"Current Site Options: {site_options}",
            f"Consistency check on {dc or LOCALHOST} successful.",
        ]
    )


def render_repadmin_add(nc: str, dest: str, source: str, result: int = 0) -> CommandOutput:
    """`repadmin /add NC DEST SOURCE`: success naming both ends as they were given, or
    DsReplicaAdd's status (8441: the link exists)."""
    if result:
        return render_repadmin_error("DsReplicaAdd", result)
    return _ok([f"One-way replication from source:{source} to dest:{dest} established."])


def render_repadmin_unreachable(dc: str, status: int = 1722) -> CommandOutput:
    """Any repadmin command when the DC's RPC endpoint does not answer."""
    return render_repadmin_error("DsBindWithCred", status, target=dc)


def _neighbor_lines(neighbor: InboundNeighbor) -> list[str]:
    lines = [
        f"    {neighbor.source_site}\\{neighbor.source_dc} via {neighbor.transport}",
        f"        DSA object GUID: {neighbor.source_dsa_guid}",
    ]
    attempt = f"        Last attempt @ {_time(neighbor.last_attempt)}"
    if neighbor.ok:
        return [*lines, f"{attempt} was successful."]
    how = "was delayed for a normal reason" if neighbor.delayed else "failed"
    code = neighbor.result
    return [
        *lines,
        f"{attempt} {how}, result {format_status(as_signed(code))}:",
        f"            {neighbor.result_message or win32_message(code)}",
        f"        {neighbor.consecutive_failures} consecutive failure(s).",
        f"        Last success @ {_time(neighbor.last_success)}.",
    ]


def render_showrepl(report: ShowRepl, dc: str | None = None) -> CommandOutput:
    """`repadmin /showrepl [DC]`; neighbors are grouped under their NC in first-seen order."""
    lines = [
        _banner("/showrepl", dc),
        f"{report.site}\\{report.dc}",
        f"DSA Options: {_options(report.dsa_options)}",
        f"Site Options: {_options(report.site_options)}",
        f"DSA object GUID: {report.dsa_guid}",
        f"DSA invocationID: {report.invocation_id}",
        "",
    ]
    if report.inbound:
        lines += [INBOUND_HEADER, ""]
        by_nc: dict[str, list[InboundNeighbor]] = {}
        for neighbor in report.inbound:
            by_nc.setdefault(neighbor.naming_context, []).append(neighbor)
        for nc, neighbors in by_nc.items():
            lines.append(nc)
            for neighbor in neighbors:
                lines += _neighbor_lines(neighbor)
            lines.append("")
    for failure in report.source_failures:
        code = failure.last_error
        lines += [
            f"Source: {failure.source}",
            f"******* {failure.failures} CONSECUTIVE FAILURES since {_time(failure.since)}",
            f"Last error: {format_status(as_signed(code))}:",
            f"            {failure.last_error_message or win32_message(code)}",
            "",
        ]
    return _ok(lines)


def _csv_field(text: str) -> str:
    return f'"{text}"' if any(c in text for c in ',"') else text


def render_showrepl_csv(links: Sequence[ReplicationLink]) -> CommandOutput:
    """`repadmin /showrepl [DC] /csv`: header plus one showrepl_INFO row per link."""
    lines = [",".join(CSV_COLUMNS)]
    for link in links:
        fields = [
            "showrepl_INFO",
            link.destination_site,
            link.destination_dc,
            link.naming_context,
            link.source_site,
            link.source_dc,
            link.transport,
            str(link.failures),
            "0" if link.last_failure is None else _time(link.last_failure),
            "0" if link.last_success is None else _time(link.last_success),
            str(as_signed(link.last_failure_status)),
        ]
        lines.append(",".join(_csv_field(f) for f in fields))
    return _ok(lines)


def _summary_row(row: SummaryRow) -> str:
    if row.over_60_days:
        delta = DELTA_OVER_60_DAYS
    elif row.largest_delta is None:
        delta = DELTA_UNKNOWN
    else:
        delta = format_delta(row.largest_delta)
    # Unsigned here, unlike /showrepl: "(2148074274) The target principal name is incorrect."
    error = "" if row.error is None else f"({as_u32(row.error)}) {row.error_message}"
    # The delta ends in column 34 however long the name and the delta are (one space at least).
    name_and_delta = row.dsa + " " * max(1, 33 - len(row.dsa) - len(delta)) + delta
    return f" {name_and_delta} {row.fails:>4} / {row.total:>3} {row.percent:>4}  {error}"


def render_replsummary(summary: ReplSummary) -> CommandOutput:
    """`repadmin /replsummary` with both tables and any unreachable DCs."""
    # One dot per DC contacted (answering or not) plus three for preprocessing.
    names = {r.dsa.upper() for r in summary.sources + summary.destinations}
    names |= {dc.split(".", 1)[0].upper() for _, dc in summary.operational_errors}
    dots = "." * (len(names) + 3)
    lines = (
        [
            f"Replication Summary Start Time: {_time(summary.start_time)}",
            "",
            "Beginning data collection for replication summary, this may take awhile:",
            f"  {dots}",
            "",
            "",
        ]
        if summary.start_time is not None
        else []
    )
    lines += [
        SOURCE_HEADER,
        *(_summary_row(r) for r in summary.sources),
        "",
        "",
        DESTINATION_HEADER,
        *(_summary_row(r) for r in summary.destinations),
        "",
    ]
    if summary.operational_errors:
        lines += ["", OPERATIONAL_ERRORS_HEADER]
        lines += [f"          {code} - {dc}" for code, dc in summary.operational_errors]
        lines.append("")
    return _ok(lines)
