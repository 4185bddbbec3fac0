"""The bot under benchmark: `ad1411 serve` as a subprocess with a real redis-server and the
Slack emulator, all on loopback, stopped (by PID) and removed afterwards."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from lab.slack_emulator import LAB_BOT_TOKEN, SlackEmulator
from state.redis_server import RedisServer

FOREST = "corp.example.com"
WEBHOOK_TOKEN = "bench-token"
SIGNING_SECRET = "bench-signing-secret"


@dataclass
class LabBot:
    """Where the running bot and its peers are."""

    url: str
    redis_url: str
    emulator: SlackEmulator
    pid: int = 0


@contextmanager
def lab_bot(
    config_extra: str = "", *, serve: list[str] | None = None, processes: int = 1
) -> Iterator[LabBot]:
    """Start redis-server, the emulator and serve (`processes` of it on one port); yield;
    stop all three and clean up."""
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    server = RedisServer(work / "redis", port=0).start()
    emulator = SlackEmulator().start()
    config = work / "c.toml"
    config.write_text(
        '[slack]\nchannel = "C0INCIDENT"\nresponders = ["U0ONCALL1"]\n'
        f"{config_extra}\n"
        f'[[forests]]\nname = "{FOREST}"\nldap_hosts = ["dc0.{FOREST}"]\n'
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "REDIS_URL": server.url,
        "AD1411_CONFIG": str(config),
        "ALERT_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        "SLACK_API_URL": emulator.api_url,
        "SLACK_BOT_TOKEN": LAB_BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "PORT": "0",
        "LOG_LEVEL": "WARNING",
    }
    log = work / "serve.log"
    proc = subprocess.Popen(
        serve or [sys.executable, "-m", "bot.app.cli", "serve", "--processes", str(processes)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = next(
            (m.group(1) for line in proc.stdout if (m := re.search(r"listening on (\S+)", line))),
            None,
        )
        if url is None:
            raise RuntimeError(f"serve did not start: {log.read_text()[-2000:]}")
        yield LabBot(url, server.url, emulator, proc.pid)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
        proc.wait(30)
        emulator.stop()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
