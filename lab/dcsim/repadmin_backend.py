"""Where repadmin's operations take effect: in memory, or on a real Samba DC.

`InMemoryRepadmin` keeps the state here; `lab/dcsim/samba_repadmin.py` maps the same
operations to `samba-tool drs kcc|options|replicate|showrepl --json` on the Samba lab, so
their effects are real and visible over LDAP.
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass, replace
from typing import Protocol

from bot.windows.repadmin import InboundNeighbor, ReplSummary, ShowRepl, SummaryRow
from bot.windows.win32 import as_signed, win32_message
from lab.dcsim.state import DEFAULT_SITE, DcState, Forest, InboundLink, now

# Win32 codes repadmin prints for the failures the simulator can produce.
ERROR_RPC_UNAVAILABLE = 1722
ERROR_DNS_LOOKUP_FAILURE = 8524
ERROR_DS_DRA_DN_EXISTS = 8441
ERROR_BAD_NAMING_CONTEXT = 8440


class RepadminError(Exception):
    """A repadmin operation failed with a Win32 status, as the DC reports it."""

    def __init__(self, code: int, message: str, *, api: str, target: str) -> None:
        self.code = code
        self.message = message
        self.api = api
        self.target = target
        super().__init__(f"{api} on {target} failed with status {code}: {message}")


@dataclass(frozen=True)
class OptionsChange:
    """DSA options before and (when a change was asked for) after."""

    before: frozenset[str]
    after: frozenset[str] | None


class RepadminBackend(Protocol):
    """The operations repadmin performs against a DC of the forest."""

    def kcc(self, dc: str) -> str:
        """Run the KCC on `dc`; the name of the DC's site (repadmin prints it first)."""
        ...

    def options(self, dc: str, change: str | None) -> OptionsChange:
        """Read the DSA options of `dc`, applying '+NAME' or '-NAME' first when given."""
        ...

    def add(self, naming_context: str, dest: str, source: str) -> None:
        """Add an inbound link on `dest` replicating `naming_context` from `source`."""
        ...

    def showrepl(self, dc: str) -> ShowRepl:
        """The inbound replication state of `dc`."""
        ...

    def replsummary(self) -> ReplSummary:
        """Replication health of every DC of the forest."""
        ...


class InMemoryRepadmin:
    """repadmin against the simulator's own Forest state."""

    def __init__(self, forest: Forest, *, local_dc: str) -> None:
        self.forest = forest
        self.local_dc = local_dc

    def _bind(self, dc: str, api: str = "DsBindWithCred") -> DcState:
        state = self.forest.dc(dc)
        if state is None or not state.rpc_reachable:
            raise RepadminError(
                ERROR_RPC_UNAVAILABLE, "The RPC server is unavailable.", api=api, target=dc
            )
        return state

    def kcc(self, dc: str) -> str:
        """Record a KCC run; prune manual links when this DC is set to do so."""
        with self.forest.lock:
            state = self._bind(dc)
            state.kcc_runs.append(now())
            if state.kcc_prunes_manual_links:
                state.inbound = [link for link in state.inbound if not link.added_manually]
            return state.site

    def options(self, dc: str, change: str | None) -> OptionsChange:
        """Read or change DSA options."""
        with self.forest.lock:
            state = self._bind(dc)
            before = frozenset(state.dsa_options)
            if change is None:
                return OptionsChange(before, None)
            name = change[1:].upper()
            if change.startswith("+"):
                state.dsa_options.add(name)
            else:
                state.dsa_options.discard(name)
            return OptionsChange(before, frozenset(state.dsa_options))

    def add(self, naming_context: str, dest: str, source: str) -> None:
        """Add a link that replicates successfully from now on (source DC must exist)."""
        with self.forest.lock:
            dest_state = self._bind(dest)
            nc = next(
                (n for n in self.forest.naming_contexts() if n.lower() == naming_context.lower()),
                None,
            )
            if nc is None:
                raise RepadminError(
                    ERROR_BAD_NAMING_CONTEXT,
                    win32_message(ERROR_BAD_NAMING_CONTEXT),
                    api="DsReplicaAdd",
                    target=dest,
                )
            source_state = self.forest.dc(source)
            if source_state is None:
                raise RepadminError(
                    ERROR_DNS_LOOKUP_FAILURE,
                    win32_message(ERROR_DNS_LOOKUP_FAILURE),
                    api="DsReplicaAdd",
                    target=dest,
                )
            if dest_state.link(nc, source_state.fqdn) is not None:
                raise RepadminError(
                    ERROR_DS_DRA_DN_EXISTS,
                    win32_message(ERROR_DS_DRA_DN_EXISTS),
                    api="DsReplicaAdd",
                    target=dest,
                )
            stamp = now()
            dest_state.inbound.append(
                InboundLink(nc, source_state.fqdn, 0, stamp, stamp, 0, added_manually=True)
            )

    def showrepl(self, dc: str) -> ShowRepl:
        """One DC's identity and inbound links, as /showrepl reports them."""
        with self.forest.lock:
            state = self._bind(dc)
            neighbors = []
            for link in state.inbound:
                source = self.forest.dc(link.source)
                neighbors.append(
                    InboundNeighbor(
                        naming_context=link.naming_context,
                        source_site=source.site if source else DEFAULT_SITE,
                        source_dc=source.hostname if source else link.source.upper(),
                        transport="RPC",
                        source_dsa_guid=source.dsa_guid if source else uuid.UUID(int=0),
                        last_attempt=link.last_attempt,
                        result=as_signed(link.last_result),
                        result_message="",
                        consecutive_failures=link.consecutive_failures,
                        last_success=link.last_success,
                    )
                )
            return ShowRepl(
                site=state.site,
                dc=state.hostname,
                dsa_options=frozenset(state.dsa_options),
                site_options=frozenset(),
                dsa_guid=state.dsa_guid,
                invocation_id=state.invocation_id,
                inbound=tuple(neighbors),
            )

    def replsummary(self) -> ReplSummary:
        """Largest delta and failures per source and per destination DC; a DC whose RPC
        endpoint does not answer is listed under the operational errors, as repadmin does."""
        stamp = now()
        with self.forest.lock:
            reachable = [d for d in self.forest.dcs.values() if d.rpc_reachable]
            errors = tuple(
                (ERROR_RPC_UNAVAILABLE, d.fqdn)
                for d in self.forest.dcs.values()
                if not d.rpc_reachable
            )
            links = [(dest, link) for dest in reachable for link in dest.inbound]
            sources = sorted(d.hostname for d in self.forest.dcs.values())
            destinations = sorted(d.hostname for d in reachable)

            def row(name: str, chosen: list[InboundLink]) -> SummaryRow:
                fails = [link for link in chosen if link.last_result]
                successes = [link.last_success for link in chosen if link.last_success]
                delta = stamp - min(successes) if successes else None
                total = len(chosen)
                return SummaryRow(
                    dsa=name,
                    largest_delta=delta,
                    fails=len(fails),
                    total=total,
                    percent=(len(fails) * 100 // total) if total else 0,
                    error=as_signed(fails[-1].last_result) if fails else None,
                    error_message=win32_message(fails[-1].last_result) if fails else "",
                )

            return ReplSummary(
                start_time=stamp,
                sources=tuple(
                    row(n, [lk for _, lk in links if lk.source.split(".")[0].upper() == n])
                    for n in sources
                ),
                destinations=tuple(
                    row(n, [lk for d, lk in links if d.hostname == n]) for n in destinations
                ),
                operational_errors=errors,
            )


def fail_link(
    forest: Forest, dest: str, source: str, code: int, at: datetime.datetime | None = None
) -> None:
    """Mark every inbound link of `dest` from `source` as failing with `code` (test set-up)."""
    stamp = at or now()
    with forest.lock:
        state = forest.dc(dest)
        if state is None:
            raise KeyError(dest)
        for link in list(state.inbound):
            if link.source == source.lower():
                state.replace_link(
                    link,
                    replace(
                        link,
                        last_result=code,
                        last_attempt=stamp,
                        consecutive_failures=link.consecutive_failures + 1,
                    ),
                )
