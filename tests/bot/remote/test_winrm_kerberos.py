"""WinRM steps on simulated DCs authenticated by Kerberos tickets from the Samba lab's KDC.

The simulated DCs are named like the lab's DCs and decrypt tickets with their host/<fqdn>
keys exported from the forest, as a Windows DC's WinRM service does with its computer
account's key. The bot's login uses the service account's keytab; nobody runs kinit.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.kerberos import KerberosFailure, KerberosLogin
from bot.remote.winrm import DcAuthFailed, DcKerberosFailed
from bot.windows import commands
from bot.windows.commands import NtdsValue
from lab.dcsim.simulator import DcLab
from lab.dcsim.state import RegistryValue
from lab.samba import SambaForest
from tests.conftest import free_port
from tests.fixtures_kerberos import KerberosSims, build_kerberos_sims, lab_kerberos

pytestmark = [pytest.mark.winrm, pytest.mark.usefixtures("kerberos_env")]

REPS_TO = NtdsValue.REPS_TO_FAILURE_TIME


def test_a_step_runs_with_a_ticket_from_the_lab_kdc(
    kerberos_sims: KerberosSims, kerberos_env: Path
) -> None:
    login = KerberosLogin(lab_kerberos(kerberos_sims.forest))
    executor = kerberos_sims.executor(login)
    dc1, dc2 = kerberos_sims.sims
    result = executor.run(dc1.fqdn, commands.reg_add_dword(REPS_TO, 60))
    assert result.exit_code == 0
    assert dc1.registry_value(REPS_TO.value) == RegistryValue(REPS_TO.value, "REG_DWORD", 60)
    executor.run(dc2.fqdn, commands.repadmin_kcc())
    # the DCs saw the service account's Kerberos principal, not a password
    for dc in (dc1, dc2):
        users = {r.user for r in dc.commands()}
        assert users == {kerberos_sims.forest.service_principal}
    assert login.acquisitions == 1
    assert not kerberos_env.exists()


def test_negotiate_uses_the_ticket_and_https_binds_the_channel(
    samba_forest: SambaForest, tmp_path: Path
) -> None:
    sims = build_kerberos_sims(samba_forest, tmp_path / "dcsim", auth="kerberos", https=True)
    try:
        login = KerberosLogin(lab_kerberos(samba_forest))
        for auth in ("kerberos", "negotiate"):
            executor = sims.executor(login, auth=auth, kerberos_service="HTTP")
            dc = sims.sims[0]
            assert executor.run(dc.fqdn, commands.reg_query(REPS_TO), check=False).exit_code == 1
        assert {r.user for r in sims.sims[0].commands()} == {samba_forest.service_principal}
    finally:
        sims.lab.stop()


def test_a_kerberos_only_dc_refuses_ntlm_and_the_error_says_so(
    samba_forest: SambaForest, tmp_path: Path
) -> None:
    sims = build_kerberos_sims(samba_forest, tmp_path / "dcsim", auth="kerberos")
    try:
        dc = sims.sims[0]
        ntlm = sims.executor(
            None,
            auth="ntlm",
            user=f"{samba_forest.netbios_domain}\\svc-ad1411",
            password=samba_forest.service_password,
        )
        with pytest.raises(DcAuthFailed) as caught:
            ntlm.run(dc.fqdn, commands.repadmin_kcc())
        assert "Nothing ran" in str(caught.value)
        assert dc.commands() == []
        # the same DC takes the same account with Kerberos
        kerberos = sims.executor(KerberosLogin(lab_kerberos(samba_forest)))
        assert kerberos.run(dc.fqdn, commands.repadmin_kcc()).exit_code == 0
    finally:
        sims.lab.stop()


def test_the_ntlm_path_keeps_working_beside_kerberos(kerberos_sims: KerberosSims) -> None:
    forest = kerberos_sims.forest
    dc = kerberos_sims.sims[0]
    ntlm = kerberos_sims.executor(
        None,
        auth="ntlm",
        user=f"{forest.netbios_domain}\\svc-ad1411",
        password=forest.service_password,
    )
    assert ntlm.run(dc.fqdn, commands.repadmin_kcc()).exit_code == 0
    kerberos = kerberos_sims.executor(KerberosLogin(lab_kerberos(forest)))
    assert kerberos.run(dc.fqdn, commands.repadmin_kcc()).exit_code == 0
    users = [r.user for r in dc.commands()]
    assert users == [f"{forest.netbios_domain}\\svc-ad1411", forest.service_principal]


def test_a_wrong_spn_service_is_named_and_nothing_runs(kerberos_sims: KerberosSims) -> None:
    login = KerberosLogin(lab_kerberos(kerberos_sims.forest))
    executor = kerberos_sims.executor(login, kerberos_service="WSMAN")
    dc = kerberos_sims.sims[0]
    with pytest.raises(DcKerberosFailed) as caught:
        executor.run(dc.fqdn, commands.repadmin_kcc())
    assert caught.value.kind is KerberosFailure.WRONG_SPN
    message = str(caught.value)
    assert f"WSMAN/{dc.fqdn}" in message
    assert "winrm.kerberos_service" in message and "nothing ran" in message
    assert dc.commands() == []


def test_a_dc_without_the_keys_refuses_the_ticket(
    samba_forest: SambaForest, dcsim_lab: DcLab
) -> None:
    # An NTLM-only listener (no keytab): the ticket is valid but this "DC" cannot read it.
    dc = dcsim_lab.add_dc(
        samba_forest.dcs[0].fqdn,
        user=f"{samba_forest.netbios_domain}\\svc-ad1411",
        password=samba_forest.service_password,
    )
    sims = KerberosSims(samba_forest, dcsim_lab, [dc])
    with pytest.raises(DcAuthFailed) as caught:
        sims.executor(KerberosLogin(lab_kerberos(samba_forest))).run(
            dc.fqdn, commands.repadmin_kcc()
        )
    message = str(caught.value)
    assert samba_forest.service_principal in message
    assert f"host/{dc.fqdn}" in message and "setspn -Q" in message


def test_kdc_down_fails_the_step_before_it_starts(kerberos_sims: KerberosSims) -> None:
    down = f"127.0.0.1:{free_port()}"
    login = KerberosLogin(lab_kerberos(kerberos_sims.forest, kdcs=[down]))
    dc = kerberos_sims.sims[0]
    with pytest.raises(DcKerberosFailed) as caught:
        kerberos_sims.executor(login).run(dc.fqdn, commands.repadmin_kcc())
    assert caught.value.kind is KerberosFailure.KDC_UNREACHABLE
    assert down in str(caught.value) and dc.fqdn in str(caught.value)
    assert dc.commands() == []
    # a restart wait keeps polling instead of giving up: the KDC may be the DC coming back
    assert kerberos_sims.executor(login).is_answering(dc.fqdn) is False


def test_negotiate_falls_back_to_ntlm_when_no_ticket_fits(kerberos_sims: KerberosSims) -> None:
    # negotiate with a password too: as Windows does, NTLM when Kerberos cannot be had
    forest = kerberos_sims.forest
    executor = kerberos_sims.executor(
        KerberosLogin(lab_kerberos(forest)),
        auth="negotiate",
        kerberos_service="WSMAN",
        user=f"{forest.netbios_domain}\\svc-ad1411",
        password=forest.service_password,
    )
    dc = kerberos_sims.sims[0]
    assert executor.run(dc.fqdn, commands.repadmin_kcc()).exit_code == 0
    assert [r.user for r in dc.commands()] == [f"{forest.netbios_domain}\\svc-ad1411"]
