"""The one table of Win32, DS and SSPI status codes the bot meets, and how to show them.

Every place that prints or explains a status code reads this table: the output parsers
(Windows' own message text), the diagnosis and Slack (short words), the alert intake (which
codes the KB938704 procedure answers). Codes are 32-bit values: repadmin prints HRESULTs
such as 0x80090322 as signed decimals (-2146893022), so lookups normalize first.
"""

from __future__ import annotations

from dataclasses import dataclass

_U32 = 0xFFFFFFFF


@dataclass(frozen=True)
class Win32Status:
    """One status code: its symbolic name, Windows' message text, and a few plain words."""

    code: int
    symbol: str
    message: str
    words: str


_STATUSES = (
    Win32Status(0, "ERROR_SUCCESS", "The operation completed successfully.", "success"),
    Win32Status(5, "ERROR_ACCESS_DENIED", "Access is denied.", "access denied"),
    Win32Status(
        53, "ERROR_BAD_NETPATH", "The network path was not found.", "network path not found"
    ),
    Win32Status(
        58,
        "ERROR_BAD_NET_RESP",
        "The specified server cannot perform the requested operation.",
        "the DC did not answer the request (often a firewall or RPC problem)",
    ),
    Win32Status(
        1115, "ERROR_SHUTDOWN_IN_PROGRESS", "A system shutdown is in progress.", "shutting down"
    ),
    Win32Status(
        1190,
        "ERROR_SHUTDOWN_IS_SCHEDULED",
        "A system shutdown has already been scheduled.",
        "a shutdown is already scheduled",
    ),
    Win32Status(
        1256,
        "ERROR_REMOTE_SESSION_LIMIT_EXCEEDED",
        "The remote system is not available. For information about network troubleshooting, "
        "see Windows Help.",
        "remote system not available",
    ),
    Win32Status(
        1396,
        "ERROR_WRONG_TARGET_NAME",
        "Logon Failure: The target account name is incorrect.",
        "the SPN resolved to the wrong computer account",
    ),
    Win32Status(
        1722, "RPC_S_SERVER_UNAVAILABLE", "The RPC server is unavailable.", "RPC server unavailable"
    ),
    Win32Status(
        1753,
        "EPT_S_NOT_REGISTERED",
        "There are no more endpoints available from the endpoint mapper.",
        "no RPC endpoint registered",
    ),
    Win32Status(
        1908,
        "ERROR_DOMAIN_CONTROLLER_NOT_FOUND",
        "Could not find the domain controller for this domain.",
        "domain controller not found",
    ),
    Win32Status(
        8341,
        "ERROR_DS_GENERIC_ERROR",
        "A directory service error has occurred.",
        "a directory service error",
    ),
    Win32Status(
        8439,
        "ERROR_DS_DRA_BAD_DN",
        "The distinguished name specified for this replication operation is invalid.",
        "invalid DN for replication",
    ),
    Win32Status(
        8440,
        "ERROR_DS_DRA_BAD_NC",
        "The naming context specified for this replication operation is invalid.",
        "invalid naming context",
    ),
    Win32Status(
        8441,
        "ERROR_DS_DRA_DN_EXISTS",
        "The distinguished name specified for this replication operation already exists.",
        "the replication link already exists",
    ),
    Win32Status(
        8442,
        "ERROR_DS_DRA_INTERNAL_ERROR",
        "The replication system encountered an internal error.",
        "replication internal error",
    ),
    Win32Status(
        8452,
        "ERROR_DS_DRA_NO_REPLICA",
        "The naming context is in the process of being removed or is not replicated from the "
        "specified server.",
        "naming context not replicated from that server",
    ),
    Win32Status(
        8453,
        "ERROR_DS_DRA_ACCESS_DENIED",
        "Replication access was denied.",
        "replication access denied",
    ),
    Win32Status(
        8456,
        "ERROR_DS_DRA_SOURCE_DISABLED",
        "The source server is currently rejecting replication requests.",
        "source rejects replication",
    ),
    Win32Status(
        8457,
        "ERROR_DS_DRA_SINK_DISABLED",
        "The destination server is currently rejecting replication requests.",
        "destination rejects replication",
    ),
    Win32Status(
        8524,
        "ERROR_DS_DNS_LOOKUP_FAILURE",
        "The DSA operation is unable to proceed because of a DNS lookup failure.",
        "DNS lookup failure",
    ),
    Win32Status(
        8589,
        "ERROR_DS_CANT_DERIVE_SPN_WITHOUT_SERVER_REF",
        "The DS cannot derive a service principal name (SPN) with which to mutually "
        "authenticate the target server because the corresponding server object in the local "
        "DS database has no serverReference attribute.",
        "cannot derive the SPN: the server object has no serverReference",
    ),
    Win32Status(
        0x80090322,
        "SEC_E_WRONG_PRINCIPAL",
        "The target principal name is incorrect.",
        "the target principal name is incorrect (SPN registered on another account)",
    ),
)

STATUSES: dict[int, Win32Status] = {s.code: s for s in _STATUSES}

# The codes the KB938704 steps meet most.
ERROR_SUCCESS = 0
ERROR_DS_DRA_BAD_NC = 8440
ERROR_DS_DRA_DN_EXISTS = 8441
ERROR_DS_DRA_ACCESS_DENIED = 8453
ERROR_DS_CANT_DERIVE_SPN_WITHOUT_SERVER_REF = 8589
SEC_E_WRONG_PRINCIPAL = 0x80090322


def as_u32(code: int) -> int:
    """A status as an unsigned 32-bit value (-2146893022 and 2148074274 are one code)."""
    return code & _U32


def as_signed(code: int) -> int:
    """A status as the signed decimal repadmin prints for HRESULTs (0x80090322 -> -2146893022)."""
    value = as_u32(code)
    return value - (1 << 32) if value & 0x80000000 else value


def status(code: int) -> Win32Status | None:
    """The table entry of a code (signed or unsigned form), or None."""
    return STATUSES.get(as_u32(code))


def win32_message(code: int) -> str:
    """The text Windows prints for a status code (or repadmin's line for an unknown one)."""
    known = status(code)
    if known is not None:
        return known.message
    return f"Can't retrieve message string {as_u32(code)} (0x{as_u32(code):x})."


def words(code: int) -> str:
    """A few plain words for a code, for people (Slack, diagnosis)."""
    known = status(code)
    if known is not None:
        return known.words
    return f"Windows error {code} (look it up with `net helpmsg {as_u32(code)}` on a DC)"


def describe(code: int) -> str:
    """`8453 (replication access denied)`; an unknown code alone."""
    known = status(code)
    return f"{code} ({known.words})" if known is not None else str(code)


def hex_code(code: int) -> str:
    """The 0x form repadmin prints beside the decimal (0x20f9, 0x80090322)."""
    return f"0x{as_u32(code):x}"
