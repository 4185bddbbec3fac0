"""The Kerberos keytab in every deploy path: only the worker binds to the DCs (LDAP, WinRM), so
only the worker gets it, read-only and readable by the bot alone, at the path the example
configs name in `[forests.kerberos] keytab` (which the bot's own config loader accepts)."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.config import load_file_config
from tests.deploy.test_image import dockerfile_instructions, stages
from tests.deploy.test_kubernetes import OVERLAYS, container, find, one, pod_spec, render

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KEYTAB = Path("/run/secrets/ad1411/svc-ad1411.keytab")
SYSTEMD_KEYTAB = Path("/run/credentials/ad1411-worker.service/svc-ad1411.keytab")
DROP_IN = DEPLOY / "systemd" / "ad1411-worker.service.d" / "kerberos-keytab.conf"


def with_kerberos(config_text: str) -> str:
    """The config with its commented-out [forests.kerberos] block switched on."""
    lines = config_text.splitlines()
    start = lines.index("# [forests.kerberos]")
    out = lines[:start]
    for i, line in enumerate(lines[start:], start):
        if not line.startswith("#"):
            out += lines[i:]
            break
        if re.match(r"^# (\[|[a-z_]+ = )", line):
            out.append(line[2:])
    return "\n".join(out) + "\n"


def configured_keytab(config_text: str, tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(with_kerberos(config_text), encoding="utf-8")
    (forest,) = load_file_config(path).forests
    assert forest.kerberos is not None and forest.kerberos.keytab is not None
    assert forest.kerberos.keytab.file is not None
    return forest.kerberos.keytab.file


def test_the_example_config_names_the_mounted_keytab(tmp_path: Path) -> None:
    text = (DEPLOY / "config.example.toml").read_text(encoding="utf-8")
    assert configured_keytab(text, tmp_path) == KEYTAB
    assert str(SYSTEMD_KEYTAB) in text, "and says where systemd puts it"


def _compose(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / name).read_text(encoding="utf-8"))
    return data


def test_compose_override_mounts_the_keytab_into_the_worker_only() -> None:
    base, kerberos = _compose("compose.yaml"), _compose("compose.kerberos.yaml")
    assert set(kerberos["services"]) == {"worker"}, "serve never binds to a DC"
    (secret,) = kerberos["services"]["worker"]["secrets"]
    assert Path(secret["target"]) == KEYTAB
    assert secret["mode"] == 0o400
    image_user = dict(
        (k, a) for k, a in stages(dockerfile_instructions(DEPLOY / "Dockerfile"))[-1]
    )["USER"]
    assert f"{secret['uid']}:{secret['gid']}" == image_user
    source = kerberos["secrets"][secret["source"]]["file"]
    assert (DEPLOY / source).parent == DEPLOY / "secrets"
    # Compose merges a service's secrets by target: the passwords stay beside the keytab.
    base_targets = {s["target"] for s in base["services"]["worker"]["secrets"]}
    assert secret["target"] not in base_targets
    assert {Path(t).parent for t in base_targets} == {KEYTAB.parent}
    assert secret["source"] not in base["secrets"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kubernetes_projects_the_optional_keytab_into_the_worker(overlay: str) -> None:
    objs = render(overlay)
    worker = one(objs, "Deployment", "ad1411-worker")
    volumes = {v["name"]: v for v in pod_spec(worker)["volumes"]}
    mounts = container(worker, "worker")["volumeMounts"]
    (mount,) = [m for m in mounts if Path(m["mountPath"]) == KEYTAB.parent]
    assert mount["readOnly"] is True
    projected = volumes[mount["name"]]["projected"]
    sources = [s["secret"] for s in projected["sources"] if "secret" in s]
    (keytab,) = [s for s in sources if s["name"] == "ad1411-kerberos-keytab"]
    assert keytab["optional"] is True, "a deployment without Kerberos starts without it"
    (item,) = keytab["items"]
    assert Path(mount["mountPath"]) / item["path"] == KEYTAB
    assert item["mode"] == 0o400 and projected["defaultMode"] == 0o400
    # Not generated here (a keytab is binary): the operator creates it.
    assert not [o for o in find(objs, "Secret") if o["metadata"]["name"] == keytab["name"]]
    serve = one(objs, "Deployment", "ad1411-serve")
    assert "ad1411-kerberos-keytab" not in yaml.safe_dump(serve)


def test_the_kubernetes_config_names_the_projected_keytab(tmp_path: Path) -> None:
    config = next(iter(find(render("single-replica"), "ConfigMap", "ad1411-config")))
    assert configured_keytab(config["data"]["config.toml"], tmp_path) == KEYTAB


def _drop_in() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(DROP_IN.read_text(encoding="utf-8"))
    return parser["Service"]


def test_the_systemd_drop_in_loads_the_keytab_as_the_workers_credential() -> None:
    name, _, source = _drop_in()["LoadCredential"].partition(":")
    # systemd puts credential NAME at $CREDENTIALS_DIRECTORY/NAME, owned by the unit's user, 0400.
    assert Path("/run/credentials") / DROP_IN.parent.name.removesuffix(".d") / name == (
        SYSTEMD_KEYTAB
    )
    assert source == "/etc/ad1411/credentials/svc-ad1411.keytab"
    assert not (DEPLOY / "systemd" / "ad1411-serve.service.d").exists()


def _verify_worker_with(drop_in_text: str, tmp_path: Path) -> str:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian: systemd)")
    ad1411 = Path(sys.executable).parent / "ad1411"
    tmp_path.mkdir()
    unit = (DEPLOY / "systemd" / "ad1411-worker.service").read_text(encoding="utf-8")
    (tmp_path / "ad1411-worker.service").write_text(
        unit.replace("/opt/ad1411/bin/ad1411", str(ad1411)), encoding="utf-8"
    )
    (tmp_path / DROP_IN.parent.name).mkdir()
    (tmp_path / DROP_IN.parent.name / DROP_IN.name).write_text(drop_in_text, encoding="utf-8")
    done = subprocess.run(
        [analyze, "verify", str(tmp_path / "ad1411-worker.service")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return (done.stdout + done.stderr).strip()


def test_systemd_analyze_reads_the_drop_in_with_its_unit(tmp_path: Path) -> None:
    text = DROP_IN.read_text(encoding="utf-8")
    assert _verify_worker_with(text, tmp_path / "good") == ""
    broken = text.replace("LoadCredential=", "LoadCredentials=")
    assert "LoadCredentials" in _verify_worker_with(broken, tmp_path / "broken")


def test_operations_doc_lists_the_keytab_and_how_to_rotate_it() -> None:
    doc = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    (row,) = [line for line in doc.splitlines() if line.startswith("| Kerberos keytab")]
    assert "worker only" in row and str(KEYTAB) in row and str(SYSTEMD_KEYTAB) in row
    assert "ad1411-kerberos-keytab" in row and "compose.kerberos.yaml" in row
    rotation = doc[doc.index("- **Kerberos keytab**") : doc.index("- **Redis password**")]
    for needed in ("KVNO", "ktpass", "samba-tool domain exportkeytab", "ktutil", "klist -kte"):
        assert needed in rotation, needed
    assert "libkrb5-dev" in doc[doc.index("### A plain Linux host") :]
