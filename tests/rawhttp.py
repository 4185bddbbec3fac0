"""HTTP the way an attacker sends it: raw bytes on a socket, bodies that stall, stray CRs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass
class RawAnswer:
    """What came back: status (0 when nothing did), headers, body, and whether the server
    closed the connection."""

    status: int
    headers: dict[str, str]
    body: bytes
    closed: bool
    seconds: float

    def json(self) -> dict[str, object]:
        return json.loads(self.body) if self.body.strip() else {}


def request_head(
    url: str, path: str, headers: dict[str, str], *, content_length: int | None = None
) -> bytes:
    """The request line and headers (CRLF), as bytes."""
    host = urlsplit(url).netloc
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if content_length is not None:
        lines.append(f"Content-Length: {content_length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")


def _parse(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines or not lines[0].startswith("HTTP/"):
        return 0, {}, raw
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    return status, headers, body


async def exchange(
    url: str,
    raw: bytes,
    *,
    then: bytes = b"",
    hold_seconds: float = 0.0,
    wait_seconds: float = 10.0,
) -> RawAnswer:
    """Send `raw`, optionally `then` after hold_seconds (a stalled body), and read the answer
    until the server closes or the answer is complete; TimeoutError only on a hang."""
    parts = urlsplit(url)
    began = time.monotonic()
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(raw)
        await writer.drain()
        if hold_seconds:
            await asyncio.sleep(hold_seconds)  # the attack itself: a client that stalls
            if then:
                writer.write(then)
                await writer.drain()
        data = b""
        closed = False
        async with asyncio.timeout(wait_seconds):
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    closed = True
                    break
                data += chunk
                status, headers, body = _parse(data)
                length = headers.get("content-length")
                if status and length is not None and len(body) >= int(length):
                    break
        status, headers, body = _parse(data)
        return RawAnswer(status, headers, body, closed, time.monotonic() - began)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


async def closed_by_server(url: str, raw: bytes, *, wait_seconds: float = 10.0) -> RawAnswer:
    """Send raw, then read until the server closes the connection."""
    parts = urlsplit(url)
    began = time.monotonic()
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(raw)
        await writer.drain()
        data = b""
        async with asyncio.timeout(wait_seconds):
            while chunk := await reader.read(65536):
                data += chunk
        status, headers, body = _parse(data)
        return RawAnswer(status, headers, body, True, time.monotonic() - began)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()
