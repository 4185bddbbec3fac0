"""An empty or whitespace-only secret is a configuration error, at start and in `config check`
(issue 9, item 1): an empty key would accept requests signed with an empty key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import check_secrets, load_env, load_file_config
from bot.errors import ConfigError
from bot.secrets import SecretRef
from lab.slack_emulator import SlackEmulator
from tests.handlers.serve_config import write_config
from tests.inprocess import running_bot, settings_for

BLANKS = ["", " ", "\t", "\u00a0", "\u3000", "\u0085", " \u2028 "]


def _check(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.app.cli", "config", "check", str(path)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", **env},
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("blank", BLANKS)
@pytest.mark.parametrize("var", ["ALERT_WEBHOOK_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_BOT_TOKEN"])
def test_blank_secret_variables_are_refused(
    monkeypatch: pytest.MonkeyPatch, var: str, blank: str
) -> None:
    monkeypatch.setenv(var, blank)
    with pytest.raises(ConfigError) as err:
        load_env()
    assert var in str(err.value) and "empty or only whitespace" in str(err.value)


@pytest.mark.parametrize("blank", ["", "\u00a0\n", "  \n"])
def test_blank_hmac_secret_fails_config_check(tmp_path: Path, blank: str) -> None:
    secret = tmp_path / "hmac"
    secret.write_text(blank, encoding="utf-8")
    cfg = write_config(tmp_path / "c.toml", extra=f'hmac_secret = {{ file = "{secret}" }}')
    assert any("alerts.hmac_secret" in p for p in check_secrets(load_file_config(cfg)))
    res = _check(cfg, {})
    assert res.returncode == 1
    assert "alerts.hmac_secret" in res.stderr and "empty" in res.stderr
    res = _check(write_config(tmp_path / "t.toml"), {"ALERT_WEBHOOK_TOKEN": "\u00a0"})
    assert res.returncode == 1 and "ALERT_WEBHOOK_TOKEN" in res.stderr


async def test_serve_refuses_to_start_with_a_blank_hmac_secret(
    tmp_path: Path,
    redis_url: str,
    slack_emulator: SlackEmulator,
    slack_signing_secret: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BLANK_HMAC", "\u3000")
    cfg = write_config(tmp_path / "c.toml", extra='hmac_secret = { env = "BLANK_HMAC" }')
    settings = settings_for(slack_emulator, slack_signing_secret, redis_url, cfg)
    with pytest.raises(ConfigError, match=r"alerts\.hmac_secret"):
        async with running_bot(settings, slack_emulator, slack_signing_secret):
            pass


def test_a_secret_file_keeps_everything_but_its_ascii_blank_ends(tmp_path: Path) -> None:
    path = tmp_path / "s"
    path.write_text("\u00a0key\u00a0 \n", encoding="utf-8")
    assert SecretRef(file=path).resolve() == "\u00a0key\u00a0"
