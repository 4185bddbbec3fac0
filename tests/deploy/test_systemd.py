"""deploy/systemd: the units pass `systemd-analyze verify` (with ExecStart pointed at this
checkout's real `ad1411`), are hardened (`systemd-analyze security --offline` exposure), and
agree with the bot's contract (commands, environment, credentials)."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "deploy" / "systemd"
INSTALLED = "/opt/ad1411/bin/ad1411"
HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "CapabilityBoundingSet": "",
}


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.skip("systemd-analyze is not installed (Debian: systemd); structure checked below")
    return found


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((UNITS / name).read_text(encoding="utf-8"))
    return parser


@pytest.fixture
def local_units(tmp_path: Path) -> Path:
    """The units with ExecStart pointed at this checkout's `ad1411` (verify checks it exists)."""
    ad1411 = Path(sys.executable).parent / "ad1411"
    assert ad1411.exists()
    for path in UNITS.rglob("*"):
        target = tmp_path / path.relative_to(UNITS)
        if path.is_dir():
            target.mkdir()  # drop-ins (unit.d/): verify reads them beside their unit
            continue
        text = path.read_text(encoding="utf-8").replace(INSTALLED, str(ad1411))
        target.write_text(text, encoding="utf-8")
    return tmp_path


def _verify(analyze: str, paths: list[Path]) -> str:
    done = subprocess.run(
        [analyze, "verify", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return (done.stdout + done.stderr).strip()


def test_units_pass_systemd_analyze_verify(local_units: Path) -> None:
    analyze = systemd_analyze()
    assert _verify(analyze, sorted(p for p in local_units.iterdir() if p.is_file())) == ""


def test_verify_does_report_a_broken_unit(local_units: Path) -> None:
    analyze = systemd_analyze()
    broken = local_units / "broken.service"
    text = (local_units / "ad1411-serve.service").read_text()
    broken.write_text(text.replace("ProtectSystem=strict", "ProtectSystem=strcit"))
    assert "protect system" in _verify(analyze, [broken]).lower()


@pytest.mark.parametrize("name", ["ad1411-serve.service", "ad1411-worker.service"])
def test_exposure_is_low(local_units: Path, name: str) -> None:
    analyze = systemd_analyze()
    done = subprocess.run(
        [analyze, "security", "--offline=true", "--no-pager", str(local_units / name)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", done.stdout)
    assert m is not None, done.stdout[-2000:] + done.stderr
    assert float(m.group(1)) <= 2.0, done.stdout


@pytest.mark.parametrize(
    ("name", "command"),
    [("ad1411-serve.service", "serve"), ("ad1411-worker.service", "worker")],
)
def test_units_run_the_bot_hardened_as_a_dedicated_user(name: str, command: str) -> None:
    service = unit(name)["Service"]
    assert service["ExecStart"] == f"{INSTALLED} {command}"
    assert service["User"] == "ad1411" and service["User"] != "root"
    assert service["EnvironmentFile"] == "/etc/ad1411/ad1411.env"
    assert service["StateDirectory"] == "ad1411"
    for key, value in HARDENING.items():
        assert service[key] == value, key
    assert unit(name)["Install"]["WantedBy"] == "multi-user.target"
    assert "redis-server.service" in unit(name)["Unit"]["After"]


def test_only_the_worker_loads_dc_credentials() -> None:
    worker = (UNITS / "ad1411-worker.service").read_text()
    serve = (UNITS / "ad1411-serve.service").read_text()
    assert "LoadCredential=ldap-password:" in worker
    assert "LoadCredential=winrm-password:" in worker
    assert "LoadCredential" not in serve


def test_the_check_timer_runs_the_worker_probe() -> None:
    check = unit("ad1411-worker-check.service")["Service"]
    assert check["ExecStart"] == f"{INSTALLED} worker --check --this-host"
    assert check["Type"] == "oneshot"
    assert unit("ad1411-worker-check.timer")["Timer"]["OnUnitActiveSec"] == "1min"
