"""A procedure as data: the plan, and what happened to each step (pure, JSON round-trip)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from enum import StrEnum

from pydantic import TypeAdapter

from bot.procedure.operations import Prior
from bot.procedure.plan import Plan, PlannedStep

_PROCEDURE_ID = re.compile(r"^([0-9a-f]{10}-[1-9][0-9]{0,9})\.([1-9][0-9]{0,5})$")


class ProcedureStatus(StrEnum):
    """The procedure's life."""

    ACTIVE = "active"
    ABORTING = "aborting"  # aborted; the undo of applied steps is offered
    CLOSED = "closed"
    ABORTED = "aborted"


LIVE = frozenset({ProcedureStatus.ACTIVE, ProcedureStatus.ABORTING})


class ObligationStatus(StrEnum):
    """Whether a temporary weakening is still in place."""

    OPEN = "open"
    UNDONE = "undone"
    OVERRIDDEN = "overridden"


@dataclass(frozen=True)
class Obligation:
    """A temporary step took effect: it must be undone by a deadline."""

    step_key: str
    dc: str
    what: str
    restore: str
    opened_at_ms: int
    deadline_ms: int
    status: ObligationStatus = ObligationStatus.OPEN
    reminded_at_ms: int = 0
    escalated_at_ms: int = 0
    escalations: int = 0
    ended_at_ms: int = 0
    ended_by: str = ""
    how: str = ""

    @property
    def open(self) -> bool:
        """Still to be undone."""
        return self.status is ObligationStatus.OPEN


class StepStatus(StrEnum):
    """Where one step stands."""

    PENDING = "pending"
    AWAITING_APPROVAL = "awaiting_approval"
    REJECTED = "rejected"
    QUEUED = "queued"
    RUNNING = "running"
    SATISFIED = "satisfied"  # the precheck found it already done: Skip is offered
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"


FINISHED = frozenset({StepStatus.DONE, StepStatus.SKIPPED})
IN_FLIGHT = frozenset({StepStatus.QUEUED, StepStatus.RUNNING})


@dataclass(frozen=True)
class Vote:
    """One approver's answer to one approval request, bound to the step's plan digest."""

    user: str
    approve: bool
    at_ms: int
    digest: str
    reason: str = ""


@dataclass(frozen=True)
class Attempt:
    """One run of a step by a worker."""

    number: int
    job_id: str
    queued_by: str
    queued_at_ms: int
    worker: str = ""
    started_at_ms: int = 0
    applied_at_ms: int = 0
    ended_at_ms: int = 0
    outcome: str = ""
    exit_code: int | None = None
    excerpt: str = ""
    detail: str = ""
    output_ref: str = ""


@dataclass(frozen=True)
class StepRecord:
    """What happened to one step."""

    key: str
    status: StepStatus = StepStatus.PENDING
    requested_by: str = ""
    requested_at_ms: int = 0
    votes: tuple[Vote, ...] = ()
    attempts: tuple[Attempt, ...] = ()
    prior: Prior | None = None
    note: str = ""
    skipped_by: str = ""
    skip_reason: str = ""

    @property
    def last_attempt(self) -> Attempt | None:
        """The latest run, if any."""
        return self.attempts[-1] if self.attempts else None


@dataclass(frozen=True)
class Procedure:
    """One run of KB938704 for one incident."""

    id: str
    incident_id: str
    status: ProcedureStatus
    plan: Plan
    steps: tuple[StepRecord, ...]
    started_by: str
    started_at_ms: int
    diagnosis_at_ms: int = 0
    version: int = 0
    ended_by: str = ""
    ended_at_ms: int = 0
    end_reason: str = ""
    notes: tuple[str, ...] = field(default=())
    obligations: tuple[Obligation, ...] = ()

    def record(self, key: str) -> StepRecord:
        """The record of a step (KeyError for a key not in the plan)."""
        for r in self.steps:
            if r.key == key:
                return r
        raise KeyError(key)

    def planned(self, key: str) -> PlannedStep:
        """The plan of a step (KeyError for a key not in the plan)."""
        step = self.plan.step(key)
        if step is None:
            raise KeyError(key)
        return step

    def current(self) -> PlannedStep | None:
        """The first step that is neither done nor skipped (steps run in order); while
        aborting, the first undo left."""
        undoing = self.status is ProcedureStatus.ABORTING
        for planned, record in zip(self.plan.steps, self.steps, strict=True):
            if (planned.number == "undo") == undoing and record.status not in FINISHED:
                return planned
        return None

    def open_obligations(self) -> list[Obligation]:
        """Temporary changes still in place."""
        return [o for o in self.obligations if o.open]

    def with_obligation(self, obligation: Obligation) -> Procedure:
        """This procedure with the obligation of one step added or replaced."""
        others = tuple(o for o in self.obligations if o.step_key != obligation.step_key)
        return replace(self, obligations=(*others, obligation))

    def with_record(self, record: StepRecord) -> Procedure:
        """This procedure with one step's record replaced."""
        steps = tuple(record if r.key == record.key else r for r in self.steps)
        return replace(self, steps=steps)

    def prior_of(self, number: str) -> Prior | None:
        """What the (first) step with this catalog number found before it applied."""
        for planned, record in zip(self.plan.steps, self.steps, strict=True):
            if planned.number == number:
                return record.prior
        return None

    @property
    def tag(self) -> str:
        """The hash tag its Redis keys share with its incident."""
        return self.incident_id.split("-", 1)[0]


def procedure_id(incident_id: str, n: int) -> str:
    """The id of the n-th procedure of an incident: 3f9a0c1b2e-1.2."""
    return f"{incident_id}.{n}"


def parse_procedure_id(value: str) -> tuple[str, int]:
    """(incident id, n) of a procedure id; ValueError when malformed."""
    m = _PROCEDURE_ID.match(value)
    if m is None:
        raise ValueError(f"{value[:60]!r} is not a procedure id (expected e.g. 3f9a0c1b2e-1.1)")
    return m.group(1), int(m.group(2))


_JSON: TypeAdapter[Procedure] = TypeAdapter(Procedure)


def procedure_to_json(procedure: Procedure) -> bytes:
    """The procedure as JSON for storage (its version is kept by the store, not here)."""
    return _JSON.dump_json(replace(procedure, version=0))


def procedure_from_json(data: bytes | str, version: int) -> Procedure:
    """A stored procedure, with the version the store holds."""
    return replace(_JSON.validate_json(data), version=version)
