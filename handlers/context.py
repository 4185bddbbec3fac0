"""What the serve-side handlers share: settings, the state stores, the Slack client, metrics.

Handlers reach Redis only through the stores of `state/`; there is no raw client here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings
from bot.procedure.model import Procedure
from bot.procedure.roles import group_ids, is_member
from handlers.metrics import ServeMetrics
from handlers.notifier import IncidentNotifier
from handlers.procedure_messages import ProcedureMessages
from handlers.report_poster import post_report
from handlers.slack_retry import with_slack_retries
from handlers.thread import IncidentThread
from handlers.transitions import ProcedureEngine
from handlers.workspace import SlackUnavailable, Workspace
from state.diagnoses import DiagnosisStore
from state.incidents import IncidentStore
from state.jobs import JobQueue
from state.procedures import ProcedureStore
from state.seen import SeenOnce
from state.workers import WorkerRegistry

log = logging.getLogger(__name__)
GROUP_CACHE_SECONDS = 300.0
GROUP_LOOKUP_SECONDS = 2.0  # inside a click: Slack wants the ack within 3 s
# Incident messages remembered (channel and ts never change once recorded).
MESSAGE_CACHE_SIZE = 4096
RESPONSE_URL_TIMEOUT_SECONDS = 10
RESPONSE_URL_HOST = "hooks.slack.com"
RESPONSE_URL_RETRY_SECONDS = 60.0  # Slack keeps a response_url usable for 30 minutes


@dataclass
class ServeContext:
    """Long-lived objects of one serve process."""

    settings: Settings
    slack: AsyncWebClient
    metrics: ServeMetrics
    store: IncidentStore
    diagnoses: DiagnosisStore
    workers: WorkerRegistry
    seen: SeenOnce
    jobs: JobQueue
    thread: IncidentThread
    notifier: IncidentNotifier
    procedures: ProcedureStore
    engine: ProcedureEngine
    procedure_messages: ProcedureMessages
    workspace: Workspace
    _groups: dict[str, frozenset[str]] = field(default_factory=dict)
    _messages: dict[str, tuple[str, str]] = field(default_factory=dict)
    _groups_at: float = 0.0
    _group_error: str = ""
    _refreshing: bool = False
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    _http: aiohttp.ClientSession | None = None

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run Slack follow-ups after the ack, never inside it."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    async def _group_members(self) -> dict[str, frozenset[str]]:
        """Members of the configured user groups: cached; a stale cache is used while it is
        refreshed in the background, so a click never waits on Slack once the cache exists."""
        slack_cfg = self.settings.file.slack
        wanted = group_ids([*slack_cfg.responders, *slack_cfg.approvers])
        if not wanted:
            return {}
        if self._groups_at and set(wanted) <= set(self._groups):
            if time.monotonic() - self._groups_at >= GROUP_CACHE_SECONDS and not self._refreshing:
                self._refreshing = True
                self.spawn(self._refresh_groups(wanted))
            return self._groups
        try:
            async with asyncio.timeout(GROUP_LOOKUP_SECONDS):
                await self._refresh_groups(wanted)
        except TimeoutError:
            why = "no answer in time"
        else:
            if set(wanted) <= set(self._groups):
                return self._groups
            why = self._group_error
        # Denying would tell a real responder they are not one: say what failed.
        raise SlackUnavailable(
            ":warning: Slack did not list the members of the responder groups just now "
            f"(usergroups.users.list: {why}), so nothing was done. Try again in a minute."
        )

    async def _refresh_groups(self, wanted: list[str]) -> None:
        groups = dict(self._groups)
        try:
            for gid in wanted:
                try:
                    resp = await self.slack.usergroups_users_list(usergroup=gid)
                except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
                    self._group_error = (
                        str(exc.response.get("error"))
                        if isinstance(exc, SlackApiError)
                        else type(exc).__name__
                    )
                    log.warning("cannot read user group %s: %s", gid, self._group_error)
                    continue
                users: list[str] = resp.get("users", [])
                groups[gid] = frozenset(str(u) for u in users)
            if set(wanted) <= set(groups):
                self._groups, self._groups_at = groups, time.monotonic()
            else:
                self._groups = groups
        finally:
            self._refreshing = False

    async def is_responder(self, user_id: str) -> bool:
        """May this user run diagnoses and steps?"""
        slack_cfg = self.settings.file.slack
        return is_member(user_id, slack_cfg.responders, await self._group_members()) or (
            is_member(user_id, slack_cfg.approvers, self._groups)
        )

    async def incident_message(self, incident_id: str) -> tuple[str, str] | None:
        """(channel, ts) of the incident's message; read once, then remembered, since a
        recorded message never moves. None when the incident or its message is unknown."""
        where = self._messages.get(incident_id)
        if where is not None:
            return where
        inc = await self.store.get(incident_id)
        if inc is None or not inc.channel or not inc.ts:
            return None
        if len(self._messages) >= MESSAGE_CACHE_SIZE:
            self._messages.clear()
        self._messages[incident_id] = (inc.channel, inc.ts)
        return inc.channel, inc.ts

    async def post_report(self, proc: Procedure) -> None:
        """The post-incident report in the incident thread."""
        await post_report(self.thread, self.store, self.store.audit, proc)

    async def is_approver(self, user_id: str) -> bool:
        """May this user approve risky steps?"""
        return is_member(user_id, self.settings.file.slack.approvers, await self._group_members())

    def finish_after_ack(self, task: asyncio.Task[Any], payload: dict[str, Any]) -> None:
        """A Slack request whose listener outlived the ack budget (it waits out a Redis
        failover): Slack already has an empty ack; the listener goes on, and the text it meant
        for the person is sent through the request's response_url when it is done."""
        self.metrics.slack_late.inc()

        async def finish() -> None:
            resp = await task
            text = _answer_text(getattr(resp, "body", ""))
            if text:
                self.reply_ephemeral(payload, text)

        self.spawn(finish())

    def reply_ephemeral(self, body: dict[str, Any], text: str) -> None:
        """Answer the clicking user through the request's response_url, after the ack.

        One shared HTTP session: Bolt's respond() opens a new one per call, which costs more
        than the whole click under load.
        """
        url = str(body.get("response_url", ""))
        if not self._slack_url(url):
            log.warning("no Slack response_url in the request; reply not sent: %.80s", text)
            return
        self.spawn(self._post_response(url, text))

    def _slack_url(self, url: str) -> bool:
        # The bot only ever posts replies to Slack: hooks.slack.com, or where SLACK_API_URL points.
        parts = urlsplit(url)
        api = urlsplit(self.settings.env.SLACK_API_URL)
        if parts.scheme == "https" and parts.hostname == RESPONSE_URL_HOST:
            return True
        return (parts.scheme, parts.hostname, parts.port) == (api.scheme, api.hostname, api.port)

    async def _post_response(self, url: str, text: str) -> None:
        if self._http is None:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=RESPONSE_URL_TIMEOUT_SECONDS)
            )
        http = self._http
        payload = {"text": text, "response_type": "ephemeral", "replace_original": False}

        async def post() -> None:
            async with http.post(url, json=payload) as resp:
                if resp.status == 429 or resp.status >= 500:
                    resp.raise_for_status()
                if resp.status >= 300:
                    log.warning("response_url answered %s; reply not shown", resp.status)

        try:
            await with_slack_retries(
                post, deadline_seconds=RESPONSE_URL_RETRY_SECONDS, what="reply"
            )
        except aiohttp.ClientResponseError as exc:
            log.warning("response_url kept failing (%s); reply not shown", exc.status)
        except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
            log.warning("response_url unreachable (%s); reply not shown", type(exc).__name__)

    async def drain(self, timeout: float | None = None) -> int:  # noqa: ASYNC109
        """Wait for background work (shutdown, tests); past the timeout, cancel what is left.

        Returns how many tasks were cancelled.
        """
        end = None if timeout is None else time.monotonic() + timeout
        cancelled = 0
        while self._tasks:
            left = None if end is None else max(0.0, end - time.monotonic())
            # asyncio.wait, not gather: a timeout must not cancel the tasks behind our back.
            _, pending = await asyncio.wait(set(self._tasks), timeout=left)
            if pending and end is not None and time.monotonic() >= end:
                for task in pending:
                    task.cancel()
                cancelled += len(pending)
                await asyncio.gather(*pending, return_exceptions=True)
                break
        if self._http is not None:
            await self._http.close()
            self._http = None
        return cancelled


def _answer_text(body: object) -> str:
    """The `text` of a JSON answer Bolt built (a slash command's reply), else ""."""
    if not isinstance(body, str) or not body.startswith("{"):
        return ""
    try:
        answer = json.loads(body)
    except ValueError:
        return ""
    text = answer.get("text") if isinstance(answer, dict) else None
    return text if isinstance(text, str) else ""
