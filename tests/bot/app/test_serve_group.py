"""`ad1411 serve --processes 2`: two serve processes answer on one port; a dead one is
replaced; SIGTERM stops them all."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from tests.handlers.serve_config import write_config
from tests.procs import LISTENING, BotProcess, http_env
from tests.waiting import until

pytestmark = [pytest.mark.slack, pytest.mark.e2e]


def _children(pid: int) -> list[int]:
    """The processes `pid` started (Linux /proc)."""
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(x) for x in text.split()]


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def _gone(pid: int) -> bool:
    """The process exited (and was reaped, or is a zombie no one serves from)."""
    status = Path(f"/proc/{pid}/status")
    return not status.exists() or "zombie" in status.read_text()


def _listening(group: BotProcess, n: int) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        return sum("listening on" in x for x in group.lines) >= n

    return probe


async def _healthy(url: str, times: int) -> bool:
    """`times` requests, each on a new connection (the kernel spreads connections)."""
    for _ in range(times):
        async with aiohttp.ClientSession() as s, s.get(url + "/healthz") as r:
            if r.status != 200:
                return False
    return True


async def test_two_processes_share_one_port_and_stop_together(
    tmp_path: Path, redis_url: str, slack_env: dict[str, str]
) -> None:
    cfg = write_config(tmp_path / "c.toml", sections="[serve]\nshutdown_seconds = 3")
    env = http_env(slack_env, REDIS_URL=redis_url, AD1411_CONFIG=str(cfg), PORT="0")
    group = BotProcess(["serve", "--processes", "2"], env, tmp_path / "group.log")
    try:
        await until(_listening(group, 2), timeout=60, what="two serve processes")
        urls = {m.group(1) for x in group.lines if (m := LISTENING.search(x))}
        assert len(urls) == 1, group.lines  # both on the port the group reserved
        url = urls.pop()
        children = _children(group.proc.pid)
        assert len(children) == 2
        assert all("serve --reuse-port" in _cmdline(c) for c in children)
        assert await _healthy(url, 20)

        # A child that dies is replaced, on the same port.
        os.kill(children[0], 9)
        await until(_listening(group, 3), timeout=60, what="the replacement")
        now = _children(group.proc.pid)
        assert len(now) == 2 and children[0] not in now and children[1] in now
        assert await _healthy(url, 20)
        assert "exited with -9; starting another" in group.stderr()

        # SIGTERM: the group and every child stop within serve.shutdown_seconds (+1 s).
        assert await asyncio.to_thread(group.stop, 10) == 0
        assert all(_gone(pid) for pid in now)
    finally:
        group.stop()
