"""The demo's forest: the real Samba lab when this machine allows it, else the DC simulator
alone; either way one simulated DC (WinRM) per forest DC, and the bot's [[forests]] entry.

The Samba forest is kept under the lab directory between runs (provisioning takes ~40 s, a
start ~5 s) and put back to its healthy baseline at each start.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.dcsim.machine import samba_machines
from lab.dcsim.repadmin_backend import fail_link
from lab.dcsim.samba_repadmin import samba_repadmin
from lab.dcsim.simulator import DcLab, RestartTiming, SimulatedDc
from lab.loopback import AddressPairClaim, claim_address_pair
from lab.samba import SAMBA_TOOL, SambaForest

SIM_FOREST = "lab.ad1411.test"
SIM_TARGET_GUID = "6f1c2a7e-0d3b-4c2a-9a51-3e5b8d7c1f20"
WINRM_USER = "LAB\\svc-ad1411"
LDAP_PASSWORD_ENV = "AD1411_DEMO_LDAP_PASSWORD"
WINRM_PASSWORD_ENV = "AD1411_DEMO_WINRM_PASSWORD"
# Windows takes minutes; the lab restarts a DC in seconds.
DEMO_RESTART = RestartTiming(grace_seconds=1.0, downtime_seconds=4.0, directory_delay_seconds=0.5)

# Samba pulls from each partner every 5 min by default; a visitor reaching step 12 a minute
# after step 3b should find the failures of the outage retried and cleared, as on a DC whose
# schedule has come round.
DEMO_REPLICATION_SECONDS = 15
USED_MARKER = "demo-broke-this-forest"
Say = Callable[[str], None]


def samba_unavailable_reason() -> str | None:
    """Why this machine cannot run the Samba lab, or None when it can."""
    if os.geteuid() != 0:
        return "not root (the lab needs a mount namespace and the samba daemons)"
    if not Path(SAMBA_TOOL).exists() or shutil.which("samba") is None:
        return "samba-ad-dc is not installed (./scripts/setup.sh installs it as root)"
    return None


def _cached_addresses(lab_dir: Path) -> tuple[str, ...]:
    found = sorted(lab_dir.glob("samba-127.0.0.*/lab-state.json"))
    return tuple(p.parent.name.removeprefix("samba-") for p in found)


def open_samba_forest(lab_dir: Path, say: Say) -> tuple[SambaForest, AddressPairClaim]:
    """The cached lab forest, started and healthy (provisioned first when there is none)."""
    lab_dir.mkdir(parents=True, exist_ok=True)
    claim = claim_address_pair(_cached_addresses(lab_dir))
    forest = SambaForest(
        lab_dir / f"samba-{claim.address}",
        first_address=claim.address,
        replication_interval_seconds=DEMO_REPLICATION_SECONDS,
    )
    try:
        if (forest.base_dir / "lab-state.json").exists():
            say(f"Samba AD forest: starting DC1 and DC2 on {claim.address} (cached)")
            forest.start()
            used = forest.base_dir / USED_MARKER
            if used.exists():
                forest.mark_dirty()  # a demo broke it (and maybe more): the healthy snapshot
                used.unlink()
            forest.reset()
        else:
            say(f"Samba AD forest: provisioning DC1 and DC2 on {claim.address} (once, ~40 s)")
            forest.start()
    except BaseException:
        forest.stop()
        claim.release()
        raise
    return forest, claim


@dataclass
class DemoForest:
    """What the demo runs the bot against."""

    name: str
    dcsim: DcLab
    sims: dict[str, SimulatedDc]
    reporter_fqdn: str  # the DC that reports Event 1411 (DC1)
    target_fqdn: str  # the DC whose serverReference goes missing (DC2)
    target_guid: str
    samba: SambaForest | None = None
    claim: AddressPairClaim | None = None
    ldap: dict[str, Any] = field(default_factory=dict)

    def config(self) -> dict[str, Any]:
        """The bot's [[forests]] entry for this forest."""
        dcs = []
        for fqdn, sim in self.sims.items():
            dc: dict[str, Any] = {"fqdn": fqdn, "address": sim.host, "winrm_port": sim.port}
            if self.samba is not None:
                dc["ldap_port"] = self.samba.dc(fqdn).ldaps_port
            dcs.append(dc)
        return {
            "name": self.name,
            "ldap_hosts": [self.reporter_fqdn],
            "ldap": self.ldap,
            "winrm": {
                "scheme": "http",
                "port": 5985,
                "auth": "ntlm",
                "user": WINRM_USER,
                "password": {"env": WINRM_PASSWORD_ENV},
                "operation_timeout_seconds": 10,
                "restart_deadline_seconds": 120,
            },
            "dcs": dcs,
        }

    def break_forest(self) -> None:
        """Remove DC2's serverReference; DC2's next pull from DC1 is refused (8453)."""
        if self.samba is not None:
            (self.samba.base_dir / USED_MARKER).touch()
            dc1, dc2 = self.samba.dc(self.reporter_fqdn), self.samba.dc(self.target_fqdn)
            self.samba.remove_server_reference(dc2)
            # DC2's scheduled replication from DC1, now rather than in up to 5 minutes
            self.samba.try_replicate(dc2, dc1, self.samba.configuration_dn)
        else:
            fail_link(self.dcsim.forest, self.target_fqdn, self.reporter_fqdn, 8453)

    def stop(self) -> None:
        """Stop the simulator (it boots any DC it left down), then the Samba DCs (by PID)."""
        self.dcsim.stop()
        if self.samba is not None:
            self.samba.stop()
        if self.claim is not None:
            self.claim.release()


def _simulated_dcs(
    lab: DcLab, fqdns: list[str], hosts: dict[str, str], password: str, machines: dict[str, Any]
) -> dict[str, SimulatedDc]:
    return {
        fqdn: lab.add_dc(
            fqdn,
            auth="ntlm",
            user=WINRM_USER,
            password=password,
            host=hosts.get(fqdn, "127.0.0.1"),
            machine=machines.get(fqdn),
            restart=DEMO_RESTART,
        )
        for fqdn in fqdns
    }


def start_forest(
    lab_dir: Path, work_dir: Path, say: Say, *, simulator_only: bool = False
) -> DemoForest:
    """The Samba-backed forest when possible, else the simulator alone (and say which)."""
    password = secrets.token_urlsafe(18)
    os.environ[WINRM_PASSWORD_ENV] = password  # the in-process bot reads it by reference
    reason = "--simulator-only was given" if simulator_only else samba_unavailable_reason()
    if reason is None:
        forest, claim = open_samba_forest(lab_dir, say)
        try:
            lab = DcLab(forest.forest, work_dir / "dcsim", repadmin=samba_repadmin(forest))
            machines = samba_machines(forest)
            hosts = {dc.fqdn: dc.address for dc in forest.dcs}
            sims = _simulated_dcs(lab, [d.fqdn for d in forest.dcs], hosts, password, machines)
        except BaseException:
            forest.stop()
            claim.release()
            raise
        os.environ[LDAP_PASSWORD_ENV] = forest.admin_password
        dc1, dc2 = forest.dcs
        return DemoForest(
            name=forest.forest,
            dcsim=lab,
            sims=sims,
            reporter_fqdn=dc1.fqdn,
            target_fqdn=dc2.fqdn,
            target_guid=dc2.dsa_guid,
            samba=forest,
            claim=claim,
            ldap={
                "tls": "ldaps",
                "ca_file": str(forest.ca_file),
                "user": forest.admin_dn,
                "password": {"env": LDAP_PASSWORD_ENV},
            },
        )
    say(
        f"Samba AD forest: not used ({reason}); the DC simulator runs alone, so the diagnosis "
        "will find no directory to read and the procedure, planned from it, cannot start"
    )
    lab = DcLab(SIM_FOREST, work_dir / "dcsim")
    fqdns = [f"dc1.{SIM_FOREST}", f"dc2.{SIM_FOREST}"]
    sims = _simulated_dcs(lab, fqdns, {}, password, {})
    lab.forest.connect_all()
    return DemoForest(
        name=SIM_FOREST,
        dcsim=lab,
        sims=sims,
        reporter_fqdn=fqdns[0],
        target_fqdn=fqdns[1],
        target_guid=SIM_TARGET_GUID,
    )
