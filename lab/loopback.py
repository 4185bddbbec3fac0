"""Loopback address pairs for Samba labs, claimed with a lock file so that test sessions and
demos running at the same time on one machine never share a DC address."""

from __future__ import annotations

import fcntl
import os
from typing import IO

# Fixed names in /tmp on purpose: every worktree and session on the machine must see them.
LOCK_PATTERN = "/tmp/ad1411-samba-lab-{address}.lock"  # noqa: S108
FIRST_LAST_OCTET = 2
LAST_LAST_OCTET = 60


class AddressPairClaim:
    """127.0.0.N and 127.0.0.N+1, held until release() (or until the process exits)."""

    def __init__(self, address: str, handle: IO[str]) -> None:
        self.address = address
        self._handle = handle

    def release(self) -> None:
        """Let another session use the pair."""
        if not self._handle.closed:
            self._handle.close()


def try_claim(address: str) -> AddressPairClaim | None:
    """The pair starting at `address`, or None when another process holds it."""
    # O_NOFOLLOW: a symlink planted under that name is not followed.
    fd = os.open(
        LOCK_PATTERN.format(address=address), os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o644
    )
    handle = os.fdopen(fd, "w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return AddressPairClaim(address, handle)


def claim_address_pair(preferred: tuple[str, ...] = ()) -> AddressPairClaim:
    """A pair of loopback addresses no other running session holds (one flock per pair).

    `preferred` first addresses are tried before the others (a demo reuses its cached forest).
    """
    candidates = [*preferred] + [
        f"127.0.0.{last}" for last in range(FIRST_LAST_OCTET, LAST_LAST_OCTET, 2)
    ]
    for address in dict.fromkeys(candidates):
        claim = try_claim(address)
        if claim is not None:
            return claim
    raise RuntimeError(
        f"every Samba lab address pair in 127.0.0.{FIRST_LAST_OCTET}-{LAST_LAST_OCTET - 1} is "
        "held by another session; stop one of them (or wait for its tests to end)"
    )
