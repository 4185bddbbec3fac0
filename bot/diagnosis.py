"""Step 0: why does a reporting DC fail to build the SPN of a target DSA (event 1411, KB938704)?

Gathering (LDAP, a fixed number of queries whatever the forest size) is kept apart from the
conclusion (a pure function of what was read), so the rules are testable without a forest.

Root DC rule: the KB acts "on the root domain controller". We take the first reporting DC
that is a DC of the forest root domain (it holds the failing repsTo entry, so links made there
help); when no reporting DC is in the root domain, the forest root domain's PDC emulator
(fSMORoleOwner of the root domain NC head), the conventional "root DC".
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from bot.directory import DirectoryClient, DirectoryEntry, escape, guid_filter_value
from bot.errors import AlertRejected, DirectoryError
from bot.reps import RepsFromTo, decode_all

DRS_SPN_CLASS = "E3514235-4B06-11D1-AB04-00C04FC2DCD2"
SERVER_TRUST_ACCOUNT = 0x2000
PARTIAL_SECRETS_ACCOUNT = 0x4000000
_BIT_AND = "1.2.840.113556.1.4.803"
_DSA_ATTRS = ["objectGUID", "objectCategory", "msDS-hasDomainNCs", "hasMasterNCs", "options"]
_COMPUTER_ATTRS = [
    "dNSHostName",
    "sAMAccountName",
    "userAccountControl",
    "servicePrincipalName",
    "serverReferenceBL",
]


class Cause(StrEnum):
    """Why 1411 is logged, following KB938704's cause list (plus the root cause 8589 names)."""

    SERVER_REFERENCE_MISSING = "server_reference_missing"
    DC_REMOVED = "dc_removed"
    DC_ORPHANED = "dc_orphaned"
    MISSING_SPNS = "missing_spns"
    NO_CONNECTION_OBJECT = "no_connection_object"
    NOT_REPRODUCED = "not_reproduced"


_CAUSE_TEXT: dict[Cause, str] = {
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

    def summary_text(self) -> str:
        """A short text for the incident channel: what is wrong, why, what next."""
        t = self.target
        who = t.dns_host_name or f"DSA {t.dsa_guid}"
        lines = [
            f"*{self.cause.value.replace('_', ' ').upper()}*: {who} — {_CAUSE_TEXT[self.cause]}."
        ]
        if t.server_dn:
            lines.append(f"Server object: {t.server_dn}")
        if t.computer_dn:
            spn = "DRS SPN present" if t.has_drs_spn else "DRS SPN MISSING"
            lines.append(f"Computer object: {t.computer_dn} ({spn})")
        elif t.computer_checked:
            lines.append("Computer object: not found")
        failing = [
            x for x in self.links if x.link.consecutive_failures or x.link.result_last_attempt
        ]
        for seen in failing[:5]:
            lk = seen.link
            last = lk.last_success.isoformat() if lk.last_success else "never"
            lines.append(
                f"{seen.read_on} {seen.attribute} for {seen.partner} on {seen.naming_context}: "
                f"{lk.consecutive_failures} consecutive failure(s), last result "
                f"{win32_error_text(lk.result_last_attempt)}, last success {last}"
            )
        if len(self.links) > len(failing[:5]):
            quiet = len(self.links) - len(failing[:5])
            lines.append(f"{quiet} other repsFrom/repsTo entr(ies) between them show no failure.")
        lines.append(f"Root DC: {self.root_dc or 'unknown'} ({self.root_dc_reason})")
        lines.append("Next: " + self.recommendation())
        if self.missing_links:
            names = ", ".join(s.fqdn for s in self.missing_links[:10])
            more = len(self.missing_links) - 10
            lines.append(
                f"DCs with no connection on the root DC (repadmin /add candidates): {names}"
                + (f" and {more} more" if more > 0 else "")
            )
        if self.dead_dcs:
            lines.append(
                f"{len(self.dead_dcs)} server object(s) have no live computer object; they are "
                "left out of repadmin /add and need metadata clean-up."
            )
        lines.extend(f"Note: {n}" for n in self.notes)
        lines.append(f"({self.queries} LDAP queries, {self.dsa_count} DCs in the forest)")
        return "\n".join(lines)

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


_WIN32_ERRORS = {
    0: "success",
    1722: "RPC server unavailable",
    8453: "replication access denied",
    8524: "DNS lookup failure",
    8589: "cannot derive SPN: server object has no serverReference",
}


def win32_error_text(code: int) -> str:
    """`8453 (replication access denied)`; known codes get a short name."""
    name = _WIN32_ERRORS.get(code)
    return f"{code} ({name})" if name else str(code)


def diagnose(
    directory: DirectoryClient,
    *,
    forest: str,
    target_dsa_guid: str,
    reporting_dcs: Sequence[str],
) -> Diagnosis:
    """Read the forest and conclude why 1411 names `target_dsa_guid`."""
    guid = _canonical_guid(target_dsa_guid)
    start_queries, start_trips = directory.queries, directory.round_trips
    snapshot = gather(directory, forest=forest, dsa_guid=guid, reporting_dcs=reporting_dcs)
    verdict = conclude(snapshot, dsa_guid=guid)
    return _with_counts(
        verdict,
        queries=directory.queries - start_queries,
        round_trips=directory.round_trips - start_trips,
    )


def _with_counts(d: Diagnosis, *, queries: int, round_trips: int) -> Diagnosis:
    return replace(d, queries=queries, round_trips=round_trips)


def _canonical_guid(value: str) -> str:
    try:
        return str(uuid.UUID(value.strip().strip("{}")))
    except ValueError:
        raise AlertRejected(
            f"target DSA GUID {value!r} is not a GUID (expected e.g. "
            "9f3c7a52-4d1e-4b8a-a1c2-3e4f5a6b7c8d)",
            field="target_dsa_guid",
        ) from None


# -- gathering (I/O) -----------------------------------------------------------------------


def _has_class(entry: DirectoryEntry, name: str) -> bool:
    return name in {c.lower() for c in entry.texts("objectClass")}


def gather(
    directory: DirectoryClient,
    *,
    forest: str,
    dsa_guid: str,
    reporting_dcs: Sequence[str],
) -> ForestSnapshot:
    """Read what the conclusion needs; the number of queries does not grow with the DC count."""
    notes: list[str] = []
    dse = directory.root_dse()
    config_nc = dse.text("configurationNamingContext") or ""
    root_nc = dse.text("rootDomainNamingContext") or ""
    sites = f"CN=Sites,{config_nc}"

    # The alert's DSA by objectGUID (one indexed lookup), then every DSA and server at once.
    by_guid = directory.search(
        sites, f"(&(objectClass=nTDSDSA)(objectGUID={guid_filter_value(dsa_guid)}))", _DSA_ATTRS
    )
    # Servers and their NTDS Settings in one paged read: the forest is read once, not twice.
    site_entries = directory.search(
        sites,
        "(|(objectClass=nTDSDSA)(objectClass=server))",
        [*_DSA_ATTRS, "objectClass", "cn", "dNSHostName", "serverReference"],
    )
    dsa_entries = [e for e in site_entries if _has_class(e, "ntdsdsa")]
    servers = {e.dn.lower(): e for e in site_entries if _has_class(e, "server")}
    dsas = [_dsa_record(e, servers) for e in dsa_entries]
    known_dns = {d.ntds_settings_dn.lower() for d in dsas}
    dsas.extend(_dsa_record(e, servers) for e in by_guid if e.dn.lower() not in known_dns)
    target = next((d for d in dsas if d.dsa_guid == dsa_guid), None)

    dsas = _attach_computers(directory, dsas, target, root_nc, notes)
    target = next((d for d in dsas if d.dsa_guid == dsa_guid), None)

    pdc = directory.search(root_nc, "(objectClass=*)", ["fSMORoleOwner"], scope="base")
    pdc_dsa_dn = pdc[0].text("fSMORoleOwner") if pdc else None

    by_host = {d.dns_host_name: d for d in dsas if d.dns_host_name}
    known_reporting = [h.lower() for h in reporting_dcs if h.lower() in by_host]
    links: list[ReplicaLinkSeen] = []
    if target is not None:
        for host in known_reporting:
            links.extend(_links_on(directory, host, {dsa_guid: target.label}, notes))
    # The other direction: what the target records about the reporting DCs.
    if target is not None and target.dns_host_name and target.dns_host_name not in known_reporting:
        partners = {by_host[h].dsa_guid: h for h in known_reporting}
        if partners:
            links.extend(_links_on(directory, target.dns_host_name, partners, notes))

    root = _root_dc(dsas, known_reporting, root_nc, pdc_dsa_dn, dsa_guid)[0]
    connections: frozenset[str] | None = None
    if root is not None:
        found = directory.search(
            root.ntds_settings_dn, "(objectClass=nTDSConnection)", ["fromServer"], scope="one"
        )
        connections = frozenset(
            (e.text("fromServer") or "").lower() for e in found if e.text("fromServer")
        )
    return ForestSnapshot(
        forest=forest.lower(),
        configuration_nc=config_nc,
        root_domain_nc=root_nc,
        dsas=tuple(dsas),
        target=target,
        pdc_dsa_dn=pdc_dsa_dn,
        reporting_dcs=tuple(h.lower() for h in reporting_dcs),
        links=tuple(links),
        root_connections_from=connections,
        notes=tuple(notes),
    )


def _dsa_record(entry: DirectoryEntry, servers: dict[str, DirectoryEntry]) -> DsaRecord:
    server_dn = _parent(entry.dn)
    server = servers.get(server_dn.lower())
    # Samba leaves msDS-hasDomainNCs unset; the domain is then the DC=... among hasMasterNCs.
    domains = entry.texts("msDS-hasDomainNCs") or [
        nc for nc in entry.texts("hasMasterNCs") if nc.lower().startswith("dc=")
    ]
    category = (entry.text("objectCategory") or "").lower()
    return DsaRecord(
        dsa_guid=entry.guid() or "",
        ntds_settings_dn=entry.dn,
        server_dn=server.dn if server else server_dn,
        server_name=(server.text("cn") if server else None) or _rdn_value(server_dn),
        dns_host_name=(server.text("dNSHostName") or "").lower() or None if server else None,
        server_reference=server.text("serverReference") if server else None,
        domain_nc=domains[0] if domains else None,
        read_only=category.startswith("cn=ntds-dsa-ro,"),
    )


def _attach_computers(
    directory: DirectoryClient,
    dsas: list[DsaRecord],
    target: DsaRecord | None,
    root_nc: str,
    notes: list[str],
) -> list[DsaRecord]:
    """One search per domain NC: every DC computer account, plus the target's by name."""
    domains: dict[str, list[DsaRecord]] = {}
    for d in dsas:
        nc = d.domain_nc or _domain_of(d.server_reference) or _nc_of_host(d.dns_host_name)
        domains.setdefault((nc or root_nc).lower(), []).append(d)
    found: dict[str, list[DirectoryEntry]] = {}
    checked: set[str] = set()
    for nc in sorted(domains):
        terms = [
            f"(userAccountControl:{_BIT_AND}:={SERVER_TRUST_ACCOUNT})",
            f"(userAccountControl:{_BIT_AND}:={PARTIAL_SECRETS_ACCOUNT})",
        ]
        if target is not None and target in domains[nc]:
            # The target's serverReference may be the very thing that is lost: find it by name.
            if target.dns_host_name:
                terms.append(f"(dNSHostName={escape(target.dns_host_name)})")
            terms.append(f"(sAMAccountName={escape(target.server_name)}$)")
            terms.append(f"(servicePrincipalName={DRS_SPN_CLASS}/{target.dsa_guid}/*)")
        query = f"(&(objectClass=computer)(|{''.join(terms)}))"
        try:
            found[nc] = directory.search(_dn_of_nc(nc, root_nc), query, _COMPUTER_ATTRS)
            checked.add(nc)
        except DirectoryError as exc:
            notes.append(f"computer objects in {nc} could not be read: {exc}")
    result: list[DsaRecord] = []
    for nc, members in domains.items():
        computers = found.get(nc, [])
        by_dn = {c.dn.lower(): c for c in computers}
        by_host = {(c.text("dNSHostName") or "").lower(): c for c in computers}
        by_sam = {(c.text("sAMAccountName") or "").lower(): c for c in computers}
        for d in members:
            computer = None
            if d.server_reference:
                computer = by_dn.get(d.server_reference.lower())
            else:
                # No reference to follow: the DC account with the server's host or account name.
                computer = (
                    by_host.get(d.dns_host_name or "")
                    or by_sam.get(f"{d.server_name.lower()}$")
                    or _by_drs_spn(computers, d.dsa_guid)
                )
            result.append(_replace_computer(d, computer, nc in checked))
    return result


def _by_drs_spn(computers: list[DirectoryEntry], dsa_guid: str) -> DirectoryEntry | None:
    prefix = f"{DRS_SPN_CLASS}/{dsa_guid}/".lower()
    for c in computers:
        if any(s.lower().startswith(prefix) for s in c.texts("servicePrincipalName")):
            return c
    return None


def _replace_computer(d: DsaRecord, computer: DirectoryEntry | None, checked: bool) -> DsaRecord:
    return replace(d, computer=computer, computer_checked=checked)


def _links_on(
    directory: DirectoryClient, host: str, partners: dict[str, str], notes: list[str]
) -> list[ReplicaLinkSeen]:
    """repsTo/repsFrom naming any of `partners` (DSA GUID -> name) on every NC head of `host`."""
    seen: list[ReplicaLinkSeen] = []
    try:
        dse = directory.root_dse(dc=host)
        for nc in dse.texts("namingContexts"):
            for head in directory.search(
                nc, "(objectClass=*)", ["repsTo", "repsFrom"], scope="base", dc=host
            ):
                for attribute in ("repsTo", "repsFrom"):
                    links, bad = decode_all(head.values(attribute))
                    notes.extend(f"{host} {attribute} on {nc}: {b}" for b in bad)
                    for lk in links:
                        partner = next((n for g, n in partners.items() if lk.names_dsa(g)), None)
                        if partner is not None:
                            seen.append(ReplicaLinkSeen(host, partner, nc, attribute, lk))
    except DirectoryError as exc:
        notes.append(f"repsTo/repsFrom on {host} could not be read: {exc}")
    return seen


# -- conclusion (pure) ---------------------------------------------------------------------


def conclude(snapshot: ForestSnapshot, *, dsa_guid: str) -> Diagnosis:
    """The cause, the root DC and the DCs needing repadmin /add, from a snapshot."""
    s = snapshot
    root, reason = _root_dc(list(s.dsas), list(_known(s)), s.root_domain_nc, s.pdc_dsa_dn, dsa_guid)
    target = _target_view(s.target, dsa_guid)
    live = [d for d in s.dsas if _alive(d)]
    dead = [d for d in s.dsas if not _alive(d) and d.computer_checked]
    missing: list[SourceDc] = []
    if root is not None and s.root_connections_from is not None:
        missing = [
            _source(d)
            for d in live
            if d is not root
            and not d.read_only
            and d.ntds_settings_dn.lower() not in s.root_connections_from
        ]
    cause = _cause(s, root)
    notes = list(s.notes)
    unknown = tuple(h for h in s.reporting_dcs if h not in _known(s))
    notes.extend(
        f"reporting DC {h} is not a DC of forest {s.forest}; its repsTo was not read"
        for h in unknown
    )
    return Diagnosis(
        forest=s.forest,
        cause=cause,
        target=target,
        root_dc=root.dns_host_name if root else None,
        root_dc_reason=reason,
        reporting_dcs=s.reporting_dcs,
        unknown_reporting_dcs=unknown,
        links=s.links,
        missing_links=tuple(sorted(missing, key=lambda m: m.fqdn)),
        dead_dcs=tuple(_source(d) for d in dead),
        configuration_nc=s.configuration_nc,
        notes=tuple(notes),
        dsa_count=len(s.dsas),
    )


def _cause(s: ForestSnapshot, root: DsaRecord | None) -> Cause:
    t = s.target
    if t is None:
        return Cause.DC_REMOVED
    if t.server_reference is None:
        if t.computer is not None or not t.computer_checked:
            return Cause.SERVER_REFERENCE_MISSING
        return Cause.DC_ORPHANED
    if t.computer is None and t.computer_checked:
        return Cause.DC_ORPHANED
    if t.computer is not None and not _view_has_drs_spn(t):
        return Cause.MISSING_SPNS
    if (
        root is not None
        and t is not root
        and s.root_connections_from is not None
        and t.ntds_settings_dn.lower() not in s.root_connections_from
    ):
        return Cause.NO_CONNECTION_OBJECT
    return Cause.NOT_REPRODUCED


def _view_has_drs_spn(d: DsaRecord) -> bool:
    return _target_view(d, d.dsa_guid).has_drs_spn


def _alive(d: DsaRecord) -> bool:
    """A DC worth linking to: its computer object exists (or could not be checked)."""
    return d.computer is not None or not d.computer_checked


def _known(s: ForestSnapshot) -> set[str]:
    hosts = {d.dns_host_name for d in s.dsas if d.dns_host_name}
    return {h for h in s.reporting_dcs if h in hosts}


def _root_dc(
    dsas: list[DsaRecord],
    reporting: list[str],
    root_nc: str,
    pdc_dsa_dn: str | None,
    target_guid: str,
) -> tuple[DsaRecord | None, str]:
    # The DC that 1411 names can never be where its own links are repaired.
    candidates = [d for d in dsas if d.dsa_guid != target_guid]
    by_host = {d.dns_host_name: d for d in candidates if d.dns_host_name}
    for host in reporting:
        d = by_host.get(host)
        if d is not None and _in_root_domain(d, root_nc):
            return d, "the reporting DC, a DC of the forest root domain"
    if pdc_dsa_dn:
        pdc = next(
            (d for d in candidates if d.ntds_settings_dn.lower() == pdc_dsa_dn.lower()), None
        )
        if pdc is not None:
            return pdc, "PDC emulator of the forest root domain"
    return None, "no reporting DC in the root domain and the PDC emulator is unknown"


def _in_root_domain(d: DsaRecord, root_nc: str) -> bool:
    nc = d.domain_nc or _domain_of(d.server_reference) or _nc_of_host(d.dns_host_name)
    return bool(nc) and (nc or "").lower() == root_nc.lower()


def _target_view(d: DsaRecord | None, dsa_guid: str) -> TargetDc:
    if d is None:
        return TargetDc(dsa_guid, None, None, None, None, None, False, None, (), None)
    computer = d.computer
    domain_dns = _dns_of_nc(d.domain_nc or _domain_of(d.computer_dn) or "")
    return TargetDc(
        dsa_guid=dsa_guid,
        ntds_settings_dn=d.ntds_settings_dn,
        server_dn=d.server_dn,
        dns_host_name=d.dns_host_name,
        server_reference=d.server_reference,
        computer_dn=d.computer_dn,
        computer_checked=d.computer_checked,
        user_account_control=computer.integer("userAccountControl") if computer else None,
        spns=tuple(computer.texts("servicePrincipalName")) if computer else (),
        expected_drs_spn=f"{DRS_SPN_CLASS}/{dsa_guid}/{domain_dns}" if domain_dns else None,
    )


def _source(d: DsaRecord) -> SourceDc:
    return SourceDc(
        fqdn=d.label,
        dsa_guid=d.dsa_guid,
        ntds_settings_dn=d.ntds_settings_dn,
        server_dn=d.server_dn,
    )


# -- DN helpers ----------------------------------------------------------------------------


def _split_dn(dn: str) -> list[str]:
    """RDNs of a DN, honouring backslash escapes."""
    parts, current, escaped = [], [], False
    for ch in dn:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            current.append(ch)
            escaped = True
        elif ch == ",":
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    if current:
        parts.append("".join(current).strip())
    return parts


def _parent(dn: str) -> str:
    return ",".join(_split_dn(dn)[1:])


def _rdn_value(dn: str) -> str:
    first = _split_dn(dn)[0] if dn else ""
    return first.partition("=")[2]


def _domain_of(dn: str | None) -> str | None:
    """The DC=... suffix of a DN (its domain NC), or None."""
    if not dn:
        return None
    rdns = _split_dn(dn)
    idx = next((i for i, r in enumerate(rdns) if r.lower().startswith("dc=")), None)
    return ",".join(rdns[idx:]) if idx is not None else None


def _nc_of_host(fqdn: str | None) -> str | None:
    if not fqdn or "." not in fqdn:
        return None
    return ",".join(f"DC={label}" for label in fqdn.split(".")[1:])


def _dns_of_nc(nc: str) -> str:
    return ".".join(r[3:] for r in _split_dn(nc) if r.lower().startswith("dc=")).lower()


def _dn_of_nc(nc_lower: str, root_nc: str) -> str:
    # Keep the server's spelling when it is the root domain; DNs compare case-insensitively.
    return root_nc if nc_lower == root_nc.lower() else nc_lower
