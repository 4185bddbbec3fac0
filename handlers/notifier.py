"""Delivers incident and alert-flood messages from the Slack outbox, until Slack has them.

Every serve replica runs one delivery loop. It takes due members of the outbox (state/outbox),
each under a lease so one replica delivers it at a time, posts or updates the message, and
then either completes the member or defers it: after Slack's Retry-After on a 429, after a
growing backoff on anything else. Nothing is given up: a message Slack refuses for hours is
posted when Slack takes it, and a restart resumes from Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from handlers.http_log import Throttled, describe_bug
from handlers.metrics import ServeMetrics
from handlers.render.flood import flood_blocks, flood_fallback_text
from handlers.render.incident import incident_blocks, incident_fallback_text
from handlers.render.text import section
from handlers.slack_retry import retry_after_seconds
from state.errors import StoreUnavailable
from state.floods import FloodStore
from state.incidents import IncidentStore, Intake
from state.keys import parse_flood_id
from state.outbox import SlackOutbox

log = logging.getLogger(__name__)
throttled = Throttled(log, seconds=60)
THREAD_INTRO = (
    "This thread is the incident's record: diagnosis, steps, approvals and their results "
    "are posted here."
)
LEASE_SECONDS = 90.0  # longer than one attempt, so two replicas never deliver one member
ATTEMPT_SECONDS = 30.0  # at most three Slack calls of SLACK_CALL_SECONDS each
POLL_SECONDS = 1.0  # other replicas' work is seen at least this often
REPAIR_SECONDS = 60.0  # every open incident is checked for a missing message this often
BATCH = 50
CONCURRENCY = 4
MAX_BACKOFF_SECONDS = 300


@dataclass
class _Attempt:
    """One delivery of one member: what it took, so a failure can put it back."""

    member: str
    token: str
    took_dirty: bool = False


class IncidentNotifier:
    """The delivery loop of one replica."""

    def __init__(
        self,
        store: IncidentStore,
        outbox: SlackOutbox,
        floods: FloodStore,
        *,
        client: AsyncWebClient,
        channel: str,
        coalesce_seconds: float,
        metrics: ServeMetrics,
    ) -> None:
        self.store = store
        self.outbox = outbox
        self.floods = floods
        self.client = client
        self.channel = channel
        self.window = coalesce_seconds
        self.metrics = metrics
        self.replica = uuid.uuid4().hex  # this replica: the prefix of its attempts' tokens
        self._wake = asyncio.Event()
        self._stopping = False
        self._paused_until = 0.0
        self._redis_down_logged = False
        self._unreleased: dict[str, _Attempt] = {}

    async def on_intake(self, intake: Intake) -> None:
        """A recorded alert may have made something due: look now rather than at the poll."""
        del intake
        self.wake()

    def wake(self) -> None:
        """Look at the outbox now."""
        self._wake.set()

    def stop(self) -> None:
        """Take no new member; the loop ends after the deliveries in progress."""
        self._stopping = True
        self.wake()

    # -- the loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Deliver until stop(); survives Redis and Slack outages (each attempt is bounded)."""
        next_repair = 0.0
        while not self._stopping:
            timeout = POLL_SECONDS
            try:
                await self._release_unfinished()
                if time.monotonic() >= next_repair:
                    queued = await self.outbox.enqueue_undelivered()
                    if queued:
                        log.warning("%d open incident(s) had no current message; queued", queued)
                    next_repair = time.monotonic() + REPAIR_SECONDS
                delivered, full = await self.deliver_due()
                timeout = 0.0 if full and delivered else await self._until_next_due()
                self._redis_down_logged = False
            except StoreUnavailable as exc:
                if not self._redis_down_logged:
                    log.error(
                        "Slack delivery paused: Redis failed (%s); retrying", type(exc).__name__
                    )
                    self._redis_down_logged = True
            except Exception as exc:
                throttled.error(
                    "bug", "Slack delivery loop: unexpected %s; retrying", describe_bug(exc)
                )
            await self._sleep(timeout)

    async def _until_next_due(self) -> float:
        pause = self._paused_until - time.monotonic()
        if pause > 0:
            return min(pause, POLL_SECONDS)
        due = await self.outbox.next_due_ms()
        if due is None:
            return POLL_SECONDS
        wait = (due - time.time() * 1000) / 1000
        # Due now but not delivered: another replica holds it; look again at the next poll.
        return POLL_SECONDS if wait <= 0 else min(wait, POLL_SECONDS)

    async def _sleep(self, seconds: float) -> None:
        if seconds > 0 and not self._wake.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    async def deliver_due(self) -> tuple[int, bool]:
        """One pass over the due members: (how many were attempted, whether the batch was full)."""
        if self._paused_until > time.monotonic():
            return 0, False
        due = await self.outbox.due(int(time.time() * 1000), BATCH)
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(member: str) -> bool:
            async with gate:
                return await self.deliver(member)

        done = await asyncio.gather(*(one(m) for m in due))
        return sum(done), len(due) == BATCH

    # -- one member -------------------------------------------------------------------------

    async def deliver(self, member: str) -> bool:
        """Deliver one member if its lease is free; True when this replica attempted it."""
        if self._stopping or self._paused_until > time.monotonic():
            return False
        # One token per attempt: a claim retried after a lost reply is recognized as its own.
        attempt = _Attempt(member, f"{self.replica}:{uuid.uuid4().hex}")
        try:
            if not await self.outbox.claim(member, attempt.token, LEASE_SECONDS):
                return False
        except StoreUnavailable:
            # The claim may have been applied (and replicated) with its reply lost to a
            # failover: release it when Redis is back, or the member would wait out the lease.
            self._unreleased[member] = attempt
            raise
        flood = parse_flood_id(member) is not None
        try:
            try:
                async with asyncio.timeout(ATTEMPT_SECONDS):
                    if flood:
                        await self._deliver_flood(attempt)
                    else:
                        await self._deliver_incident(attempt)
            except SlackApiError as exc:
                await self._defer(attempt, exc.response.get("error") or "error", exc)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                await self._defer(attempt, type(exc).__name__, None)
            else:
                await self.outbox.finish(member, attempt.token, self.window)
        except StoreUnavailable:
            # Redis went away mid-attempt: release the lease when it is back, or the member
            # would wait for the lease to expire.
            self._unreleased[member] = attempt
            raise
        return True

    async def _release_unfinished(self) -> None:
        """Attempts cut short by a Redis failure count as failed: lease released, retried."""
        for member, attempt in list(self._unreleased.items()):
            await self.outbox.defer(
                member,
                attempt.token,
                retry_after_seconds=None,
                redirty=True,  # whatever Slack got, the next attempt brings it up to date
                max_backoff_seconds=MAX_BACKOFF_SECONDS,
            )
            del self._unreleased[member]

    async def _deliver_incident(self, attempt: _Attempt) -> None:
        member = attempt.member
        attempt.took_dirty = await self.outbox.take_dirty(member)
        inc = await self.store.get(member)
        if inc is None or inc.status != "open":
            return  # closed or gone: finish drops it from the outbox
        text, blocks = incident_fallback_text(inc), incident_blocks(inc)
        if inc.ts is None:
            resp = await self._call(
                "chat.postMessage", channel=self.channel, text=text, blocks=blocks
            )
            channel, ts = str(resp["channel"]), str(resp["ts"])
            await self.outbox.set_message(member, channel, ts)
            attempt.took_dirty = False  # the new message shows the latest state
        else:
            channel, ts = inc.channel or self.channel, inc.ts
            if attempt.took_dirty:
                await self._call("chat.update", channel=channel, ts=ts, text=text, blocks=blocks)
                attempt.took_dirty = False
        if inc.intro_pending:
            await self._call(
                "chat.postMessage",
                channel=channel,
                thread_ts=ts,
                text=THREAD_INTRO,
                blocks=[section(THREAD_INTRO)],
            )

    async def _deliver_flood(self, attempt: _Attempt) -> None:
        member = attempt.member
        attempt.took_dirty = await self.outbox.take_dirty(member)
        flood = await self.floods.get(member)
        if flood is None:
            return
        text, blocks = flood_fallback_text(flood), flood_blocks(flood)
        if flood.ts is None:
            resp = await self._call(
                "chat.postMessage", channel=self.channel, text=text, blocks=blocks
            )
            await self.outbox.set_message(member, str(resp["channel"]), str(resp["ts"]))
        elif attempt.took_dirty:
            await self._call(
                "chat.update",
                channel=flood.channel or self.channel,
                ts=flood.ts,
                text=text,
                blocks=blocks,
            )
        attempt.took_dirty = False

    async def _call(self, method: str, **params: object) -> dict[str, object]:
        try:
            resp = await self.client.api_call(method, json=params)
        except SlackApiError:
            self.metrics.slack_api_errors.labels(method).inc()
            raise
        return dict(resp.data) if isinstance(resp.data, dict) else {}

    async def _defer(self, attempt: _Attempt, why: str, exc: SlackApiError | None) -> None:
        wait = retry_after_seconds(exc) if exc is not None else None
        if wait is not None:
            # Slack's rate limits are per method and workspace: every member waits, not one.
            self._paused_until = max(self._paused_until, time.monotonic() + wait)
        attempts, due_in = await self.outbox.defer(
            attempt.member,
            attempt.token,
            retry_after_seconds=wait,
            redirty=attempt.took_dirty,
            max_backoff_seconds=MAX_BACKOFF_SECONDS,
        )
        if wait is not None:
            log.warning(
                "message of %s not delivered: Slack rate limit (%s); next in %.0f s (Retry-After)",
                attempt.member,
                why,
                due_in,
            )
            return
        log.log(
            logging.WARNING if attempts < 5 else logging.ERROR,
            "message of %s not delivered to Slack (%s); attempt %d, next in %.1f s",
            attempt.member,
            why,
            attempts,
            due_in,
        )
