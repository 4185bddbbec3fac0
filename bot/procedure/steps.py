"""The KB938704 procedure as a catalog of steps: what each is, where it runs, how risky it is.

DESIGN.md section 1 is the source; KB938704 (../shared/seeds) is the authority. Step 3b is
beyond the KB: it restores the lost serverReference, the root cause error 8589 names.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class StepKind(StrEnum):
    """How much a step can hurt, which decides the approvals it needs."""

    READ = "read"  # only reads
    SAFE = "safe"  # changes nothing an admin must undo (repadmin /kcc)
    CHANGE = "change"  # a lasting change with an undo
    TEMPORARY = "temporary"  # weakens or bypasses normal behaviour until undone
    DISRUPTIVE = "disruptive"  # takes a DC away (restart)
    CLEANUP = "cleanup"  # undoes a temporary step


class Target(StrEnum):
    """Where a step runs."""

    EACH_REPORTING_DC = "each reporting DC"
    ROOT_DC = "root DC"
    EACH_ROOT_DOMAIN_DC = "each root-domain DC"
    EACH_MISSING_SOURCE = "root DC, once per missing source DC"
    LDAP = "LDAP"
    ALL_DCS = "all DCs"


@dataclass(frozen=True)
class StepSpec:
    """One step of the catalog."""

    number: str
    title: str
    kind: StepKind
    target: Target
    why: str


CATALOG: tuple[StepSpec, ...] = (
    StepSpec(
        "0",
        "Diagnose",
        StepKind.READ,
        Target.LDAP,
        "Read the forest over LDAP: why the SPN cannot be built, the root DC, the DCs "
        "missing from the root DC's NTDS Settings.",
    ),
    StepSpec(
        "1",
        "Shorten RepsTo failure time",
        StepKind.CHANGE,
        Target.EACH_REPORTING_DC,
        "KB938704: set 'RepsTo Failure Time (sec)' to 60 so the KCC drops the unreachable "
        "DC from the outgoing change notifications sooner.",
    ),
    StepSpec(
        "2",
        "Recalculate topology",
        StepKind.SAFE,
        Target.EACH_REPORTING_DC,
        "KB938704: repadmin /kcc removes the unavailable DC from the notification list and "
        "recalculates the topology.",
    ),
    StepSpec(
        "3",
        "Find DCs missing from the root DC's NTDS Settings",
        StepKind.READ,
        Target.LDAP,
        "KB938704: compare the root DC's connection objects with every DC; each DC without "
        "one needs a replication link (step 7).",
    ),
    StepSpec(
        "3b",
        "Restore serverReference",
        StepKind.CHANGE,
        Target.LDAP,
        "Beyond the KB, the root cause: the DC's computer object is alive, only its server "
        "object's serverReference was lost. Restoring it lets the SPN be built again.",
    ),
    StepSpec(
        "4",
        "Allow SPN fallback (temporary)",
        StepKind.TEMPORARY,
        Target.ROOT_DC,
        "KB938704: 'Replicator Allow SPN Fallback' = 1 lets replication fall back to one-way "
        "authentication. It weakens authentication until step 10 removes it.",
    ),
    StepSpec(
        "5",
        "Restart the root DC",
        StepKind.DISRUPTIVE,
        Target.ROOT_DC,
        "KB938704: the SPN fallback takes effect after a restart. The DC is unavailable "
        "until it is back (WinRM and LDAP answer again).",
    ),
    StepSpec(
        "6",
        "Disable connection translation (temporary)",
        StepKind.TEMPORARY,
        Target.ROOT_DC,
        "KB938704: repadmin /options +DISABLE_NTDSCONN_XLATE, so the links added next are not "
        "translated away; step 9 re-enables it.",
    ),
    StepSpec(
        "7",
        "Add a replication link",
        StepKind.CHANGE,
        Target.EACH_MISSING_SOURCE,
        "KB938704: repadmin /add of the configuration NC on the root DC from each DC missing "
        "from its NTDS Settings. The KCC may later replace these links with its own.",
    ),
    StepSpec(
        "8",
        "Verify inbound links",
        StepKind.READ,
        Target.ROOT_DC,
        "KB938704: repadmin /showrepl on the root DC must show a successful inbound link for "
        "the configuration NC from each source added in step 7.",
    ),
    StepSpec(
        "9",
        "Re-enable connection translation",
        StepKind.CLEANUP,
        Target.ROOT_DC,
        "KB938704: undo step 6 (repadmin /options -DISABLE_NTDSCONN_XLATE).",
    ),
    StepSpec(
        "10",
        "Remove SPN fallback",
        StepKind.CLEANUP,
        Target.ROOT_DC,
        "KB938704: undo step 4 (delete 'Replicator Allow SPN Fallback').",
    ),
    StepSpec(
        "11",
        "Check replication topology",
        StepKind.SAFE,
        Target.EACH_ROOT_DOMAIN_DC,
        "KB938704: run the KCC (Check Replication Topology) on every DC of the root domain.",
    ),
    StepSpec(
        "12",
        "Final verification",
        StepKind.READ,
        Target.ALL_DCS,
        "KB938704: repadmin /showrepl and /replsummary must be clean, and a fresh diagnosis "
        "must no longer reproduce the problem.",
    ),
)

# Offered after Abort: puts back what an applied step changed, from the value found before it.
UNDO = StepSpec(
    "undo",
    "Undo",
    StepKind.CLEANUP,
    Target.ROOT_DC,
    "Abort offers the undo of every applied change and temporary step, newest first: it puts "
    "back the value the step found before it changed anything (absent values are deleted).",
)

SPECS: dict[str, StepSpec] = {s.number: s for s in (*CATALOG, UNDO)}

# Steps whose apply weakens the DC until a cleanup step undoes it: (temporary, cleanup).
TEMPORARY_UNDONE_BY: dict[str, str] = {"4": "10", "6": "9"}
