"""Step 0 diagnosis against the real two-DC Samba forest, plus the pure rules."""

from __future__ import annotations

import base64
import json
import subprocess
from typing import Any

import pytest

from bot.config import LdapSection
from bot.directory.client import DirectoryClient, DirectoryEntry
from bot.directory.gather import diagnose
from bot.directory.model import DRS_SPN_CLASS, Cause, DsaRecord, ForestSnapshot
from bot.directory.reps import decode_reps
from bot.directory.rules import conclude
from bot.errors import AlertRejected
from handlers.render.diagnosis import diagnosis_text
from tests.bot.directory.test_client import ldap_client

SAMBA_DECODER = r"""
import base64, json, sys
from samba.dcerpc import drsblobs
from samba.ndr import ndr_unpack
out = []
for value in json.loads(sys.stdin.read()):
    b = ndr_unpack(drsblobs.repsFromToBlob, base64.b64decode(value))
    c = b.ctr
    name = c.other_info.dns_name if b.version == 1 else c.other_info.dns_name1
    result = c.result_last_attempt  # samba's python gives WERROR as (code, name)
    result = result[0] if isinstance(result, tuple) else result
    out.append({"failures": c.consecutive_sync_failures, "result": result,
                "last_success": c.last_success // 10**7, "last_attempt": c.last_attempt // 10**7,
                "dsa": str(c.source_dsa_obj_guid), "address": name})
print(json.dumps(out))
"""


def samba_decode(values: list[bytes]) -> list[dict[str, Any]]:
    """Decode with Samba's own NDR code (system python3-samba), not bot.directory.reps."""
    out = subprocess.run(
        ["/usr/bin/python3", "-c", SAMBA_DECODER],
        input=json.dumps([base64.b64encode(v).decode() for v in values]),
        capture_output=True,
        text=True,
        check=True,
    )
    return list(json.loads(out.stdout))


def _since_1601(value: Any) -> int:
    from datetime import UTC, datetime

    if value is None:
        return 0
    return int((value - datetime(1601, 1, 1, tzinfo=UTC)).total_seconds())


def run(forest: Any, client: DirectoryClient | None = None) -> Any:
    dc1, dc2 = forest.dcs[0], forest.dcs[1]
    own = client is None
    client = client or ldap_client(forest)
    try:
        return diagnose(
            client, forest=forest.forest, target_dsa_guid=dc2.dsa_guid, reporting_dcs=[dc1.fqdn]
        )
    finally:
        if own:
            client.close()


@pytest.mark.samba
@pytest.mark.slow
def test_missing_server_reference_is_found_and_explained(healthy_forest: Any) -> None:
    forest = healthy_forest
    dc1, dc2 = forest.dcs[0], forest.dcs[1]
    forest.remove_server_reference(dc2)
    # DC2 pulls from DC1; DC1 can no longer map DC2 to an account and refuses (8453).
    pulled = forest.try_replicate(dc2, dc1, forest.configuration_dn)
    assert "8453" in pulled.output
    d = run(forest)

    assert d.cause is Cause.SERVER_REFERENCE_MISSING
    assert d.target.dsa_guid == dc2.dsa_guid
    assert d.target.server_dn.lower() == dc2.server_dn.lower()
    assert d.target.server_reference is None
    assert d.target.computer_dn.lower() == dc2.computer_dn.lower()
    assert d.target.dns_host_name == dc2.fqdn
    assert d.root_dc == dc1.fqdn
    assert d.reporting_dcs == (dc1.fqdn,)
    # The reporting DC's own entries for DC2 (Samba keeps no failure counts in repsTo) ...
    on_dc1 = [x for x in d.links if x.read_on == dc1.fqdn]
    assert on_dc1 and all(x.partner == dc2.fqdn for x in on_dc1)
    assert all(x.link.names_dsa(dc2.dsa_guid) for x in on_dc1)
    # ... and DC2's inbound link from DC1, where Samba records the refused pulls.
    inbound = [
        x
        for x in d.links
        if x.read_on == dc2.fqdn
        and x.attribute == "repsFrom"
        and x.naming_context.lower() == forest.configuration_dn.lower()
    ]
    assert len(inbound) == 1
    assert inbound[0].link.result_last_attempt == 8453
    assert inbound[0].link.consecutive_failures >= 1
    with ldap_client(forest) as client:
        raw = client.read(forest.configuration_dn, ["repsFrom"], dc=dc2.fqdn).values("repsFrom")
    theirs = [v for v in samba_decode(raw) if v["dsa"] == dc1.dsa_guid]
    assert [(v["failures"], v["result"]) for v in theirs] == [
        (inbound[0].link.consecutive_failures, 8453)
    ]
    text = diagnosis_text(d)
    assert "SERVER REFERENCE MISSING" in text
    assert dc2.fqdn in text and dc1.fqdn in text
    assert "8453 (replication access denied)" in text
    assert "step 3b" in text and dc2.computer_dn in text

    forest.restore_server_reference(dc2)
    healed = run(forest)
    assert healed.cause is Cause.NOT_REPRODUCED
    assert healed.target.server_reference.lower() == dc2.computer_dn.lower()
    assert "NOT REPRODUCED" in diagnosis_text(healed)


@pytest.mark.samba
def test_drs_spn_is_checked_on_the_real_computer_object(healthy_forest: Any) -> None:
    forest = healthy_forest
    dc2 = forest.dcs[1]
    d = run(forest)
    assert d.cause is Cause.NOT_REPRODUCED
    assert d.target.expected_drs_spn == f"{DRS_SPN_CLASS}/{dc2.dsa_guid}/{forest.forest}"
    assert d.target.has_drs_spn
    assert d.target.server_trust_account
    with ldap_client(forest) as client:
        computer = client.read(dc2.computer_dn, ["servicePrincipalName"])
    assert set(d.target.spns) == set(computer.texts("servicePrincipalName"))


@pytest.mark.samba
def test_reps_values_decode_like_samba_decodes_them(healthy_forest: Any) -> None:
    forest = healthy_forest
    dc1 = forest.dcs[0]
    with ldap_client(forest) as client:
        head = client.read(forest.configuration_dn, ["repsFrom", "repsTo"], dc=dc1.fqdn)
    values = head.values("repsFrom") + head.values("repsTo")
    assert values, "DC1 holds no repsFrom/repsTo on the configuration NC"
    ours = [decode_reps(v) for v in values]
    theirs = samba_decode(values)
    assert [
        {
            "failures": o.consecutive_failures,
            "result": o.result_last_attempt,
            "last_success": _since_1601(o.last_success),
            "last_attempt": _since_1601(o.last_attempt),
            "dsa": o.dsa_guid,
            "address": o.network_address,
        }
        for o in ours
    ] == theirs
    # On DC1 every configuration NC entry names its only partner, DC2.
    assert {o.dsa_guid for o in ours} == {forest.dcs[1].dsa_guid}
    assert all(o.address_dsa_guid == o.dsa_guid for o in ours)


@pytest.mark.samba
def test_missing_links_are_dsas_without_connection_on_root_dc(healthy_forest: Any) -> None:
    forest = healthy_forest
    dc1 = forest.dcs[0]
    forest.add_phantom_servers(5)
    try:
        d = run(forest)
        with ldap_client(forest) as client:
            connections = client.search(
                dc1.ntds_settings_dn, "(objectClass=nTDSConnection)", ["fromServer"], scope="one"
            )
            dsas = client.search(forest.configuration_dn, "(objectClass=nTDSDSA)", ["cn"])
        linked = {(c.text("fromServer") or "").lower() for c in connections}
        real = {dc.ntds_settings_dn.lower() for dc in forest.dcs}
        expected = {
            e.dn.lower()
            for e in dsas
            if e.dn.lower() in real
            and e.dn.lower() != dc1.ntds_settings_dn.lower()
            and e.dn.lower() not in linked
        }
        assert {m.ntds_settings_dn.lower() for m in d.missing_links} == expected
        # Phantoms have no computer object: clean-up candidates, never repadmin /add sources.
        assert len(d.dead_dcs) == 5
        assert not {x.ntds_settings_dn for x in d.dead_dcs} & {
            m.ntds_settings_dn for m in d.missing_links
        }
        assert d.dsa_count == len(forest.dcs) + 5
    finally:
        forest.remove_phantoms()


@pytest.mark.samba
def test_a_read_only_dc_is_never_a_source_of_links(healthy_forest: Any) -> None:
    """RODCs are found by their objectCategory (one search, not an attribute of every DSA)."""
    forest = healthy_forest
    writable = forest.add_live_phantom_dc("LIVEW")
    read_only = forest.add_live_phantom_dc("LIVERO")
    forest.make_read_only(read_only)
    try:
        d = run(forest)
    finally:
        forest.remove_phantoms()
    missing = {m.ntds_settings_dn.lower() for m in d.missing_links}
    assert writable.ntds_settings_dn.lower() in missing
    assert read_only.ntds_settings_dn.lower() not in missing
    dead = {x.ntds_settings_dn.lower() for x in d.dead_dcs}
    assert read_only.ntds_settings_dn.lower() not in dead


@pytest.mark.samba
@pytest.mark.slow
def test_query_count_does_not_grow_with_2000_servers(healthy_forest: Any) -> None:
    forest = healthy_forest
    before = run(forest)
    forest.add_phantom_servers(2000)
    try:
        after = run(forest)
    finally:
        forest.remove_phantoms()
    assert after.dsa_count == before.dsa_count + 2000
    assert after.queries == before.queries
    assert after.cause is before.cause is Cause.NOT_REPRODUCED
    assert len(after.dead_dcs) == 2000


@pytest.mark.samba
def test_unknown_reporting_dc_is_not_contacted(healthy_forest: Any) -> None:
    forest = healthy_forest
    with ldap_client(forest) as client:
        d = diagnose(
            client,
            forest=forest.forest,
            target_dsa_guid=forest.dcs[1].dsa_guid,
            reporting_dcs=["evil.example.net"],
        )
    assert d.unknown_reporting_dcs == ("evil.example.net",)
    assert d.links == ()
    assert any("evil.example.net is not a DC" in n for n in d.notes)


@pytest.mark.samba
def test_gone_dsa_is_dc_removed(healthy_forest: Any) -> None:
    forest = healthy_forest
    with ldap_client(forest) as client:
        d = diagnose(
            client,
            forest=forest.forest,
            target_dsa_guid="0badc0de-0000-4000-8000-000000000001",
            reporting_dcs=[forest.dcs[0].fqdn],
        )
    assert d.cause is Cause.DC_REMOVED
    assert "do NOT add replication links" in diagnosis_text(d)


def test_bad_guid_is_rejected_before_any_query() -> None:
    # Nothing listens for this name: any query would fail with DirectoryUnreachable instead.
    client = DirectoryClient(
        forest="corp.example.com",
        hosts=["dc1.corp.example.com"],
        ldap=LdapSection(),
        password=None,
    )
    with pytest.raises(AlertRejected, match="not a GUID"):
        diagnose(client, forest="corp.example.com", target_dsa_guid="nope", reporting_dcs=[])
    assert client.queries == 0


# -- the pure rules, no directory ------------------------------------------------------


def _dsa(name: str, guid: str, *, ref: bool = True, computer: bool = True) -> DsaRecord:
    base = "CN=Servers,CN=Site,CN=Sites,CN=Configuration,DC=corp,DC=example,DC=com"
    comp_dn = f"CN={name},OU=Domain Controllers,DC=corp,DC=example,DC=com"
    entry = DirectoryEntry(
        dn=comp_dn,
        attributes={
            "userAccountControl".lower(): [b"532480"],
            "serviceprincipalname": [f"{DRS_SPN_CLASS}/{guid}/corp.example.com".encode()],
        },
    )
    return DsaRecord(
        dsa_guid=guid,
        ntds_settings_dn=f"CN=NTDS Settings,CN={name},{base}",
        server_dn=f"CN={name},{base}",
        server_name=name,
        dns_host_name=f"{name.lower()}.corp.example.com",
        server_reference=comp_dn if ref else None,
        domain_nc="DC=corp,DC=example,DC=com",
        read_only=False,
        computer=entry if computer else None,
        computer_checked=True,
    )


G1, G2, G3 = (f"00000000-0000-4000-8000-00000000000{i}" for i in (1, 2, 3))


def _snapshot(dsas: list[DsaRecord], target: str, links_from: set[str]) -> ForestSnapshot:
    return ForestSnapshot(
        forest="corp.example.com",
        configuration_nc="CN=Configuration,DC=corp,DC=example,DC=com",
        root_domain_nc="DC=corp,DC=example,DC=com",
        dsas=tuple(dsas),
        target=next((d for d in dsas if d.dsa_guid == target), None),
        pdc_dsa_dn=dsas[0].ntds_settings_dn,
        reporting_dcs=("dc1.corp.example.com",),
        links=(),
        root_connections_from=frozenset(x.lower() for x in links_from),
        notes=(),
    )


@pytest.mark.parametrize(
    ("dc2", "linked", "cause"),
    [
        (dict(ref=False), True, Cause.SERVER_REFERENCE_MISSING),
        (dict(ref=False, computer=False), True, Cause.DC_ORPHANED),
        (dict(computer=False), True, Cause.DC_ORPHANED),
        ({}, False, Cause.NO_CONNECTION_OBJECT),
        ({}, True, Cause.NOT_REPRODUCED),
    ],
)
def test_cause_rules(dc2: dict[str, bool], linked: bool, cause: Cause) -> None:
    dcs = [_dsa("DC1", G1), _dsa("DC2", G2, **dc2), _dsa("DC3", G3)]
    links = {dcs[2].ntds_settings_dn} | ({dcs[1].ntds_settings_dn} if linked else set())
    d = conclude(_snapshot(dcs, G2, links), dsa_guid=G2)
    assert d.cause is cause
    assert d.root_dc == "dc1.corp.example.com"


def test_missing_spn_and_dead_dcs_left_out_of_links() -> None:
    dc2 = _dsa("DC2", G2)
    no_spn = DirectoryEntry(dn=dc2.computer_dn or "", attributes={"useraccountcontrol": [b"8192"]})
    dcs = [
        _dsa("DC1", G1),
        DsaRecord(**{**dc2.__dict__, "computer": no_spn}),
        _dsa("GHOST", G3, ref=False, computer=False),
    ]
    d = conclude(_snapshot(dcs, G2, set()), dsa_guid=G2)
    assert d.cause is Cause.MISSING_SPNS
    assert [m.fqdn for m in d.missing_links] == ["dc2.corp.example.com"]
    assert [x.fqdn for x in d.dead_dcs] == ["ghost.corp.example.com"]
    assert f"{DRS_SPN_CLASS}/{G2}/corp.example.com" in diagnosis_text(d)


def test_target_dc_is_never_the_root_dc() -> None:
    # DC1 (the PDC) is the DC that 1411 names, and it also appears among the reporters.
    dcs = [_dsa("DC1", G1, ref=False), _dsa("DC2", G2), _dsa("DC3", G3)]
    snap = _snapshot(dcs, G1, {dcs[1].ntds_settings_dn})
    snap = ForestSnapshot(
        **{**snap.__dict__, "reporting_dcs": ("dc1.corp.example.com", "dc3.corp.example.com")}
    )
    d = conclude(snap, dsa_guid=G1)
    assert d.cause is Cause.SERVER_REFERENCE_MISSING
    assert d.root_dc == "dc3.corp.example.com"
