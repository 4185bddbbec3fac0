"""The embedded redis-server: started when REDIS_URL is unset, AOF keeps data across restarts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
import sys
from pathlib import Path
from state.connection import resolve_redis_url, sync_client
url = resolve_redis_url(None, Path(sys.argv[1]))
client = sync_client(url)
if sys.argv[2] == "write":
    client.set("ad1411:test:key", "kept across restarts")
    print("wrote", url)
else:
    print("read", (client.get("ad1411:test:key") or b"").decode())
"""


def _run(data_dir: Path, mode: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(data_dir), mode],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout.strip()


def test_embedded_redis_persists_across_restart(data_dir: Path) -> None:
    wrote = _run(data_dir, "write")
    assert wrote.startswith("wrote unix://")
    assert (data_dir / "redis").is_dir()
    aof = list((data_dir / "redis").glob("appendonly*"))
    assert aof, "AOF file must exist after the first run"
    assert _run(data_dir, "read") == "read kept across restarts"


def test_server_is_gone_after_exit(data_dir: Path) -> None:
    _run(data_dir, "write")
    sock = data_dir / "redis" / "redis.sock"
    # redis-server removes its socket on clean shutdown: nothing of ours is left running.
    assert not sock.exists()


@pytest.mark.parametrize("bad", ["nope://x"])
def test_bad_redis_url_is_reported(bad: str) -> None:
    from state.connection import sync_client

    with pytest.raises(ValueError, match="Redis URL must specify one of"):
        sync_client(bad)
