"""Configuration: every problem named with its key; `ad1411 config check` as operators run it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import check_secrets, load_file_config, load_settings
from bot.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "config.example.toml"


def _check(path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.app.cli", "config", "check", str(path)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        timeout=60,
        check=False,
    )


def test_example_config_is_valid(tmp_path: Path) -> None:
    (tmp_path / "winrm-password").write_text("s3cret-winrm\n")
    (tmp_path / "ldap-password").write_text("s3cret-ldap\n")
    text = EXAMPLE.read_text().replace("/run/secrets/ad1411/", f"{tmp_path}/")
    cfg_path = tmp_path / "ok.toml"
    cfg_path.write_text(text)
    res = _check(cfg_path, {"ALERT_HMAC_SECRET": "x", "AD1411_LDAP_PASSWORD": "s3cret-ldap"})
    assert res.returncode == 0, res.stderr
    assert "is valid" in res.stdout
    assert "s3cret" not in res.stdout + res.stderr


def test_broken_file_lists_each_problem_with_its_key(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(
        """
[slack]
channel = "general"
responders = ["bob"]

[alerts]
coalesce_seconds = -1
unknown_key = 1

[[forests]]
name = "not a dns name"
ldap_hosts = []
[forests.winrm]
auth = "digest"
password = { env = "X", file = "/y" }
"""
    )
    res = _check(cfg)
    assert res.returncode == 1
    err = res.stderr
    for key in [
        "slack.channel",
        "slack.responders.0",
        "alerts.coalesce_seconds",
        "alerts.unknown_key",
        "forests.0.name",
        "forests.0.ldap_hosts",
        "forests.0.winrm.auth",
        "forests.0.winrm.password",
    ]:
        assert key in err, f"{key} missing from:\n{err}"
    assert "configuration problem(s)" in err


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "x.toml"
    bad.write_text("[slack\nchannel=")
    res = _check(bad)
    assert res.returncode == 1 and "not valid TOML" in res.stderr
    res = _check(tmp_path / "absent.toml")
    assert res.returncode == 1 and "does not exist" in res.stderr


def test_unreadable_secret_reference_is_named(tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    cfg_path = tmp_path / "c.toml"
    cfg_path.write_text(text)
    cfg = load_file_config(cfg_path)
    problems = check_secrets(cfg)
    assert any(
        "forests.0.winrm.password" in p and "file:/run/secrets/ad1411/winrm-password" in p
        for p in problems
    )


def test_env_problems_are_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ["SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN", "AD1411_CONFIG"]:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PORT", "not-a-port")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "PORT" in str(err.value)
    monkeypatch.setenv("PORT", "3000")
    with pytest.raises(ConfigError) as err:
        load_settings()
    text = str(err.value)
    assert "SLACK_BOT_TOKEN" in text and "AD1411_CONFIG" in text and "SLACK_SIGNING_SECRET" in text
