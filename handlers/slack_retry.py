"""Retrying a Slack call that must not be lost: Retry-After on 429, backoff on 5xx and network.

The Web API client already retries a few times; this covers longer bursts, up to a deadline.
(Incident and flood messages do not use it: the outbox makes them durable across restarts.)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

import aiohttp
from slack_sdk.errors import SlackApiError

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_RETRY_AFTER_SECONDS = 600
MAX_BACKOFF_SECONDS = 30.0


def retry_after_seconds(exc: SlackApiError) -> int | None:
    """Slack's Retry-After of a 429, in seconds (at least 1, bounded), or None."""
    if exc.response.status_code != 429:
        return None
    return retry_after_value(exc.response.headers or {})


def retry_after_value(headers: Mapping[str, str | list[str]]) -> int:
    """The Retry-After header among `headers` (any case; a value or a list of them) in whole
    seconds, at least 1 and bounded; 1 when absent or not a number."""
    raw = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if isinstance(raw, list):
        raw = raw[0] if raw else None
    try:
        value = int(str(raw).strip())
    except ValueError:
        value = 1
    return min(max(value, 1), MAX_RETRY_AFTER_SECONDS)


def transient(exc: BaseException) -> bool:
    """Worth retrying: rate limited, a Slack server error, or the network."""
    if isinstance(exc, SlackApiError):
        status = int(exc.response.status_code)
        return status == 429 or status >= 500
    return isinstance(exc, aiohttp.ClientError | TimeoutError | ConnectionError)


async def with_slack_retries(
    call: Callable[[], Awaitable[T]], *, deadline_seconds: float, what: str
) -> T:
    """call() until it succeeds; transient failures are retried until the deadline passes."""
    end = time.monotonic() + deadline_seconds
    backoff = 0.5
    while True:
        try:
            return await call()
        except (SlackApiError, aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
            if not transient(exc):
                raise
            told = retry_after_seconds(exc) if isinstance(exc, SlackApiError) else None
            wait = float(told) if told is not None else backoff
            if told is None:
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
            if time.monotonic() + wait > end:
                raise
            log.warning("%s: Slack not reachable (%s); retrying in %s s", what, _kind(exc), wait)
            await asyncio.sleep(wait)


def _kind(exc: BaseException) -> str:
    if isinstance(exc, SlackApiError):
        return f"{exc.response.status_code} {exc.response.get('error')}"
    return type(exc).__name__
