"""POST /alerts: authenticated, size-limited alert intake answering 202 with incident ids."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time

from aiohttp import web

from bot.alerts.formats import parse_alerts
from bot.errors import AlertRejected
from handlers.context import ServeContext
from handlers.intake import check_forests, take_alerts
from state.durability import StoreUnavailable

CTX_KEY: web.AppKey[ServeContext] = web.AppKey("ctx", ServeContext)
SIGNATURE_HEADER = "X-AD1411-Signature"
TIMESTAMP_HEADER = "X-AD1411-Timestamp"
MAX_SKEW_SECONDS = 300
log = logging.getLogger(__name__)


def _error(status: int, message: str, field: str | None = None) -> web.Response:
    body: dict[str, object] = {"error": message}
    if field is not None:
        body["field"] = field
    return web.json_response(body, status=status)


def sign_body(secret: bytes, timestamp: str, body: bytes) -> str:
    """The signature header value a sender computes: v1=hex(HMAC-SHA256(v1:ts:body))."""
    mac = hmac.new(secret, b"v1:" + timestamp.encode() + b":" + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


async def _read_limited(request: web.Request, limit: int) -> bytes | None:
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(65536):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _bearer_ok(request: web.Request, token: str | None) -> bool | None:
    """True/False when a bearer token was sent, None when none was."""
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return None
    if token is None:
        return False
    return hmac.compare_digest(header[7:].strip().encode(), token.encode())


def _url_token_ok(request: web.Request, token: str | None, allowed: bool) -> bool | None:
    """The same as _bearer_ok for ?token= (only when the config allows it)."""
    supplied = request.query.get("token")
    if supplied is None:
        return None
    if not allowed or token is None:
        return False
    return hmac.compare_digest(supplied.encode(), token.encode())


def _signature_ok(request: web.Request, body: bytes, secret: str | None) -> bool:
    sig = request.headers.get(SIGNATURE_HEADER)
    ts = request.headers.get(TIMESTAMP_HEADER, "")
    if secret is None or sig is None or not ts.isdigit():
        return False
    if abs(time.time() - int(ts)) > MAX_SKEW_SECONDS:
        return False
    return hmac.compare_digest(sign_body(secret.encode(), ts, body).encode(), sig.encode())


async def post_alerts(request: web.Request) -> web.Response:
    """Authenticate, read at most the size limit, parse, correlate; nothing kept on error."""
    ctx = request.app[CTX_KEY]
    limit = ctx.settings.file.alerts.max_body_bytes
    env_token = ctx.settings.env.ALERT_WEBHOOK_TOKEN
    token = env_token.get_secret_value() if env_token is not None else None
    hmac_ref = ctx.settings.file.alerts.hmac_secret
    bearer = _bearer_ok(request, token)
    if bearer is False:
        ctx.metrics.alerts.labels("unauthorized").inc()
        return _error(401, "Authorization: the bearer token is wrong; use ALERT_WEBHOOK_TOKEN")
    if bearer is None:
        bearer = _url_token_ok(request, token, ctx.settings.file.alerts.token_in_url)
        if bearer is False:
            ctx.metrics.alerts.labels("unauthorized").inc()
            return _error(
                401,
                "token: the ?token= in the URL is wrong, or not accepted (it is only with "
                "alerts.token_in_url = true); send 'Authorization: Bearer <token>' instead",
            )
    if request.content_length is not None and request.content_length > limit:
        ctx.metrics.alerts.labels("too_large").inc()
        return _error(413, f"body: {request.content_length} bytes; at most {limit} are accepted")
    body = await _read_limited(request, limit)
    if body is None:
        ctx.metrics.alerts.labels("too_large").inc()
        return _error(413, f"body: more than {limit} bytes; at most {limit} are accepted")
    if bearer is None:
        secret = hmac_ref.resolve() if hmac_ref is not None else None
        if not _signature_ok(request, body, secret):
            ctx.metrics.alerts.labels("unauthorized").inc()
            return _error(
                401,
                "authentication: send 'Authorization: Bearer <token>' or a valid "
                f"{SIGNATURE_HEADER} with a {TIMESTAMP_HEADER} within {MAX_SKEW_SECONDS} s",
            )
    try:
        alerts = parse_alerts(body)
        check_forests(ctx, alerts)
    except AlertRejected as exc:
        ctx.metrics.alerts.labels("rejected").inc()
        return _error(400, str(exc), exc.field)
    try:
        intakes = await take_alerts(ctx, alerts)
    except StoreUnavailable as exc:
        # Not acknowledged: the sender retries (a Redis failover takes a few seconds).
        ctx.metrics.alerts.labels("unavailable").inc()
        log.warning("alerts not recorded, answered 503: %s", exc)
        resp = _error(
            503, "state store unavailable (Redis down or failing over); not recorded, retry"
        )
        resp.headers["Retry-After"] = "2"
        return resp
    return web.json_response(
        {
            "accepted": len(intakes),
            "incidents": [
                {"incident_id": i.incident_id, "created": i.created, "count": i.count}
                for i in intakes
            ],
        },
        status=202,
    )
