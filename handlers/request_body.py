"""Reading request bodies under limits: size, a deadline, and a cap on bodies read at once.

An unauthenticated client must not make the server hold memory: bodies are read only after the
headers passed every check, at most `max_concurrent` at a time, each within a deadline.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web
from prometheus_client import Gauge

log = logging.getLogger(__name__)
BUSY_RETRY_AFTER_SECONDS = 2


class BodyRefused(Exception):
    """The body cannot be taken; carries the HTTP answer."""

    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        self.status = status
        self.message = message
        self.retry_after = retry_after
        super().__init__(message)


class ClientGone(Exception):
    """The client closed the connection before its body arrived."""


def refusal(status: int, message: str, *, retry_after: int | None = None) -> web.Response:
    """A JSON error answer that also closes the connection (no unread body lingers)."""
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    resp = web.json_response({"error": message}, status=status, headers=headers)
    resp.force_close()
    return resp


def refused(exc: BodyRefused) -> web.Response:
    """The answer for a BodyRefused."""
    return refusal(exc.status, exc.message, retry_after=exc.retry_after)


class UploadGate:
    """At most `limit` bodies read at once; beyond it, refuse at once instead of queueing."""

    def __init__(self, limit: int, receiving: Gauge | None = None) -> None:
        self.limit = limit
        self.active = 0
        self.receiving = receiving  # the same count on /metrics, for operators and tests

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one upload slot; BodyRefused(503) when all are taken."""
        if self.active >= self.limit:
            raise BodyRefused(
                503,
                f"server busy: {self.limit} request bodies are being received; retry shortly",
                retry_after=BUSY_RETRY_AFTER_SECONDS,
            )
        self.active += 1
        if self.receiving is not None:
            self.receiving.inc()
        try:
            yield
        finally:
            self.active -= 1
            if self.receiving is not None:
                self.receiving.dec()


def _decoder(request: web.Request) -> Any:
    """A zlib decompressor for the body's Content-Encoding, None for none; else 415.

    The server's own decompression is off (handlers/app.py): here a broken or unknown
    encoding is a clear refusal, and the size limit counts the bytes it inflates to.
    """
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj()
    raise BodyRefused(
        415, f"Content-Encoding: {encoding[:30]!r} is not supported; send gzip, deflate or none"
    )


async def read_body(
    request: web.Request, *, limit: int, deadline_seconds: float, gate: UploadGate
) -> bytes:
    """The whole body (decompressed), at most `limit` bytes, within the deadline.

    Raises BodyRefused (413, 415, 408, 400, 503) or ClientGone.
    """
    if request.content_length is not None and request.content_length > limit:
        raise BodyRefused(
            413, f"body: {request.content_length} bytes; at most {limit} are accepted"
        )
    decoder = _decoder(request)
    too_large = BodyRefused(413, f"body: more than {limit} bytes; at most {limit} are accepted")
    with gate.slot():
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(deadline_seconds):
                async for raw in request.content.iter_chunked(65536):
                    chunk = raw if decoder is None else decoder.decompress(raw, limit - size + 1)
                    size += len(chunk)
                    if size > limit or (decoder is not None and decoder.unconsumed_tail):
                        raise too_large
                    chunks.append(chunk)
            if decoder is not None:
                chunks.append(decoder.flush())
                if not decoder.eof or sum(map(len, chunks)) > limit:
                    raise BodyRefused(400, "body: the compressed data ends too early")
        except TimeoutError:
            raise BodyRefused(
                408,
                f"body: not received within {deadline_seconds:g} s "
                f"({size} bytes arrived); send the whole body at once",
            ) from None
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            raise ClientGone(type(exc).__name__) from None
        except zlib.error:
            raise BodyRefused(
                400, "body: cannot be decoded as its Content-Encoding says (gzip, deflate)"
            ) from None
        except web.RequestPayloadError:
            raise BodyRefused(400, "body: its chunked transfer encoding is broken") from None
        return b"".join(chunks)


def client_gone(route: str, request: web.Request, why: str) -> web.Response:
    """One log line per client that left mid-upload (never a traceback)."""
    log.info("%s: client %s disconnected before its body arrived (%s)", route, request.remote, why)
    resp = web.Response(status=400)
    resp.force_close()
    return resp
