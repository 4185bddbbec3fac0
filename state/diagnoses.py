"""Diagnosis requests and results: one pending diagnosis per incident, results kept as data."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from enum import IntEnum

import redis.asyncio

from state.audit import AUDIT_MAXLEN
from state.codec import text
from state.durability import until_durable
from state.keys import GLOBAL_AUDIT, JOBS_GROUP, JOBS_STREAM, IncidentKeys, parse_incident_id
from state.scripts import LuaScripts

DIAGNOSIS_TTL_SECONDS = 7 * 86_400


class DiagnosisRequest(IntEnum):
    """What asking for a diagnosis did."""

    QUEUED = 1
    ALREADY_PENDING = 0
    NO_OPEN_INCIDENT = -1


@dataclass(frozen=True)
class StoredDiagnosis:
    """A diagnosis result as stored: the domain's JSON and when it was made."""

    incident_id: str
    made_at_ms: int
    data: bytes


class DiagnosisStore:
    """Requests (one script: pending flag, job, audit) and results of diagnoses."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self.client = client
        self.scripts = LuaScripts(client)

    async def request(
        self, incident_id: str, user_id: str, *, pending_seconds: float, then: str = ""
    ) -> tuple[DiagnosisRequest, str]:
        """Queue a diagnosis job unless one is pending; returns the outcome and the job id.

        `then="start"` asks the worker to start the procedure from the result.
        """
        tag, _ = parse_incident_id(incident_id)
        keys = IncidentKeys(tag)
        job_id = uuid.uuid4().hex
        res = await self.scripts(
            "request_diagnosis",
            [keys.incident, keys.diagnosis_pending, keys.audit, JOBS_STREAM, GLOBAL_AUDIT],
            [
                incident_id,
                user_id,
                int(time.time() * 1000),
                max(1, int(pending_seconds * 1000)),
                job_id,
                AUDIT_MAXLEN,
                then,
            ],
        )
        return DiagnosisRequest(int(res)), job_id

    async def finish(
        self,
        incident_id: str,
        job_id: str,
        *,
        user_id: str,
        outcome: str,
        result: bytes | None,
        detail: str = "",
        stream_id: str = "",
    ) -> bool:
        """Record a diagnosis job's end (`done` with its result, or `failed`) and ack its stream
        entry, atomically. False when this job had already finished: say nothing again."""
        tag, _ = parse_incident_id(incident_id)
        keys = IncidentKeys(tag)
        now = int(time.time() * 1000)
        payload = b"" if result is None else str(now).encode() + b"\n" + result
        # One token per finish: a retry through a failover is recognized as the same finish.
        token = uuid.uuid4().hex
        first = await until_durable(
            lambda: self.scripts(
                "finish_diagnosis",
                [
                    keys.diagnosis_pending,
                    keys.diagnosis,
                    keys.audit,
                    GLOBAL_AUDIT,
                    keys.job_done(job_id),
                    JOBS_STREAM,
                ],
                [
                    incident_id,
                    job_id,
                    now,
                    outcome,
                    payload,
                    DIAGNOSIS_TTL_SECONDS * 1000,
                    AUDIT_MAXLEN,
                    user_id,
                    detail,
                    JOBS_GROUP,
                    stream_id,
                    token,
                ],
            ),
            what=f"finish of diagnosis job {job_id}",
        )
        return int(first) == 1

    async def latest(self, incident_id: str) -> StoredDiagnosis | None:
        """The last successful diagnosis of this incident's problem, or None."""
        tag, _ = parse_incident_id(incident_id)
        raw = await self.client.get(IncidentKeys(tag).diagnosis)
        if not raw:
            return None
        blob = raw if isinstance(raw, bytes) else str(raw).encode()
        stamp, _, data = blob.partition(b"\n")
        return StoredDiagnosis(incident_id, int(text(stamp) or 0), data)

    async def pending_job(self, incident_id: str) -> str | None:
        """The job id of the pending diagnosis, if one is pending."""
        tag, _ = parse_incident_id(incident_id)
        raw = await self.client.get(IncidentKeys(tag).diagnosis_pending)
        return text(raw) if raw else None
