"""POST /alerts attacked as an outsider would (issue 9, items 1, 5, 6, 8, 9, 10 and gzip)."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest

from handlers.webhook import sign_body
from lab.alert_samples import alert_body, dsa_guid
from lab.slack_emulator import SlackEmulator
from state.keys import OPEN_INCIDENTS
from tests.handlers.serve_config import FOREST, write_config
from tests.inprocess import InProcessBot, running_bot, settings_for
from tests.rawhttp import RawAnswer, closed_by_server, exchange, request_head
from tests.waiting import until

pytestmark = [pytest.mark.slack]
TOKEN = "webhook-token-for-hardening"
HMAC_KEY = "hmac-key-for-hardening"
UPLOADS = 3
BODY_SECONDS = 1.0
CAPPED_BODY_SECONDS = 300.0  # the most serve accepts


async def _bot(
    tmp_path: Path,
    redis_url: str,
    emulator: SlackEmulator,
    secret: str,
    monkeypatch: pytest.MonkeyPatch,
    *,
    sections: str = "",
) -> AsyncIterator[InProcessBot]:
    cfg = write_config(
        tmp_path / "c.toml", extra='hmac_secret = { env = "ALERT_HMAC" }', sections=sections
    )
    monkeypatch.setenv("ALERT_HMAC", HMAC_KEY)
    settings = settings_for(emulator, secret, redis_url, cfg, ALERT_WEBHOOK_TOKEN=TOKEN)
    async with running_bot(settings, emulator, secret) as running:
        yield running


@pytest.fixture
async def bot(
    tmp_path: Path,
    redis_url: str,
    slack_emulator: SlackEmulator,
    slack_signing_secret: str,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[InProcessBot]:
    """Serve with the default limits."""
    async for running in _bot(
        tmp_path, redis_url, slack_emulator, slack_signing_secret, monkeypatch
    ):
        yield running


@pytest.fixture
async def capped_bot(
    tmp_path: Path,
    redis_url: str,
    slack_emulator: SlackEmulator,
    slack_signing_secret: str,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[InProcessBot]:
    """Serve with few upload slots and a body deadline no loaded machine reaches in a test."""
    sections = (
        f"[serve]\nbody_read_seconds = {CAPPED_BODY_SECONDS}\nmax_concurrent_uploads = {UPLOADS}"
    )
    async for running in _bot(
        tmp_path, redis_url, slack_emulator, slack_signing_secret, monkeypatch, sections=sections
    ):
        yield running


@pytest.fixture
async def tight_bot(
    tmp_path: Path,
    redis_url: str,
    slack_emulator: SlackEmulator,
    slack_signing_secret: str,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[InProcessBot]:
    """Serve with a short body deadline and few upload slots."""
    sections = f"[serve]\nbody_read_seconds = {BODY_SECONDS}\nmax_concurrent_uploads = {UPLOADS}"
    async for running in _bot(
        tmp_path, redis_url, slack_emulator, slack_signing_secret, monkeypatch, sections=sections
    ):
        yield running


def _alert(n: int = 1) -> bytes:
    return alert_body("generic_json", "dc1.corp.example.com", dsa_guid(n), FOREST)[0]


def _signed(body: bytes, ts: str | None = None) -> dict[str, str]:
    stamp = ts or str(int(time.time()))
    return {
        "X-AD1411-Timestamp": stamp,
        "X-AD1411-Signature": sign_body(HMAC_KEY.encode(), stamp, body),
    }


# -- item 1: only ASCII blanks are trimmed from a bearer token -------------------------------


@pytest.mark.parametrize("junk", ["\u00a0", "\u3000", "\u0085", "\u2028"])
async def test_unicode_whitespace_is_part_of_the_token(bot: InProcessBot, junk: str) -> None:
    status, reply = await bot.post(_alert(), {"Authorization": f"Bearer {TOKEN}{junk}"})
    assert status == 401, reply
    assert "bearer token is wrong" in str(reply["error"])
    assert bot.redis.zcard(OPEN_INCIDENTS) == 0


async def test_ascii_blanks_around_the_token_are_ignored(bot: InProcessBot) -> None:
    status, _ = await bot.post(_alert(), {"Authorization": f"Bearer \t{TOKEN} \t"})
    assert status == 202


# -- item 6: refuse on headers before reading a body; deadline; cap ---------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"X-AD1411-Timestamp": "1", "X-AD1411-Signature": "v1=00"},
        {"X-AD1411-Signature": "v1=" + "0" * 64},
    ],
)
async def test_bad_credentials_are_refused_before_the_body(
    bot: InProcessBot, headers: dict[str, str]
) -> None:
    # A 1 MB body is announced but never sent: the answer must come anyway, at once.
    head = request_head(bot.url, "/alerts", headers, content_length=1_000_000)
    answer = await exchange(bot.url, head, wait_seconds=5)
    assert answer.status == 401, answer
    assert answer.seconds < 2.0  # no body was sent, and none was waited for
    assert "error" in answer.json()
    assert answer.headers.get("connection") == "close"


async def test_a_stalled_body_gets_408_and_the_connection_closes(tight_bot: InProcessBot) -> None:
    bot = tight_bot
    head = request_head(
        bot.url, "/alerts", {"Authorization": f"Bearer {TOKEN}"}, content_length=1_000_000
    )
    answer = await closed_by_server(bot.url, head + b"x" * 60_000, wait_seconds=10)
    assert answer.status == 408, answer
    assert "not received within" in str(answer.json()["error"])
    assert answer.closed


async def _held_upload(url: str, body: bytes, release: asyncio.Event) -> RawAnswer:
    """An authenticated upload that sends a few bytes, holds its body open until `release`,
    then sends the rest and reads the answer."""
    head = request_head(
        url, "/alerts", {"Authorization": f"Bearer {TOKEN}"}, content_length=len(body)
    )
    parts = urlsplit(url)
    began = time.monotonic()
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(head + body[:10])
        await writer.drain()
        await release.wait()
        writer.write(body[10:])
        await writer.drain()
        async with asyncio.timeout(30):  # a hang guard
            data = await reader.read(65536)
        status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
        return RawAnswer(status, {}, data, False, time.monotonic() - began)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


def _receiving(bot: InProcessBot) -> float:
    """Bodies /alerts is receiving now, as /metrics reports them."""
    value = bot.ctx.metrics.registry.get_sample_value(
        "ad1411_request_bodies_receiving", {"route": "/alerts"}
    )
    return value or 0.0


async def test_uploads_beyond_the_cap_are_refused_at_once(capped_bot: InProcessBot) -> None:
    bot = capped_bot
    release = asyncio.Event()
    # UPLOADS authenticated clients hold a body open; one more is told to come back.
    held = [
        asyncio.create_task(_held_upload(bot.url, _alert(n), release))
        for n in range(10, 10 + UPLOADS)
    ]

    async def all_held() -> bool:
        return _receiving(bot) == UPLOADS

    await until(all_held, what=f"{UPLOADS} uploads being received")
    head = request_head(
        bot.url, "/alerts", {"Authorization": f"Bearer {TOKEN}"}, content_length=100_000
    )
    busy = await exchange(bot.url, head + b"x" * 1000, wait_seconds=30)
    assert busy.status == 503, busy
    assert busy.headers.get("retry-after")
    assert "server busy" in str(busy.json()["error"])
    # Answered while every slot was still held: the refusal did not queue behind them.
    assert _receiving(bot) == UPLOADS
    release.set()
    assert [a.status for a in await asyncio.gather(*held)] == [202] * UPLOADS
    assert _receiving(bot) == 0
    status, _ = await bot.post(_alert())
    assert status == 202
    assert bot.redis.zcard(OPEN_INCIDENTS) == UPLOADS + 1  # the held uploads lost nothing


# -- item 8: a signed request is accepted once --------------------------------------------------


async def test_replayed_signed_request_is_refused(bot: InProcessBot) -> None:
    body = _alert(8)
    headers = _signed(body)
    first = await bot.post(body, headers)
    second = await bot.post(body, headers)
    third = await bot.post(body, headers)
    assert first[0] == 202
    assert second[0] == third[0] == 409
    assert "already received" in str(second[1]["error"])
    iid = first[1]["incidents"][0]["incident_id"]
    inc = await bot.ctx.store.get(iid)
    assert inc is not None and inc.count == 1


# -- item 9: a header value never reaches the log ----------------------------------------------


async def test_a_stray_cr_after_the_token_does_not_log_the_token(bot: InProcessBot) -> None:
    raw = (
        f"POST /alerts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\r\n"
        "Content-Length: 2\r\n\r\n{}"
    ).encode()
    answer = await closed_by_server(bot.url, raw)
    assert answer.status == 400
    assert "malformed HTTP request" in bot.stderr()
    assert TOKEN not in bot.stderr()


# -- item 10: timestamps that are not numbers are a 401, never a 500 -----------------------------


@pytest.mark.parametrize("stamp", ["\u00b2", "1" * 5000, "-1", "1e9", " 1", "١٢٣"])
async def test_odd_timestamps_are_401(bot: InProcessBot, stamp: str) -> None:
    head = request_head(
        bot.url,
        "/alerts",
        {"X-AD1411-Timestamp": stamp, "X-AD1411-Signature": "v1=" + "0" * 64},
        content_length=2,
    )
    answer = await exchange(bot.url, head + b"{}")
    assert answer.status == 401, answer
    assert "X-AD1411-Timestamp" in str(answer.json()["error"])
    assert "Traceback" not in bot.stderr()


# -- item 5: a client that leaves mid-upload is one log line -------------------------------------


async def test_aborted_uploads_log_one_short_line_each(bot: InProcessBot) -> None:
    head = request_head(
        bot.url, "/alerts", {"Authorization": f"Bearer {TOKEN}"}, content_length=100_000
    )
    host, port = bot.url.rsplit(":", 1)
    before = len(bot.logs.lines)
    for _ in range(20):
        _, writer = await asyncio.open_connection(host.removeprefix("http://"), int(port))
        writer.write(head + b"x" * 5000)
        await writer.drain()
        writer.transport.abort()  # the client vanishes mid-body
    await bot.emulator.wait_for_async(
        lambda: sum("disconnected" in line for line in bot.logs.lines[before:]) >= 20, timeout=10
    )
    new = bot.logs.lines[before:]
    assert sum("disconnected" in line for line in new) == 20
    assert all("\n" not in line and len(line) < 300 for line in new), new
    assert "Traceback" not in bot.stderr()


# -- gzip (Low): the signature covers the body as decompressed ----------------------------------


async def test_gzip_bodies_are_signed_over_the_decompressed_bytes(bot: InProcessBot) -> None:
    body = _alert(11)
    packed = gzip.compress(body)
    over_plain = {**_signed(body), "Content-Encoding": "gzip"}
    over_wire = {**_signed(packed), "Content-Encoding": "gzip"}
    async with aiohttp.ClientSession(auto_decompress=False) as s:
        async with s.post(bot.url + "/alerts", data=packed, headers=over_wire) as r:
            assert r.status == 401
        async with s.post(bot.url + "/alerts", data=packed, headers=over_plain) as r:
            assert r.status == 202, await r.text()
        # The size limit applies to what the body inflates to: a gzip bomb is a 413.
        bomb = gzip.compress(b" " * (2 * 1_048_576))
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Encoding": "gzip"}
        async with s.post(bot.url + "/alerts", data=bomb, headers=headers) as r:
            assert r.status == 413
        async with s.post(bot.url + "/alerts", data=b"not gzip", headers=headers) as r:
            assert r.status == 400, await r.text()
            assert "Content-Encoding" in (await r.json())["error"]
