"""Win32/DS error codes seen around Event 1411, in plain words."""

from __future__ import annotations

MEANINGS: dict[int, str] = {
    8589: (
        "the DS cannot derive a service principal name (SPN) to mutually authenticate the "
        "target server, because its server object in the local DS database has no "
        "serverReference attribute"
    ),
    8453: "replication access was denied",
    8524: "the DSA operation is unable to proceed because of a DNS lookup failure",
    1396: "the target account name is incorrect (SPN points at the wrong account)",
    1722: "the RPC server is unavailable",
}


def meaning(code: int) -> str:
    """Plain-words meaning of an error code, or a generic text."""
    return MEANINGS.get(code, f"Windows error {code} (look it up with `net helpmsg {code}`)")
