"""What each simulated DC remembers: NTDS registry values, DSA options, inbound links, history."""

from __future__ import annotations

import datetime
import threading
import uuid
from dataclasses import dataclass, field, replace

NTDS_PARAMETERS_KEY = r"HKLM\SYSTEM\CurrentControlSet\Services\NTDS\Parameters"
NTDS_PARAMETERS_LONG = r"HKEY_LOCAL_MACHINE\SYSTEM\CurrentControlSet\Services\NTDS\Parameters"
DEFAULT_SITE = "Default-First-Site-Name"


def now() -> datetime.datetime:
    """The lab's clock (local time, like the DC's own output)."""
    return datetime.datetime.now().replace(microsecond=0)


@dataclass(frozen=True)
class RegistryValue:
    """One value under the NTDS Parameters key."""

    name: str
    kind: str  # REG_DWORD or REG_SZ
    data: int | str


@dataclass(frozen=True)
class InboundLink:
    """One repsFrom entry: the destination DC replicates `naming_context` from `source`."""

    naming_context: str
    source: str
    last_result: int = 0
    last_attempt: datetime.datetime | None = None
    last_success: datetime.datetime | None = None
    consecutive_failures: int = 0
    added_manually: bool = False


@dataclass
class DcState:
    """The directory and registry state of one domain controller."""

    fqdn: str
    site: str = DEFAULT_SITE
    dsa_guid: uuid.UUID = field(default_factory=uuid.uuid4)
    invocation_id: uuid.UUID = field(default_factory=uuid.uuid4)
    dsa_options: set[str] = field(default_factory=lambda: {"IS_GC"})
    registry: dict[str, RegistryValue] = field(default_factory=dict)
    inbound: list[InboundLink] = field(default_factory=list)
    kcc_runs: list[datetime.datetime] = field(default_factory=list)
    restarts: list[datetime.datetime] = field(default_factory=list)
    # KCC removes manually added links that have no connection object behind them.
    kcc_prunes_manual_links: bool = False
    # False while the DC is down: repadmin on other DCs cannot bind to it (status 1722).
    rpc_reachable: bool = True

    @property
    def hostname(self) -> str:
        """The computer name, upper case, as Windows prints it."""
        return self.fqdn.split(".", 1)[0].upper()

    def registry_value(self, name: str) -> RegistryValue | None:
        """The NTDS Parameters value with this name (case-insensitive), if present."""
        return self.registry.get(name.lower())

    def set_registry_value(self, value: RegistryValue) -> None:
        """Create or overwrite a value."""
        self.registry[value.name.lower()] = value

    def delete_registry_value(self, name: str) -> bool:
        """Delete a value; False when it was absent."""
        return self.registry.pop(name.lower(), None) is not None

    def link(self, naming_context: str, source: str) -> InboundLink | None:
        """The inbound link for this NC from this source DC, if any."""
        for link in self.inbound:
            if link.naming_context.lower() == naming_context.lower() and link.source == source:
                return link
        return None

    def replace_link(self, old: InboundLink, new: InboundLink) -> None:
        """Swap one link for its updated copy."""
        self.inbound[self.inbound.index(old)] = new


@dataclass
class CommandRecord:
    """One command a client ran on a DC (for test assertions and the lab's console)."""

    dc: str
    user: str
    command_line: str
    started_at: datetime.datetime
    finished_at: datetime.datetime | None = None
    exit_code: int | None = None
    outcome: str = "running"  # running, exited, terminated, dropped


class Forest:
    """Every simulated DC of one forest, behind one lock shared by the simulator and tests."""

    def __init__(self, name: str) -> None:
        self.name = name.lower()
        self.lock = threading.RLock()
        self.dcs: dict[str, DcState] = {}
        self.command_log: list[CommandRecord] = []

    @property
    def domain_dn(self) -> str:
        """The forest root domain's DN."""
        return ",".join(f"DC={label}" for label in self.name.split("."))

    @property
    def configuration_dn(self) -> str:
        """The configuration NC."""
        return f"CN=Configuration,{self.domain_dn}"

    @property
    def schema_dn(self) -> str:
        """The schema NC."""
        return f"CN=Schema,{self.configuration_dn}"

    def naming_contexts(self) -> list[str]:
        """The NCs every DC of this single-domain forest holds, in showrepl order."""
        return [self.domain_dn, self.configuration_dn, self.schema_dn]

    def add_dc(self, fqdn: str, *, site: str = DEFAULT_SITE) -> DcState:
        """Register a DC (no links yet)."""
        with self.lock:
            state = DcState(fqdn=fqdn.lower(), site=site)
            self.dcs[state.fqdn] = state
            return state

    def dc(self, fqdn: str) -> DcState | None:
        """A DC by FQDN or by its short computer name (case-insensitive), as repadmin resolves."""
        key = fqdn.lower().rstrip(".")
        found = self.dcs.get(key)
        if found is not None:
            return found
        return next((d for d in self.dcs.values() if d.fqdn.split(".", 1)[0] == key), None)

    def connect_all(self, *, except_pairs: frozenset[tuple[str, str]] = frozenset()) -> None:
        """Give every DC an inbound link from every other DC for every NC, except (dest, source)."""
        stamp = now()
        with self.lock:
            for dest in self.dcs.values():
                for source in self.dcs.values():
                    if source is dest or (dest.fqdn, source.fqdn) in except_pairs:
                        continue
                    for nc in self.naming_contexts():
                        if dest.link(nc, source.fqdn) is None:
                            dest.inbound.append(
                                InboundLink(nc, source.fqdn, 0, stamp, stamp, 0, False)
                            )

    def record(self, record: CommandRecord) -> CommandRecord:
        """Append to the command log."""
        with self.lock:
            self.command_log.append(record)
            return record

    def commands_on(self, fqdn: str) -> list[CommandRecord]:
        """Copies of the log entries for one DC, oldest first."""
        with self.lock:
            return [replace(r) for r in self.command_log if r.dc == fqdn.lower()]
