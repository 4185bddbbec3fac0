"""The bot's Slack Web API client, shared by serve and worker."""

from __future__ import annotations

import aiohttp
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings

SLACK_TIMEOUT_SECONDS = 10


def slack_session() -> aiohttp.ClientSession:
    """One HTTP session for many Web API calls (call inside the loop; close it at the end).

    Without one, the SDK opens a session, so a connection (a TLS handshake, with Slack), per
    call.
    """
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=SLACK_TIMEOUT_SECONDS))


def slack_client(
    settings: Settings, *, retries: bool = True, session: aiohttp.ClientSession | None = None
) -> AsyncWebClient:
    """The Web API client pointed at SLACK_API_URL, with 429 and 5xx retries unless the
    caller retries on its own (the outbox: one call per attempt, its own schedule); on
    `session`'s connections when given."""
    token = settings.env.SLACK_BOT_TOKEN
    client = AsyncWebClient(
        token=token.get_secret_value() if token is not None else None,
        base_url=settings.env.SLACK_API_URL,
        timeout=SLACK_TIMEOUT_SECONDS,
        session=session,
    )
    if retries:
        client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=3))
        client.retry_handlers.append(AsyncServerErrorRetryHandler(max_retry_count=3))
    return client
