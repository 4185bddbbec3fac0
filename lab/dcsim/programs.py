"""What cmd.exe on a DC does with a command line: reg, repadmin and shutdown, nothing else.

Only the command shapes bot/commands.py builds are interpreted; any other program gets
cmd.exe's "is not recognized" answer, and an unknown shape of a known program gets that
program's own syntax error.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.windows.output import CommandOutput
from bot.windows.repadmin import ReplicationLink, ShowRepl
from lab.dcsim import render
from lab.dcsim.repadmin_backend import ERROR_RPC_UNAVAILABLE, RepadminBackend, RepadminError
from lab.dcsim.state import (
    NTDS_PARAMETERS_KEY,
    NTDS_PARAMETERS_LONG,
    DcState,
    Forest,
    RegistryValue,
)

_DWORD_MAX = 2**32 - 1


@dataclass(frozen=True)
class ProgramResult:
    """What the command printed and returned; `restart` asks the DC to reboot."""

    stdout: str
    stderr: str
    exit_code: int
    restart: bool = False

    @classmethod
    def of(cls, output: CommandOutput, *, restart: bool = False) -> ProgramResult:
        """From what render.py printed."""
        return cls(output.stdout, output.stderr, output.exit_code, restart)


# Texts render.py does not cover: the simulator's answers to shapes the bot never sends.
def _not_recognized(name: str) -> ProgramResult:
    return ProgramResult(
        "",
        f"'{name}' is not recognized as an internal or external command,\r\n"
        "operable program or batch file.\r\n",
        1,
    )


def _reg_syntax(operation: str) -> ProgramResult:
    shown = f"REG {operation.upper()} /?" if operation else "REG /?"
    return ProgramResult("", f'ERROR: Invalid syntax.\r\nType "{shown}" for usage.\r\n', 1)


def _repadmin_syntax() -> ProgramResult:
    return ProgramResult("Error: Invalid syntax. Type repadmin /? for help.\r\n", "", 1)


def _shutdown_syntax() -> ProgramResult:
    return ProgramResult("", "The parameter is incorrect.(87)\r\n", 87)


def split_command_line(line: str) -> list[str]:
    """Split like CommandLineToArgvW: quotes group, 2n backslashes before a quote halve."""
    args: list[str] = []
    current: list[str] = []
    in_quotes = False
    have_token = False
    i = 0
    while i < len(line):
        ch = line[i]
        if ch == "\\":
            j = i
            while j < len(line) and line[j] == "\\":
                j += 1
            count = j - i
            if j < len(line) and line[j] == '"':
                current.append("\\" * (count // 2))
                if count % 2:
                    current.append('"')
                    i = j + 1
                else:
                    i = j
                have_token = True
                continue
            current.append("\\" * count)
            have_token = True
            i = j
            continue
        if ch == '"':
            in_quotes = not in_quotes
            have_token = True
        elif ch in " \t" and not in_quotes:
            if have_token:
                args.append("".join(current))
                current, have_token = [], False
        else:
            current.append(ch)
            have_token = True
        i += 1
    if have_token:
        args.append("".join(current))
    return args


def _program_name(token: str) -> str:
    name = token.rsplit("\\", 1)[-1].lower()
    return name[:-4] if name.endswith(".exe") else name


def run_command_line(
    line: str,
    dc: DcState,
    forest: Forest,
    repadmin: RepadminBackend,
    *,
    restart_pending: bool = False,
) -> ProgramResult:
    """Run one command line on `dc` the way cmd.exe would."""
    argv = split_command_line(line)
    if not argv:
        return ProgramResult("", "", 0)
    program = _program_name(argv[0])
    if program == "reg":
        with forest.lock:
            return _reg(argv[1:], dc)
    if program == "repadmin":
        return _repadmin(argv[1:], dc, repadmin)
    if program == "shutdown":
        return _shutdown(argv[1:], restart_pending)
    return _not_recognized(argv[0])


# reg.exe ----------------------------------------------------------------------------------


def _flags(args: list[str], with_value: set[str]) -> dict[str, str] | None:
    """Parse /x flags; those in `with_value` take the next argument. None on bad syntax."""
    flags: dict[str, str] = {}
    i = 0
    while i < len(args):
        flag = args[i].lower()
        if not flag.startswith(("/", "-")):
            return None
        flag = "/" + flag[1:]
        if flag in with_value:
            if i + 1 >= len(args):
                return None
            flags[flag] = args[i + 1]
            i += 2
        else:
            flags[flag] = ""
            i += 1
    return flags


def _is_ntds_key(key: str) -> bool:
    return key.rstrip("\\").lower() in (NTDS_PARAMETERS_KEY.lower(), NTDS_PARAMETERS_LONG.lower())


def _parse_dword(text: str) -> int | None:
    try:
        value = int(text, 16) if text.lower().startswith("0x") else int(text, 10)
    except ValueError:
        return None
    return value if 0 <= value <= _DWORD_MAX else None


def _reg(args: list[str], dc: DcState) -> ProgramResult:
    if len(args) < 2:
        return _reg_syntax(args[0] if args else "")
    operation, key, rest = args[0].lower(), args[1], args[2:]
    if operation == "query":
        return _reg_query(key, rest, dc)
    if operation == "add":
        return _reg_add(key, rest, dc)
    if operation == "delete":
        return _reg_delete(key, rest, dc)
    return _reg_syntax(operation)


def _reg_query(key: str, rest: list[str], dc: DcState) -> ProgramResult:
    flags = _flags(rest, {"/v"})
    if flags is None or set(flags) != {"/v"}:
        return _reg_syntax("query")
    value = dc.registry_value(flags["/v"]) if _is_ntds_key(key) else None
    if value is None:
        return ProgramResult.of(render.render_reg_query(key, flags["/v"], None))
    return ProgramResult.of(render.render_reg_query(key, value.name, value.data, value.kind))


def _reg_add(key: str, rest: list[str], dc: DcState) -> ProgramResult:
    flags = _flags(rest, {"/v", "/t", "/d"})
    if flags is None or not {"/v", "/d"} <= set(flags) or set(flags) - {"/v", "/t", "/d", "/f"}:
        return _reg_syntax("add")
    kind = flags.get("/t", "REG_SZ").upper()
    data: int | str | None
    if kind == "REG_DWORD":
        data = _parse_dword(flags["/d"])
    elif kind == "REG_SZ":
        data = flags["/d"]
    else:
        data = None
    if data is None:
        return _reg_syntax("add")
    if not _is_ntds_key(key):
        return ProgramResult.of(render.render_reg_access_denied())
    if "/f" not in flags and dc.registry_value(flags["/v"]) is not None:
        # Without /f reg asks on stdin; WinRS gives it none, so nothing is written.
        return ProgramResult(
            f"Value {flags['/v']} exists, overwrite(Yes/No)? The operation was canceled "
            "by the user.\r\n",
            "",
            1,
        )
    dc.set_registry_value(RegistryValue(flags["/v"], kind, data))
    return ProgramResult.of(render.render_reg_add())


def _reg_delete(key: str, rest: list[str], dc: DcState) -> ProgramResult:
    flags = _flags(rest, {"/v"})
    if flags is None or "/v" not in flags or set(flags) - {"/v", "/f"}:
        return _reg_syntax("delete")
    if "/f" not in flags:
        return ProgramResult(
            f"Delete the registry value {flags['/v']} (Yes/No)? The operation was canceled "
            "by the user.\r\n",
            "",
            1,
        )
    found = _is_ntds_key(key) and dc.delete_registry_value(flags["/v"])
    return ProgramResult.of(render.render_reg_delete(found))


# repadmin.exe -----------------------------------------------------------------------------


def _csv_rows(report: ShowRepl, dest_fqdn: str) -> list[ReplicationLink]:
    return [
        ReplicationLink(
            destination_site=report.site,
            destination_dc=report.dc,
            naming_context=n.naming_context,
            source_site=n.source_site,
            source_dc=n.source_dc,
            transport=n.transport,
            failures=n.consecutive_failures,
            last_failure=None if n.ok else n.last_attempt,
            last_success=n.last_success,
            last_failure_status=n.result,
        )
        for n in report.inbound
    ]


def _repadmin(args: list[str], dc: DcState, backend: RepadminBackend) -> ProgramResult:
    if not args:
        return _repadmin_syntax()
    verb, rest = args[0].lower(), args[1:]
    target = rest[0] if rest and not rest[0].startswith("/") else None
    try:
        if verb == "/kcc" and len(rest) <= 1:
            site = backend.kcc(target or dc.fqdn)
            return ProgramResult.of(render.render_repadmin_kcc(target, site=site))
        if verb == "/options" and 1 <= len(rest) <= 2 and target is not None:
            change = rest[1] if len(rest) == 2 else None
            if change is not None and not (
                change[:1] in ("+", "-") and change[1:].upper() == "DISABLE_NTDSCONN_XLATE"
            ):
                return _repadmin_syntax()
            outcome = backend.options(target, change)
            return ProgramResult.of(render.render_repadmin_options(outcome.before, outcome.after))
        if verb == "/add" and len(rest) == 3:
            naming_context, dest, source = rest
            backend.add(naming_context, dest, source)
            return ProgramResult.of(render.render_repadmin_add(naming_context, dest, source))
        if verb == "/showrepl":
            csv = any(a.lower() == "/csv" for a in rest)
            names = [a for a in rest if a.lower() != "/csv"]
            if len(names) > 1:
                return _repadmin_syntax()
            report = backend.showrepl(names[0] if names else dc.fqdn)
            if csv:
                return ProgramResult.of(
                    render.render_showrepl_csv(_csv_rows(report, names[0] if names else dc.fqdn))
                )
            return ProgramResult.of(render.render_showrepl(report, names[0] if names else None))
        if verb == "/replsummary" and not rest:
            return ProgramResult.of(render.render_replsummary(backend.replsummary()))
    except RepadminError as exc:
        if exc.code == ERROR_RPC_UNAVAILABLE:
            return ProgramResult.of(render.render_repadmin_unreachable(exc.target, exc.code))
        if verb == "/add":
            return ProgramResult.of(render.render_repadmin_add("", "", "", result=exc.code))
        if verb == "/kcc":
            return ProgramResult.of(render.render_repadmin_kcc(target, error=exc.code))
        return ProgramResult.of(render.render_repadmin_unreachable(exc.target, exc.code))
    return _repadmin_syntax()


# shutdown.exe -----------------------------------------------------------------------------


def _shutdown(args: list[str], restart_pending: bool) -> ProgramResult:
    lowered = [a.lower() for a in args]
    if "/r" not in lowered:
        return _shutdown_syntax()
    if "/t" in lowered:
        index = lowered.index("/t")
        if index + 1 >= len(args) or not args[index + 1].isdigit():
            return _shutdown_syntax()
    if restart_pending:
        return ProgramResult.of(render.render_shutdown(already_scheduled=True))
    return ProgramResult.of(render.render_shutdown(), restart=True)
