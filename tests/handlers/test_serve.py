"""`ad1411 serve` as a subprocess against the Slack emulator and a real redis-server."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from lab.slack_driver import Forgery, SlackDriver
from lab.slack_emulator import SlackEmulator
from tests.handlers.serve_config import write_config
from tests.procs import BotProcess, bot_env, http_env, serve

pytestmark = [pytest.mark.slack, pytest.mark.e2e]


async def _get(url: str) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return r.status, json.loads(await r.text())


async def test_help_over_http_and_signature_checks(
    tmp_path: Path,
    redis_url: str,
    slack_env: dict[str, str],
    slack_driver_factory: Callable[[str | None], SlackDriver],
) -> None:
    env = http_env(
        slack_env,
        REDIS_URL=redis_url,
        AD1411_CONFIG=str(write_config(tmp_path / "c.toml")),
    )
    with serve(env, tmp_path) as (proc, url):
        driver = slack_driver_factory(url + "/slack/events")
        resp = await driver.slash_command("/ad1411", "help")
        assert resp.status == 200
        assert "Usage: `/ad1411 <command>`" in resp.body
        assert "`diagnose <incident-id>`" in resp.body

        for forgery in (Forgery.BAD_SIGNATURE, Forgery.STALE_TIMESTAMP, Forgery.NO_SIGNATURE):
            refused = await driver.slash_command("/ad1411", "help", forgery=forgery)
            assert refused.status == 401, forgery
            assert "Usage" not in refused.body

        status, body = await _get(url + "/healthz")
        assert (status, body["status"]) == (200, "ok")
        status, body = await _get(url + "/readyz")
        assert (status, body["status"]) == (200, "ready")
        async with aiohttp.ClientSession() as s, s.get(url + "/metrics") as r:
            metrics = await r.text()
        assert r.status == 200
        assert 'ad1411_slack_requests_total{status="401"} 3.0' in metrics
        assert "xoxb" not in proc.stderr()


async def test_unknown_subcommand_gets_usage(
    tmp_path: Path,
    redis_url: str,
    slack_env: dict[str, str],
    slack_driver_factory: Callable[[str | None], SlackDriver],
) -> None:
    env = http_env(
        slack_env,
        REDIS_URL=redis_url,
        AD1411_CONFIG=str(write_config(tmp_path / "c.toml")),
    )
    with serve(env, tmp_path) as (_, url):
        driver = slack_driver_factory(url + "/slack/events")
        resp = await driver.slash_command("/ad1411", "frobnicate now")
        assert "Unknown command `frobnicate`" in resp.body and "Usage" in resp.body
        resp = await driver.slash_command("/ad1411", "status not-an-id")
        assert "is not an incident id" in resp.body
        resp = await driver.slash_command("/ad1411", "list")
        assert "No open 1411 incidents." in resp.body


async def test_readyz_fails_when_slack_auth_fails(
    tmp_path: Path, redis_url: str, slack_env: dict[str, str]
) -> None:
    env = bot_env(
        REDIS_URL=redis_url,
        AD1411_CONFIG=str(write_config(tmp_path / "c.toml")),
        **{**slack_env, "SLACK_BOT_TOKEN": "xoxb-wrong-token"},
    )
    env.pop("SLACK_APP_TOKEN")
    with serve(env, tmp_path) as (_, url):
        status, body = await _get(url + "/readyz")
        assert status == 503
        assert "invalid_auth" in json.dumps(body["problems"])


async def test_help_over_socket_mode(
    tmp_path: Path,
    redis_url: str,
    slack_env: dict[str, str],
    slack_emulator: SlackEmulator,
    slack_driver_factory: Callable[[str | None], SlackDriver],
) -> None:
    env = bot_env(
        REDIS_URL=redis_url, AD1411_CONFIG=str(write_config(tmp_path / "c.toml")), **slack_env
    )
    with serve(env, tmp_path) as (proc, _url):
        proc.wait_for_line(re.compile("connected in Socket Mode"))
        await slack_emulator.wait_for_async(lambda: slack_emulator.socket_connections, timeout=20)
        driver = slack_driver_factory(None)
        resp = await driver.slash_command("/ad1411", "help")
        assert resp.status == 200
        assert "Usage: `/ad1411 <command>`" in json.dumps(resp.ack)


def test_serve_refuses_to_start_without_settings(tmp_path: Path) -> None:
    proc = BotProcess(["serve"], bot_env(), tmp_path / "serve.log")
    code = proc.proc.wait(60)
    proc.stop()
    err = proc.stderr()
    assert code == 2
    assert "SLACK_BOT_TOKEN" in err and "AD1411_CONFIG" in err
