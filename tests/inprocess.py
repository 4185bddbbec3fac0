"""The bot's serve side in the test's own process: a signed request into the real Bolt app.

`running_bot` starts `ServeRuntime` (aiohttp on a free loopback port, Bolt, the real
AsyncWebClient pointed at the Slack emulator, a real redis-server) in the test's event loop,
the way bolt-python's scenario tests run the app: no subprocess, milliseconds per request.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import redis

from bot.app.logs import SafeFormatter
from bot.app.serve import ServeRuntime
from bot.config import EnvSettings, Settings, load_file_config
from handlers.context import ServeContext
from lab.slack_driver import SlackDriver
from lab.slack_emulator import LAB_BOT_TOKEN, SlackEmulator
from state.connection import sync_client


class LogCapture(logging.Handler):
    """Every log record of the process while the bot runs, formatted as serve would log it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(SafeFormatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def text(self) -> str:
        return "\n".join(self.lines)


@dataclass
class InProcessBot:
    """A running serve side and the Slack it talks to."""

    runtime: ServeRuntime
    driver: SlackDriver
    emulator: SlackEmulator
    redis: redis.Redis
    logs: LogCapture
    token: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.runtime.url

    @property
    def ctx(self) -> ServeContext:
        assert self.runtime.ctx is not None
        return self.runtime.ctx

    def stderr(self) -> str:
        """What the bot logged (the in-process stand-in for a serve process's stderr)."""
        return self.logs.text()

    async def post(
        self, body: bytes, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, Any]]:
        """POST /alerts (with the bearer token unless headers are given)."""
        hdrs = {"Authorization": f"Bearer {self.token}"} if headers is None else headers
        async with (
            aiohttp.ClientSession() as s,
            s.post(self.url + "/alerts", data=body, headers=hdrs) as r,
        ):
            text = await r.text()
            return r.status, json.loads(text) if text.strip() else {}

    def incident_messages(self, channel: str = "C0INCIDENT") -> list[dict[str, object]]:
        """Top-level messages of the incident channel (not thread replies)."""
        return [
            m
            for m in self.emulator.messages(channel)
            if "thread_ts" not in m or m.get("thread_ts") == m.get("ts")
        ]

    def thread(self, ts: str, channel: str = "C0INCIDENT") -> list[dict[str, Any]]:
        """Replies in the thread of message `ts`."""
        return [
            m
            for m in self.emulator.messages(channel)
            if m.get("thread_ts") == ts and m.get("ts") != ts
        ]


def settings_for(
    emulator: SlackEmulator,
    signing_secret: str,
    redis_url: str,
    config: Path,
    **env: str,
) -> Settings:
    """Settings of a bot pointed at the emulator and the test's Redis."""
    values: dict[str, Any] = {
        "SLACK_API_URL": emulator.api_url,
        "SLACK_BOT_TOKEN": LAB_BOT_TOKEN,
        "SLACK_SIGNING_SECRET": signing_secret,
        "REDIS_URL": redis_url,
        "AD1411_CONFIG": str(config),
        "PORT": "0",
        "HOST": "127.0.0.1",
        **env,
    }
    return Settings(env=EnvSettings(**values), file=load_file_config(config))


@asynccontextmanager
async def running_bot(
    settings: Settings, emulator: SlackEmulator, signing_secret: str
) -> AsyncIterator[InProcessBot]:
    """Start serve in this loop; stop it (and drain its background work) afterwards."""
    logs = LogCapture()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(logs)
    root.setLevel(logging.INFO)
    try:
        runtime = await ServeRuntime(settings).start()
    except BaseException:
        root.removeHandler(logs)
        root.setLevel(old_level)
        raise
    sync = sync_client(settings.env.REDIS_URL or "")
    token = settings.env.ALERT_WEBHOOK_TOKEN
    try:
        yield InProcessBot(
            runtime=runtime,
            driver=SlackDriver(
                emulator, signing_secret=signing_secret, bot_url=runtime.url + "/slack/events"
            ),
            emulator=emulator,
            redis=sync,
            logs=logs,
            token=token.get_secret_value() if token is not None else None,
        )
    finally:
        await runtime.stop()
        sync.close()
        root.removeHandler(logs)
        root.setLevel(old_level)
