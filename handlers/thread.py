"""The one way anything posts into an incident's thread (serve and worker alike)."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from handlers.render.text import MESSAGE_TEXT_LIMIT, fit, section
from handlers.slack_retry import with_slack_retries
from state.incidents import Incident

log = logging.getLogger(__name__)
# A thread post waits this long for Slack through rate limits and outages, then is logged.
THREAD_POST_SECONDS = 120.0


class IncidentThread:
    """Posts text (rendered as one mrkdwn section) or blocks in a message's thread."""

    def __init__(self, slack: AsyncWebClient) -> None:
        self.slack = slack

    async def post(
        self,
        channel: str,
        thread_ts: str,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
    ) -> bool:
        """Post in the thread of (channel, thread_ts), through rate limits and Slack outages of
        up to THREAD_POST_SECONDS; False (logged) when Slack refused or never answered."""

        async def call() -> object:
            return await self.slack.chat_postMessage(
                channel=channel,
                thread_ts=thread_ts,
                text=fit(text, MESSAGE_TEXT_LIMIT),
                blocks=blocks if blocks is not None else [section(text)],
            )

        try:
            await with_slack_retries(
                call, deadline_seconds=THREAD_POST_SECONDS, what=f"thread post {thread_ts}"
            )
        except SlackApiError as exc:
            log.error(
                "posting in thread %s/%s failed: %s", channel, thread_ts, exc.response.get("error")
            )
            return False
        except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
            log.error("posting in thread %s/%s failed: %s", channel, thread_ts, type(exc).__name__)
            return False
        return True

    async def announce(self, channel: str, text: str) -> bool:
        """Post in the channel itself (not a thread): for what everyone must see."""
        try:
            await self.slack.chat_postMessage(
                channel=channel, text=fit(text, MESSAGE_TEXT_LIMIT), blocks=[section(text)]
            )
        except SlackApiError as exc:
            log.error("announcing in %s failed: %s", channel, exc.response.get("error"))
            return False
        return True

    async def say(self, inc: Incident, text: str) -> bool:
        """Post in the incident's thread; False when it has no message yet or Slack refused."""
        if inc.channel is None or inc.ts is None:
            log.warning("incident %s has no Slack message yet; not posted: %.80s", inc.id, text)
            return False
        return await self.post(inc.channel, inc.ts, text)
