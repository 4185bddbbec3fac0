"""Kerberos fixtures: the bot's own login against the Samba lab's KDC, never a kinit.

- `kerberos_env` (function): the Kerberos environment variables (KRB5_CONFIG, KRB5CCNAME,
  KRB5_KTNAME) come back as they were after the test, and KRB5CCNAME starts pointing at a
  cache that does not exist: a test that leaned on someone's kinit would fail.
- `lab_kerberos(forest, **changes)`: the [forests.kerberos] section of the lab's service
  account (svc-ad1411, keytab exported from the forest, the lab DCs as KDCs).
- `kerberos_sims` (function): simulated DCs named like the Samba DCs, accepting Kerberos
  with the host/<fqdn> keys exported from the forest, and NTLM for the same account.

Imported by tests/conftest.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.config import DcOverride, KerberosSection, WinrmSection
from bot.kerberos import KerberosLogin
from bot.remote.winrm import WinrmExecutor
from bot.secrets import SecretRef
from lab.dcsim.simulator import LOOPBACK, DcLab, SimulatedDc
from lab.samba import SambaForest

__all__ = ["KerberosSims", "kerberos_env", "kerberos_sims", "lab_kerberos"]

_VARIABLES = ("KRB5_CONFIG", "KRB5CCNAME", "KRB5_KTNAME")


@pytest.fixture
def kerberos_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Restore the Kerberos variables after the test; no ticket cache exists to start with."""
    for name in _VARIABLES:
        monkeypatch.delenv(name, raising=False)
    missing = tmp_path / "no-such-ccache"
    monkeypatch.setenv("KRB5CCNAME", f"FILE:{missing}")
    return missing


def lab_kerberos(forest: SambaForest, **changes: Any) -> KerberosSection:
    """The lab service account's Kerberos section (keytab), with `changes` applied."""
    settings: dict[str, Any] = {
        "realm": forest.realm,
        "principal": forest.service_principal,
        "keytab": SecretRef(file=forest.service_keytab),
        "kdcs": [dc.address for dc in forest.dcs],
    }
    settings.update(changes)
    return KerberosSection(**settings)


@dataclass
class KerberosSims:
    """Simulated DCs of the Samba forest that accept the service account over Kerberos."""

    forest: SambaForest
    lab: DcLab
    sims: list[SimulatedDc]

    def executor(
        self, login: KerberosLogin | None, *, password: str | None = None, **winrm: Any
    ) -> WinrmExecutor:
        """An executor reaching every simulated DC where it listens (settings from the first)."""
        first = self.sims[0]
        settings: dict[str, Any] = {
            "scheme": first.scheme,
            "port": first.port,
            "auth": "kerberos",
            "ca_file": first.ca_file,
            "operation_timeout_seconds": 5,
            "command_deadline_seconds": 30.0,
        }
        settings.update(winrm)
        overrides = [
            DcOverride(fqdn=d.fqdn, address=d.address, winrm_port=d.port) for d in self.sims
        ]
        return WinrmExecutor(
            WinrmSection(**settings), password=password, overrides=overrides, kerberos=login
        )


def build_kerberos_sims(
    forest: SambaForest,
    work_dir: Path,
    *,
    auth: str = "ntlm",
    https: bool = False,
    on_dc_addresses: bool = False,
) -> KerberosSims:
    """Simulated DCs dc1/dc2.<lab forest> holding the forest's host/<fqdn> keys.

    `on_dc_addresses`: each listens on its Samba DC's address (else on 127.0.0.1).
    """
    lab = DcLab(forest.forest, work_dir)
    sims = [
        lab.add_dc(
            dc.fqdn,
            auth=auth,  # type: ignore[arg-type]
            user=f"{forest.netbios_domain}\\svc-ad1411",
            password=forest.service_password,
            https=https,
            keytab=forest.dc_keytab,
            realm=forest.realm,
            host=dc.address if on_dc_addresses else LOOPBACK,
        )
        for dc in forest.dcs
    ]
    return KerberosSims(forest, lab, sims)


@pytest.fixture
def kerberos_sims(
    samba_forest: SambaForest, tmp_path: Path, kerberos_env: Path
) -> Iterator[KerberosSims]:
    """Simulated lab DCs over HTTP (message encryption) accepting Kerberos and NTLM."""
    sims = build_kerberos_sims(samba_forest, tmp_path / "dcsim")
    try:
        yield sims
    finally:
        sims.lab.stop()
