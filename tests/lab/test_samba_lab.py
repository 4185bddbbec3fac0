"""The Samba AD lab is a real forest: LDAP/LDAPS, replication, the 1411 break, phantoms, reset."""

from __future__ import annotations

import ssl
import uuid
from pathlib import Path

import krb5
import ldap3
import pytest
from ldap3.core.exceptions import LDAPBindError, LDAPSocketOpenError
from ldap3.utils.conv import escape_bytes

from lab.certificates import LabCertificateAuthority
from lab.samba import SambaForest

pytestmark = pytest.mark.samba


def _nTDSDSA_dns(forest: SambaForest, dc: int) -> set[str]:
    conn = forest.connect(dc)
    try:
        entries = conn.extend.standard.paged_search(
            f"CN=Sites,{forest.configuration_dn}",
            "(objectClass=nTDSDSA)",
            attributes=["objectGUID"],
            paged_size=500,
            generator=False,
        )
        return {e["dn"].lower() for e in entries if e.get("type") == "searchResEntry"}
    finally:
        conn.unbind()


def test_every_dc_answers_validated_ldaps_and_refuses_binds_in_clear(
    healthy_forest: SambaForest,
) -> None:
    for dc in healthy_forest.dcs:
        conn = healthy_forest.connect(dc)
        assert conn.bound, conn.result
        conn.search("", "(objectClass=*)", ldap3.BASE, attributes=["dsServiceName"])
        assert str(conn.entries[0].dsServiceName.value).lower() == dc.ntds_settings_dn.lower()
        conn.unbind()
        # a hardened DC (allow_sasl_over_tls): no simple bind without TLS, anonymous rootDSE ok
        with pytest.raises(LDAPBindError, match="strongerAuthRequired"):
            healthy_forest.connect(dc, ldaps=False)
        anonymous = ldap3.Connection(
            ldap3.Server(dc.address, port=dc.ldap_port, get_info=ldap3.NONE), auto_bind=True
        )
        assert anonymous.search("", "(objectClass=*)", ldap3.BASE, attributes=["dnsHostName"])
        anonymous.unbind()
        # the FQDN is a valid name for the certificate too, as a client using names sees it
        tls = ldap3.Tls(
            validate=ssl.CERT_REQUIRED,
            ca_certs_file=str(healthy_forest.ca_file),
            valid_names=[dc.fqdn],
        )
        server = ldap3.Server(dc.address, port=dc.ldaps_port, use_ssl=True, tls=tls)
        conn = ldap3.Connection(
            server, healthy_forest.admin_dn, healthy_forest.admin_password, auto_bind=True
        )
        assert conn.extend.standard.who_am_i() is not None or conn.bound
        conn.unbind()


def test_ldaps_refuses_a_certificate_from_another_ca(
    healthy_forest: SambaForest, tmp_path: Path
) -> None:
    other = LabCertificateAuthority(tmp_path / "other-ca", "elsewhere.test")
    dc = healthy_forest.dcs[0]
    server = ldap3.Server(
        dc.address, port=dc.ldaps_port, use_ssl=True, tls=healthy_forest.tls(ca_file=other.ca_file)
    )
    with pytest.raises(LDAPSocketOpenError):
        ldap3.Connection(
            server, healthy_forest.admin_dn, healthy_forest.admin_password, auto_bind=True
        )


def test_dc_info_matches_the_directory(healthy_forest: SambaForest) -> None:
    assert [d.fqdn for d in healthy_forest.dcs] == [
        "dc1.lab.ad1411.test",
        "dc2.lab.ad1411.test",
    ]
    conn = healthy_forest.connect(2)
    for dc in healthy_forest.dcs:
        guid = uuid.UUID(dc.dsa_guid)
        conn.search(
            f"CN=Sites,{healthy_forest.configuration_dn}",
            f"(objectGUID={escape_bytes(guid.bytes_le)})",
            attributes=["objectClass"],
        )
        assert [e.entry_dn.lower() for e in conn.entries] == [dc.ntds_settings_dn.lower()]
        conn.search(
            dc.computer_dn, "(objectClass=computer)", ldap3.BASE, attributes=["dNSHostName"]
        )
        assert str(conn.entries[0].dNSHostName.value).lower() == dc.fqdn
    conn.unbind()


def test_a_change_on_dc1_replicates_to_dc2(healthy_forest: SambaForest) -> None:
    ou = f"OU=repl-{uuid.uuid4().hex[:8]},{healthy_forest.base_dn}"
    dc1 = healthy_forest.connect(1)
    assert dc1.add(ou, "organizationalUnit"), dc1.result
    try:
        dc2 = healthy_forest.connect(2)
        # Not asserted absent on dc2 first: Samba notifies its partners of a change on its
        # own, sooner or later depending on the machine's load (CI once saw it already there).
        out = healthy_forest.replicate(2, 1)
        assert "was successful" in out
        dc2.search(ou, "(objectClass=organizationalUnit)", ldap3.BASE)
        assert [e.entry_dn.lower() for e in dc2.entries] == [ou.lower()]
        dc2.unbind()
    finally:
        dc1.delete(ou)
        dc1.unbind()
        healthy_forest.replicate(2, 1)


def test_missing_server_reference_breaks_replication_to_that_dc(
    healthy_forest: SambaForest,
) -> None:
    dc2 = healthy_forest.dc("dc2")
    healthy_forest.remove_server_reference(dc2)
    assert healthy_forest.server_reference(dc2, on=1) is None

    broken = healthy_forest.try_replicate(2, 1)
    assert broken.returncode != 0
    assert "WERR_DS_DRA_ACCESS_DENIED" in broken.output and "8453" in broken.output
    showrepl = healthy_forest.showrepl(2)
    assert "failed, result 8453 (WERR_DS_DRA_ACCESS_DENIED)" in showrepl
    log = healthy_forest.log_file(1).read_text(errors="replace")
    assert f"Failed to find account dn (serverReference) for {dc2.server_dn}" in log

    healthy_forest.restore_server_reference(dc2)
    assert healthy_forest.server_reference(dc2, on=1) == dc2.computer_dn
    assert "was successful" in healthy_forest.replicate(2, 1)
    after = healthy_forest.showrepl_json(2)
    domain_links = [n for n in after["repsFrom"] if n["NC dn"] == healthy_forest.base_dn]
    assert domain_links and domain_links[0]["consecutive failures"] == 0


@pytest.mark.slow
def test_two_thousand_phantom_servers_come_and_go(healthy_forest: SambaForest) -> None:
    phantoms = healthy_forest.add_phantom_servers(2000)
    assert len({p.dsa_guid for p in phantoms}) == 2000
    seen = _nTDSDSA_dns(healthy_forest, 1)
    assert len(seen) == 2002
    assert {p.ntds_settings_dn.lower() for p in phantoms} <= seen

    healthy_forest.remove_phantoms()
    for dc in (1, 2):
        assert _nTDSDSA_dns(healthy_forest, dc) == {
            d.ntds_settings_dn.lower() for d in healthy_forest.dcs
        }


def test_one_phantom_is_found_by_its_dsa_guid(healthy_forest: SambaForest) -> None:
    phantom = healthy_forest.add_phantom_server("GHOST-DC")
    conn = healthy_forest.connect(1)
    conn.search(
        healthy_forest.configuration_dn,
        f"(objectGUID={escape_bytes(uuid.UUID(phantom.dsa_guid).bytes_le)})",
        attributes=["objectClass"],
    )
    assert [e.entry_dn.lower() for e in conn.entries] == [phantom.ntds_settings_dn.lower()]
    conn.search(
        phantom.server_dn, "(objectClass=server)", ldap3.BASE, attributes=["serverReference"]
    )
    assert conn.entries[0].serverReference.value is None
    conn.unbind()


def test_reset_returns_the_healthy_baseline(samba_forest: SambaForest) -> None:
    samba_forest.reset()
    samba_forest.remove_server_reference(2)
    samba_forest.add_phantom_server("LEFTOVER")
    assert not samba_forest.healthy()

    samba_forest.reset()

    assert samba_forest.healthy()
    assert samba_forest.phantom_count() == 0
    for dc in samba_forest.dcs:
        assert samba_forest.server_reference(dc, on=1) == dc.computer_dn
        assert samba_forest.server_reference(dc, on=2) == dc.computer_dn
    assert "was successful" in samba_forest.replicate(2, 1)


def test_the_lab_exports_aes_keytabs_for_the_bot_and_the_dcs(samba_forest: SambaForest) -> None:
    ctx = krb5.init_context()

    def entries(path: Path) -> set[tuple[str, str]]:
        keytab = krb5.kt_resolve(ctx, f"FILE:{path}".encode())
        found: set[tuple[str, str]] = set()
        for e in keytab:
            name = e.principal.name
            assert name is not None  # a keytab entry always names its principal
            found.add((name.decode(), krb5.enctype_to_name(e.key.enctype)))
        return found

    service = entries(samba_forest.service_keytab)
    assert (samba_forest.service_principal, "aes256-cts-hmac-sha1-96") in service
    hosts = {name for name, _ in entries(samba_forest.dc_keytab)}
    assert hosts == {f"host/{dc.fqdn}@{samba_forest.realm}" for dc in samba_forest.dcs}
    for path in (samba_forest.service_keytab, samba_forest.dc_keytab):
        assert path.stat().st_mode & 0o077 == 0
