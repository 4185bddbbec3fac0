"""The bot's own Kerberos login against the Samba lab's KDC: tickets without kinit, renewal,
and every failure an operator can meet, each produced for real and read back as advice."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.app.cli import main
from bot.config import KerberosSection, load_file_config
from bot.errors import ConfigError
from bot.kerberos import (
    KDC_ERR_S_PRINCIPAL_UNKNOWN,
    KerberosFailed,
    KerberosFailure,
    KerberosLogin,
    Krb5Profile,
    krb5_conf_text,
    login_for,
    minor_code,
    needs_new_ticket,
)
from bot.secrets import SecretRef
from lab.samba import SambaForest
from tests.conftest import free_port
from tests.fixtures_kerberos import lab_kerberos

# --- pure parts ---------------------------------------------------------------------------------


def test_krb5_conf_names_the_kdcs_and_never_guesses_names() -> None:
    corp = KerberosSection(
        realm="CORP.EXAMPLE.COM",
        principal="svc-ad1411",
        password=SecretRef(env="X"),
        kdcs=["dc1.corp.example.com", "10.0.0.5:88"],
    )
    text = krb5_conf_text([corp])
    assert "default_realm = CORP.EXAMPLE.COM" in text
    assert "kdc = dc1.corp.example.com" in text and "kdc = 10.0.0.5:88" in text
    assert "dns_lookup_kdc = false" in text
    assert "dns_canonicalize_hostname = false" in text and "rdns = false" in text
    assert "kdc_timesync = 0" in text
    dns = corp.model_copy(update={"realm": "OTHER.EXAMPLE.COM", "kdcs": []})
    assert "dns_lookup_kdc = true" in krb5_conf_text([corp, dns])


def test_a_ticket_is_replaced_before_it_runs_out() -> None:
    assert needs_new_ticket(None, 1000.0, 600)
    assert not needs_new_ticket(2000.0, 1000.0, 600)
    assert needs_new_ticket(1600.0, 1000.0, 600)
    assert needs_new_ticket(900.0, 1000.0, 600)


def test_minor_codes_are_read_from_library_text() -> None:
    text = "Major (851968): Unspecified GSS failure, Minor (2529638919): Server not found"
    assert minor_code(RuntimeError(text)) == KDC_ERR_S_PRINCIPAL_UNKNOWN
    assert minor_code(RuntimeError("no code here")) is None


def test_kerberos_section_wants_exactly_one_secret_and_a_keytab_file() -> None:
    with pytest.raises(ValidationError, match="exactly one of keytab"):
        KerberosSection(realm="CORP.EXAMPLE.COM", principal="svc")
    with pytest.raises(ValidationError, match="binary file"):
        KerberosSection(realm="CORP.EXAMPLE.COM", principal="svc", keytab=SecretRef(env="KT"))
    with pytest.raises(ValidationError, match="realm in capitals"):
        KerberosSection(
            realm="CORP.EXAMPLE.COM", principal="svc@corp.example.com", password=SecretRef(env="X")
        )
    ok = KerberosSection(realm="CORP.EXAMPLE.COM", principal="svc", password=SecretRef(env="X"))
    assert ok.client_principal == "svc@CORP.EXAMPLE.COM"


def test_auth_kerberos_without_a_kerberos_section_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[slack]\nchannel = "C0INCIDENT"\n'
        '[[forests]]\nname = "corp.example.com"\nldap_hosts = ["dc1.corp.example.com"]\n'
        '[forests.ldap]\nauth = "kerberos"\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_file_config(path)
    assert "needs a [forests.kerberos] section" in str(caught.value)
    assert "forests.0" in str(caught.value)


# --- against the lab KDC ----------------------------------------------------------------------


def _cache_file_absent(kerberos_env: Path) -> None:
    assert not kerberos_env.exists(), "a ticket cache exists: the test would not prove no-kinit"


@pytest.mark.usefixtures("kerberos_env")
def test_keytab_login_gets_a_ticket_without_kinit(
    samba_forest: SambaForest, kerberos_env: Path
) -> None:
    login = KerberosLogin(lab_kerberos(samba_forest))
    ticket = login.ticket()
    assert ticket.ccache.startswith("MEMORY:ad1411-")
    assert ticket.principal == samba_forest.service_principal
    assert ticket.expires_at > time.time() + 3600
    # the process now uses the bot's krb5.conf and no one's ticket cache
    assert os.environ["KRB5CCNAME"] == "MEMORY:ad1411-default"
    conf = Path(os.environ["KRB5_CONFIG"]).read_text()
    assert all(f"kdc = {dc.address}" in conf for dc in samba_forest.dcs)
    _cache_file_absent(kerberos_env)
    # reused while fresh
    assert login.ticket() == ticket and login.acquisitions == 1
    assert login_for(lab_kerberos(samba_forest)) is login_for(lab_kerberos(samba_forest))


@pytest.mark.usefixtures("kerberos_env")
def test_password_login_resolves_its_secret_at_use(
    samba_forest: SambaForest, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAB_SVC_PASSWORD", samba_forest.service_password)
    login = KerberosLogin(
        lab_kerberos(samba_forest, keytab=None, password=SecretRef(env="LAB_SVC_PASSWORD"))
    )
    assert login.ticket().principal == samba_forest.service_principal
    assert samba_forest.service_password not in repr(login)


@pytest.mark.usefixtures("kerberos_env")
def test_the_ticket_is_renewed_inside_the_process_before_it_runs_out(
    samba_forest: SambaForest,
) -> None:
    now = [time.time()]
    section = lab_kerberos(samba_forest, ticket_lifetime_seconds=300, renew_before_seconds=290)
    login = KerberosLogin(section, clock=lambda: now[0])
    first = login.ticket()
    assert first.expires_at - now[0] == pytest.approx(300, abs=5)
    now[0] += 2
    assert login.ticket() == first  # 298 s left: still good
    now[0] += 20  # 278 s left, under renew_before: a new ticket from the KDC
    second = login.ticket()
    assert second.ccache != first.ccache
    assert second.expires_at > first.expires_at
    assert login.acquisitions == 2


def _failure(section: KerberosSection, **kwargs: object) -> KerberosFailed:
    with pytest.raises(KerberosFailed) as caught:
        KerberosLogin(section, **kwargs).ticket()  # type: ignore[arg-type]
    return caught.value


@pytest.mark.usefixtures("kerberos_env")
def test_clock_skew_is_named_with_what_to_check(samba_forest: SambaForest) -> None:
    # The worker's clock an hour ahead: the KDC itself refuses the request (KRB_AP_ERR_SKEW).
    ahead = _failure(lab_kerberos(samba_forest), clock=lambda: time.time() + 3600)
    assert ahead.kind is KerberosFailure.CLOCK_SKEW
    message = str(ahead)
    assert "Clock skew too great" in message
    assert "timedatectl" in message and "w32tm" in message
    assert samba_forest.service_principal in message
    behind = _failure(lab_kerberos(samba_forest), clock=lambda: time.time() - 900)
    assert behind.kind is KerberosFailure.CLOCK_SKEW


@pytest.mark.usefixtures("kerberos_env")
def test_unknown_principal_names_the_account_and_realm(samba_forest: SambaForest) -> None:
    failure = _failure(
        lab_kerberos(
            samba_forest,
            keytab=None,
            password=SecretRef(env="PATH"),
            principal=f"svc-nobody@{samba_forest.realm}",
        )
    )
    assert failure.kind is KerberosFailure.UNKNOWN_PRINCIPAL
    assert f"svc-nobody@{samba_forest.realm}" in str(failure)
    assert "kerberos.principal" in str(failure)


@pytest.mark.usefixtures("kerberos_env")
def test_a_wrong_password_is_refused_without_showing_it(
    samba_forest: SambaForest, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAB_SVC_PASSWORD", "Not-The-Password-Quince-1")
    failure = _failure(
        lab_kerberos(samba_forest, keytab=None, password=SecretRef(env="LAB_SVC_PASSWORD"))
    )
    assert failure.kind is KerberosFailure.CREDENTIALS_REFUSED
    assert "env:LAB_SVC_PASSWORD" in str(failure) and "rotated" in str(failure)
    assert "Quince" not in str(failure)


@pytest.fixture
def throwaway_account(samba_forest: SambaForest) -> Iterator[tuple[str, str]]:
    """A user added for one test and deleted after it (outside the lab's snapshot)."""
    name = f"svc-t{secrets.token_hex(3)}"
    password = f"Tmp-{secrets.token_hex(8)}-Q5"
    samba_forest.add_user(name, password)
    try:
        yield name, password
    finally:
        samba_forest.delete_user(name)


@pytest.mark.usefixtures("kerberos_env")
def test_a_stale_keytab_says_to_export_a_new_one(
    samba_forest: SambaForest, throwaway_account: tuple[str, str], tmp_path: Path
) -> None:
    name, _ = throwaway_account
    principal = f"{name}@{samba_forest.realm}"
    keytab = samba_forest.export_keytab(principal, tmp_path / "old.keytab")
    section = lab_kerberos(samba_forest, principal=principal, keytab=SecretRef(file=keytab))
    assert KerberosLogin(section).ticket().principal == principal
    samba_forest.set_user_password(name, f"Rotated-{secrets.token_hex(8)}-W2")
    failure = _failure(section)
    assert failure.kind is KerberosFailure.CREDENTIALS_REFUSED
    assert str(keytab) in str(failure)
    assert "password changed after the keytab was made" in str(failure)
    assert "exportkeytab" in str(failure)


@pytest.mark.usefixtures("kerberos_env")
def test_a_disabled_account_is_named_as_such(
    samba_forest: SambaForest, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"svc-d{secrets.token_hex(3)}"
    password = f"Tmp-{secrets.token_hex(8)}-Q5"
    samba_forest.add_user(name, password, enabled=False)
    monkeypatch.setenv("LAB_DISABLED_PASSWORD", password)
    try:
        failure = _failure(
            lab_kerberos(
                samba_forest,
                principal=f"{name}@{samba_forest.realm}",
                keytab=None,
                password=SecretRef(env="LAB_DISABLED_PASSWORD"),
            )
        )
    finally:
        samba_forest.delete_user(name)
    assert failure.kind is KerberosFailure.ACCOUNT_UNUSABLE
    assert "disabled" in str(failure) and "Get-ADUser" in str(failure)


@pytest.mark.usefixtures("kerberos_env")
def test_no_keytab_or_no_key_in_it_says_what_to_check(
    samba_forest: SambaForest, tmp_path: Path
) -> None:
    missing = tmp_path / "missing.keytab"
    gone = _failure(lab_kerberos(samba_forest, keytab=SecretRef(file=missing)))
    assert gone.kind is KerberosFailure.NO_CREDENTIALS
    assert str(missing) in str(gone) and "never uses tickets from kinit" in str(gone)
    # the DCs' keytab holds host/ keys, not the service account's
    other = _failure(lab_kerberos(samba_forest, keytab=SecretRef(file=samba_forest.dc_keytab)))
    assert other.kind is KerberosFailure.NO_CREDENTIALS
    assert "klist -ke" in str(other)
    unset = _failure(lab_kerberos(samba_forest, keytab=None, password=SecretRef(env="NOT_SET_X")))
    assert unset.kind is KerberosFailure.NO_CREDENTIALS
    assert "env:NOT_SET_X" in str(unset)


@pytest.mark.usefixtures("kerberos_env")
def test_a_kdc_that_is_down_is_named_with_its_address(samba_forest: SambaForest) -> None:
    down = f"127.0.0.1:{free_port()}"
    failure = _failure(lab_kerberos(samba_forest, kdcs=[down]))
    assert failure.kind is KerberosFailure.KDC_UNREACHABLE
    assert down in str(failure) and "port 88" in str(failure)
    # and the next login with the right KDCs works again in the same process
    assert KerberosLogin(lab_kerberos(samba_forest)).ticket()


def test_config_check_names_an_unreadable_keytab(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "svc.keytab"
    path = tmp_path / "c.toml"
    path.write_text(
        '[slack]\nchannel = "C0INCIDENT"\nresponders = ["S0RESPOND"]\n'
        '[[forests]]\nname = "corp.example.com"\nldap_hosts = ["dc1.corp.example.com"]\n'
        '[forests.ldap]\nauth = "kerberos"\n'
        f'[forests.kerberos]\nrealm = "CORP.EXAMPLE.COM"\nprincipal = "svc-ad1411"\n'
        f'keytab = {{ file = "{missing}" }}\n'
    )
    assert main(["config", "check", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"forests.0.kerberos.keytab: keytab {missing} cannot be read" in err


@pytest.mark.usefixtures("kerberos_env")
def test_an_operator_krb5_conf_is_used_as_given(samba_forest: SambaForest, tmp_path: Path) -> None:
    own = tmp_path / "krb5.conf"
    own.write_text(krb5_conf_text([lab_kerberos(samba_forest)]))
    section = lab_kerberos(samba_forest, kdcs=[], krb5_conf=own)
    profile = Krb5Profile()  # one process, one file: a fresh profile stands for a new process
    login = KerberosLogin(section, profile=profile)
    assert login.ticket().principal == samba_forest.service_principal
    assert os.environ["KRB5_CONFIG"] == str(own)
    assert profile.path == own
    with pytest.raises(ConfigError, match="one process reads one file"):
        profile.include(section.model_copy(update={"krb5_conf": tmp_path / "other.conf"}))
    with pytest.raises(ConfigError, match="same krb5_conf"):
        profile.include(lab_kerberos(samba_forest))
