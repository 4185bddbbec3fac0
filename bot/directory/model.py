"""What the diagnosis (step 0) reads and concludes: plain data, no I/O, JSON round-trip.

The Slack rendering of a `Diagnosis` lives in `handlers.render.diagnosis`; the procedure
planner reads it as data (stored by `state.diagnoses`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from pydantic import TypeAdapter

from bot.directory.client import DirectoryEntry
from bot.directory.reps import RepsFromTo

DRS_SPN_CLASS = "E3514235-4B06-11D1-AB04-00C04FC2DCD2"
SERVER_TRUST_ACCOUNT = 0x2000
PARTIAL_SECRETS_ACCOUNT = 0x4000000


class Cause(StrEnum):
    """Why 1411 is logged, following KB938704's cause list (plus the root cause 8589 names)."""

    SERVER_REFERENCE_MISSING = "server_reference_missing"
    DC_REMOVED = "dc_removed"
    DC_ORPHANED = "dc_orphaned"
    MISSING_SPNS = "missing_spns"
    NO_CONNECTION_OBJECT = "no_connection_object"
    NOT_REPRODUCED = "not_reproduced"


CAUSE_TEXT: dict[Cause, str] = {
    Cause.SERVER_REFERENCE_MISSING: (
        "its server object has no serverReference (error 8589) while its computer object is alive"
    ),
    Cause.DC_REMOVED: "no NTDS Settings (nTDSDSA) object has this GUID any more: DC removed",
    Cause.DC_ORPHANED: "its NTDS Settings object remains but its computer object is gone",
    Cause.MISSING_SPNS: "its computer object lacks the replication (DRS) SPN",
    Cause.NO_CONNECTION_OBJECT: "the root DC has no connection object from it",
    Cause.NOT_REPRODUCED: "the directory looks healthy for this DC now",
}


@dataclass(frozen=True)
class DsaRecord:
    """One DC as the configuration NC describes it: NTDS Settings, server and computer."""

    dsa_guid: str
    ntds_settings_dn: str
    server_dn: str
    server_name: str
    dns_host_name: str | None
    server_reference: str | None
    domain_nc: str | None
    read_only: bool
    computer: DirectoryEntry | None = None
    computer_checked: bool = False

    @property
    def computer_dn(self) -> str | None:
        return self.computer.dn if self.computer else None

    @property
    def label(self) -> str:
        return self.dns_host_name or self.server_name


@dataclass(frozen=True)
class TargetDc:
    """What the directory says about the DC named in the alert."""

    dsa_guid: str
    ntds_settings_dn: str | None
    server_dn: str | None
    dns_host_name: str | None
    server_reference: str | None
    computer_dn: str | None
    computer_checked: bool
    user_account_control: int | None
    spns: tuple[str, ...]
    expected_drs_spn: str | None

    @property
    def server_trust_account(self) -> bool:
        return bool((self.user_account_control or 0) & SERVER_TRUST_ACCOUNT)

    @property
    def has_drs_spn(self) -> bool:
        """The DRS SPN (E3514235-.../<dsa-guid>/<domain>) is registered on the computer."""
        prefix = f"{DRS_SPN_CLASS}/{self.dsa_guid}/".lower()
        return any(s.lower().startswith(prefix) for s in self.spns)


@dataclass(frozen=True)
class ReplicaLinkSeen:
    """A repsTo/repsFrom entry read on one DC's NC head about its partner.

    On a reporting DC: its entries for the target. On the target: its entries for a reporting
    DC (Samba records inbound failures such as 8453 there, and never counts repsTo failures).
    """

    read_on: str
    partner: str
    naming_context: str
    attribute: str
    link: RepsFromTo


@dataclass(frozen=True)
class SourceDc:
    """A DC that may replicate to the root DC."""

    fqdn: str
    dsa_guid: str
    ntds_settings_dn: str
    server_dn: str


@dataclass(frozen=True)
class ForestSnapshot:
    """Everything the conclusion needs, as read from the directory."""

    forest: str
    configuration_nc: str
    root_domain_nc: str
    dsas: tuple[DsaRecord, ...]
    target: DsaRecord | None
    pdc_dsa_dn: str | None
    reporting_dcs: tuple[str, ...]
    links: tuple[ReplicaLinkSeen, ...]
    root_connections_from: frozenset[str] | None
    notes: tuple[str, ...]


@dataclass(frozen=True)
class Diagnosis:
    """The verdict of step 0 and the facts behind it."""

    forest: str
    cause: Cause
    target: TargetDc
    root_dc: str | None
    root_dc_reason: str
    reporting_dcs: tuple[str, ...]
    unknown_reporting_dcs: tuple[str, ...]
    links: tuple[ReplicaLinkSeen, ...]
    missing_links: tuple[SourceDc, ...]
    dead_dcs: tuple[SourceDc, ...]
    configuration_nc: str
    notes: tuple[str, ...] = ()
    queries: int = 0
    round_trips: int = 0
    dsa_count: int = field(default=0)

    def recommendation(self) -> str:
        """What the bot proposes next, in one sentence."""
        t = self.target
        if self.cause is Cause.SERVER_REFERENCE_MISSING:
            if t.computer_dn:
                return (
                    f"restore serverReference on {t.server_dn} to {t.computer_dn} (step 3b), "
                    "then shorten RepsTo failure time and run repadmin /kcc (steps 1-2)."
                )
            return "find the DC's computer object and restore serverReference (step 3b) by hand."
        if self.cause in (Cause.DC_REMOVED, Cause.DC_ORPHANED):
            return (
                "do NOT add replication links to this DC; clean up its metadata "
                "(ntdsutil metadata cleanup) and shorten RepsTo failure time + repadmin /kcc "
                "(steps 1-2) so the reporting DC forgets it."
            )
        if self.cause is Cause.MISSING_SPNS:
            return (
                f"register the DRS SPN {t.expected_drs_spn} on {t.computer_dn} "
                "(e.g. restart Netlogon on that DC or setspn), then steps 1-2."
            )
        if self.cause is Cause.NO_CONNECTION_OBJECT:
            return "follow KB938704 steps 1-12: add the missing replication links on the root DC."
        return (
            "nothing to repair now; run verification (step 12) and close if replication is clean."
        )


_DIAGNOSIS_JSON: TypeAdapter[Diagnosis] = TypeAdapter(Diagnosis)


def diagnosis_to_json(diagnosis: Diagnosis) -> bytes:
    """The diagnosis as JSON (for storage); `diagnosis_from_json` gives it back unchanged."""
    return _DIAGNOSIS_JSON.dump_json(diagnosis)


def diagnosis_from_json(data: bytes | str) -> Diagnosis:
    """A diagnosis stored by `diagnosis_to_json`."""
    return _DIAGNOSIS_JSON.validate_json(data)
