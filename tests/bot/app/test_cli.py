"""The `ad1411` command line as an operator runs it."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import redis.asyncio

from state.incidents import AlertRecord, IncidentStore

CORPUS = Path(__file__).parents[1] / "alerts" / "corpus" / "good"


def _cli(
    *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "bot.app.cli", *args],
        input=stdin,
        capture_output=True,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        timeout=60,
        check=False,
    )


def test_alert_parse_file_prints_the_normalized_alert() -> None:
    src = CORPUS / "kb938704_symptoms_block.txt"
    res = _cli("alert", "parse", str(src))
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    expected = json.loads((CORPUS / "kb938704_symptoms_block.txt.expected.json").read_text())
    assert got == (expected[0] if isinstance(expected, list) else expected)
    assert set(got) == {
        "event_id",
        "reporting_dc",
        "target_dsa_guid",
        "forest",
        "error_code",
        "observed_at",
        "source_format",
    }


def test_alert_parse_stdin_and_rejection() -> None:
    good = (CORPUS / "generic_minimal.json").read_bytes()
    res = _cli("alert", "parse", "-", stdin=good)
    assert res.returncode == 0 and json.loads(res.stdout)["event_id"] == 1411
    res = _cli("alert", "parse", "-", stdin=b'{"event_id": 1411, "computer": "dc1&calc.exe"}')
    assert res.returncode == 2
    err = res.stderr.decode()
    assert err.startswith("ad1411: alert rejected:")
    assert "reporting_dc" in err or "computer" in err


def test_audit_export_writes_json_lines(redis_url: str, tmp_path: Path) -> None:
    async def fill() -> str:
        store = IncidentStore(redis.asyncio.Redis.from_url(redis_url))
        intake = await store.record(
            AlertRecord(
                "corp.example.com",
                "6f1c2a7e-0d3b-4c2a-9a51-3e5b8d7c1f20",
                "dc1.corp.example.com",
                8589,
                None,
                "event_text",
            )
        )
        await store.close(intake.incident_id, actor="U0ONCALL1", reason="healed")
        return intake.incident_id

    iid = asyncio.run(fill())
    out = tmp_path / "audit.jsonl"
    res = _cli("audit", "export", "-o", str(out), env={"REDIS_URL": redis_url})
    assert res.returncode == 0, res.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [e["event"] for e in lines] == ["incident_opened", "incident_closed"]
    assert all(e["incident"] == iid for e in lines)
    assert lines[1]["actor"] == "U0ONCALL1"
    assert "exported 2 audit entries" in res.stderr.decode()


def test_audit_export_filters_by_incident_and_time(redis_url: str, tmp_path: Path) -> None:
    async def fill() -> tuple[str, str]:
        store = IncidentStore(redis.asyncio.Redis.from_url(redis_url))
        ids = []
        for guid in (
            "6f1c2a7e-0d3b-4c2a-9a51-3e5b8d7c1f20",
            "0b7c3a7e-0d3b-4c2a-9a51-3e5b8d7c1f21",
        ):
            intake = await store.record(
                AlertRecord("corp.example.com", guid, "dc1.corp.example.com", 8589, None, "x")
            )
            ids.append(intake.incident_id)
        await store.client.aclose()
        return ids[0], ids[1]

    first, second = asyncio.run(fill())
    env = {"REDIS_URL": redis_url}
    res = _cli("audit", "export", "--incident", second, env=env)
    assert res.returncode == 0, res.stderr
    lines = [json.loads(line) for line in res.stdout.decode().splitlines()]
    assert lines and {e["incident"] for e in lines} == {second}
    future = _cli("audit", "export", "--since", "2999-01-01T00:00Z", env=env)
    assert future.stdout.decode() == "" and "exported 0" in future.stderr.decode()
    everything = _cli("audit", "export", "--since", "0", env=env)
    assert {json.loads(x)["incident"] for x in everything.stdout.decode().splitlines()} == {
        first,
        second,
    }
    bad = _cli("audit", "export", "--since", "yesterday", env=env)
    assert bad.returncode == 2 and "ISO 8601" in bad.stderr.decode()
    assert "Traceback" not in bad.stderr.decode()
