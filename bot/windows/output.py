"""What a Windows command printed, and the failures parsers report from it.

Parsers live in `bot.windows.reg` (reg.exe, shutdown.exe) and `bot.windows.repadmin`
(repadmin.exe). They read text exactly as Windows prints it (CRLF, cp437 decoded by
pypsrp), return typed results, and raise instead of guessing when the text is not one
they know.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from bot.errors import RemoteCommandFailed
from bot.windows.win32 import win32_message


class CommandOutput(NamedTuple):
    """stdout, stderr and exit code of one command run on a DC (what WinRS returns)."""

    stdout: str
    stderr: str
    exit_code: int


def lines_of(text: str) -> list[str]:
    """Split Windows text (CRLF, maybe a stray CR) into lines without line ends."""
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def excerpt(output: CommandOutput, limit: int = 300) -> str:
    """A short, single-paragraph view of what a command printed, for error messages."""
    text = " | ".join(
        line.strip() for line in lines_of(output.stdout + "\n" + output.stderr) if line.strip()
    )
    return text if len(text) <= limit else text[: limit - 3] + "..."


class UnrecognizedOutput(RemoteCommandFailed):
    """The command printed something no parser knows: never read as success."""

    def __init__(self, command: str, output: CommandOutput, why: str) -> None:
        self.command = command
        self.output = output
        self.why = why
        super().__init__(
            f"`{command}` printed output the bot does not recognize ({why}); exit code "
            f"{output.exit_code}. Treating it as failed. Read the output and check the DC by "
            f"hand before retrying. Output: {excerpt(output)}"
        )


class WindowsCommandError(RemoteCommandFailed):
    """The command ran and Windows reported a failure with a status code."""

    def __init__(self, command: str, code: int, message: str, output: CommandOutput) -> None:
        self.command = command
        self.code = code
        self.message = message
        self.output = output
        super().__init__(
            f"`{command}` failed on the DC with status {code} (0x{code:x}): {message} "
            f"(exit code {output.exit_code})."
        )


# repadmin and friends: "DsReplicaAdd() failed with status 8441 (0x20f9):" then the message.
_API_FAILURE = re.compile(
    r"^(?P<api>[A-Za-z]\w*)(?:\(\))?(?: to \S+)? failed with status (?P<code>\d+) "
    r"\(0x(?P<hex>[0-9a-fA-F]+)\):?\s*$"
)
# "Repadmin can't connect to a "home server", ..." then "LDAP Error 81(0x51): Server Down".
_LDAP_ERROR = re.compile(r"^\s*LDAP Error (?P<code>\d+)\(0x[0-9a-fA-F]+\): ?(?P<msg>.*)$")


def find_api_failure(output: CommandOutput) -> tuple[int, str] | None:
    """A "Xxx() failed with status N (0xN):" report anywhere in the output, with its message."""
    lines = lines_of(output.stdout + "\n" + output.stderr)
    for i, line in enumerate(lines):
        match = _API_FAILURE.match(line.strip())
        if match is None:
            continue
        code = int(match["code"])
        if int(match["hex"], 16) != code:
            continue  # a garbled status line is not a status
        message = next((rest.strip() for rest in lines[i + 1 :] if rest.strip()), "")
        return code, message or win32_message(code)
    for line in lines:
        ldap = _LDAP_ERROR.match(line)
        if ldap is not None:
            return int(ldap["code"]), f"LDAP error: {ldap['msg'].strip()}"
    return None
