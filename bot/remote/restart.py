"""Restart a DC and wait: WinRM goes away, WinRM comes back, then the directory answers."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

from bot.errors import RemoteCommandFailed
from bot.remote.winrm import CommandResult, DcUnreachable
from bot.windows.commands import RemoteCommand

log = logging.getLogger(__name__)


class RestartPhase(StrEnum):
    """What has been observed so far, in order."""

    ISSUED = "restart_issued"
    WINRM_DOWN = "winrm_down"
    WINRM_UP = "winrm_up"
    DIRECTORY_UP = "directory_up"


@dataclass(frozen=True)
class PhaseEvent:
    """One observed phase, with wall-clock time and seconds since the restart was issued."""

    phase: RestartPhase
    at: datetime
    elapsed_seconds: float
    detail: str = ""


@dataclass(frozen=True)
class RestartOutcome:
    """A restart that completed: every phase seen, and how long the DC was away."""

    host: str
    events: tuple[PhaseEvent, ...]

    @property
    def total_seconds(self) -> float:
        """From issuing the restart to the directory answering."""
        return self.events[-1].elapsed_seconds


class DcDidNotGoDown(RemoteCommandFailed):
    """WinRM kept answering: the restart did not happen."""


class DcDidNotComeBack(RemoteCommandFailed):
    """The DC went down and did not come back (WinRM or directory) within the deadline."""


class RestartTarget(Protocol):
    """What restart-and-wait needs from the WinRM executor."""

    def run(
        self,
        host: str,
        command: RemoteCommand,
        *,
        deadline_seconds: float | None = None,
        check: bool = True,
    ) -> CommandResult:
        """Run one command."""
        ...

    def is_answering(self, host: str, timeout_seconds: float = 5.0) -> bool:
        """Whether WinRM answers."""
        ...


def _safe_probe(probe: Callable[[], bool]) -> bool:
    try:
        return bool(probe())
    except Exception as exc:  # a probe that raises is a probe that did not succeed
        log.debug("directory probe failed: %s", exc)
        return False


def restart_and_wait(
    executor: RestartTarget,
    host: str,
    command: RemoteCommand,
    *,
    ldap_probe: Callable[[], bool],
    deadline_seconds: float,
    poll_interval_seconds: float = 5.0,
    probe_timeout_seconds: float = 5.0,
    on_phase: Callable[[PhaseEvent], None] | None = None,
) -> RestartOutcome:
    """Issue `command` (shutdown /r) on `host`, then wait for down, up, and directory up.

    Raises DcDidNotGoDown or DcDidNotComeBack when the deadline passes first; any failure
    of the restart command itself propagates (CommandExitedNonZero, DcAuthFailed, ...).
    """
    begin = time.monotonic()
    deadline = begin + deadline_seconds
    events: list[PhaseEvent] = []

    def emit(phase: RestartPhase, detail: str = "") -> None:
        event = PhaseEvent(phase, datetime.now(UTC), time.monotonic() - begin, detail)
        events.append(event)
        log.info("restart of %s: %s after %.1f s %s", host, phase, event.elapsed_seconds, detail)
        if on_phase is not None:
            on_phase(event)

    def wait_for(condition: Callable[[], bool]) -> bool:
        while True:
            if condition():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(poll_interval_seconds, remaining))

    try:
        executor.run(host, command, deadline_seconds=min(120.0, deadline_seconds))
        emit(RestartPhase.ISSUED, command.command_line())
    except DcUnreachable as exc:
        if not exc.may_have_run:
            raise
        # The DC may drop us while it starts shutting down: watch whether it goes away.
        emit(RestartPhase.ISSUED, "connection lost after the command started; watching")

    def down() -> bool:
        return not executor.is_answering(host, probe_timeout_seconds)

    if not wait_for(down):
        raise DcDidNotGoDown(
            f"{host} still answers WinRM {deadline_seconds:g} s after `{command.command_line()}`; "
            "the restart did not happen (cancelled with shutdown /a, or blocked by another "
            "session). Check the DC's console and System event log (event 1074) before retrying."
        )
    emit(RestartPhase.WINRM_DOWN)

    if not wait_for(lambda: executor.is_answering(host, probe_timeout_seconds)):
        raise DcDidNotComeBack(
            f"{host} went down but did not come back within {deadline_seconds:g} s (WinRM does "
            "not answer). Check the console / iLO / hypervisor: it may be stuck at boot, in "
            "Directory Services Repair Mode, or installing updates. Do not continue the "
            "procedure until it answers."
        )
    emit(RestartPhase.WINRM_UP)

    if not wait_for(lambda: _safe_probe(ldap_probe)):
        raise DcDidNotComeBack(
            f"{host} is back on WinRM but its directory (LDAP rootDSE) did not answer within "
            f"{deadline_seconds:g} s of the restart. Check that the NTDS service started "
            "(Directory Service event log, `sc query ntds`) before continuing."
        )
    emit(RestartPhase.DIRECTORY_UP)
    return RestartOutcome(host, tuple(events))
