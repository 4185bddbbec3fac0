"""The computer behind a simulated DC: what `shutdown /r` really stops and starts.

Without a machine a simulated restart only closes and reopens the simulator's ports. With a
`SambaMachine` the DC's real Samba process stops while the DC is down and starts again before
WinRM answers, so the directory a restart waits for is the real one. The registry lives in the
simulator's state either way: Samba has no registry, and it ignores the two values the KB sets
(RepsTo Failure Time, Replicator Allow SPN Fallback).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from lab.samba import DcInfo, SambaForest


class DcMachine(Protocol):
    """Power of the machine a simulated DC stands for (blocking calls, run off the loop)."""

    def shut_down(self) -> None:
        """Stop the DC's services; return when they are stopped."""
        ...

    def boot(self) -> None:
        """Start the DC's services; return when its directory answers."""
        ...

    def is_running(self) -> bool:
        """Whether the DC's services run."""
        ...


@dataclass
class PowerEvent:
    """One shutdown or boot, for tests and the demo's narration."""

    what: str  # "shut_down" or "boot"
    started: float
    finished: float


@dataclass
class SambaMachine:
    """A Samba DC of the lab forest as the machine behind a simulated DC."""

    forest: SambaForest
    dc: DcInfo
    events: list[PowerEvent] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def shut_down(self) -> None:
        """Stop this DC's samba (its databases stay as they are)."""
        self._timed("shut_down", lambda: self.forest.stop_dc(self.dc))

    def boot(self) -> None:
        """Start this DC's samba and wait until it answers LDAP."""
        self._timed("boot", lambda: self.forest.start_dc(self.dc))

    def is_running(self) -> bool:
        """Whether this DC's samba runs."""
        return self.forest.is_running(self.dc)

    def _timed(self, what: str, action: Callable[[], None]) -> None:
        with self._lock:
            started = time.monotonic()
            action()
            self.events.append(PowerEvent(what, started, time.monotonic()))


def samba_machines(forest: SambaForest) -> dict[str, SambaMachine]:
    """One machine per DC of the forest, by FQDN."""
    return {dc.fqdn: SambaMachine(forest, dc) for dc in forest.dcs}
