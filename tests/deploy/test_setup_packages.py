"""scripts/setup.sh's Debian package selection, run for real: its own lines decide which packages
a machine lacking a command gets (a PATH without the command), and `python -m bench`'s
redis-benchmark is among what a fresh machine receives."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SETUP = ROOT / "scripts" / "setup.sh"


def selection_block() -> str:
    """setup.sh's lines from `need_pkgs=()` up to the install that uses the list."""
    lines = SETUP.read_text(encoding="utf-8").splitlines()
    start = lines.index("need_pkgs=()")
    end = next(i for i, line in enumerate(lines) if line.startswith("if [ ${#need_pkgs[@]}"))
    return "\n".join(lines[start:end])


def packages_wanted(path_dir: Path, *args: str) -> list[str]:
    """The packages setup.sh would install when PATH holds only path_dir's commands."""
    bash = shutil.which("bash")
    assert bash is not None
    script = selection_block() + '\nprintf "%s\\n" "${need_pkgs[@]}"\n'
    done = subprocess.run(
        [bash, "-c", script, "setup.sh", *args],
        env={"PATH": str(path_dir)},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout.split()


def test_a_machine_without_redis_benchmark_gets_redis_tools(tmp_path: Path) -> None:
    assert "redis-tools" in packages_wanted(tmp_path)


def test_redis_tools_is_not_asked_for_when_redis_benchmark_is_there(tmp_path: Path) -> None:
    tool = tmp_path / "redis-benchmark"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    wanted = packages_wanted(tmp_path)
    assert "redis-tools" not in wanted
    assert "libkrb5-dev" in wanted, "the rest of the selection still runs"


def test_redis_tools_is_the_debian_package_that_ships_redis_benchmark() -> None:
    found = shutil.which("redis-benchmark")
    dpkg = shutil.which("dpkg")
    if found is None or dpkg is None:
        pytest.skip("no Debian-installed redis-benchmark here to ask dpkg about")
    owner = subprocess.run(
        [dpkg, "-S", str(Path(found).resolve())],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert owner.returncode == 0, owner.stderr
    assert owner.stdout.split(":", 1)[0] == "redis-tools"
