"""Redis key names. Per-incident keys share a hash tag so one script may touch them on Cluster."""

from __future__ import annotations

import hashlib
import re

PREFIX = "ad1411"
_INCIDENT_ID = re.compile(r"^([0-9a-f]{10})-([1-9][0-9]{0,9})$")
_FLOOD_ID = re.compile(r"^flood-([0-9]{1,12})$")


def incident_tag(forest: str, dsa_guid: str) -> str:
    """Stable short tag of a (forest, target DSA GUID) problem."""
    return hashlib.sha256(f"{forest}|{dsa_guid}".encode()).hexdigest()[:10]


def parse_incident_id(incident_id: str) -> tuple[str, int]:
    """(tag, sequence) of an incident id such as 3f9a0c1b2e-1; ValueError when malformed."""
    m = _INCIDENT_ID.match(incident_id.strip().lower())
    if m is None:
        raise ValueError(
            f"{incident_id[:40]!r} is not an incident id; expected the form 3f9a0c1b2e-1 "
            "(see /ad1411 list)"
        )
    return m.group(1), int(m.group(2))


def flood_id(minute: int) -> str:
    """The id of the alert flood of one minute (Unix minutes)."""
    return f"flood-{minute}"


def parse_flood_id(value: str) -> int | None:
    """The minute of a flood id, or None when value is not one."""
    m = _FLOOD_ID.match(value)
    return int(m.group(1)) if m else None


class FloodKeys:
    """Keys of one minute's alert flood: a hash like an incident's, and its listed items."""

    def __init__(self, minute: int) -> None:
        self.id = flood_id(minute)
        self.record = f"{PREFIX}:{self.id}"
        self.items = f"{PREFIX}:{self.id}:items"


def new_incidents_key(minute: int) -> str:
    """Counter of incidents opened in one minute, by all replicas."""
    return f"{PREFIX}:new-incidents:{minute}"


def outbox_claim(member: str) -> str:
    """Who is delivering this outbox member now (a lease)."""
    return f"{PREFIX}:outbox-claim:{member}"


class IncidentKeys:
    """Keys of one problem's incidents (current and archived)."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        base = f"{PREFIX}:{{{tag}}}"
        self.incident = f"{base}:incident"
        self.reporters = f"{base}:reporters"
        self.audit = f"{base}:audit"
        self.seq = f"{base}:seq"
        self.diagnosis = f"{base}:diagnosis"
        self.diagnosis_pending = f"{base}:diagnosis-pending"
        self.procedure = f"{base}:proc-current"

    def job_done(self, job_id: str) -> str:
        """Marker that a job of this problem has finished (exactly one finish per job)."""
        return f"{PREFIX}:{{{self.tag}}}:job-done:{job_id}"

    def archived(self, seq: int) -> tuple[str, str]:
        """Incident and reporters keys of a closed incident."""
        return f"{self.incident}:{seq}", f"{self.reporters}:{seq}"


OPEN_INCIDENTS = f"{PREFIX}:open-incidents"
GLOBAL_AUDIT = f"{PREFIX}:audit"
JOBS_STREAM = f"{PREFIX}:jobs"
JOBS_GROUP = "workers"
WORKERS = f"{PREFIX}:workers"
ACTIVE_PROCEDURES = f"{PREFIX}:procedures:active"
# channel:ts of each incident message -> incident id (a reply in a thread finds its incident).
INCIDENT_THREADS = f"{PREFIX}:incident-threads"


def thread_field(channel: str, thread_ts: str) -> str:
    """The INCIDENT_THREADS field of the thread of message `thread_ts` in `channel`."""
    return f"{channel}:{thread_ts}"


# Messages Slack must still get (incident or flood ids), scored by when they are due (ms).
OUTBOX = f"{PREFIX}:slack-outbox"
READY_PROBE = f"{PREFIX}:readyz-probe"
