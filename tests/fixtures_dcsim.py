"""Fixtures for the DC simulator: a forest of simulated DCs and executors pointed at them.

Imported by tests/conftest.py (`from tests.fixtures_dcsim import *`).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest

from bot.config import DcOverride, WinrmSection
from bot.remote.winrm import WinrmExecutor
from lab.dcsim.repadmin_backend import fail_link
from lab.dcsim.simulator import DcLab, RestartTiming, SimulatedDc

__all__ = [
    "DCSIM_FOREST",
    "DCSIM_PASSWORD",
    "DCSIM_USER",
    "SimForest",
    "dcsim_forest",
    "dcsim_lab",
    "directory_probe",
    "executor_at",
    "executor_for",
]

DCSIM_FOREST = "corp.example.com"
DCSIM_USER = "CORP\\svc-ad1411"
DCSIM_PASSWORD = "Lab-only-Passw0rd!"  # a lab account on loopback, nothing else


def executor_at(
    fqdn: str,
    port: int,
    *,
    scheme: str,
    auth: str,
    ca_file: Path | None = None,
    password: str = DCSIM_PASSWORD,
) -> WinrmExecutor:
    """A real WinrmExecutor for a DC listening on 127.0.0.1:`port` (e.g. the `lab dc` CLI)."""
    section = WinrmSection(
        scheme=scheme,  # type: ignore[arg-type]
        port=port,
        auth=auth,  # type: ignore[arg-type]
        user=DCSIM_USER,
        ca_file=ca_file,
        operation_timeout_seconds=5,
    )
    override = DcOverride(fqdn=fqdn, address="127.0.0.1", winrm_port=port)
    return WinrmExecutor(section, password=password, overrides=[override])


def executor_for(
    dc: SimulatedDc,
    *,
    password: str = DCSIM_PASSWORD,
    also: tuple[SimulatedDc, ...] = (),
    **winrm: Any,
) -> WinrmExecutor:
    """A real WinrmExecutor whose [winrm] settings match how `dc` listens (override with kwargs).

    `dc` and `also` get address overrides to 127.0.0.1 and their own ports.
    """
    https = dc.scheme == "https"
    settings: dict[str, Any] = {
        "scheme": dc.scheme,
        "port": dc.port,
        "auth": dc.listener.policy.mode,
        "user": DCSIM_USER,
        "ca_file": dc.ca_file if https else None,
        "operation_timeout_seconds": 5,
        "command_deadline_seconds": 30.0,
    }
    settings.update(winrm)
    section = WinrmSection(**settings)
    overrides = [DcOverride(fqdn=dc.fqdn, address="127.0.0.1", winrm_port=section.port)]
    overrides += [DcOverride(fqdn=d.fqdn, address="127.0.0.1", winrm_port=d.port) for d in also]
    return WinrmExecutor(section, password=password, overrides=overrides)


def directory_probe(dc: SimulatedDc) -> bool:
    """A real TCP connect to the DC's directory port (open only while its directory runs)."""
    try:
        with socket.create_connection(("127.0.0.1", dc.directory_port), timeout=1.0):
            return True
    except OSError:
        return False


@dataclass
class SimForest:
    """Three simulated DCs; dc1 is the forest root DC and has no inbound links from dc3."""

    lab: DcLab
    root: SimulatedDc
    dc2: SimulatedDc
    dc3: SimulatedDc
    transport: str
    extra: dict[str, Any] = field(default_factory=dict)

    def executor(self, dc: SimulatedDc | None = None, **winrm: Any) -> WinrmExecutor:
        """An executor that reaches every DC (settings from `dc`, the root by default)."""
        first = dc or self.root
        others = tuple(d for d in (self.root, self.dc2, self.dc3) if d is not first)
        return executor_for(first, also=others, **winrm)


@pytest.fixture
def dcsim_lab(tmp_path: Path) -> Iterator[DcLab]:
    """An empty simulator; add DCs with lab.add_dc(...)."""
    lab = DcLab(DCSIM_FOREST, tmp_path / "dcsim")
    yield lab
    lab.stop()


def build_forest(lab: DcLab, transport: str, restart: RestartTiming | None = None) -> SimForest:
    """dc1 (root), dc2, dc3 listening with `transport` ('ntlm-http' or 'basic-https')."""
    auth: Literal["basic", "ntlm"] = "basic" if transport == "basic-https" else "ntlm"
    https = transport == "basic-https"
    dcs = [
        lab.add_dc(
            f"dc{i}.{DCSIM_FOREST}",
            auth=auth,
            https=https,
            user=DCSIM_USER,
            password=DCSIM_PASSWORD,
            restart=restart,
        )
        for i in (1, 2, 3)
    ]
    root, dc2, dc3 = dcs
    # The 1411 picture: the root DC has no links from dc3, and dc3's links from root fail 8589.
    lab.forest.connect_all(except_pairs=frozenset({(root.fqdn, dc3.fqdn)}))
    fail_link(lab.forest, dc3.fqdn, root.fqdn, 8589)
    return SimForest(lab, root, dc2, dc3, transport)


@pytest.fixture(params=["ntlm-http", "basic-https"])
def dcsim_forest(request: pytest.FixtureRequest, dcsim_lab: DcLab) -> SimForest:
    """The three-DC forest, once over NTLM+encryption on HTTP, once over Basic on HTTPS."""
    return build_forest(dcsim_lab, str(request.param))
