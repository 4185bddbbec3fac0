"""What the worker read from a DC or the directory, reduced to what the rules need (pure data)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RegistryReading:
    """`reg query` of one value: absent, or its type and data."""

    present: bool
    kind: str | None = None
    data: int | str | None = None


@dataclass(frozen=True)
class WriteReading:
    """A write (reg add/delete, an LDAP modify) that reported success."""

    what: str


@dataclass(frozen=True)
class OptionsReading:
    """`repadmin /options DC`: the DSA options in force."""

    options: frozenset[str]


@dataclass(frozen=True)
class KccReading:
    """`repadmin /kcc` reported a successful consistency check."""

    dc: str


@dataclass(frozen=True)
class AddLinkReading:
    """`repadmin /add`: "added" or "already_exists"."""

    outcome: str


@dataclass(frozen=True)
class Neighbor:
    """One inbound link as /showrepl shows it (source is the DC's host name, lower case)."""

    naming_context: str
    source: str
    result: int
    failures: int


@dataclass(frozen=True)
class ShowReplReading:
    """`repadmin /showrepl DC`: its inbound links."""

    dc: str
    neighbors: tuple[Neighbor, ...]

    def link(self, naming_context: str, source_fqdn: str) -> Neighbor | None:
        """The inbound link of this NC from this source DC, if any."""
        host = source_fqdn.split(".", 1)[0].lower()
        for n in self.neighbors:
            if n.naming_context.lower() == naming_context.lower() and n.source == host:
                return n
        return None


@dataclass(frozen=True)
class ReplSummaryReading:
    """`repadmin /replsummary`: healthy or not, and what is wrong."""

    healthy: bool
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServerReferenceReading:
    """The serverReference of a server object (None: absent)."""

    value: str | None


@dataclass(frozen=True)
class DiagnosisReading:
    """A fresh diagnosis, as far as the steps care."""

    resolved: bool
    cause: str
    missing: tuple[str, ...]
    summary: str


@dataclass(frozen=True)
class RestartReading:
    """A restart that completed: the DC went down and came back (WinRM and LDAP)."""

    seconds: float


Reading = (
    RegistryReading
    | WriteReading
    | OptionsReading
    | KccReading
    | AddLinkReading
    | ShowReplReading
    | ReplSummaryReading
    | ServerReferenceReading
    | DiagnosisReading
    | RestartReading
)
