"""`ad1411 serve --processes N`: N serve processes sharing one port (SO_REUSEPORT).

One Python process answers Slack on one core; on a machine with more, N processes bound to
the same port with SO_REUSEPORT let the kernel spread connections over them. This process
only supervises: it reserves the port (a bound, never listening socket, so a port of 0 gets
one number for all), starts N `ad1411 serve --reuse-port` children on it, restarts a child
that dies, and on SIGTERM/SIGINT stops them all within serve.shutdown_seconds. The children
share Redis as replicas do (the embedded one too: state/embedded.py).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from types import FrameType

from bot.config import Settings

log = logging.getLogger(__name__)
RESTART_PAUSE_SECONDS = 2.0
POLL_SECONDS = 0.5


def reserve_port(host: str, port: int) -> socket.socket:
    """A socket bound with SO_REUSEPORT (not listening: it takes no connection)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


class ServeGroup:
    """N serve children on one port, kept running until told to stop."""

    def __init__(self, settings: Settings, processes: int) -> None:
        self.settings = settings
        self.processes = processes
        self.children: list[subprocess.Popen[bytes]] = []
        self.stopping = threading.Event()

    def _spawn(self, port: int) -> subprocess.Popen[bytes]:
        env = {**os.environ, "PORT": str(port)}
        return subprocess.Popen(
            [sys.executable, "-m", "bot.app.cli", "serve", "--reuse-port"], env=env
        )

    def _stop(self, signum: int, _: FrameType | None) -> None:
        log.info("serve group: signal %d, stopping %d processes", signum, len(self.children))
        self.stopping.set()

    def run(self) -> int:
        """Start the children, keep them running, stop them on a signal; the exit status."""
        env = self.settings.env
        reserved = reserve_port(env.HOST, env.PORT)
        port = int(reserved.getsockname()[1])
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._stop)
        try:
            self.children = [self._spawn(port) for _ in range(self.processes)]
            log.info("serve group: %d processes on port %d", self.processes, port)
            while not self.stopping.wait(POLL_SECONDS):
                for i, child in enumerate(self.children):
                    code = child.poll()
                    if code is not None and not self.stopping.is_set():
                        log.error(
                            "serve process %d exited with %s; starting another in %.0f s",
                            child.pid,
                            code,
                            RESTART_PAUSE_SECONDS,
                        )
                        if self.stopping.wait(RESTART_PAUSE_SECONDS):
                            break
                        self.children[i] = self._spawn(port)
        finally:
            self._stop_children()
            reserved.close()
        return 0

    def _stop_children(self) -> None:
        """SIGTERM every child; SIGKILL what is left after serve.shutdown_seconds (+1 s)."""
        for child in self.children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        end = time.monotonic() + self.settings.file.serve.shutdown_seconds + 1
        for child in self.children:
            try:
                child.wait(max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("serve process %d did not stop in time; killing it", child.pid)
                child.kill()
                child.wait()
