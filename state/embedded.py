"""The embedded Redis of a data directory: one owner process; every other process connects.

The owner holds an exclusive lock on `<data_dir>/redis/owner.lock` for its lifetime (the
kernel drops it when the process dies, even by SIGKILL) and runs redis-server as a child that
dies with it. A second `ad1411` process on the same directory (audit export beside serve, a
second serve) finds the lock taken and connects to the running server instead of starting
another one on the same AOF and socket. A serve process supervises it: the owner restarts a
server that died, and a non-owner whose owner died takes the lock and starts one.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import signal
import time
from pathlib import Path

from state.redis_server import RedisServer

log = logging.getLogger(__name__)
LOCK_NAME = "owner.lock"
CONNECT_SECONDS = 30.0
START_SECONDS = 15.0
FAILING_AFTER = 2  # failed restarts in a row before /healthz says so


class EmbeddedRedisError(RuntimeError):
    """The embedded Redis cannot be used; the message says why and what to do."""


def _is_redis_server(pid: int, data_dir: Path) -> bool:
    """True when pid is a redis-server working in data_dir (a recycled PID is not ours)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return False
    return b"redis-server" in cmdline and cwd == data_dir


class EmbeddedRedis:
    """Owner-or-client access to the redis-server of one data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.dir = (data_dir / "redis").resolve()
        self.server = RedisServer(self.dir)
        self.lock_path = self.dir / LOCK_NAME
        self._lock_fd: int | None = None
        self.restarts = 0
        self.failed_starts = 0
        self.last_error = ""
        self._next_try = 0.0

    @property
    def url(self) -> str:
        """The server's URL (its unix socket)."""
        return self.server.url

    @property
    def owner(self) -> bool:
        """True when this process holds the lock (and runs the server)."""
        return self._lock_fd is not None

    # -- start -------------------------------------------------------------------------------

    def ensure(self, timeout: float = CONNECT_SECONDS) -> str:
        """Own and start the server, or wait for the owner's to answer; returns the URL."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if self._take_lock():
            self._stop_orphan()
            self._start()
            return self.url
        deadline = time.monotonic() + timeout
        while not self.server.answering():
            if self._take_lock():  # the owner went away meanwhile: we are the owner now
                self._stop_orphan()
                self._start()
                return self.url
            if time.monotonic() > deadline:
                raise EmbeddedRedisError(
                    f"the embedded Redis in {self.dir} belongs to another ad1411 process "
                    f"({self._owner_text()}) but did not answer within {timeout:g} s (still "
                    "loading a large AOF?). Wait and retry, stop that process, or set REDIS_URL."
                )
            time.sleep(0.1)
        log.info("embedded Redis in %s is owned by %s; connecting", self.dir, self._owner_text())
        return self.url

    def _take_lock(self) -> bool:
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    def _owner_text(self) -> str:
        try:
            info = json.loads(self.lock_path.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError):
            return "unknown process"
        return f"PID {info.get('owner_pid', '?')}"

    def _record(self) -> None:
        assert self._lock_fd is not None
        data = json.dumps({"owner_pid": os.getpid(), "redis_pid": self.server.pid}).encode()
        os.pwrite(self._lock_fd, data, 0)
        os.ftruncate(self._lock_fd, len(data))

    def _stop_orphan(self) -> None:
        """A server left by an owner that died (or an older version) must stop first:
        two servers on one AOF and socket corrupt each other."""
        try:
            info = json.loads(self.lock_path.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError):
            info = {}
        pid = info.get("redis_pid")
        if isinstance(pid, int) and pid != os.getpid() and _is_redis_server(pid, self.dir):
            log.warning("stopping redis-server %d left behind in %s", pid, self.dir)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while _is_redis_server(pid, self.dir) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _is_redis_server(pid, self.dir):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if self.server.answering():
            # An unrecorded server on our socket: ask it to save and stop.
            import redis  # noqa: PLC0415 - only on this rare path

            with contextlib.suppress(redis.RedisError, OSError):
                redis.Redis.from_url(self.url, socket_timeout=5).shutdown()
            deadline = time.monotonic() + 10
            while self.server.answering() and time.monotonic() < deadline:
                time.sleep(0.05)

    def _start(self) -> None:
        try:
            self.server.start(timeout=START_SECONDS)
        except RuntimeError as exc:
            self.release()
            raise EmbeddedRedisError(
                f"the embedded Redis in {self.dir} did not start: {exc}"
            ) from None
        self._record()

    # -- supervision (serve) -----------------------------------------------------------------

    async def supervise_once(self) -> None:
        """Restart a dead server we own, or take over one whose owner died. Never blocks long:
        the process is spawned at once and awaited asynchronously."""
        if time.monotonic() < self._next_try:
            return
        if self.owner:
            if self.server.running():
                return
            code = self.server.process.returncode if self.server.process is not None else None
            log.error("embedded redis-server is not running (exit code %s); restarting", code)
        elif self.server.answering(timeout=0.2) or not self._take_lock():
            return
        else:
            log.warning("the owner of the embedded Redis in %s is gone; taking over", self.dir)
            self._stop_orphan()
        if await self._restart():
            self.restarts += 1
            self.failed_starts = 0
            self.last_error = ""
            self._record()
            log.warning("embedded redis-server is back (pid %s)", self.server.pid)
            return
        self.failed_starts += 1
        tail = self.server.log_tail(400).strip().splitlines()
        self.last_error = tail[-1] if tail else "no log"
        self.server.stop()
        # Keep the lock and try again later, a little less often each time.
        self._next_try = time.monotonic() + min(2.0 ** (self.failed_starts - 1), 30.0)

    async def _restart(self) -> bool:
        self.server.spawn()
        deadline = time.monotonic() + START_SECONDS
        while not self.server.answering(timeout=0.2):
            if self.server.exited() or time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    def problems(self) -> dict[str, str]:
        """What /healthz should report: restarts keep failing."""
        if self.owner and self.failed_starts >= FAILING_AFTER:
            return {
                "redis": f"embedded redis-server does not start ({self.failed_starts} tries): "
                f"{self.last_error or 'see redis.log'}"
            }
        return {}

    def release(self) -> None:
        """Stop our server (if we own it) and drop the lock."""
        if self._lock_fd is not None:
            self.server.stop()
            os.close(self._lock_fd)
            self._lock_fd = None
