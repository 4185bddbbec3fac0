"""`ad1411 config check --probe`: each configured authentication tried against each DC.

LDAP goes to the real Samba DCs; WinRM to simulated DCs listening on the same addresses and
holding the forest's host/<fqdn> keys; Kerberos tickets come from the lab KDC with the keytab.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.app.cli import main
from lab.samba import SambaForest
from tests.conftest import free_port
from tests.fixtures_kerberos import KerberosSims, build_kerberos_sims

pytestmark = [pytest.mark.winrm, pytest.mark.usefixtures("kerberos_env")]


@pytest.fixture
def sims(samba_forest: SambaForest, tmp_path: Path) -> Iterator[KerberosSims]:
    lab = build_kerberos_sims(samba_forest, tmp_path / "dcsim", on_dc_addresses=True)
    try:
        yield lab
    finally:
        lab.lab.stop()


def _config(
    path: Path,
    forest: SambaForest,
    sims: KerberosSims,
    *,
    ldap: str,
    winrm: str,
    kerberos: str,
) -> Path:
    dcs = "\n".join(
        f'[[forests.dcs]]\nfqdn = "{sim.fqdn}"\naddress = "{sim.address}"\n'
        f"ldap_port = 636\nwinrm_port = {sim.port}"
        for sim in sims.sims
    )
    path.write_text(
        f"""
[slack]
channel = "C0INCIDENT"
responders = ["S0RESPOND"]
[[forests]]
name = "{forest.forest}"
ldap_hosts = ["{forest.dcs[0].fqdn}"]
[forests.ldap]
tls = "ldaps"
ca_file = "{forest.ca_file}"
{ldap}
[forests.winrm]
scheme = "http"
operation_timeout_seconds = 5
{winrm}
{kerberos}
{dcs}
""",
        encoding="utf-8",
    )
    return path


def _kerberos(forest: SambaForest, kdcs: list[str] | None = None) -> str:
    kdc_list = ", ".join(f'"{k}"' for k in (kdcs or [dc.address for dc in forest.dcs]))
    return (
        f'[forests.kerberos]\nrealm = "{forest.realm}"\nprincipal = "{forest.service_principal}"\n'
        f'keytab = {{ file = "{forest.service_keytab}" }}\nkdcs = [{kdc_list}]'
    )


def test_probe_reports_kerberos_ldap_and_winrm_per_dc(
    samba_forest: SambaForest,
    sims: KerberosSims,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg = _config(
        tmp_path / "c.toml",
        samba_forest,
        sims,
        ldap='auth = "kerberos"',
        winrm='auth = "kerberos"',
        kerberos=_kerberos(samba_forest),
    )
    assert main(["config", "check", "--probe", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert f"forest {samba_forest.forest}" in out
    assert f"ticket for {samba_forest.service_principal}" in out
    for dc in samba_forest.dcs:
        assert (
            f"{dc.fqdn}  ldap (ldaps, kerberos): ok: bound as {samba_forest.service_principal}"
            in out
        )
        assert f"{dc.fqdn}  winrm (http, kerberos as host/<dc>): ok: opened a shell" in out
    assert "5 of 5 checks passed" in out


def test_probe_says_what_failed_where_and_exits_non_zero(
    samba_forest: SambaForest,
    sims: KerberosSims,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # LDAP: simple bind over LDAPS (still allowed on the hardened DC); WinRM: a Kerberos SPN
    # service the DCs do not have.
    monkeypatch.setenv("LAB_ADMIN_PASSWORD", samba_forest.admin_password)
    cfg = _config(
        tmp_path / "c.toml",
        samba_forest,
        sims,
        ldap=f'auth = "simple"\nuser = "{samba_forest.admin_dn}"\n'
        'password = { env = "LAB_ADMIN_PASSWORD" }',
        winrm='auth = "kerberos"\nkerberos_service = "WSMAN"',
        kerberos=_kerberos(samba_forest),
    )
    assert main(["config", "check", "--probe", str(cfg)]) == 1
    out = capsys.readouterr().out
    for dc in samba_forest.dcs:
        assert f"{dc.fqdn}  ldap (ldaps, simple): ok: bound as {samba_forest.admin_dn}" in out
        assert f"{dc.fqdn}  winrm (http, kerberos as WSMAN/<dc>): FAILED:" in out
        assert f"knows no service WSMAN/{dc.fqdn}" in out
    assert "3 of 5 checks passed" in out
    assert samba_forest.admin_password not in out


def test_probe_with_the_kdc_down_fails_the_login_and_skips_what_needs_it(
    samba_forest: SambaForest,
    sims: KerberosSims,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    down = f"127.0.0.1:{free_port()}"
    cfg = _config(
        tmp_path / "c.toml",
        samba_forest,
        sims,
        ldap='auth = "kerberos"',
        winrm='auth = "kerberos"',
        kerberos=_kerberos(samba_forest, kdcs=[down]),
    )
    assert main(["config", "check", "--probe", str(cfg)]) == 1
    out = capsys.readouterr().out
    assert f"{samba_forest.realm}  kerberos (keytab): FAILED:" in out
    assert f"No KDC answered: asked {down}" in out
    assert out.count("not tried: the Kerberos login above failed") == 4
    assert "0 of 5 checks passed" in out
