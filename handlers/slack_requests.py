"""Every check a request on /slack/events passes before Bolt sees it, in one place.

Order: headers (signature and timestamp well-formed and fresh) before any byte of the body is
read; the body under the upload cap and a deadline; the v0 signature over it; the payload
parsed and shaped as Slack sends it; and a signature seen before refused as a replay. Bolt's
own verification is off (`request_verification_enabled=False` in handlers/app.py) because this
already did it; the workspace check (team or enterprise ID) is in handlers/workspace.py, which
Bolt calls for HTTP and Socket Mode alike. Nothing here logs a body or a header value.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import Any

from aiohttp import web
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.async_internals import build_async_context
from slack_bolt.request.async_request import AsyncBoltRequest

from handlers.form_body import parse_form
from handlers.http_log import Throttled
from handlers.metrics import ServeMetrics
from handlers.request_body import (
    BodyRefused,
    ClientGone,
    UploadGate,
    client_gone,
    read_body,
    refusal,
    refused,
)
from handlers.texts import REDIS_DOWN_TEXT, answer_for
from state.errors import StoreUnavailable
from state.seen import SeenOnce

log = logging.getLogger(__name__)
throttled = Throttled(log)
SLACK_PATH = "/slack/events"
SLACK_MAX_BODY = 1024 * 1024
MAX_SKEW_SECONDS = 300  # Slack's replay window
SEEN_SIGNATURE_SECONDS = 2 * MAX_SKEW_SECONDS + 60
# The replay check answers fast or the request is refused as "Redis unavailable" (Slack's
# 3 s must hold while Redis hangs or fails over; the listener's budget comes after).
REPLAY_CHECK_SECONDS = 1.0
TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"
SIGNATURE_HEADER = "X-Slack-Signature"
RETRY_HEADER = "X-Slack-Retry-Num"
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")
SLACK_BODY_KEY: web.RequestKey[str] = web.RequestKey("slack_body", str)
SLACK_STARTED_KEY: web.RequestKey[float] = web.RequestKey("slack_started", float)
SLACK_PAYLOAD_KEY: web.RequestKey[dict[str, Any]] = web.RequestKey("slack_payload", dict)


class RequestRefused(Exception):
    """A Slack request that is refused, with the HTTP status and the reason to send back."""

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(reason)


# -- pure checks ------------------------------------------------------------------------------


def check_headers(headers: Mapping[str, str], now: float) -> tuple[str, str]:
    """(timestamp, signature) when both are present, well-formed and fresh; else 401."""
    ts = headers.get(TIMESTAMP_HEADER)
    sig = headers.get(SIGNATURE_HEADER)
    if ts is None or sig is None:
        raise RequestRefused(
            401, f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER}: requests must come from Slack"
        )
    if not _TIMESTAMP.fullmatch(ts):
        raise RequestRefused(401, f"{TIMESTAMP_HEADER}: expected Unix time in seconds (digits)")
    if not _SIGNATURE.fullmatch(sig):
        raise RequestRefused(401, f"{SIGNATURE_HEADER}: expected v0=<64 hex digits>")
    if abs(now - int(ts)) > MAX_SKEW_SECONDS:
        raise RequestRefused(
            401, f"{TIMESTAMP_HEADER}: more than {MAX_SKEW_SECONDS} s from now (stale or replayed)"
        )
    return ts, sig


def signature_matches(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """Slack's v0 signature: HMAC-SHA256 of "v0:{timestamp}:{body}" keyed by the secret."""
    base = b"v0:" + timestamp.encode() + b":" + body
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), signature.encode())


def parse_payload(body: bytes, content_type: str | None) -> tuple[str, dict[str, Any]]:
    """(body as text, the payload Bolt will see); else 400. Bolt's rules, but for one: a form
    is an interaction only when it has a `payload` field (Bolt's `parse_body` looks for the
    word anywhere, so `/ad1411 payload` would reach it as an empty request)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestRefused(400, "body: not UTF-8") from None
    try:
        payload = _parse_body(text, content_type)
    except (ValueError, RecursionError):
        raise RequestRefused(
            400, "body: not a Slack payload (form fields, a JSON `payload` field, or JSON)"
        ) from None
    if not isinstance(payload, dict):
        raise RequestRefused(400, "body: the payload must be a JSON object")
    return text, payload


def _parse_body(text: str, content_type: str | None) -> Any:
    """JSON for a JSON body; a form's `payload` field as JSON; else the form's fields (decoded
    by handlers/form_body.py: parse_qsl's result, in a tenth of the time for a click)."""
    if not text:
        return {}
    if content_type == "application/json" or text.startswith("{"):
        return json.loads(text)
    fields = dict(parse_form(text))
    interaction = fields.get("payload")
    return json.loads(interaction) if interaction is not None else fields


_ID_HOLDERS = ("team", "user", "channel", "enterprise")
_STRINGS = (
    "type",
    "team_id",
    "user_id",
    "channel_id",
    "enterprise_id",
    "thread_ts",
    "response_url",
    "command",
    "text",
    "trigger_id",
    "api_app_id",
    "event_id",
    "challenge",
    "token",
    "callback_id",
    "action_id",
    "subtype",
    "bot_id",
)
_OBJECTS = ("message", "previous_message", "item", "assistant_thread", "function_data")


def _shape_problems(obj: Mapping[str, Any], where: str) -> list[str]:
    """Fields Bolt's context extraction and our listeners read must have Slack's types."""
    problems = []
    for key in _ID_HOLDERS:
        value = obj.get(key)
        if value is None or isinstance(value, str):
            continue
        if not isinstance(value, dict) or not isinstance(value.get("id", ""), str | None):
            problems.append(f"{where}{key}: expected an ID string or an object with a string id")
    for key in _STRINGS:
        if not isinstance(obj.get(key, ""), str | None):
            problems.append(f"{where}{key}: expected a string")
    for key in _OBJECTS:
        if not isinstance(obj.get(key, {}), dict | None):
            problems.append(f"{where}{key}: expected an object")
    for key in ("event", "view"):
        if key in obj and not isinstance(obj[key], dict):
            problems.append(f"{where}{key}: expected an object")
    for key in ("authorizations", "response_urls", "actions", "attachments", "blocks"):
        value = obj.get(key)
        if value is not None and not (
            isinstance(value, list) and all(isinstance(v, dict) for v in value)
        ):
            problems.append(f"{where}{key}: expected a list of objects")
    return problems


def _typed_problems(payload: Mapping[str, Any]) -> list[str]:
    """What each kind of request must carry for its listener."""
    kind = payload.get("type")
    user = payload.get("user")
    if "command" in payload:
        needed = ("command", "user_id", "team_id")
        return [f"{k}: required for a slash command" for k in needed if not payload.get(k)]
    if kind in ("workflow_step_edit",):
        return [f"type: {kind} (legacy workflow steps) is not used by this app"]
    if kind in ("block_actions", "interactive_message", "view_submission", "view_closed"):
        problems = []
        if not isinstance(user, dict) or not isinstance(user.get("id"), str):
            problems.append(f"user: {kind} needs the acting user as an object with an id")
        actions = payload.get("actions")
        if kind in ("block_actions", "interactive_message") and not actions:
            problems.append(f"actions: {kind} needs at least one action")
        elif kind == "block_actions" and not (
            isinstance(actions, list)
            and all(
                isinstance(a, dict)
                and isinstance(a.get("action_id"), str)
                and isinstance(a.get("value", ""), str | None)
                for a in actions
            )
        ):
            problems.append("actions: each action needs a string action_id (and string value)")
        view = payload.get("view")
        if kind.startswith("view_") and not (
            isinstance(view, dict)
            and isinstance(view.get("callback_id"), str)
            and isinstance(view.get("type"), str)
            and view.get("type") != "workflow_step"
        ):
            problems.append(f"view: {kind} needs a view object with its type and callback_id")
        return problems
    if kind == "event_callback":
        event = payload.get("event")
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            return ["event: an event_callback needs an event object with a type"]
        return _shape_problems(event, "event.")
    if kind is None:
        return ["type: not a slash command, an interaction or an event"]
    return []


def check_shape(payload: Mapping[str, Any]) -> None:
    """400 (naming the first fields that are wrong) when the payload is not shaped as Slack's."""
    problems = _shape_problems(payload, "") + _typed_problems(payload)
    view = payload.get("view")
    if isinstance(view, dict):
        problems += _shape_problems(view, "view.")
        state = view.get("state")
        if state is not None and not (
            isinstance(state, dict) and isinstance(state.get("values", {}), dict)
        ):
            problems.append("view.state: expected an object with values")
    if problems:
        raise RequestRefused(400, "payload: " + "; ".join(problems[:5]))


# -- the middleware ---------------------------------------------------------------------------


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class SlackRequestGate:
    """aiohttp middleware: only verified, well-formed, first-seen requests reach Bolt."""

    def __init__(
        self,
        *,
        signing_secret: str | None,
        seen: SeenOnce,
        metrics: ServeMetrics,
        reply: Callable[[dict[str, Any], str], None],
        max_concurrent: int,
        body_read_seconds: float,
    ) -> None:
        self.secret = signing_secret
        self.seen = seen
        self.metrics = metrics
        self.reply = reply
        self.gate = UploadGate(max_concurrent, metrics.bodies_receiving.labels(SLACK_PATH))
        self.body_read_seconds = body_read_seconds

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Applies to POST /slack/events; every other route passes untouched."""
        if request.path != SLACK_PATH or request.method != "POST":
            return await handler(request)
        resp = await self._checked(request, handler)
        self.metrics.slack_requests.labels(str(resp.status)).inc()
        return resp

    async def _checked(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        request[SLACK_STARTED_KEY] = time.monotonic()
        try:
            if not self.secret:
                raise RequestRefused(
                    401, "HTTP requests are not accepted: SLACK_SIGNING_SECRET is not set"
                )
            ts, sig = check_headers(request.headers, time.time())
            body = await read_body(
                request,
                limit=SLACK_MAX_BODY,
                deadline_seconds=self.body_read_seconds,
                gate=self.gate,
            )
            if not signature_matches(self.secret, ts, body, sig):
                raise RequestRefused(
                    401, f"{SIGNATURE_HEADER}: does not match the body (wrong signing secret?)"
                )
            text, payload = parse_payload(body, request.content_type)
            check_shape(payload)
        except RequestRefused as exc:
            return refusal(exc.status, exc.reason)
        except BodyRefused as exc:
            return refused(exc)
        except ClientGone as exc:
            return client_gone(SLACK_PATH, request, str(exc))
        try:
            first = await asyncio.wait_for(
                self.seen.first("slack-signature", sig, SEEN_SIGNATURE_SECONDS),
                REPLAY_CHECK_SECONDS,
            )
        except (StoreUnavailable, TimeoutError) as exc:
            throttled.error(
                "redis", "Slack request not handled: Redis failed (%s)", type(exc).__name__
            )
            status, answer = answer_for(payload, REDIS_DOWN_TEXT, self.reply, transient=True)
            return web.json_response(answer, status=status)
        if not first:
            if request.headers.get(RETRY_HEADER) is not None:
                return web.json_response({})  # Slack's own retry of what was handled
            return refusal(401, "this signed request was already received (replay refused)")
        request[SLACK_BODY_KEY] = text
        request[SLACK_PAYLOAD_KEY] = payload
        response = await handler(request)
        if response.status >= HTTPStatus.INTERNAL_SERVER_ERROR:
            # Not handled (Redis failed mid-way): Slack delivers it again, maybe within the
            # same second and so with the same signature; that delivery must not be taken for
            # a replay of something handled.
            with contextlib.suppress(StoreUnavailable, TimeoutError):
                await asyncio.wait_for(
                    self.seen.forget("slack-signature", sig), REPLAY_CHECK_SECONDS
                )
        return response


class CheckedBoltRequest(AsyncBoltRequest):
    """A Bolt request built from the payload the gate already parsed and checked: parsing
    a click's form body costs more than the rest of its handling, so it is done once."""

    def __init__(
        self,
        *,
        raw_body: str,
        payload: dict[str, Any],
        query: str,
        headers: dict[str, str],
    ) -> None:
        super().__init__(body="", query=query, headers=headers)  # type: ignore[arg-type]
        self.raw_body = raw_body
        self.body = payload
        self.context = build_async_context(AsyncBoltContext({}), payload)
