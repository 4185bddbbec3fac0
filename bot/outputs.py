"""What a Windows command printed, and the failures parsers report from it.

Parsers live in `bot.reg_output` (reg.exe, shutdown.exe) and `bot.repadmin_output`
(repadmin.exe). They read text exactly as Windows prints it (CRLF, cp437 decoded by
pypsrp), return typed results, and raise instead of guessing when the text is not one
they know.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from bot.errors import RemoteCommandFailed

# Win32 / DS error texts as Windows prints them (FormatMessage, en-US).
WIN32_MESSAGES: dict[int, str] = {
    5: "Access is denied.",
    53: "The network path was not found.",
    1115: "A system shutdown is in progress.",
    1190: "A system shutdown has already been scheduled.",
    1256: (
        "The remote system is not available. For information about network troubleshooting, "
        "see Windows Help."
    ),
    1722: "The RPC server is unavailable.",
    1753: "There are no more endpoints available from the endpoint mapper.",
    1908: "Could not find the domain controller for this domain.",
    8439: "The distinguished name specified for this replication operation is invalid.",
    8440: "The naming context specified for this replication operation is invalid.",
    8441: "The distinguished name specified for this replication operation already exists.",
    8442: "The replication system encountered an internal error.",
    8452: (
        "The naming context is in the process of being removed or is not replicated from the "
        "specified server."
    ),
    8453: "Replication access was denied.",
    8456: "The source server is currently rejecting replication requests.",
    8457: "The destination server is currently rejecting replication requests.",
    8524: "The DSA operation is unable to proceed because of a DNS lookup failure.",
    8589: (
        "The DS cannot derive a service principal name (SPN) with which to mutually authenticate "
        "the target server because the corresponding server object in the local DS database has "
        "no serverReference attribute."
    ),
}

# The two status codes the KB938704 steps meet most.
ERROR_DS_DRA_DN_EXISTS = 8441
ERROR_DS_CANT_DERIVE_SPN_WITHOUT_SERVER_REF = 8589


def win32_message(code: int) -> str:
    """The text Windows prints for a status code (or a generic line for an unknown one)."""
    return WIN32_MESSAGES.get(code, f"Can't retrieve message string {code} (0x{code:x}).")


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
