"""DirectoryClient against the real Samba AD lab: TLS, binds, paging, drops, secrets."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from ldap3.utils.log import EXTENDED, OFF, set_library_log_detail_level

from bot.config import DcOverride, LdapSection
from bot.directory.client import (
    DirectoryBindRefused,
    DirectoryClient,
    DirectorySearchFailed,
    DirectoryTlsFailed,
    DirectoryUnreachable,
    Search,
    guid_filter_value,
    or_filter,
)
from bot.errors import ConfigError
from tests.conftest import free_port


def ldap_client(
    forest: Any,
    *,
    tls: str = "ldaps",
    ca_file: Path | None = None,
    user: str | None = None,
    password: str | None = None,
    auth: str = "simple",
    overrides: list[DcOverride] | None = None,
    hosts: list[str] | None = None,
    page_size: int = 1000,
    timeout: float = 10.0,
) -> DirectoryClient:
    """A client for the lab forest, reaching each DC at its lab address."""
    dcs = forest.dcs
    if overrides is None:
        overrides = [
            DcOverride(
                fqdn=dc.fqdn,
                address=dc.address,
                ldap_port=dc.ldaps_port if tls == "ldaps" else dc.ldap_port,
            )
            for dc in dcs
        ]
    return DirectoryClient(
        forest=forest.forest,
        hosts=hosts or [dcs[0].fqdn],
        ldap=LdapSection(
            tls=tls,  # type: ignore[arg-type]
            ca_file=ca_file if ca_file is not None else forest.ca_file,
            auth=auth,  # type: ignore[arg-type]
            user=user if user is not None else forest.admin_dn,
            timeout_seconds=timeout,
        ),
        password=password if password is not None else forest.admin_password,
        overrides=overrides,
        page_size=page_size,
    )


def other_ca(tmp_path: Path) -> Path:
    """A CA that signed nothing the lab serves."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Not The Lab CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / "other-ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


class TcpRelay:
    """A loopback TCP relay whose live connections a test can cut, like a dropped network."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self.accepted += 1
                self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Reset every live connection (the listener stays up)."""
        with self._lock:
            for s in self._sockets:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self._sockets.clear()

    def close(self) -> None:
        self.cut()
        self._listener.close()


@pytest.fixture
def relay(samba_forest: Any) -> Iterator[TcpRelay]:
    dc1 = samba_forest.dcs[0]
    r = TcpRelay((dc1.address, dc1.ldaps_port))
    yield r
    r.close()


@pytest.mark.samba
def test_ldaps_with_lab_ca_reads_the_forest(samba_forest: Any) -> None:
    with ldap_client(samba_forest) as client:
        dse = client.root_dse()
        assert dse.text("configurationNamingContext") == samba_forest.configuration_dn
        assert dse.text("rootDomainNamingContext") == samba_forest.base_dn
        assert client.queries == 1


@pytest.mark.samba
def test_starttls_reaches_the_same_directory_as_ldaps(samba_forest: Any) -> None:
    seen = []
    for tls in ("starttls", "ldaps"):
        with ldap_client(samba_forest, tls=tls) as client:
            dsas = client.search(
                samba_forest.configuration_dn, "(objectClass=nTDSDSA)", ["objectGUID"]
            )
            guids: list[str] = []
            for e in dsas:
                guid = e.guid()
                assert guid is not None  # every nTDSDSA has an objectGUID
                guids.append(guid)
            seen.append(sorted(guids))
    assert seen[0] == seen[1]
    assert {dc.dsa_guid for dc in samba_forest.dcs} <= set(seen[0])


@pytest.mark.samba
def test_a_hardened_dc_refuses_a_simple_bind_in_clear(samba_forest: Any) -> None:
    # allow_sasl_over_tls, as a hardened DC: the password must not cross the wire in clear.
    with pytest.raises(DirectoryBindRefused) as caught:
        ldap_client(samba_forest, tls="none").root_dse()
    message = str(caught.value)
    assert "strongerAuthRequired" in message
    assert 'set ldap.tls = "ldaps"' in message
    assert samba_forest.admin_password not in message


@pytest.mark.samba
def test_wrong_ca_is_refused_naming_the_ca_file(samba_forest: Any, tmp_path: Path) -> None:
    wrong = other_ca(tmp_path)
    client = ldap_client(samba_forest, ca_file=wrong)
    with pytest.raises(DirectoryTlsFailed) as caught:
        client.root_dse()
    message = str(caught.value)
    assert str(wrong) in message
    assert "certificate verify failed" in message
    assert samba_forest.dcs[0].fqdn in message


@pytest.mark.samba
def test_certificate_must_name_the_dc_not_just_the_address(samba_forest: Any) -> None:
    dc1, dc2 = samba_forest.dcs[0], samba_forest.dcs[1]
    # Claim dc2's name but dial dc1: dc1's certificate does not name dc2.
    liar = [DcOverride(fqdn=dc2.fqdn, address=dc1.address, ldap_port=dc1.ldaps_port)]
    client = ldap_client(samba_forest, overrides=liar, hosts=[dc2.fqdn])
    with pytest.raises(DirectoryTlsFailed, match=r"mismatch|not valid for"):
        client.root_dse()


@pytest.mark.samba
def test_wrong_password_is_refused_and_never_shown(samba_forest: Any) -> None:
    client = ldap_client(samba_forest, password="Wr0ng-Passw0rd-Zebra")
    with pytest.raises(DirectoryBindRefused) as caught:
        client.root_dse()
    assert "invalidCredentials" in str(caught.value)
    assert samba_forest.admin_dn in str(caught.value)
    assert "Zebra" not in str(caught.value) and "Zebra" not in repr(client)


@pytest.mark.samba
def test_unreachable_dc_names_address_and_port(samba_forest: Any) -> None:
    dc1 = samba_forest.dcs[0]
    port = free_port()
    dead = [DcOverride(fqdn=dc1.fqdn, address="127.0.0.1", ldap_port=port)]
    client = ldap_client(samba_forest, overrides=dead, timeout=3)
    with pytest.raises(DirectoryUnreachable) as caught:
        client.root_dse()
    assert f"127.0.0.1:{port}" in str(caught.value)


@pytest.mark.samba
def test_next_host_answers_when_first_is_down(samba_forest: Any) -> None:
    dc1, dc2 = samba_forest.dcs[0], samba_forest.dcs[1]
    overrides = [
        DcOverride(fqdn=dc1.fqdn, address="127.0.0.1", ldap_port=free_port()),
        DcOverride(fqdn=dc2.fqdn, address=dc2.address, ldap_port=dc2.ldaps_port),
    ]
    with ldap_client(
        samba_forest, overrides=overrides, hosts=[dc1.fqdn, dc2.fqdn], timeout=3
    ) as client:
        assert client.default_dc == dc2.fqdn
        host = client.root_dse().text("dnsHostName")
        assert host is not None and host.lower() == dc2.fqdn


@pytest.mark.samba
def test_paged_search_returns_everything_in_one_query(samba_forest: Any) -> None:
    base = samba_forest.configuration_dn
    with ldap_client(samba_forest, page_size=1000) as whole:
        everything = whole.search(base, "(objectClass=*)", ["objectGUID"])
    with ldap_client(samba_forest, page_size=50) as paged:
        pages = paged.search(base, "(objectClass=*)", ["objectGUID"])
        assert paged.queries == 1
        assert paged.round_trips >= len(everything) // 50
    assert len(everything) > 100
    assert sorted(e.dn for e in pages) == sorted(e.dn for e in everything)


@pytest.mark.samba
def test_two_searches_together_find_what_each_finds_alone(samba_forest: Any) -> None:
    base = samba_forest.configuration_dn
    dsas = Search(base, "(objectClass=nTDSDSA)", ["objectGUID"])
    servers = Search(base, "(objectClass=server)", ["dNSHostName"])
    with ldap_client(samba_forest, page_size=1) as client:
        alone = (
            client.search(base, dsas.filter, dsas.attributes),
            client.search(base, servers.filter, servers.attributes),
        )
        queries, trips = client.queries, client.round_trips
        together = client.search_together(dsas, servers)
        assert client.queries - queries == 2
        assert client.round_trips - trips == trips  # every page of both (pages of one entry)
        # A failure of the second search is raised here, in the caller's thread.
        with pytest.raises(DirectorySearchFailed, match="not a DN"):
            client.search_together(dsas, Search("not a DN", "(cn=*)", ["cn"]))
    assert [sorted(e.dn for e in r) for r in together] == [sorted(e.dn for e in r) for r in alone]
    assert len(together[0]) == len(samba_forest.dcs) and len(together[1]) == len(samba_forest.dcs)


@pytest.mark.samba
def test_guid_filter_finds_the_dsa(samba_forest: Any) -> None:
    dc2 = samba_forest.dcs[1]
    with ldap_client(samba_forest) as client:
        found = client.search(
            samba_forest.configuration_dn,
            f"(objectGUID={guid_filter_value(dc2.dsa_guid)})",
            ["objectGUID"],
        )
        both = client.search(
            samba_forest.configuration_dn,
            or_filter(
                "objectGUID", [guid_filter_value(d.dsa_guid) for d in samba_forest.dcs], raw=True
            ),
            ["objectGUID"],
        )
    assert [e.dn.lower() for e in found] == [dc2.ntds_settings_dn.lower()]
    assert {e.guid() for e in both} == {d.dsa_guid for d in samba_forest.dcs}


@pytest.mark.samba
def test_connection_is_reused_and_rebound_after_a_drop(samba_forest: Any, relay: TcpRelay) -> None:
    dc1 = samba_forest.dcs[0]
    via_relay = [DcOverride(fqdn=dc1.fqdn, address="127.0.0.1", ldap_port=relay.port)]
    with ldap_client(samba_forest, overrides=via_relay) as client:
        first = client.root_dse()
        client.root_dse()
        assert relay.accepted == 1  # reused
        relay.cut()
        again = client.root_dse()
        assert relay.accepted == 2  # re-opened and re-bound transparently
        assert again.text("dsServiceName") == first.text("dsServiceName")


@pytest.mark.samba
def test_password_never_reaches_logs(samba_forest: Any, caplog: pytest.LogCaptureFixture) -> None:
    secret = samba_forest.admin_password
    wrong = "Another-Secret-Kumquat-42"
    caplog.set_level(logging.DEBUG)
    set_library_log_detail_level(EXTENDED)
    try:
        with (
            ldap_client(samba_forest, tls="none") as plain,
            pytest.raises(DirectoryBindRefused),
        ):
            plain.root_dse()  # refused in clear by the hardened DC, still never logged
        with ldap_client(samba_forest) as tls_client:
            tls_client.search(samba_forest.configuration_dn, "(objectClass=nTDSDSA)", ["cn"])
        failing = ldap_client(samba_forest, password=wrong)
        with pytest.raises(DirectoryBindRefused) as caught:
            failing.root_dse()
    finally:
        set_library_log_detail_level(OFF)
    ldap3_lines = [r for r in caplog.records if r.name.startswith("ldap3")]
    assert ldap3_lines, "ldap3 logged nothing: the test would prove nothing"
    assert any("bind" in r.getMessage().lower() for r in ldap3_lines)
    for text in (caplog.text, str(caught.value), repr(caught.value), repr(failing)):
        assert secret not in text
        assert wrong not in text


@pytest.mark.samba
def test_ntlm_bind_against_samba_is_refused_with_advice(samba_forest: Any) -> None:
    # ldap3's NTLM works against Windows, not Samba (DESIGN section 6): it must fail clearly.
    domain = samba_forest.netbios_domain
    client = ldap_client(samba_forest, auth="ntlm", user=f"{domain}\\Administrator")
    with pytest.raises(DirectoryBindRefused) as caught:
        client.root_dse()
    assert "ntlm bind" in str(caught.value)
    assert "Samba does not accept" in str(caught.value)


def test_bad_auth_settings_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"DOMAIN\\name"):
        DirectoryClient(
            forest="corp.example.com",
            hosts=["dc1.corp.example.com"],
            ldap=LdapSection(auth="ntlm", user="svc"),
            password="x",
        )
    with pytest.raises(ConfigError, match="does not exist"):
        DirectoryClient(
            forest="corp.example.com",
            hosts=["dc1.corp.example.com"],
            ldap=LdapSection(ca_file=tmp_path / "missing.pem"),
            password=None,
        )
