"""DirectoryClient binding with Kerberos to the real Samba DC, configured as a hardened DC
(`ldap server require strong auth = allow_sasl_over_tls`): GSSAPI only over TLS."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import DcOverride, ForestSection, LdapSection
from bot.directory.client import (
    DirectoryBindRefused,
    DirectoryClient,
    DirectoryKerberosFailed,
)
from bot.errors import ConfigError
from bot.kerberos import KerberosFailure, KerberosLogin
from lab.samba import SambaForest
from tests.conftest import free_port
from tests.fixtures_kerberos import lab_kerberos

pytestmark = pytest.mark.usefixtures("kerberos_env")


def kerberos_client(
    forest: SambaForest,
    login: KerberosLogin,
    *,
    tls: str = "ldaps",
    hosts: list[str] | None = None,
    overrides: list[DcOverride] | None = None,
    validate: bool = True,
) -> DirectoryClient:
    port = {"ldaps": 636, "starttls": 389, "none": 389}[tls]
    return DirectoryClient(
        forest=forest.forest,
        hosts=hosts or [forest.dcs[0].fqdn],
        ldap=LdapSection(
            tls=tls,  # type: ignore[arg-type]
            ca_file=forest.ca_file,
            auth="kerberos",
            validate_certificates=validate,
        ),
        password=None,
        overrides=overrides
        or [DcOverride(fqdn=dc.fqdn, address=dc.address, ldap_port=port) for dc in forest.dcs],
        kerberos=login,
    )


def test_kerberos_bind_over_ldaps_and_starttls_with_the_keytab(
    samba_forest: SambaForest, kerberos_env: Path
) -> None:
    login = KerberosLogin(lab_kerberos(samba_forest))
    for tls in ("ldaps", "starttls"):
        with kerberos_client(samba_forest, login, tls=tls) as client:
            dsas = client.search(
                samba_forest.configuration_dn, "(objectClass=nTDSDSA)", ["objectGUID"]
            )
            assert {dc.dsa_guid for dc in samba_forest.dcs} <= {e.guid() for e in dsas}
            assert client.identity == samba_forest.service_principal
            assert samba_forest.service_principal in repr(client)
    assert login.acquisitions == 1  # one TGT served every bind
    assert not kerberos_env.exists()  # nothing came from a kinit cache


def test_a_hardened_dc_refuses_kerberos_on_plain_ldap_and_says_use_tls(
    samba_forest: SambaForest,
) -> None:
    login = KerberosLogin(lab_kerberos(samba_forest))
    with pytest.raises(DirectoryBindRefused) as caught:
        kerberos_client(samba_forest, login, tls="none").root_dse()
    message = str(caught.value)
    assert "strongerAuthRequired" in message
    assert "cannot sign or seal" in message and 'ldap.tls = "ldaps"' in message


def test_a_name_without_an_spn_is_a_wrong_spn(samba_forest: SambaForest) -> None:
    # The DC reached by an alias: the KDC has no ldap/<alias>, so no ticket and no bind.
    dc1 = samba_forest.dcs[0]
    alias = f"ldap-alias.{samba_forest.forest}"
    client = kerberos_client(
        samba_forest,
        KerberosLogin(lab_kerberos(samba_forest)),
        hosts=[alias],
        overrides=[DcOverride(fqdn=alias, address=dc1.address, ldap_port=636)],
        validate=False,
    )
    with pytest.raises(DirectoryKerberosFailed) as caught:
        client.root_dse()
    assert caught.value.kind is KerberosFailure.WRONG_SPN
    message = str(caught.value)
    assert f"ldap/{alias}" in message
    assert "setspn -L" in message and "not an alias" in message


def test_kdc_down_reaches_the_directory_client_as_a_directory_error(
    samba_forest: SambaForest,
) -> None:
    down = f"127.0.0.1:{free_port()}"
    login = KerberosLogin(lab_kerberos(samba_forest, kdcs=[down]))
    with pytest.raises(DirectoryKerberosFailed) as caught:
        kerberos_client(samba_forest, login).root_dse()
    assert caught.value.kind is KerberosFailure.KDC_UNREACHABLE
    assert down in str(caught.value)
    assert samba_forest.dcs[0].fqdn in str(caught.value)


def test_for_forest_builds_the_login_from_the_configuration(samba_forest: SambaForest) -> None:
    forest = ForestSection(
        name=samba_forest.forest,
        ldap_hosts=[samba_forest.dcs[1].fqdn],
        ldap=LdapSection(tls="ldaps", ca_file=samba_forest.ca_file, auth="kerberos"),
        dcs=[
            DcOverride(fqdn=dc.fqdn, address=dc.address, ldap_port=636) for dc in samba_forest.dcs
        ],
        kerberos=lab_kerberos(samba_forest),
    )
    with DirectoryClient.for_forest(forest) as client:
        host = client.root_dse().text("dnsHostName")
        assert host is not None and host.lower() == samba_forest.dcs[1].fqdn


def test_kerberos_without_a_login_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"\[forests.kerberos\]"):
        DirectoryClient(
            forest="corp.example.com",
            hosts=["dc1.corp.example.com"],
            ldap=LdapSection(auth="kerberos"),
            password=None,
        )
