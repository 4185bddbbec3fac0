"""A local Slack: Web API, response_url and Socket Mode over HTTP on 127.0.0.1, recording all.

In-process: `SlackEmulator(...).start()` (own thread and loop) or `await emu.start_async()`.
Standalone: `python -m lab.slack_console --port N --bot-url http://127.0.0.1:3000/slack/events`
(tokens and signing secret from SLACK_BOT_TOKEN, SLACK_APP_TOKEN, SLACK_SIGNING_SECRET or flags);
then drive it with the control API under /_lab/ (see `_control_routes`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import asdict
from typing import Any, Protocol, Self, TypeVar

from aiohttp import web

from lab.slack_faults import HOLD_LIMIT_SECONDS, FaultPlan
from lab.slack_methods import JSON_FIELDS, METHODS, post_to_response_url
from lab.slack_socket import SocketHub
from lab.slack_web import SlackWebPage
from lab.slack_workspace import ApiCall, SlackApiFailure, SlackWorkspace

T = TypeVar("T")

LAB_BOT_TOKEN = "xoxb-lab-bot-token-not-real"
LAB_APP_TOKEN = "xapp-1-A0APP0001-lab-app-token"
_URL_GONE = ("no_such_url", "expired_url", "used_url")


class SlackAnswer(Protocol):
    """The bot's answer to something a Slack user did."""

    @property
    def status(self) -> int:
        """HTTP status (200 for a Socket Mode ack)."""
        ...

    @property
    def body(self) -> str:
        """The body of the answer."""
        ...


class SlackUser(Protocol):
    """Acting as a Slack user towards the bot (`lab.slack_driver.SlackDriver` is one)."""

    async def slash_command(
        self, command: str, text: str = "", *, user_id: str = ..., channel_id: str = ...
    ) -> SlackAnswer:
        """Send a slash command."""
        ...

    async def click(
        self,
        message: dict[str, Any],
        *,
        action_id: str | None = None,
        text: str | None = None,
        user_id: str = ...,
    ) -> SlackAnswer:
        """Click a button of a message."""
        ...

    async def message_event(self, channel: str, text: str, *, user: str = ...) -> SlackAnswer:
        """Post a message (an Events API delivery)."""
        ...


class SlackEmulator:
    """The Slack Web API, response URLs and Socket Mode, answering like Slack and recording."""

    def __init__(
        self,
        *,
        bot_token: str = LAB_BOT_TOKEN,
        app_token: str = LAB_APP_TOKEN,
        workspace: SlackWorkspace | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if not bot_token.startswith("xoxb-") or not app_token.startswith("xapp-"):
            raise ValueError("bot_token must start with xoxb- and app_token with xapp-")
        self.workspace = workspace or SlackWorkspace()
        self.faults = FaultPlan()
        self.socket = SocketHub(self.workspace)
        self.driver: SlackUser | None = None  # set to enable the /_lab/ actions and the page
        self.web = SlackWebPage(self)  # the incident channel as a web page, at base_url
        self.host = host
        self.port = port
        self._bot_token = bot_token
        self._app_token = app_token
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"SlackEmulator(http://{self.host}:{self.port}, calls={len(self.calls())})"

    # -- addresses -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:PORT"""
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        """The Web API base URL for SLACK_API_URL / WebClient(base_url=...)."""
        return f"{self.base_url}/api/"

    # -- lifecycle -------------------------------------------------------------------------

    def build_app(self) -> web.Application:
        """The aiohttp application (Web API, response URLs, Socket Mode, control API)."""
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/response/{response_id}", self._response_url)
        app.router.add_get("/socket", self.socket.handle)
        _control_routes(app, self)
        self.web.add_routes(app)
        return app

    async def start_async(self) -> Self:
        """Serve on the running event loop."""
        self._loop = asyncio.get_running_loop()
        self._runner = web.AppRunner(self.build_app(), access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def stop_async(self) -> None:
        """Stop serving (connected Socket Mode apps are disconnected)."""
        self.web.closing = True
        await self.socket.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def start(self) -> Self:
        """Serve from a background thread with its own event loop."""
        loop = asyncio.new_event_loop()
        started: list[BaseException | None] = []
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start_async())
                started.append(None)
            except BaseException as exc:  # handed to the starting thread
                started.append(exc)
                return
            finally:
                ready.set()
            loop.run_forever()

        self._thread = threading.Thread(target=run, name="slack-emulator", daemon=True)
        self._thread.start()
        if not ready.wait(30) or started[0] is not None:
            raise RuntimeError(f"Slack emulator did not start on {self.host}:{self.port}") from (
                started[0] if started else None
            )
        return self

    def stop(self) -> None:
        """Stop a server started with start()."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self.stop_async(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await self.start_async()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop_async()

    # -- inspection ------------------------------------------------------------------------

    def calls(self, method: str | None = None) -> list[ApiCall]:
        """Recorded calls (Web API methods, "response_url", "socket_mode.envelope")."""
        return self.workspace.calls(method)

    def messages(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Messages as they are now (after updates), replies included, oldest first."""
        return self.workspace.messages(channel)

    def message(self, channel: str, ts: str) -> dict[str, Any] | None:
        """One message as it is now."""
        return self.workspace.message(channel, ts)

    def ephemerals(
        self, channel: str | None = None, user: str | None = None
    ) -> list[dict[str, Any]]:
        """Ephemeral messages (chat.postEphemeral and response_url), oldest first."""
        return self.workspace.ephemerals(channel, user)

    def views(self) -> list[dict[str, Any]]:
        """Modals opened with views.open, as they are now."""
        return self.workspace.views()

    def home(self, user: str) -> dict[str, Any] | None:
        """The Home tab the app last published for `user`."""
        return self.workspace.home(user)

    def wait_for(self, predicate: Callable[[], T | None], timeout: float = 10.0) -> T:
        """Block until predicate() is truthy; returns its value. Not for the emulator's loop."""
        if self._loop is not None and self._loop.is_running() and _on_loop(self._loop):
            raise RuntimeError("wait_for would block the emulator's own loop; use wait_for_async")
        return self.workspace.wait_for(predicate, timeout)

    # Same signature as wait_for on purpose; the deadline is ours, not the caller's loop's.
    async def wait_for_async(self, predicate: Callable[[], T | None], timeout: float = 10.0) -> T:  # noqa: ASYNC109
        """Await until predicate() is truthy; returns its value (TimeoutError otherwise)."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(self.workspace.timeout_message(timeout))
            await asyncio.sleep(0.02)

    # -- faults ----------------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        times: int = 1,
        *,
        status: int = 429,
        retry_after: int | None = 1,
        delay: float = 0.0,
    ) -> None:
        """The next `times` calls of `method` ("*": any, "response_url") answer `status`."""
        self.faults.fail_next(method, times, status=status, retry_after=retry_after, delay=delay)

    # -- what the driver needs -------------------------------------------------------------

    def issue_response_url(self, channel: str, user: str, message_ts: str | None = None) -> str:
        """A response_url pointing here; message_ts is the message an interaction came from."""
        ref = self.workspace.issue_response_url(channel, user, message_ts)
        return f"{self.base_url}/response/{ref.id}"

    def issue_trigger_id(self, user: str | None = None) -> str:
        """A trigger_id that views.open accepts once (opening the modal in `user`'s client)."""
        return self.workspace.issue_trigger_id(user)

    @property
    def socket_connections(self) -> int:
        """Socket Mode apps connected now."""
        return self.socket.connected

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
        """Send a Socket Mode envelope to the connected app and return its ack (any loop)."""
        return await self._on_own_loop(
            self.socket.deliver(
                envelope_type,
                payload,
                accepts_response_payload=accepts_response_payload,
                ack_timeout=ack_timeout,
                retry_attempt=retry_attempt,
                retry_reason=retry_reason,
            )
        )

    async def disconnect_sockets(
        self, reason: str = "refresh_requested", *, close: bool = False
    ) -> None:
        """Ask connected apps to reconnect (Slack's disconnect message) or drop them (close)."""
        await self._on_own_loop(self.socket.disconnect(reason, close=close))

    async def _on_own_loop(self, coro: Coroutine[Any, Any, T]) -> T:
        loop = self._loop
        if loop is None:
            coro.close()
            raise RuntimeError("the Slack emulator is not running")
        if _on_loop(loop):
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))

    # -- HTTP handlers ---------------------------------------------------------------------

    async def _read_params(self, request: web.Request) -> tuple[dict[str, Any], str | None]:
        params: dict[str, Any] = dict(request.query)
        if request.method == "POST" and request.body_exists:
            if request.content_type == "application/json":
                try:
                    body = await request.json()
                except json.JSONDecodeError as exc:
                    raise SlackApiFailure("invalid_json") from exc
                if not isinstance(body, dict):
                    raise SlackApiFailure("invalid_json")
                params.update(body)
            else:
                form = await request.post()
                params.update({k: v for k, v in form.items() if isinstance(v, str)})
        token: str | None = params.pop("token", None)
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            token = auth.removeprefix("Bearer ").strip()
        for key in JSON_FIELDS:
            if isinstance(params.get(key), str) and params[key]:
                # Left as a string when not JSON: the method answers invalid_<field>_format.
                with contextlib.suppress(json.JSONDecodeError):
                    params[key] = json.loads(params[key])
        return params, token

    def _authorize(self, method: str, token: str | None) -> None:
        if not token:
            raise SlackApiFailure("not_authed")
        wanted, other = (
            (self._app_token, self._bot_token)
            if method == "apps.connections.open"
            else (self._bot_token, self._app_token)
        )
        if hmac.compare_digest(token.encode(), other.encode()):
            raise SlackApiFailure("not_allowed_token_type")
        if not hmac.compare_digest(token.encode(), wanted.encode()):
            raise SlackApiFailure("invalid_auth")

    def _answer(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method == "apps.connections.open":
            ticket = self.socket.issue_ticket()
            app_id = self.workspace.app_id
            url = f"ws://{self.host}:{self.port}/socket?ticket={ticket}&app_id={app_id}"
            return {"ok": True, "url": url}
        handler = METHODS.get(method)
        if handler is None:
            raise SlackApiFailure("unknown_method", req_method=method)
        return handler(self.workspace, params)

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params: dict[str, Any] = {}
        fault = self.faults.take(method)
        if fault is not None and fault.delay:
            await asyncio.sleep(fault.delay)
        if fault is not None and fault.hold is not None:
            await asyncio.to_thread(fault.hold.wait, HOLD_LIMIT_SECONDS)
        status = 200
        headers: dict[str, str] = {}
        try:
            params, token = await self._read_params(request)
            if fault is not None and fault.status is not None:
                status, body = fault.status, fault.body()
                if fault.retry_after is not None:
                    headers["Retry-After"] = str(fault.retry_after)
            else:
                self._authorize(method, token)
                body = self._answer(method, params)
        except SlackApiFailure as failure:
            body = failure.body()
            if failure.error == "unknown_method":
                status = 404
        self.workspace.record_call(ApiCall(method, params, time.time(), status, body))
        return web.json_response(body, status=status, headers=headers)

    async def _response_url(self, request: web.Request) -> web.Response:
        response_id = request.match_info["response_id"]
        params: dict[str, Any] = {}
        fault = self.faults.take("response_url")
        if fault is not None and fault.delay:
            await asyncio.sleep(fault.delay)
        status = 200
        body: dict[str, Any] = {"ok": True}
        try:
            params, _ = await self._read_params(request)
            if fault is not None and fault.status is not None:
                status, body = fault.status, fault.body()
            else:
                ref = self.workspace.use_response_url(response_id)
                post_to_response_url(self.workspace, ref, params)
        except SlackApiFailure as failure:
            status = 404 if failure.error in _URL_GONE else 400
            body = failure.body()
        params["response_id"] = response_id
        self.workspace.record_call(ApiCall("response_url", params, time.time(), status, body))
        return web.json_response(body, status=status)


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


# -- control API (for the standalone emulator and the demo) --------------------------------


def _control_routes(app: web.Application, emu: SlackEmulator) -> None:
    """/_lab/ endpoints: inspect what the bot did, inject faults, act as a Slack user."""

    def need_driver() -> SlackUser:
        if emu.driver is None:
            raise web.HTTPConflict(text="start the emulator with --bot-url (or --socket-mode)")
        return emu.driver

    async def calls(request: web.Request) -> web.Response:
        found = emu.calls(request.query.get("method"))
        return web.json_response([asdict(c) for c in found])

    async def messages(request: web.Request) -> web.Response:
        return web.json_response(emu.messages(request.query.get("channel")))

    async def ephemerals(request: web.Request) -> web.Response:
        return web.json_response(emu.ephemerals(request.query.get("channel")))

    async def faults(request: web.Request) -> web.Response:
        spec = await request.json()
        try:
            emu.fail_next(
                str(spec["method"]),
                int(spec.get("times", 1)),
                status=int(spec.get("status", 429)),
                retry_after=spec.get("retry_after", 1),
                delay=float(spec.get("delay", 0.0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise web.HTTPBadRequest(text=f"bad fault spec: {exc}") from exc
        return web.json_response({"ok": True, "pending": emu.faults.pending()})

    async def command(request: web.Request) -> web.Response:
        spec = await request.json()
        driver = need_driver()
        answer = await driver.slash_command(
            str(spec["command"]),
            str(spec.get("text", "")),
            user_id=str(spec.get("user_id", "U0ONCALL1")),
            channel_id=str(spec.get("channel_id", "C0INCIDENT")),
        )
        return web.json_response({"status": answer.status, "body": answer.body})

    async def click(request: web.Request) -> web.Response:
        spec = await request.json()
        driver = need_driver()
        message = emu.message(str(spec["channel"]), str(spec["ts"]))
        if message is None:
            raise web.HTTPNotFound(text="no such message")
        try:
            answer = await driver.click(
                message,
                action_id=spec.get("action_id"),
                text=spec.get("text"),
                user_id=str(spec.get("user_id", "U0ONCALL1")),
            )
        except (LookupError, ValueError) as exc:
            raise web.HTTPBadRequest(text=str(exc)) from exc
        return web.json_response({"status": answer.status, "body": answer.body})

    async def post(request: web.Request) -> web.Response:
        spec = await request.json()
        driver = need_driver()
        answer = await driver.message_event(
            str(spec["channel"]), str(spec["text"]), user=str(spec.get("user", "U0ONCALL1"))
        )
        return web.json_response({"status": answer.status, "body": answer.body})

    app.router.add_get("/_lab/calls", calls)
    app.router.add_get("/_lab/messages", messages)
    app.router.add_get("/_lab/ephemerals", ephemerals)
    app.router.add_post("/_lab/faults", faults)
    app.router.add_post("/_lab/command", command)
    app.router.add_post("/_lab/click", click)
    app.router.add_post("/_lab/message", post)
