"""The procedure message in the incident thread: posted once, then kept in step, coalesced.

Used by serve (after a click) and by the worker (after a run, and by its sweeper, which
repairs a message a dead process left stale). Never imports Bolt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.procedure.model import procedure_from_json
from handlers.render.procedure import procedure_blocks, procedure_fallback
from handlers.slack_retry import transient
from handlers.thread import IncidentThread
from state.durability import StoreUnavailable, until_durable
from state.incidents import IncidentStore
from state.procedures import ProcedureStore

log = logging.getLogger(__name__)
POST_CLAIM_SECONDS = 60


class ProcedureMessages:
    """Keeps each procedure's Slack message in step with Redis, without flooding Slack."""

    def __init__(
        self,
        store: ProcedureStore,
        incidents: IncidentStore,
        slack: AsyncWebClient,
        thread: IncidentThread,
        *,
        window_seconds: float,
        ttl_seconds: int,
    ) -> None:
        self.store = store
        self.incidents = incidents
        self.slack = slack
        self.thread = thread
        self.window = window_seconds
        self.ttl = ttl_seconds

    def _slot_ttl(self) -> float:
        return 2 * self.window + 30

    async def changed(self, procedure_id: str) -> None:
        """Show the latest state now, then at most once per window while changes keep coming."""
        slot = await self.store.take_update_slot(procedure_id, self._slot_ttl())
        if slot is None:
            return  # the holder of the slot shows this change at its trailing edge
        try:
            while True:
                await self.flush(procedure_id)
                await asyncio.sleep(self.window)
                await self.store.release_update_slot(procedure_id, slot)
                if not await self.store.is_dirty(procedure_id):
                    return
                slot = await self.store.take_update_slot(procedure_id, self._slot_ttl())
                if slot is None:
                    return
        except Exception as exc:
            if isinstance(exc, StoreUnavailable):
                log.warning("updating the message of procedure %s failed: %s", procedure_id, exc)
            else:
                log.exception("updating the message of procedure %s failed", procedure_id)
            # Through a failover too: a slot left held would stall every update for its TTL.
            # Only this process's slot: after a failover another may hold it already.
            held = slot
            if held is None:
                return
            with contextlib.suppress(StoreUnavailable):
                await until_durable(
                    lambda: self.store.release_update_slot(procedure_id, held),
                    what=f"update slot of procedure {procedure_id}",
                )

    async def flush(self, procedure_id: str) -> None:
        """Post the message if it has none yet, else update it when it is stale."""
        stored = await self.store.load(procedure_id)
        if stored is None:
            return
        proc = procedure_from_json(stored.data, stored.version)
        now = int(time.time() * 1000)
        blocks = procedure_blocks(proc, now, self.ttl)
        if stored.ts is None:
            await self._post(procedure_id, proc.incident_id, blocks, procedure_fallback(proc))
            return
        if not await self.store.take_dirty(procedure_id):
            return
        try:
            await self.slack.chat_update(
                channel=stored.channel or "",
                ts=stored.ts,
                text=procedure_fallback(proc),
                blocks=blocks,
            )
        except Exception as exc:
            if not transient(exc):
                if not isinstance(exc, SlackApiError):
                    raise
                log.error(
                    "updating procedure %s failed: %s (the next change repaints it)",
                    procedure_id,
                    exc.response.get("error"),
                )
            else:
                # Slack busy past the client's own retries: still stale, so the next window
                # or the worker's sweep shows it.
                log.warning("updating procedure %s deferred: %s", procedure_id, exc)
                await self.store.mark_stale(procedure_id)
                return
        # Slack applies updates in the order they arrive: if the procedure moved on while this
        # one was on its way, a newer update from another process may have landed first and
        # this one hidden it. The message is then stale again, and the next flush fixes it.
        await self.store.redirty_if_newer(procedure_id, stored.version)

    async def _post(
        self, procedure_id: str, incident_id: str, blocks: list[dict[str, Any]], text: str
    ) -> None:
        inc = await self.incidents.get(incident_id)
        if inc is None or inc.channel is None or inc.ts is None:
            log.warning("procedure %s: its incident has no message yet; not posted", procedure_id)
            return
        if not await self.store.take_post_claim(procedure_id, POST_CLAIM_SECONDS):
            return
        await self.store.take_dirty(procedure_id)
        try:
            resp = await self.slack.chat_postMessage(
                channel=inc.channel, thread_ts=inc.ts, text=text, blocks=blocks
            )
        except Exception as exc:
            if not transient(exc):
                if not isinstance(exc, SlackApiError):
                    raise
                log.error(
                    "posting procedure %s failed: %s", procedure_id, exc.response.get("error")
                )
            else:
                # Posted again by the next window or sweep: at once after a 429 (Slack posted
                # nothing), else once the claim expires (a 5xx or a timeout may have posted it,
                # and the claim keeps a second post from racing the first).
                log.warning("posting procedure %s deferred: %s", procedure_id, exc)
                if isinstance(exc, SlackApiError) and exc.response.status_code == 429:
                    await self.store.release_post_claim(procedure_id)
                await self.store.mark_stale(procedure_id)
            return
        await self.store.set_message(procedure_id, str(resp["channel"]), str(resp["ts"]))
