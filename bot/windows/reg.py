"""Parsers for reg.exe (query, add, delete) and shutdown.exe output."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.windows.output import (
    CommandOutput,
    UnrecognizedOutput,
    WindowsCommandError,
    lines_of,
    shown_line,
)

REG_SUCCESS = "The operation completed successfully."
REG_NOT_FOUND = "ERROR: The system was unable to find the specified registry key or value."
_HIVES = {
    "HKLM": "HKEY_LOCAL_MACHINE",
    "HKCU": "HKEY_CURRENT_USER",
    "HKCR": "HKEY_CLASSES_ROOT",
    "HKU": "HKEY_USERS",
    "HKCC": "HKEY_CURRENT_CONFIG",
}
_VALUE_LINE = re.compile(r"^    (?P<name>.+?)    (?P<type>REG_[A-Z_]+)    (?P<data>.*)$")
_INTEGER_TYPES = frozenset({"REG_DWORD", "REG_QWORD", "REG_DWORD_BIG_ENDIAN"})
_SHUTDOWN_ERROR = re.compile(r"^(?P<msg>.+?)\s*\((?P<code>\d+)\)\s*$")


def full_key_name(key: str) -> str:
    """A key as reg.exe prints it: HKLM\\X -> HKEY_LOCAL_MACHINE\\X."""
    hive, sep, rest = key.partition("\\")
    return _HIVES.get(hive.upper(), hive) + sep + rest


@dataclass(frozen=True)
class RegistryValue:
    """One value as `reg query` shows it; `data` is an int for DWORD/QWORD, else the text."""

    key: str
    name: str
    type: str
    data: int | str


def _reg_error(command: str, output: CommandOutput) -> WindowsCommandError | None:
    """reg.exe's own "ERROR: ..." line (stderr), as a status error, or None."""
    for line in lines_of(output.stderr + "\n" + output.stdout):
        if line.startswith("ERROR: "):
            return WindowsCommandError(command, output.exit_code, line[7:].strip(), output)
    return None


def parse_reg_query(output: CommandOutput, name: str) -> RegistryValue | None:
    """The value `name` from `reg query KEY /v NAME`, or None when reg says it does not exist."""
    return read_reg_query(output, name)


def read_reg_query(output: CommandOutput, name: str | None = None) -> RegistryValue | None:
    """The one value `reg query KEY /v NAME` printed (checked to be `name` when given), or None
    for reg's "unable to find" answer."""
    command = f'reg query /v "{name}"' if name is not None else "reg query"
    if output.exit_code == 1 and REG_NOT_FOUND in lines_of(output.stderr + "\n" + output.stdout):
        return None
    if output.exit_code != 0:
        raise _reg_error(command, output) or UnrecognizedOutput(
            command, output, "non-zero exit code without a reg.exe error line"
        )
    numbered = [(i + 1, line) for i, line in enumerate(lines_of(output.stdout)) if line.strip()]
    if not numbered or not numbered[0][1].startswith("HKEY_"):
        raise _unrecognized(command, output, numbered[0] if numbered else None, "the key line")
    if len(numbered) != 2:
        at = numbered[2] if len(numbered) > 2 else None
        raise _unrecognized(command, output, at, "one value line under the key line")
    match = _VALUE_LINE.match(numbered[1][1].rstrip("\r"))
    if match is None or (name is not None and match["name"].lower() != name.lower()):
        wanted = f"the line of value {name!r}" if name is not None else "a value line"
        raise _unrecognized(command, output, numbered[1], wanted + " (name, REG_ type, data)")
    kind, raw = match["type"], match["data"]
    data: int | str = raw
    if kind in _INTEGER_TYPES:
        if not re.fullmatch(r"0x[0-9a-fA-F]+", raw):
            raise _unrecognized(command, output, numbered[1], f"{kind} data in hexadecimal")
        data = int(raw, 16)
    return RegistryValue(key=numbered[0][1].rstrip(), name=match["name"], type=kind, data=data)


def _unrecognized(
    command: str, output: CommandOutput, at: tuple[int, str] | None, expected: str
) -> UnrecognizedOutput:
    if at is None:
        why = f"expected {expected}, but the output ends there"
        return UnrecognizedOutput(command, output, why, expected=expected)
    number, line = at
    why = f"line {number}: expected {expected}, got {shown_line(line)}"
    return UnrecognizedOutput(command, output, why, line=number, expected=expected)


def parse_reg_add(output: CommandOutput) -> None:
    """Check that `reg add ... /f` succeeded; raise with Windows' message otherwise."""
    _expect_reg_success("reg add", output)


def parse_reg_delete(output: CommandOutput) -> bool:
    """True when `reg delete ... /v NAME /f` deleted the value, False when it was not there."""
    if output.exit_code == 1 and REG_NOT_FOUND in lines_of(output.stderr + "\n" + output.stdout):
        return False
    _expect_reg_success("reg delete", output)
    return True


def _expect_reg_success(command: str, output: CommandOutput) -> None:
    if output.exit_code != 0:
        raise _reg_error(command, output) or UnrecognizedOutput(
            command, output, "non-zero exit code without a reg.exe error line"
        )
    if [line for line in lines_of(output.stdout) if line.strip()] != [REG_SUCCESS]:
        raise UnrecognizedOutput(command, output, f"expected only {REG_SUCCESS!r}")


def parse_shutdown(output: CommandOutput) -> None:
    """Check that `shutdown /r` accepted the restart (it prints nothing on success)."""
    text = [line.strip() for line in lines_of(output.stdout + "\n" + output.stderr)]
    text = [line for line in text if line]
    if output.exit_code == 0 and not text:
        return
    for line in text:
        match = _SHUTDOWN_ERROR.match(line)
        if match is not None:
            raise WindowsCommandError("shutdown /r", int(match["code"]), match["msg"], output)
    raise UnrecognizedOutput("shutdown /r", output, "expected no output and exit code 0")
