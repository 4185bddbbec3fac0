"""Starting and stopping the bot's own processes in tests (by PID, never by name)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LISTENING = re.compile(r"listening on (http://\S+)")


class BotProcess:
    """One `ad1411 <command>` subprocess with its output captured."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("w", encoding="utf-8")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot.app.cli", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for_line(self, pattern: re.Pattern[str], timeout: float = 30.0) -> re.Match[str]:
        """The first stdout line matching pattern; fails with the log when the process dies."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                m = pattern.search(line)
                if m:
                    return m
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError(
            f"no line matching {pattern.pattern!r}; exit={self.proc.poll()}\n"
            f"stdout: {self.lines}\nstderr: {self.stderr()[-4000:]}"
        )

    def stderr(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM our process, then SIGKILL if it does not stop."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL (crash tests)."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def bot_env(**overrides: str) -> dict[str, str]:
    """A clean environment for a bot process: PATH, PYTHONPATH, and what the test gives."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "PYTHONUNBUFFERED": "1",
        "LOG_LEVEL": "INFO",
    }
    env.update(overrides)
    return env


def http_env(slack_env: dict[str, str], **overrides: str) -> dict[str, str]:
    """bot_env for a bot in HTTP mode: the Slack variables without the Socket Mode token."""
    slack = {k: v for k, v in slack_env.items() if k != "SLACK_APP_TOKEN"}
    return bot_env(**slack, **overrides)


@contextmanager
def serve(
    env: dict[str, str], log_dir: Path, name: str = "serve"
) -> Iterator[tuple[BotProcess, str]]:
    """`ad1411 serve` on a free port; yields the process and its base URL."""
    proc = BotProcess(["serve"], {"PORT": "0", **env}, log_dir / f"{name}.log")
    try:
        url = proc.wait_for_line(LISTENING).group(1)
        yield proc, url
    finally:
        proc.stop()
