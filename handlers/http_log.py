"""What the HTTP server logs about requests it could not handle: one line, no header values.

aiohttp logs a refused request line with the offending bytes (a header that may carry a token)
and a client that vanished mid-body with a full traceback. Its logger is replaced by this one,
whose filter rewrites such records into one line naming only the kind of failure.
"""

from __future__ import annotations

import logging
import time
import traceback

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

PROTOCOL_LOGGER = "ad1411.http"


class ProtocolRecordFilter(logging.Filter):
    """Rewrites the HTTP server's error records: the failure's kind, never its bytes."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None:
            return True
        peer = record.args[0] if isinstance(record.args, tuple) and record.args else "a client"
        if isinstance(exc, HttpProcessingError):
            record.msg = "refused a malformed HTTP request from %s: %s (status %s)"
            record.args = (peer, type(exc).__name__, exc.code)
            record.levelno, record.levelname = logging.INFO, "INFO"
        elif isinstance(exc, web.RequestPayloadError):
            record.msg = "discarded the rest of a body from %s that could not be decoded (%s)"
            record.args = (peer, type(exc.__cause__ or exc).__name__)
            record.levelno, record.levelname = logging.INFO, "INFO"
        elif isinstance(exc, ConnectionError):
            record.msg = "client %s disconnected mid-request (%s)"
            record.args = (peer, type(exc).__name__)
            record.levelno, record.levelname = logging.INFO, "INFO"
        else:
            # A bug: keep where it happened, not the exception's text (it may quote a header).
            record.msg = "request from %s failed: %s"
            record.args = (peer, describe_bug(exc))
        record.exc_info, record.exc_text = None, None
        return True


def describe_bug(exc: BaseException) -> str:
    """An unexpected exception as its type and innermost frames, without its text."""
    frames = traceback.extract_tb(exc.__traceback__)[-6:]
    where = " <- ".join(f"{f.name} ({f.filename}:{f.lineno})" for f in reversed(frames))
    return f"{type(exc).__name__} at {where or 'unknown'}"


def protocol_logger() -> logging.Logger:
    """The logger to give aiohttp's request handler (AppRunner(logger=...))."""
    logger = logging.getLogger(PROTOCOL_LOGGER)
    if not any(isinstance(f, ProtocolRecordFilter) for f in logger.filters):
        logger.addFilter(ProtocolRecordFilter())
    return logger


class Throttled:
    """At most one log line per `seconds` for a recurring failure, counting what it skipped
    (Redis down under a request storm must not write one line per request)."""

    def __init__(self, logger: logging.Logger, seconds: float = 10.0) -> None:
        self.logger = logger
        self.seconds = seconds
        self._last: dict[str, float] = {}
        self._skipped: dict[str, int] = {}

    def error(self, key: str, msg: str, *args: object) -> None:
        """Log msg now, or count it when `key` was logged less than `seconds` ago."""
        now = time.monotonic()
        if now - self._last.get(key, -self.seconds) < self.seconds:
            self._skipped[key] = self._skipped.get(key, 0) + 1
            return
        skipped = self._skipped.pop(key, 0)
        self._last[key] = now
        suffix = f" ({skipped} more like it since the last line)" if skipped else ""
        self.logger.error(msg + suffix, *args)
