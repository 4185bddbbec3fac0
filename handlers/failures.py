"""Bolt's error handler: whatever a listener or middleware raises, the user reads a clear text
and Slack never sees a 500 (a refused request keeps its own status and reason)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from handlers.http_log import Throttled, describe_bug
from handlers.slack_requests import RequestRefused
from handlers.texts import BUG_TEXT, REDIS_LOST_TEXT, answer_for
from handlers.workspace import SlackUnavailable
from state.errors import StoreUnavailable

log = logging.getLogger(__name__)
throttled = Throttled(log)


def _json(status: int, body: dict[str, Any]) -> BoltResponse:
    return BoltResponse(
        status=status, body=json.dumps(body), headers={"content-type": "application/json"}
    )


def register_failure_handler(app: AsyncApp, reply: Callable[[dict[str, Any], str], None]) -> None:
    """Install the handler; `reply` sends an ephemeral text through a payload's response_url."""

    @app.error
    async def on_error(
        error: Exception, body: dict[str, Any], request: AsyncBoltRequest
    ) -> BoltResponse:
        if isinstance(error, RequestRefused):
            if request.mode == "socket_mode":
                # Socket Mode has no status: ack with the reason, or Slack delivers again.
                status, answer = answer_for(body or {}, error.reason, reply, transient=False)
                return _json(status, answer)
            return _json(error.status, {"error": error.reason})
        if isinstance(error, StoreUnavailable):
            throttled.error(
                "redis", "Slack request not handled: Redis failed (%s)", type(error).__name__
            )
            text, transient = REDIS_LOST_TEXT, True
        elif isinstance(error, SlackUnavailable):
            text, transient = str(error), True
        else:
            log.error("Slack request failed: %s", describe_bug(error))
            text, transient = BUG_TEXT, False
        status, answer = answer_for(body or {}, text, reply, transient=transient)
        return _json(status, answer)
