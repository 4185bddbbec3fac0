"""repadmin output pasted in an incident thread (as text or a text snippet): the bot answers in
the thread with what it read. Other text gets no answer unless the message mentions the bot.

Thin: find the incident by the thread, read the text (files.info for snippets), one call into
the domain (`bot.windows.pasted`), render. Pasted text is never logged or echoed.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncBoltContext
from slack_sdk.errors import SlackApiError

from bot.directory.model import diagnosis_from_json
from bot.windows.pasted import IncidentTarget, NotRecognized, PastedReading, read_pasted
from handlers.context import ServeContext
from handlers.render.paste import (
    not_recognized_text,
    pasted_reading_text,
    snippet_unreadable_text,
)
from handlers.slack_retry import transient, with_slack_retries

log = logging.getLogger(__name__)
SEEN_EVENT_SECONDS = 86_400
MAX_FILES = 3
MAX_FILE_BYTES = 1_000_000
FILES_INFO_RETRY_SECONDS = 60.0  # the person who pasted waits for the reading
# Messages people post (plain, with files, or also sent to the channel); not edits, joins, ...
_PASTE_SUBTYPES = frozenset({"", "file_share", "thread_broadcast"})


async def take(
    ctx: ServeContext, event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext
) -> bool:
    """True when the message is a reply in an incident's thread: it is handled here (read
    after the ack), never as an alert."""
    channel = str(event.get("channel", ""))
    thread_ts, ts = event.get("thread_ts"), event.get("ts")
    if channel != ctx.settings.file.slack.channel or not isinstance(thread_ts, str):
        return False
    if not thread_ts or thread_ts == ts:
        return False
    incident_id = await ctx.store.by_thread(channel, thread_ts)
    if incident_id is None:
        return False
    if event.get("bot_id") or str(event.get("subtype") or "") not in _PASTE_SUBTYPES:
        return True  # bots (this one included) and edits are no pastes
    event_id = str(body.get("event_id", ""))
    if event_id and not await ctx.seen.first("slack-event", event_id, SEEN_EVENT_SECONDS):
        return True  # a Slack retry of an event already taken
    ctx.spawn(_answer(ctx, event, incident_id, context.bot_user_id))
    return True


def _text_files(event: dict[str, Any]) -> list[dict[str, Any]]:
    files = event.get("files")
    return [
        f
        for f in (files if isinstance(files, list) else [])
        if isinstance(f, dict)
        and isinstance(f.get("id"), str)
        and (str(f.get("mimetype", "")).startswith("text/") or f.get("filetype") in ("text", "csv"))
    ][:MAX_FILES]


class SnippetUnavailable(Exception):
    """Slack would not hand over a snippet for now (rate limited, down): worth saying so."""

    def __init__(self, error: str) -> None:
        self.error = error
        super().__init__(error)


async def _file_text(ctx: ServeContext, file: dict[str, Any]) -> str:
    """A text file's content through files.info; NotRecognized saying why it could not be read."""
    size = file.get("size")
    if isinstance(size, int) and size > MAX_FILE_BYTES:
        raise NotRecognized(f"the snippet is {size} bytes; the bot reads at most {MAX_FILE_BYTES}")
    try:
        resp = await with_slack_retries(
            lambda: ctx.slack.files_info(file=str(file["id"])),
            deadline_seconds=FILES_INFO_RETRY_SECONDS,
            what="files.info for a pasted snippet",
        )
    except SlackApiError as exc:
        error = str(exc.response.get("error"))
        log.warning("files.info for a pasted snippet failed: %s", error)
        if transient(exc):
            raise SnippetUnavailable(error) from None
        raise NotRecognized(f"the bot could not read the snippet (Slack said {error})") from None
    except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
        log.warning("files.info for a pasted snippet failed: %s", type(exc).__name__)
        raise SnippetUnavailable("no answer") from None
    content = resp.get("content")
    if not isinstance(content, str):
        raise NotRecognized("Slack returned no text for the snippet")
    if resp.get("is_truncated"):
        raise NotRecognized("Slack returned the snippet cut short; paste it as a smaller snippet")
    return content


async def _target(ctx: ServeContext, incident_id: str) -> IncidentTarget:
    inc = await ctx.store.get(incident_id)
    hostname = None
    stored = await ctx.diagnoses.latest(incident_id)
    if stored is not None:
        try:
            hostname = diagnosis_from_json(stored.data).target.dns_host_name
        except ValueError:
            log.warning(
                "incident %s: stored diagnosis unreadable; matching by GUID only", incident_id
            )
    return IncidentTarget(inc.dsa_guid if inc is not None else "", hostname)


async def _answer(
    ctx: ServeContext, event: dict[str, Any], incident_id: str, bot_user_id: str | None
) -> None:
    channel, thread_ts = str(event["channel"]), str(event["thread_ts"])
    text = str(event.get("text") or "")
    mentioned = bot_user_id is not None and f"<@{bot_user_id}>" in text
    target = await _target(ctx, incident_id)
    reasons: list[str] = []
    reading: PastedReading | None = None
    unavailable: str | None = None
    for file in _text_files(event):
        try:
            reading = read_pasted(await _file_text(ctx, file), target)
            break
        except NotRecognized as exc:
            reasons.append(exc.reason)
        except SnippetUnavailable as exc:
            unavailable = exc.error
    if reading is None and text.strip():
        try:
            reading = read_pasted(text, target)
        except NotRecognized as exc:
            reasons.append(exc.reason)
    if reading is not None:
        log.info(
            "incident %s: read pasted %s (%d links, %d failing)",
            incident_id,
            reading.command,
            reading.links,
            len(reading.failing),
        )
        await ctx.thread.post(channel, thread_ts, pasted_reading_text(reading, target))
    elif unavailable is not None:
        # Not a text we could not read but one Slack kept from us: the person is told either way.
        await ctx.thread.post(channel, thread_ts, snippet_unreadable_text(unavailable))
    elif mentioned:
        # Files first: a mention beside a snippet is about the snippet.
        reason = reasons[0] if reasons else "the message carries no text to read"
        await ctx.thread.post(channel, thread_ts, not_recognized_text(reason))
