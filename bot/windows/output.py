"""What a Windows command printed, and the failures parsers report from it.

Parsers live in `bot.windows.reg` (reg.exe, shutdown.exe) and `bot.windows.repadmin`
(repadmin.exe). They read text exactly as Windows prints it (CRLF, cp437 decoded by
pypsrp), return typed results, and raise instead of guessing when the text is not one
they know. Status codes are compared as 32-bit values: repadmin prints HRESULTs and SSPI
codes as signed decimals beside their hex form (`-2146893022 (0x80090322)`).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import NamedTuple

from bot.errors import RemoteCommandFailed
from bot.windows.win32 import as_signed, as_u32, hex_code, status, win32_message

_I32_MIN = -(2**31)
_U32_LIMIT = 2**32
_SHOWN_LINE = 120


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


def shown_line(line: str) -> str:
    """One output line quoted for an error message: printable, bounded."""
    text = "".join(ch if ch.isprintable() else "?" for ch in line.strip())
    return repr(text if len(text) <= _SHOWN_LINE else text[: _SHOWN_LINE - 3] + "...")


def non_english_script(output: CommandOutput) -> str | None:
    """The script of letters English Windows output never has ("Cyrillic"), or None.

    repadmin, reg and shutdown print their messages in the display language of the DC; the
    parsers read English only, so text in another language must be refused by name.
    """
    for ch in output.stdout + output.stderr:
        if ord(ch) > 127 and ch.isalpha():
            script = unicodedata.name(ch, "NON-ASCII").split(" ", 1)[0].capitalize()
            return "accented Latin" if script == "Latin" else script
    return None


class UnrecognizedOutput(RemoteCommandFailed):
    """The command printed something no parser knows: never read as success.

    `line` is the 1-based line of stdout where reading stopped (None when the problem is not
    one line) and `expected` says what was expected there in words that quote nothing the
    command printed, so it can be shown where the output itself must not be echoed.
    """

    def __init__(
        self,
        command: str,
        output: CommandOutput,
        why: str,
        *,
        line: int | None = None,
        expected: str | None = None,
    ) -> None:
        self.command = command
        self.output = output
        self.line = line
        self.script = non_english_script(output)
        if self.script is not None:
            expected = f"English text (this output has {self.script} letters)"
            why = (
                f"it is not in English ({self.script} letters): the DC prints messages in its "
                f"display language and the bot reads English only; {why}"
            )
        self.why = why
        self.expected = expected
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
            f"`{command}` failed on the DC with status {as_signed(code)} ({hex_code(code)}): "
            f"{message} (exit code {output.exit_code})."
        )


def status_code(decimal: str, hexadecimal: str) -> int | None:
    """A status printed as `decimal (0xhex)`, as repadmin prints it (signed), or None when
    the two forms are not one 32-bit value (a garbled status is not a status)."""
    value = int(decimal)
    if not _I32_MIN <= value < _U32_LIMIT or as_u32(value) != int(hexadecimal, 16):
        return None
    return as_signed(value)


# repadmin's "%1() failed with status %0" then "%1!d! (0x%2!x!):" and the indented message;
# Windows 2000's repadmin: "DsReplicaAdd failed with status 8440 (0x20f8) = ERROR_DS_DRA_BAD_NC".
_API_FAILURE = re.compile(
    r"^(?P<api>[A-Za-z]\w*)(?:\(\))?(?: to (?P<target>\S+))? failed with status "
    r"(?P<code>-?\d{1,10}) \(0x(?P<hex>[0-9a-fA-F]{1,8})\)"
    r"(?::|\s*=\s*(?P<symbol>[A-Z][A-Z0-9_]*))?\s*$"
)
# "Repadmin can't connect to a "home server", ..." then "LDAP Error 81(0x51): Server Down".
_LDAP_ERROR = re.compile(r"^\s*LDAP Error (?P<code>\d+)\(0x[0-9a-fA-F]+\): ?(?P<msg>.*)$")


@dataclass(frozen=True)
class ApiFailure:
    """A failure report repadmin printed: which call, its status and Windows' message."""

    api: str
    code: int
    message: str
    target: str | None = None


def find_api_failure(output: CommandOutput) -> ApiFailure | None:
    """A "Xxx() failed with status N (0xN):" report anywhere in the output, with its message."""
    lines = lines_of(output.stdout + "\n" + output.stderr)
    for i, line in enumerate(lines):
        match = _API_FAILURE.match(line.strip())
        if match is None:
            continue
        code = status_code(match["code"], match["hex"])
        if code is None:
            continue  # a garbled status line is not a status
        if match["symbol"]:
            known = status(code)
            message = known.message if known else match["symbol"]
        else:
            message = next((rest.strip() for rest in lines[i + 1 :] if rest.strip()), "")
        return ApiFailure(match["api"], code, message or win32_message(code), match["target"])
    for line in lines:
        ldap = _LDAP_ERROR.match(line)
        if ldap is not None:
            code = int(ldap["code"])
            return ApiFailure("LDAP", code, f"LDAP error: {ldap['msg'].strip()}")
    return None
