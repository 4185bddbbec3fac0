"""POST /alerts: authenticated on headers, size- and time-limited, answering 202 with incidents.

Order matters: credentials are checked on the headers alone (a bearer token, or a well-formed
and fresh signature header) before any byte of the body is read; then the body, under the
upload cap and a deadline; then the signature over it, once (a repeat is refused); then the
alerts. Redis down is a 503 with Retry-After. No header value and no body is ever logged.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import re
import time
from dataclasses import dataclass

from aiohttp import web

from bot.alerts.formats import parse_alerts
from bot.errors import AlertRejected
from bot.secrets import ASCII_BLANKS, blank_secret
from handlers.context import ServeContext
from handlers.http_log import Throttled, describe_bug
from handlers.intake import check_forests, take_alerts
from handlers.request_body import (
    BodyRefused,
    ClientGone,
    UploadGate,
    client_gone,
    read_body,
    refusal,
    refused,
)
from state.errors import StoreUnavailable
from state.incidents import Intake

log = logging.getLogger(__name__)
throttled = Throttled(log)
CTX_KEY: web.AppKey[ServeContext] = web.AppKey("ctx", ServeContext)
SIGNATURE_HEADER = "X-AD1411-Signature"
TIMESTAMP_HEADER = "X-AD1411-Timestamp"
MAX_SKEW_SECONDS = 300
SEEN_SIGNATURE_SECONDS = 2 * MAX_SKEW_SECONDS + 60
REDIS_RETRY_AFTER_SECONDS = 5
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"v1=[0-9a-f]{64}")
AUTH_HELP = (
    f"send 'Authorization: Bearer <token>' or a valid {SIGNATURE_HEADER} with a "
    f"{TIMESTAMP_HEADER} within {MAX_SKEW_SECONDS} s"
)


def sign_body(secret: bytes, timestamp: str, body: bytes) -> str:
    """The signature header value a sender computes: v1=hex(HMAC-SHA256(v1:ts:body))."""
    mac = hmac.new(secret, b"v1:" + timestamp.encode() + b":" + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def _raw(value: str) -> bytes:
    # aiohttp keeps undecodable header bytes as surrogates; compare the bytes that were sent.
    return value.encode("utf-8", "surrogateescape")


class Unauthorized(Exception):
    """401 with the reason."""


@dataclass(frozen=True)
class Signed:
    """A request that claims an HMAC signature: checked on the body once it is read."""

    timestamp: str
    signature: str
    secret: str


def bearer_ok(header: str, token: str | None) -> bool:
    """`Authorization: Bearer <token>`: only ASCII spaces and tabs around it are ignored, and
    the bytes must equal the configured (never empty) token."""
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer":
        raise Unauthorized(
            "Authorization: expected 'Bearer <token>' (or sign the request with "
            f"{SIGNATURE_HEADER} and leave Authorization out)"
        )
    if token is None or blank_secret(token):
        raise Unauthorized(
            "Authorization: bearer tokens are not accepted here (ALERT_WEBHOOK_TOKEN is not "
            f"set); sign the request with {SIGNATURE_HEADER}"
        )
    sent = _raw(credentials.strip(ASCII_BLANKS))
    if not hmac.compare_digest(sent, token.encode()):
        raise Unauthorized("Authorization: the bearer token is wrong; use ALERT_WEBHOOK_TOKEN")
    return True


def url_token_ok(supplied: str, token: str | None, *, allowed: bool) -> bool:
    """`?token=<token>` for senders that cannot set a header, only with alerts.token_in_url."""
    if not allowed or token is None or blank_secret(token):
        raise Unauthorized(
            "token: a ?token= in the URL is not accepted here (only with alerts.token_in_url = "
            "true and ALERT_WEBHOOK_TOKEN set); send 'Authorization: Bearer <token>' instead"
        )
    if not hmac.compare_digest(_raw(supplied), token.encode()):
        raise Unauthorized("token: the ?token= in the URL is wrong; use ALERT_WEBHOOK_TOKEN")
    return True


class AlertWebhook:
    """The /alerts route."""

    def __init__(self, ctx: ServeContext) -> None:
        self.ctx = ctx
        self.gate = UploadGate(
            ctx.settings.file.serve.max_concurrent_uploads,
            ctx.metrics.bodies_receiving.labels("/alerts"),
        )

    def _count(self, outcome: str) -> None:
        self.ctx.metrics.alerts.labels(outcome).inc()

    def _credentials(self, request: web.Request) -> Signed | None:
        """None for a good bearer token, Signed for a signature to check; else Unauthorized."""
        header = request.headers.get("Authorization")
        env_token = self.ctx.settings.env.ALERT_WEBHOOK_TOKEN
        if header is not None:
            bearer_ok(header, env_token.get_secret_value() if env_token is not None else None)
            return None
        supplied = request.query.get("token")
        if supplied is not None:
            url_token_ok(
                supplied,
                env_token.get_secret_value() if env_token is not None else None,
                allowed=self.ctx.settings.file.alerts.token_in_url,
            )
            return None
        ts = request.headers.get(TIMESTAMP_HEADER)
        sig = request.headers.get(SIGNATURE_HEADER)
        ref = self.ctx.settings.file.alerts.hmac_secret
        if ts is None or sig is None or ref is None:
            raise Unauthorized(f"authentication: {AUTH_HELP}")
        if not _TIMESTAMP.fullmatch(ts):
            raise Unauthorized(f"authentication: {TIMESTAMP_HEADER} must be Unix seconds (digits)")
        if not _SIGNATURE.fullmatch(sig):
            raise Unauthorized(
                f"authentication: {SIGNATURE_HEADER} must be v1=<64 lower-case hex digits>"
            )
        if abs(time.time() - int(ts)) > MAX_SKEW_SECONDS:
            raise Unauthorized(
                f"authentication: {TIMESTAMP_HEADER} is more than {MAX_SKEW_SECONDS} s from the "
                "server's clock; sign with the current time"
            )
        try:
            secret = ref.resolve()
        except (KeyError, OSError, UnicodeDecodeError):
            secret = ""
        if blank_secret(secret):
            # Never compare against an empty key; an operator must fix the reference.
            log.error("alerts.hmac_secret (%s) is unreadable or empty", ref.describe())
            raise BodyRefused(
                503,
                "signature check unavailable: the server's HMAC key cannot be read; "
                "tell the bot's operator",
                retry_after=60,
            )
        return Signed(ts, sig, secret)

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        """Authenticate, read, verify, parse, record; nothing is kept from a refused request."""
        try:
            signed = self._credentials(request)
            body = await read_body(
                request,
                limit=self.ctx.settings.file.alerts.max_body_bytes,
                deadline_seconds=self.ctx.settings.file.serve.body_read_seconds,
                gate=self.gate,
            )
            if signed is not None:
                expected = sign_body(signed.secret.encode(), signed.timestamp, body)
                if not hmac.compare_digest(expected.encode(), signed.signature.encode()):
                    raise Unauthorized(
                        f"authentication: {SIGNATURE_HEADER} does not match the body "
                        f'(sign "v1:<timestamp>:<body>" with alerts.hmac_secret)'
                    )
        except Unauthorized as exc:
            self._count("unauthorized")
            return refusal(401, str(exc))
        except BodyRefused as exc:
            self._count("refused")
            return refused(exc)
        except ClientGone as exc:
            self._count("disconnected")
            return client_gone("/alerts", request, str(exc))
        try:
            return await self._take(body, signed)
        except StoreUnavailable as exc:
            self._count("unavailable")
            throttled.error("redis", "alerts not recorded: Redis failed (%s)", type(exc).__name__)
            return refusal(
                503,
                "the bot's database (Redis) is unavailable; the alert was not recorded (or only "
                "part of a batch: resending counts those again, it opens nothing twice). "
                f"Send it again in {REDIS_RETRY_AFTER_SECONDS} s",
                retry_after=REDIS_RETRY_AFTER_SECONDS,
            )

    async def _take(self, body: bytes, signed: Signed | None) -> web.Response:
        ctx = self.ctx
        try:
            alerts = parse_alerts(body)
            check_forests(ctx, alerts)
        except AlertRejected as exc:
            self._count("rejected")
            return _error(400, str(exc), exc.field)
        except Exception as exc:  # a parser bug must not become a 500 with a traceback
            log.error("alert body could not be parsed: %s", describe_bug(exc))
            self._count("rejected")
            return _error(400, "body: could not be read as an alert (the server logged why)")
        if signed is not None and not await ctx.seen.first(
            "alert-signature", signed.signature, SEEN_SIGNATURE_SECONDS
        ):
            self._count("replayed")
            return _error(409, "this signed request was already received; sign each request anew")
        try:
            intakes = await take_alerts(ctx, alerts)
        except StoreUnavailable:
            if signed is not None:
                # Not recorded (503): the sender's resend of these same bytes must be taken,
                # not refused as a replay.
                with contextlib.suppress(StoreUnavailable):
                    await ctx.seen.forget("alert-signature", signed.signature)
            raise
        return web.json_response(accepted_answer(ctx, intakes), status=202)


def _error(status: int, message: str, field: str | None = None) -> web.Response:
    body: dict[str, object] = {"error": message}
    if field is not None:
        body["field"] = field
    return web.json_response(body, status=status)


def accepted_answer(ctx: ServeContext, intakes: list[Intake]) -> dict[str, object]:
    """The 202 body: the incidents, and what was grouped into an alert flood (if anything)."""
    answer: dict[str, object] = {
        "accepted": len(intakes),
        "incidents": [
            {"incident_id": i.incident_id, "created": i.created, "count": i.count}
            for i in intakes
            if not i.grouped
        ],
    }
    grouped = [i for i in intakes if i.grouped]
    if grouped:
        cfg = ctx.settings.file.alerts
        answer["flood"] = {
            "grouped": len(grouped),
            "flood_ids": sorted({i.incident_id for i in grouped}),
            "message": (
                f"{len(grouped)} alert(s) named new problems beyond the cap "
                f"({cfg.max_new_incidents_per_request} new incidents per request, "
                f"{cfg.max_new_incidents_per_minute} per minute); they were grouped into one "
                "'alert flood' message in the incident channel and opened no incident. If they "
                "are real, raise alerts.max_new_incidents_per_request/_per_minute or send them "
                "again after this minute."
            ),
        }
    return answer
