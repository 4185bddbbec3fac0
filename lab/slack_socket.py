"""Socket Mode: the WebSocket end that apps.connections.open hands out, delivering envelopes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from typing import Any

from aiohttp import WSMsgType, web

from lab.slack_workspace import ApiCall, SlackWorkspace

log = logging.getLogger(__name__)

ENVELOPE_TYPES = ("slash_commands", "interactive", "events_api")


class SocketAckTimeout(TimeoutError):
    """The app did not acknowledge an envelope in time (Slack would retry or show an error)."""


class SocketHub:
    """The connected Socket Mode apps; lives on the emulator's event loop."""

    def __init__(self, workspace: SlackWorkspace) -> None:
        self._workspace = workspace
        self._tickets: set[str] = set()
        self._connections: list[web.WebSocketResponse] = []
        self._acks: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.connects = 0  # connections ever accepted, so tests can see a reconnect

    def issue_ticket(self) -> str:
        """A ticket for a socket URL; it stays valid since the SDK retries the same URL."""
        ticket = secrets.token_urlsafe(16)
        self._tickets.add(ticket)
        return ticket

    @property
    def connected(self) -> int:
        """How many apps are connected now."""
        return sum(1 for ws in self._connections if not ws.closed)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """The WebSocket endpoint: hello on connect, then acks until the app leaves."""
        if request.query.get("ticket") not in self._tickets:
            return web.json_response({"ok": False, "error": "invalid_ticket"}, status=401)
        # autoping answers the SDK's "sdk-ping-pong:<time>" pings with the same payload.
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._connections.append(ws)
        self.connects += 1
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": self.connected,
                "debug_info": {
                    "host": "applink-lab",
                    "build_number": 1,
                    "approximate_connection_time": 18060,
                },
                "connection_info": {"app_id": self._workspace.app_id},
            }
        )
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._on_text(msg.data)
        finally:
            with contextlib.suppress(ValueError):
                self._connections.remove(ws)
        return ws

    def _on_text(self, data: str) -> None:
        try:
            ack = json.loads(data)
        except json.JSONDecodeError:
            log.warning("Socket Mode app sent something that is not JSON; ignored")
            return
        envelope_id = ack.get("envelope_id") if isinstance(ack, dict) else None
        waiter = self._acks.get(envelope_id) if isinstance(envelope_id, str) else None
        if waiter is not None and not waiter.done():
            waiter.set_result(ack)

    async def deliver(
        self,
        envelope_type: str,
        payload: dict[str, Any],
        *,
        accepts_response_payload: bool,
        ack_timeout: float = 10.0,
        retry_attempt: int = 0,
        retry_reason: str = "",
    ) -> dict[str, Any]:
        """Send one envelope to the newest connection and return the app's ack."""
        if envelope_type not in ENVELOPE_TYPES:
            raise ValueError(
                f"envelope type must be one of {ENVELOPE_TYPES}, not {envelope_type!r}"
            )
        live = [ws for ws in self._connections if not ws.closed]
        if not live:
            raise ConnectionError("no Socket Mode app is connected to the Slack emulator")
        envelope: dict[str, Any] = {
            "envelope_id": secrets.token_hex(16),
            "type": envelope_type,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
        }
        if envelope_type == "events_api":
            envelope.update(retry_attempt=retry_attempt, retry_reason=retry_reason)
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._acks[envelope["envelope_id"]] = waiter
        try:
            await live[-1].send_json(envelope)
            ack = await asyncio.wait_for(waiter, ack_timeout)
        except TimeoutError as exc:
            raise SocketAckTimeout(
                f"the app did not ack {envelope_type} envelope within {ack_timeout:g} s"
            ) from exc
        finally:
            self._acks.pop(envelope["envelope_id"], None)
        self._workspace.record_call(
            ApiCall("socket_mode.envelope", envelope, time.time(), 200, ack)
        )
        return ack

    async def disconnect(self, reason: str = "refresh_requested", *, close: bool = False) -> None:
        """Tell every app to reconnect (Slack's disconnect message); close=True drops the link."""
        for ws in list(self._connections):
            if ws.closed:
                continue
            if close:
                await ws.close()
            else:
                await ws.send_json(
                    {"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-lab"}}
                )

    async def close_all(self) -> None:
        """Close every connection (emulator shutdown)."""
        for ws in list(self._connections):
            with contextlib.suppress(Exception):
                await ws.close()
