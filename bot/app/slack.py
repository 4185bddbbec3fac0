"""The bot's Slack Web API client, shared by serve and worker."""

from __future__ import annotations

import asyncio
import random

import aiohttp
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import AsyncServerErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings
from handlers.slack_retry import retry_after_value

SLACK_TIMEOUT_SECONDS = 10
# A 429 is retried inside the call only when Slack asks for a short wait; a longer one is the
# caller's to schedule within its own deadline (the outbox, handlers/slack_retry.py), so no
# call sleeps for whatever Retry-After says.
SDK_RETRY_AFTER_MAX_SECONDS = 5


def retry_after_header(response: HttpResponse) -> int:
    """A 429's Retry-After in whole seconds (at least 1); 1 when absent or not a number."""
    return retry_after_value(response.headers)


class BoundedRateLimitRetryHandler(AsyncRetryHandler):
    """Retries a 429 after Slack's Retry-After, only when that is at most `max_wait_seconds`.

    The SDK's own handler sleeps whatever the header says (and fails on a header that is not a
    number); a longer wait here is left to the caller, as the SlackApiError `ratelimited`.
    """

    def __init__(self, max_retry_count: int, max_wait_seconds: int) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait_seconds = max_wait_seconds

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        del state, request, error
        if response is None or response.status_code != 429:
            return False
        return retry_after_header(response) <= self.max_wait_seconds

    async def prepare_for_next_attempt_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        del request, error
        wait = retry_after_header(response) if response is not None else 1
        state.next_attempt_requested = True
        await asyncio.sleep(min(wait, self.max_wait_seconds) + random.random() / 4)  # noqa: S311
        state.increment_current_attempt()


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
        client.retry_handlers.append(
            BoundedRateLimitRetryHandler(
                max_retry_count=3, max_wait_seconds=SDK_RETRY_AFTER_MAX_SECONDS
            )
        )
        client.retry_handlers.append(AsyncServerErrorRetryHandler(max_retry_count=3))
    return client
