"""Procedure transitions: decide with the pure rules, commit with one compare-and-set script.

A click (or a worker report) reads the procedure, asks `bot.procedure.rules.decide`, and
commits the result only if the version did not move; on a race the script hands back the
current state and the decision is made again. A request token makes a Slack retry a no-op.
In the steady state that is one Redis round trip per transition: the last state this
process committed or saw is kept, and the script checks it is still current.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, replace

from bot.procedure.approval import Actor, Refusal
from bot.procedure.model import Procedure, procedure_from_json, procedure_to_json
from bot.procedure.plan import Plan
from bot.procedure.rules import AuditEvent, Change, Context, Intent, QueuedJob, decide, start
from state.procedures import AuditEntry, CommitOutcome, ProcedureStore, StoredProcedure

log = logging.getLogger(__name__)
MAX_RACES = 20
CACHE_SIZE = 256


@dataclass(frozen=True)
class Acted:
    """The transition was committed."""

    procedure: Procedure
    change: Change


@dataclass(frozen=True)
class Refused:
    """The rules refused it (audited, unless this very request was seen before)."""

    refusal: Refusal
    procedure: Procedure | None = None


@dataclass(frozen=True)
class Repeated:
    """This request token was already handled: nothing new happened."""


@dataclass(frozen=True)
class Busy:
    """Another procedure of this incident is active."""

    procedure_id: str


Outcome = Acted | Refused | Repeated | Busy


def _entries(events: tuple[AuditEvent, ...]) -> list[AuditEntry]:
    return [AuditEntry(e.event, e.fields) for e in events]


def _job_fields(proc: Procedure, job: QueuedJob) -> dict[str, str]:
    return {
        "job_id": job.job_id,
        "kind": "step",
        "incident": proc.incident_id,
        "requested_by": job.requested_by,
        "enqueued_at_ms": str(int(time.time() * 1000)),
        "procedure": proc.id,
        "step": job.step_key,
        "attempt": str(job.attempt),
    }


def refusal_entry(
    incident_id: str, procedure_id: str, intent: Intent, actor: Actor, refusal: Refusal
) -> AuditEntry:
    """The audit record of a refused request."""
    return AuditEntry(
        "refused",
        {
            "procedure": procedure_id,
            "incident": incident_id,
            "user": actor.user_id,
            "act": intent.act.value,
            "step": intent.step_key or "",
            "code": refusal.code,
            "reason": refusal.reason[:300],
            # A worker acts for the person who queued the step: its refusals are its own.
            **({"worker": actor.worker} if actor.worker else {}),
        },
    )


class ProcedureEngine:
    """Transitions of procedures through one store, with a small cache of the last state."""

    def __init__(
        self, store: ProcedureStore, ttl_seconds: int, obligation_seconds: int = 3600
    ) -> None:
        self.store = store
        self.ttl_seconds = ttl_seconds
        self.obligation_seconds = obligation_seconds
        # The last state seen of each procedure, stored and parsed (parsing costs ~0.1 ms).
        self._cache: OrderedDict[str, tuple[StoredProcedure, Procedure | None]] = OrderedDict()
        self.round_trips = 0

    def _remember(self, stored: StoredProcedure, parsed: Procedure | None = None) -> None:
        self._cache[stored.id] = (stored, parsed)
        self._cache.move_to_end(stored.id)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)

    def _parsed(self, stored: StoredProcedure) -> Procedure:
        """The procedure of a stored state, parsed once per version."""
        cached = self._cache.get(stored.id)
        if cached is not None and cached[0] is stored and cached[1] is not None:
            return cached[1]
        proc = procedure_from_json(stored.data, stored.version)
        if cached is not None and cached[0] is stored:
            self._cache[stored.id] = (stored, proc)
        return proc

    async def load(self, procedure_id: str) -> StoredProcedure | None:
        """The stored procedure, fresh from Redis (and remembered)."""
        self.round_trips += 1
        stored = await self.store.load(procedure_id)
        if stored is not None:
            self._remember(stored)
        return stored

    async def known(self, procedure_id: str) -> tuple[StoredProcedure | None, bool]:
        """The last state seen of a procedure without a round trip when there is one, else
        read; and whether it was read just now (fresh)."""
        cached = self._cache.get(procedure_id)
        if cached is not None:
            return cached[0], False
        return await self.load(procedure_id), True

    def parsed(self, stored: StoredProcedure) -> Procedure:
        """The procedure of a stored state (parsed once per version)."""
        return self._parsed(stored)

    async def procedure(self, procedure_id: str) -> Procedure | None:
        """The procedure, fresh from Redis."""
        stored = await self.load(procedure_id)
        return None if stored is None else self._parsed(stored)

    async def act(
        self,
        procedure_id: str,
        intent: Intent,
        actor: Actor,
        *,
        once: str | None = None,
        incident_id: str = "",
    ) -> Outcome:
        """Decide and commit one intent; retried on races, refused with a reason otherwise."""
        cached = self._cache.get(procedure_id)
        fresh = cached is None
        stored = cached[0] if cached is not None else await self.load(procedure_id)
        if stored is None:
            refusal = Refusal("unknown_procedure", f"There is no procedure `{procedure_id[:60]}`.")
            if incident_id:
                await self.store.note(
                    incident_id,
                    [refusal_entry(incident_id, procedure_id, intent, actor, refusal)],
                    once=once,
                )
            return Refused(refusal)
        for _ in range(MAX_RACES):
            proc = self._parsed(stored)
            ctx = Context(
                int(time.time() * 1000),
                self.ttl_seconds,
                uuid.uuid4().hex,
                obligation_seconds=self.obligation_seconds,
            )
            decision = decide(proc, intent, actor, ctx)
            if isinstance(decision, Refusal) and not fresh:
                # A refusal commits nothing the script could check: decide on fresh state.
                reloaded = await self.load(procedure_id)
                if reloaded is None:
                    break
                stored, fresh = reloaded, True
                continue
            if isinstance(decision, Refusal):
                self.round_trips += 1
                written = await self.store.note(
                    proc.incident_id,
                    [refusal_entry(proc.incident_id, proc.id, intent, actor, decision)],
                    once=once,
                )
                return Refused(decision, proc) if written else Repeated()
            self.round_trips += 1
            data = procedure_to_json(decision.procedure)
            result = await self.store.commit(
                proc.id,
                expected_version=stored.version,
                data=data,
                status=decision.procedure.status.value,
                audit=_entries(decision.events),
                job=_job_fields(decision.procedure, decision.job) if decision.job else None,
                once=once,
            )
            if result.outcome is CommitOutcome.OK:
                committed = StoredProcedure(
                    proc.id, result.version, data, stored.channel, stored.ts
                )
                after = replace(decision.procedure, version=result.version)
                self._remember(committed, after)
                return Acted(after, decision)
            if result.outcome is CommitOutcome.DUPLICATE:
                return Repeated()
            # Someone else moved it first: decide again on what they left.
            current = result.current or await self.load(procedure_id)
            if current is None:
                break
            stored = StoredProcedure(
                current.id, current.version, current.data, stored.channel, stored.ts
            )
            self._remember(stored)
            fresh = True
        raise RuntimeError(f"procedure {procedure_id}: still racing after {MAX_RACES} tries")

    async def start(
        self,
        *,
        incident_id: str,
        plan: Plan,
        actor: Actor,
        diagnosis_at_ms: int,
        diagnosis_summary: str,
        once: str | None = None,
    ) -> Outcome:
        """Start a procedure for an incident unless one is active."""
        current = await self.store.current_id(incident_id)
        if current is not None:
            return Busy(current)
        procedure_id = await self.store.next_id(incident_id)
        decision = start(
            procedure_id=procedure_id,
            incident_id=incident_id,
            plan=plan,
            actor=actor,
            now_ms=int(time.time() * 1000),
            diagnosis_at_ms=diagnosis_at_ms,
            diagnosis_summary=diagnosis_summary,
        )
        if isinstance(decision, Refusal):
            return Refused(decision)
        data = procedure_to_json(decision.procedure)
        result = await self.store.commit(
            procedure_id,
            expected_version=0,
            data=data,
            status=decision.procedure.status.value,
            audit=_entries(decision.events),
            once=once,
            start=True,
        )
        if result.outcome is CommitOutcome.BUSY:
            return Busy(result.busy_with)
        if result.outcome is CommitOutcome.DUPLICATE:
            return Repeated()
        if result.outcome is not CommitOutcome.OK:
            raise RuntimeError(f"procedure {procedure_id}: start found version {result.version}")
        stored = StoredProcedure(procedure_id, result.version, data)
        after = replace(decision.procedure, version=result.version)
        self._remember(stored, after)
        return Acted(after, decision)
