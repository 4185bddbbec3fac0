"""The audit is tamper-evident: `ad1411 audit verify` names the entry after an edit, a removal
or a swap, on a real redis-server."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
import redis
import redis.asyncio

from state.audit import AuditLog
from state.incidents import AlertRecord, IncidentStore
from state.keys import GLOBAL_AUDIT
from tests.streams import raw_entries


def _cli(*args: str, redis_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.app.cli", "audit", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={"REDIS_URL": redis_url, "PATH": "/usr/bin:/bin"},
        check=False,
    )


def _fill(redis_url: str) -> str:
    async def go() -> str:
        client = redis.asyncio.Redis.from_url(redis_url)
        store = IncidentStore(client)
        iid = ""
        for dc in ("dc1", "dc2", "dc3", "dc4"):
            intake = await store.record(
                AlertRecord(
                    "corp.example.com",
                    "6f1c2a7e-0d3b-4c2a-9a51-3e5b8d7c1f20",
                    f"{dc}.corp.example.com",
                    8589,
                    None,
                    "event_text",
                )
            )
            iid = intake.incident_id
        for n in range(3):
            await AuditLog(client).append_global(
                "note", incident=iid, user="U0ONCALL1", text=f"entry {n}"
            )
        await client.aclose()
        return iid

    return asyncio.run(go())


def _rewrite(client: redis.Redis, stream: str, change: Callable[[list[Any]], list[Any]]) -> None:
    """Rewrite a stream with the same ids (what someone with Redis access could do)."""
    entries = raw_entries(client, stream)
    changed = change([(sid, dict(fields)) for sid, fields in entries])
    client.delete(stream)
    for sid, fields in changed:
        client.xadd(stream, fields, id=sid)


def test_an_untouched_audit_verifies(redis_url: str) -> None:
    _fill(redis_url)
    result = _cli("verify", redis_url=redis_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok ") >= 2 and "BROKEN" not in result.stdout
    export = _cli("export", redis_url=redis_url)
    assert '"hash":' in export.stdout and '"prev":' in export.stdout


@pytest.mark.parametrize("how", ["edit", "delete", "swap"])
def test_verify_names_the_entry_after_tampering(redis_url: str, how: str) -> None:
    _fill(redis_url)
    client = redis.Redis.from_url(redis_url)
    ids = [sid.decode() for sid, _ in raw_entries(client, GLOBAL_AUDIT)]
    assert len(ids) >= 4
    if how == "edit":

        def edit(entries: list[Any]) -> list[Any]:
            entries[1][1][b"text"] = b"nothing happened"
            return entries

        _rewrite(client, GLOBAL_AUDIT, edit)
        expected = ids[1]
    elif how == "delete":
        client.xdel(GLOBAL_AUDIT, ids[1])
        expected = ids[2]
    else:

        def swap(entries: list[Any]) -> list[Any]:
            (a, fa), (b, fb) = entries[0], entries[1]
            entries[0], entries[1] = (a, fb), (b, fa)
            return entries

        _rewrite(client, GLOBAL_AUDIT, swap)
        expected = ids[0]
    client.close()
    result = _cli("verify", redis_url=redis_url)
    assert result.returncode == 1
    assert f"BROKEN  {GLOBAL_AUDIT}: entry {expected}:" in result.stdout
    assert "evidence" in result.stderr
