"""What the serve-side handlers share: settings, the state stores, the Slack client, metrics.

Handlers reach Redis only through the stores of `state/`; there is no raw client here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

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
from handlers.thread import IncidentThread
from handlers.transitions import ProcedureEngine
from state.diagnoses import DiagnosisStore
from state.incidents import IncidentStore
from state.jobs import JobQueue
from state.procedures import ProcedureStore
from state.seen import SeenOnce
from state.workers import WorkerRegistry

log = logging.getLogger(__name__)
GROUP_CACHE_SECONDS = 300.0
# Incident messages remembered (channel and ts never change once recorded).
MESSAGE_CACHE_SIZE = 4096
RESPONSE_URL_TIMEOUT_SECONDS = 10


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
    _groups: dict[str, frozenset[str]] = field(default_factory=dict)
    _messages: dict[str, tuple[str, str]] = field(default_factory=dict)
    _groups_at: float = 0.0
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
        slack_cfg = self.settings.file.slack
        wanted = group_ids([*slack_cfg.responders, *slack_cfg.approvers])
        if not wanted or time.monotonic() - self._groups_at < GROUP_CACHE_SECONDS:
            return self._groups
        groups: dict[str, frozenset[str]] = {}
        for gid in wanted:
            try:
                resp = await self.slack.usergroups_users_list(usergroup=gid)
                users: list[str] = resp.get("users", [])
                groups[gid] = frozenset(str(u) for u in users)
            except SlackApiError as exc:
                log.warning("cannot read user group %s: %s", gid, exc.response.get("error"))
                groups[gid] = self._groups.get(gid, frozenset())
        self._groups, self._groups_at = groups, time.monotonic()
        return groups

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

    def reply_ephemeral(self, body: dict[str, Any], text: str) -> None:
        """Answer the clicking user through the request's response_url, after the ack.

        One shared HTTP session: Bolt's respond() opens a new one per call, which costs more
        than the whole click under load.
        """
        url = str(body.get("response_url", ""))
        if not url.startswith(("https://", "http://")):
            log.warning("no response_url in the request; reply not sent: %.80s", text)
            return
        self.spawn(self._post_response(url, text))

    async def _post_response(self, url: str, text: str) -> None:
        if self._http is None:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=RESPONSE_URL_TIMEOUT_SECONDS)
            )
        payload = {"text": text, "response_type": "ephemeral", "replace_original": False}
        async with self._http.post(url, json=payload) as resp:
            if resp.status >= 300:
                log.warning("response_url answered %s", resp.status)

    async def drain(self) -> None:
        """Wait for background work (shutdown, tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self.notifier.drain()
        if self._http is not None:
            await self._http.close()
            self._http = None
