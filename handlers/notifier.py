"""Posts and updates incident messages: one message per incident, coalesced updates."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Coroutine
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from handlers.metrics import ServeMetrics
from handlers.render.incident import incident_blocks, incident_fallback_text
from handlers.thread import IncidentThread
from state.durability import StoreUnavailable, until_durable
from state.incidents import Incident, IncidentStore, Intake

log = logging.getLogger(__name__)
POST_CLAIM_SECONDS = 60
THREAD_INTRO = (
    "This thread is the incident's record: diagnosis, steps, approvals and their results "
    "are posted here."
)


class IncidentNotifier:
    """Keeps each incident's Slack message in step with Redis, without flooding Slack."""

    def __init__(
        self,
        store: IncidentStore,
        *,
        client: AsyncWebClient,
        thread: IncidentThread,
        channel: str,
        coalesce_seconds: float,
        metrics: ServeMetrics,
    ) -> None:
        self.store = store
        self.client = client
        self.thread = thread
        self.channel = channel
        self.window = coalesce_seconds
        self.metrics = metrics
        self._tasks: set[asyncio.Task[None]] = set()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def on_intake(self, intake: Intake) -> None:
        """React to one recorded alert: post a new incident, or schedule a coalesced update."""
        if intake.created:
            self._spawn(self._post(intake.incident_id))
        elif await self.store.take_update_slot(intake.incident_id, self._slot_ttl()):
            self._spawn(self._flush_later(intake.incident_id))

    def _slot_ttl(self) -> float:
        # The slot outlives the trailing-edge wait so two processes never update in one window.
        return 2 * self.window + 30

    async def post_missing(self) -> int:
        """Post the messages of open incidents that have none (a replica died before posting)."""
        missing = [inc.id for inc in await self.store.list_open() if inc.ts is None]
        for incident_id in missing:
            await self._post(incident_id)
        return len(missing)

    async def _claim(self, incident_id: str, token: str) -> Incident | None:
        # One poster per incident across replicas; the claim expires if the poster dies.
        if not await self.store.take_post_claim(incident_id, POST_CLAIM_SECONDS, token):
            return None
        inc = await self.store.get(incident_id)
        return inc if inc is not None and inc.ts is None else None

    async def _post(self, incident_id: str) -> None:
        token = uuid.uuid4().hex
        try:
            # Before anything is posted, a Redis failover is waited out rather than fatal.
            inc = await until_durable(
                lambda: self._claim(incident_id, token), what=f"claim of incident {incident_id}"
            )
        except StoreUnavailable as exc:
            log.error("incident %s not posted: Redis unavailable (%s)", incident_id, exc)
            return
        if inc is None:
            return
        try:
            resp = await self.client.chat_postMessage(
                channel=self.channel, text=incident_fallback_text(inc), blocks=incident_blocks(inc)
            )
        except SlackApiError as exc:
            self.metrics.slack_api_errors.labels("chat.postMessage").inc()
            log.error("posting incident %s failed: %s", incident_id, exc.response.get("error"))
            return
        channel, ts = str(resp["channel"]), str(resp["ts"])
        await self.store.set_message(incident_id, channel, ts)
        if not await self.thread.post(channel, ts, THREAD_INTRO):
            self.metrics.slack_api_errors.labels("chat.postMessage").inc()

    async def _flush_later(self, incident_id: str) -> None:
        try:
            while True:
                await asyncio.sleep(self.window)
                await self._update(incident_id)
                await self.store.release_update_slot(incident_id)
                # An alert may have landed between the update and the release: re-check.
                if not await self.store.is_dirty(incident_id):
                    return
                if not await self.store.take_update_slot(incident_id, self._slot_ttl()):
                    return
        except Exception:
            log.exception("coalesced update of %s failed", incident_id)
            await self.store.release_update_slot(incident_id)

    async def _update(self, incident_id: str) -> None:
        inc = await self.store.get(incident_id)
        for _ in range(50):
            if inc is None or inc.ts is not None:
                break
            await asyncio.sleep(0.2)  # the creator is still posting the first message
            inc = await self.store.get(incident_id)
        if inc is None or inc.ts is None or inc.channel is None:
            return
        if not await self.store.take_dirty(incident_id):
            return
        channel, ts = inc.channel, inc.ts
        inc = await self.store.get(incident_id) or inc
        try:
            await self.client.chat_update(
                channel=channel,
                ts=ts,
                text=incident_fallback_text(inc),
                blocks=incident_blocks(inc),
            )
        except SlackApiError as exc:
            self.metrics.slack_api_errors.labels("chat.update").inc()
            log.error("updating incident %s failed: %s", incident_id, exc.response.get("error"))

    async def drain(self) -> None:
        """Wait for pending posts and updates (shutdown, tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
