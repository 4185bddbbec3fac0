"""The conclusion of step 0: a pure function from what was read to the cause and the plan.

Root DC rule: the KB acts "on the root domain controller". We take the first reporting DC
that is a DC of the forest root domain (it holds the failing repsTo entry, so links made there
help); when no reporting DC is in the root domain, the forest root domain's PDC emulator
(fSMORoleOwner of the root domain NC head), the conventional "root DC".
"""

from __future__ import annotations

from bot.directory.model import (
    DRS_SPN_CLASS,
    Cause,
    Diagnosis,
    DsaRecord,
    ForestSnapshot,
    SourceDc,
    TargetDc,
)
from bot.dn import dns_of_nc, domain_of, nc_of_host


def conclude(snapshot: ForestSnapshot, *, dsa_guid: str) -> Diagnosis:
    """The cause, the root DC and the DCs needing repadmin /add, from a snapshot."""
    s = snapshot
    root, reason = root_dc(list(s.dsas), list(_known(s)), s.root_domain_nc, s.pdc_dsa_dn, dsa_guid)
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


def _known(s: ForestSnapshot) -> list[str]:
    """Reporting DCs the directory knows, in the order they reported (the root DC rule
    takes the first of them in the root domain, so the order must not depend on hashing)."""
    hosts = {d.dns_host_name for d in s.dsas if d.dns_host_name}
    return [h for h in s.reporting_dcs if h in hosts]


def root_dc(
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
    nc = d.domain_nc or domain_of(d.server_reference) or nc_of_host(d.dns_host_name)
    return bool(nc) and (nc or "").lower() == root_nc.lower()


def _target_view(d: DsaRecord | None, dsa_guid: str) -> TargetDc:
    if d is None:
        return TargetDc(dsa_guid, None, None, None, None, None, False, None, (), None)
    computer = d.computer
    domain_dns = dns_of_nc(d.domain_nc or domain_of(d.computer_dn) or "")
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
