"""The embedded Redis shared by several ad1411 processes on one data directory (issue 9,
items 4 and 11): one owner, the others join; the child dies with its owner; serve restarts it
or takes it over; /healthz fails when it cannot be brought back."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from lab.alert_samples import alert_body, dsa_guid
from lab.slack_emulator import SlackEmulator
from tests.handlers.serve_config import FOREST, write_config
from tests.procs import LISTENING, BotProcess, http_env
from tests.waiting import until

pytestmark = [pytest.mark.slack, pytest.mark.e2e]
TOKEN = "embedded-token"


def redis_servers(data_dir: Path) -> list[int]:
    """PIDs of redis-server processes running on this data directory."""
    found = []
    where = (data_dir / "redis").resolve()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # redis-server rewrites its title, but works in its data directory.
            running = b"redis-server" in (entry / "cmdline").read_bytes()
            if running and Path(os.readlink(entry / "cwd")) == where:
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _owner_pid(data_dir: Path) -> int | None:
    try:
        return owner(data_dir).get("owner_pid")
    except ValueError:  # read while being rewritten
        return None


def _recorded_redis(data_dir: Path) -> int | None:
    try:
        return owner(data_dir).get("redis_pid")
    except ValueError:  # read while being rewritten
        return None


def owner(data_dir: Path) -> dict[str, int]:
    info: dict[str, int] = json.loads((data_dir / "redis" / "owner.lock").read_text() or "{}")
    return info


async def _post(url: str, n: int) -> int:
    body = alert_body("generic_json", f"dc{n % 5}.{FOREST}", dsa_guid(n % 7), FOREST)[0]
    async with (
        aiohttp.ClientSession() as s,
        s.post(url + "/alerts", data=body, headers={"Authorization": f"Bearer {TOKEN}"}) as r,
    ):
        return r.status


async def _get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return r.status, await r.text()


async def _start(env: dict[str, str], log: Path) -> tuple[BotProcess, str]:
    proc = BotProcess(["serve"], {"PORT": "0", **env}, log)
    match = await asyncio.to_thread(proc.wait_for_line, LISTENING, 60)
    return proc, match.group(1)


async def _accepts(url: str) -> bool:
    try:
        return await _post(url, 0) == 202
    except aiohttp.ClientError:
        return False


@pytest.fixture
def env(
    tmp_path: Path, data_dir: Path, slack_env: dict[str, str], slack_emulator: SlackEmulator
) -> dict[str, str]:
    del slack_emulator
    cfg = write_config(tmp_path / "c.toml")
    return http_env(
        slack_env,
        AD1411_CONFIG=str(cfg),
        AD1411_DATA_DIR=str(data_dir),
        ALERT_WEBHOOK_TOKEN=TOKEN,
    )


async def test_one_owner_others_join_and_the_child_dies_with_its_owner(
    tmp_path: Path, data_dir: Path, env: dict[str, str]
) -> None:
    first, url = await _start(env, tmp_path / "first.log")
    second: BotProcess | None = None
    try:
        assert owner(data_dir)["owner_pid"] == first.proc.pid
        assert redis_servers(data_dir) == [owner(data_dir)["redis_pid"]]

        # `audit export` beside serve joins its Redis: no second server, serve unharmed.
        export = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "bot.app.cli", "audit", "export"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert export.returncode == 0, export.stderr
        assert "exported" in export.stderr
        statuses = await asyncio.gather(*[_post(url, n) for n in range(100)])
        assert statuses == [202] * 100
        assert (await _get(url + "/readyz"))[0] == 200
        assert len(redis_servers(data_dir)) == 1

        # A second serve joins too; when the first is killed, its Redis goes with it and the
        # second takes the data directory over, data intact.
        second, url2 = await _start(env, tmp_path / "second.log")
        assert len(redis_servers(data_dir)) == 1
        old_redis = owner(data_dir)["redis_pid"]
        first.kill()
        await until(
            lambda: _true(old_redis not in redis_servers(data_dir)),
            what="the killed owner's redis-server to exit",
            timeout=10,
        )
        await until(lambda: _accepts(url2), what="the second serve to take over", timeout=30)
        await until(
            lambda: _true(_owner_pid(data_dir) == second.proc.pid),
            what="the second serve recorded as owner",
            timeout=10,
        )
        assert len(redis_servers(data_dir)) == 1
        listing = await _get(url2 + "/metrics")
        assert listing[0] == 200
        assert "Traceback" not in second.stderr()
    finally:
        first.kill()
        if second is not None:
            second.stop()
    await until(lambda: _true(not redis_servers(data_dir)), what="no redis-server left", timeout=10)


async def test_serve_restarts_a_dead_redis_and_fails_healthz_when_it_cannot(
    tmp_path: Path, data_dir: Path, env: dict[str, str]
) -> None:
    proc, url = await _start(env, tmp_path / "serve.log")
    try:
        assert await _post(url, 1) == 202
        dead = owner(data_dir)["redis_pid"]
        os.kill(dead, signal.SIGKILL)
        await until(
            lambda: _true(dead not in redis_servers(data_dir)), what="redis killed", timeout=10
        )
        await until(lambda: _accepts(url), what="alerts accepted again", timeout=30)
        await until(
            lambda: _true(_recorded_redis(data_dir) not in (None, dead)),
            what="the restarted redis-server recorded",
            timeout=10,
        )
        assert redis_servers(data_dir) == [_recorded_redis(data_dir)]
        assert (await _get(url + "/healthz"))[0] == 200
        assert "restarting" in proc.stderr()

        # Now a Redis that cannot start (its AOF is garbage): /healthz says so.
        # Redis 6 keeps one appendonly.aof; Redis 7 (Debian's, on Python 3.13) a directory
        # named by a manifest: spoil whichever this server reads.
        aof_dir = data_dir / "redis" / "appendonlydir"
        spoiled = sorted(aof_dir.glob("*.manifest")) or [data_dir / "redis" / "appendonly.aof"]
        os.kill(owner(data_dir)["redis_pid"], signal.SIGKILL)
        for aof in spoiled:
            aof.write_bytes(b"this is not an append-only file\r\n")

        async def failing() -> bool:
            status, text = await _get(url + "/healthz")
            return status == 503 and "redis" in text

        await until(failing, what="/healthz to report the dead Redis", timeout=30)
        status, text = await _get(url + "/readyz")
        assert status == 503 and "redis" in text
    finally:
        proc.stop()


async def _true(value: bool) -> bool:
    return value
