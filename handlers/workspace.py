"""Which Slack workspace the bot serves, and Bolt's authorization of each request against it.

Bolt calls `authorize` for every request, over HTTP and in Socket Mode, so the workspace check
lives here once: a request from a team or Enterprise Grid org other than the configured ones
(`slack.workspaces`; by default the bot token's own team, from auth.test) is refused. The
bot's identity from auth.test is fetched once and kept; until Slack answers, requests get a
clear message instead of Bolt's generic "install this app" text.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from slack_bolt.authorization import AuthorizeResult
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import Ad1411Error
from handlers.slack_requests import RequestRefused

log = logging.getLogger(__name__)
AUTH_TEST_SECONDS = 2.0  # inside a request: Slack wants the ack within 3 s


class SlackUnavailable(Ad1411Error):
    """Slack did not answer a call the request depends on; the message says what to do."""


@dataclass(frozen=True)
class BotIdentity:
    """Who the bot token is (auth.test)."""

    team_id: str
    enterprise_id: str | None
    bot_id: str | None
    bot_user_id: str | None


class Workspace:
    """The bot's identity and the workspaces whose requests it accepts."""

    def __init__(self, slack: AsyncWebClient, *, bot_token: str, configured: list[str]) -> None:
        self.slack = slack
        self.bot_token = bot_token
        self.configured = frozenset(configured)
        self._identity: BotIdentity | None = None
        self._lock = asyncio.Lock()

    async def identity(self) -> BotIdentity:
        """auth.test, cached after the first success. A request waits at most
        AUTH_TEST_SECONDS (behind the start-up fetch, or for its own), then is told to retry."""
        if self._identity is not None:
            return self._identity
        try:
            async with asyncio.timeout(AUTH_TEST_SECONDS), self._lock:
                if self._identity is None:
                    self._identity = await self._auth_test()
        except TimeoutError:
            raise SlackUnavailable(
                ":hourglass: Slack has not confirmed the bot's identity yet (auth.test), so "
                "nothing was done. Try again in a few seconds."
            ) from None
        return self._identity

    async def _auth_test(self) -> BotIdentity:
        try:
            async with asyncio.timeout(AUTH_TEST_SECONDS):
                resp = await self.slack.auth_test()
        except (SlackApiError, TimeoutError, OSError) as exc:
            why = (
                exc.response.get("error") if isinstance(exc, SlackApiError) else type(exc).__name__
            )
            log.warning("auth.test failed (%s); requests wait for Slack", why)
            raise SlackUnavailable(
                ":warning: Slack did not confirm the bot's identity just now (auth.test: "
                f"{why}), so nothing was done. Try again in a minute."
            ) from None
        return BotIdentity(
            team_id=str(resp.get("team_id") or ""),
            enterprise_id=resp.get("enterprise_id") or None,
            bot_id=resp.get("bot_id") or None,
            bot_user_id=resp.get("user_id") or None,
        )

    async def warm_up(self, deadline_seconds: float = 600.0) -> None:
        """Fetch the identity at start, through rate limits and outages, so that requests
        find it cached; a request before it arrives gets a clear text."""
        end = time.monotonic() + deadline_seconds
        delay = 0.5
        while self._identity is None and time.monotonic() < end:
            try:
                async with self._lock:
                    if self._identity is None:
                        self._identity = await self._auth_test()
            except SlackUnavailable:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    def allowed(self, identity: BotIdentity) -> frozenset[str]:
        """Team and enterprise IDs whose requests are accepted."""
        if self.configured:
            return self.configured
        return frozenset(i for i in (identity.team_id, identity.enterprise_id) if i)

    def bolt_authorize(
        self,
    ) -> Callable[[str | None, str | None, str | None], Awaitable[AuthorizeResult]]:
        """The function to give AsyncApp(authorize=...) (Bolt injects arguments by name)."""

        async def authorize(
            enterprise_id: str | None, team_id: str | None, user_id: str | None
        ) -> AuthorizeResult:
            return await self.authorize(enterprise_id, team_id, user_id)

        return authorize

    async def authorize(
        self, enterprise_id: str | None, team_id: str | None, user_id: str | None
    ) -> AuthorizeResult:
        """Refuse other workspaces; else the bot's own token and identity."""
        identity = await self.identity()
        allowed = self.allowed(identity)
        if not (team_id in allowed or (enterprise_id is not None and enterprise_id in allowed)):
            log.warning(
                "refused a request from workspace %.20s (org %.20s)", team_id, enterprise_id
            )
            raise RequestRefused(
                403,
                "this app serves only its own workspace; the request came from another one "
                "(team or enterprise ID not in slack.workspaces)",
            )
        return AuthorizeResult(
            enterprise_id=enterprise_id,
            team_id=team_id,
            bot_token=self.bot_token,
            bot_id=identity.bot_id,
            bot_user_id=identity.bot_user_id,
            user_id=user_id,
        )
