"""The plan's data: the steps of one procedure, each on its target (built by `planner`).

Commands are not stored: `bot.procedure.operations` derives them from these parameters with
the fixed templates every time, and a step's digest binds approvals to exactly those commands.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.directory.model import Cause, Diagnosis
from bot.procedure.steps import SPECS, StepKind, StepSpec


@dataclass(frozen=True)
class ApprovalPolicy:
    """How many distinct approvers each kind needs, and how long requests and votes live."""

    change: int = 1
    temporary: int = 1
    disruptive: int = 2
    ttl_seconds: int = 900

    def needed(self, kind: StepKind) -> int:
        """Approvals a step of this kind needs (reads, safe and cleanup steps need none)."""
        return {
            StepKind.CHANGE: self.change,
            StepKind.TEMPORARY: self.temporary,
            StepKind.DISRUPTIVE: self.disruptive,
        }.get(kind, 0)


@dataclass(frozen=True)
class PlannedStep:
    """One step on one target, with everything its commands are derived from."""

    key: str
    number: str
    approvals: int
    dc: str | None = None
    source_dc: str | None = None
    server_dn: str | None = None
    computer_dn: str | None = None
    dcs: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    digest: str = ""
    undoes: str = ""
    undo_kind: str = ""

    @property
    def spec(self) -> StepSpec:
        """The catalog entry."""
        return SPECS[self.number]

    @property
    def kind(self) -> StepKind:
        """How risky it is (an undo is as risky as what it puts back)."""
        return StepKind(self.undo_kind) if self.undo_kind else self.spec.kind

    @property
    def title(self) -> str:
        """What it does, in a few words, with its target."""
        if self.undoes:
            return f"Undo step {self.undoes}" + (f" on {self.dc}" if self.dc else "")
        where = (self.source_dc and f" from {self.source_dc}") or (self.dc and f" on {self.dc}")
        return f"{self.spec.title}{where or ''}"

    @property
    def lock_name(self) -> str | None:
        """What must not change concurrently while this step applies (None: reads)."""
        if self.kind in (StepKind.READ, StepKind.SAFE):
            return None
        return self.dc or "ldap"


@dataclass(frozen=True)
class Plan:
    """The steps in the order they run, and what the plan was built from."""

    forest: str
    root_dc: str | None
    target_dsa_guid: str
    target_dc: str | None
    cause: str
    configuration_nc: str
    steps: tuple[PlannedStep, ...]
    notes: tuple[str, ...] = field(default=())

    def step(self, key: str) -> PlannedStep | None:
        """The step with this key."""
        return next((s for s in self.steps if s.key == key), None)

    def keys(self) -> list[str]:
        """Step keys in order."""
        return [s.key for s in self.steps]


def resolved(diagnosis: Diagnosis) -> bool:
    """Whether a diagnosis says the 1411 problem is gone (the aim of step 12)."""
    if diagnosis.cause is Cause.NOT_REPRODUCED:
        return True
    # A DC removed for good: resolved once no reporting DC still lists it.
    if diagnosis.cause in (Cause.DC_REMOVED, Cause.DC_ORPHANED):
        return not any(
            link.read_on in diagnosis.reporting_dcs and link.attribute == "repsTo"
            for link in diagnosis.links
        )
    return False
