"""Faults a test can inject into one simulated DC: what real WinRM and real DCs do at 3 a.m."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import StrEnum


class FaultKind(StrEnum):
    """The kinds of misbehaviour the simulator can produce."""

    HANG = "hang"  # the command never finishes
    SLOW = "slow"  # the command finishes after a delay
    OPERATION_TIMEOUT = "operation_timeout"  # Receive answers with the OperationTimeout fault
    AUTH_FAILURE = "auth_failure"  # every authentication is refused (401)
    DROP = "drop"  # the TCP connection is closed while the command runs
    EXIT_CODE = "exit_code"  # the command exits non-zero instead of doing its work


@dataclass
class Fault:
    """One armed fault; `match` is a case-insensitive substring of the command line."""

    kind: FaultKind
    match: str | None = None
    seconds: float = 0.0
    exit_code: int = 1
    stderr: str = ""
    remaining: int | None = None  # None: until cleared

    def applies_to(self, command_line: str | None) -> bool:
        """Whether this fault fires for this command line (None: not command-specific)."""
        if self.match is None:
            return True
        return command_line is not None and self.match.lower() in command_line.lower()


class FaultPlan:
    """The faults armed on one DC. Thread-safe: tests arm them while the simulator runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def _arm(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def hang(self, match: str | None = None, *, times: int | None = None) -> Fault:
        """Matching commands start but never finish (until signalled)."""
        return self._arm(Fault(FaultKind.HANG, match, remaining=times))

    def slow(self, seconds: float, match: str | None = None, *, times: int | None = None) -> Fault:
        """Matching commands take `seconds` longer."""
        return self._arm(Fault(FaultKind.SLOW, match, seconds=seconds, remaining=times))

    def operation_timeouts(self, count: int = 1) -> Fault:
        """The next `count` Receive requests answer with the OperationTimeout fault at once."""
        return self._arm(Fault(FaultKind.OPERATION_TIMEOUT, remaining=count))

    def reject_auth(self, *, times: int | None = None) -> Fault:
        """Refuse authentication, whatever the credentials."""
        return self._arm(Fault(FaultKind.AUTH_FAILURE, remaining=times))

    def drop_connection(self, match: str | None = None, *, times: int | None = 1) -> Fault:
        """Close the connection while a matching command runs (it still takes effect)."""
        return self._arm(Fault(FaultKind.DROP, match, remaining=times))

    def exit_code(
        self,
        code: int,
        match: str | None = None,
        *,
        stderr: str = "",
        times: int | None = None,
    ) -> Fault:
        """Matching commands do nothing and exit with `code`, printing `stderr`."""
        return self._arm(
            Fault(FaultKind.EXIT_CODE, match, exit_code=code, stderr=stderr, remaining=times)
        )

    def clear(self) -> None:
        """Disarm everything."""
        with self._lock:
            self._faults.clear()

    def take(self, kind: FaultKind, command_line: str | None = None) -> Fault | None:
        """The first armed fault of this kind that applies, consuming one use of it."""
        with self._lock:
            for fault in self._faults:
                if fault.kind is kind and fault.applies_to(command_line):
                    if fault.remaining is not None:
                        fault.remaining -= 1
                        if fault.remaining <= 0:
                            self._faults.remove(fault)
                    return fault
        return None
