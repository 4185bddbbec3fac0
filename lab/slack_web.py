"""The Slack emulator's web page: the incident channel as a person sees it, on 127.0.0.1.

Served by the emulator's own aiohttp app (`/` and `/_web/…`). The page shows the messages the
bot really posted (Block Kit rendered by lab.slack_html), threads, the visitor's ephemeral
replies and modals; the visitor chooses who they are (`?as=U0ONCALL1`), and every click,
submission or slash command goes to the bot through lab.slack_driver as a real signed request.
Plain HTML, CSS and JavaScript from lab/web/ (nothing from outside); the page long-polls
`/_web/state` for changes.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from aiohttp import web

from lab.slack_html import RenderContext, message_html, view_html
from lab.slack_workspace import SlackApiFailure, SlackWorkspace

STATIC = Path(__file__).with_name("web")
LONG_POLL_SECONDS = 15.0
REQUIRED = "Please complete this required field."
# Who the demo's visitor can be (the demo config's responder and approvers).
DEFAULT_VISITORS = (
    ("U0ONCALL1", "responder"),
    ("U0APPROV1", "approver 1"),
    ("U0APPROV2", "approver 2"),
)
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


class Answer(Protocol):
    """The bot's answer to a request (lab.slack_driver.Answer)."""

    @property
    def status(self) -> int:
        """HTTP status."""
        ...

    @property
    def body(self) -> str:
        """Response body."""
        ...


@runtime_checkable
class PageDriver(Protocol):
    """What the page needs from lab.slack_driver.SlackDriver (named here: no import cycle)."""

    async def click(
        self,
        message: dict[str, Any],
        *,
        action_id: str | None = None,
        user_id: str = ...,
        block_id: str | None = None,
    ) -> Answer:
        """A button click in a message."""
        ...

    async def click_in_view(
        self, view_id: str, *, action_id: str, block_id: str | None = None, user_id: str = ...
    ) -> Answer:
        """A button click in a modal."""
        ...

    async def submit_view(
        self, view_id: str, values: dict[str, Any], *, user_id: str = ...
    ) -> Answer:
        """A modal's submit button."""
        ...

    async def close_view(self, view_id: str, *, user_id: str = ...) -> Answer | None:
        """A modal's close button."""
        ...

    async def slash_command(
        self, command: str, text: str = "", *, user_id: str = ..., channel_id: str = ...
    ) -> Answer:
        """A slash command."""
        ...

    async def message_event(
        self, channel: str, text: str, *, user: str = ..., thread_ts: str | None = None
    ) -> Answer:
        """A message posted by a person."""
        ...


class PageHost(Protocol):
    """What the page needs from the emulator serving it (lab.slack_emulator.SlackEmulator)."""

    workspace: SlackWorkspace

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:PORT"""
        ...

    @property
    def driver(self) -> object:
        """The driver that signs requests to the bot, once a bot is connected."""
        ...

    def messages(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Messages as they are now."""
        ...

    def message(self, channel: str, ts: str) -> dict[str, Any] | None:
        """One message."""
        ...

    def ephemerals(
        self, channel: str | None = None, user: str | None = None
    ) -> list[dict[str, Any]]:
        """Ephemeral messages."""
        ...


class BadRequest(web.HTTPBadRequest):
    """A page request the server refuses, with the reason as JSON."""

    def __init__(self, reason: str) -> None:
        super().__init__(text=json.dumps({"error": reason}), content_type="application/json")


class SlackWebPage:
    """The routes of the page, bound to one emulator."""

    def __init__(self, emulator: PageHost, channel: str = "C0INCIDENT") -> None:
        self.emulator = emulator
        self.channel = channel
        self.visitors: tuple[tuple[str, str], ...] = DEFAULT_VISITORS
        self.closing = False  # set when the emulator stops: long polls answer at once

    @property
    def ws(self) -> SlackWorkspace:
        return self.emulator.workspace

    def url(self, user: str | None = None) -> str:
        """The page's address (acting as `user` when given)."""
        suffix = f"?as={user}" if user else ""
        return f"{self.emulator.base_url}/{suffix}"

    # --- reading ----------------------------------------------------------------------------

    def _visitor(self, value: object) -> str:
        user = str(value or self.visitors[0][0])
        if user not in self.ws.users or self.ws.users[user].is_bot:
            raise BadRequest(f"unknown user {user!r}; choose one of the workspace's people")
        return user

    def _context(self, me: str, channel: str) -> RenderContext:
        names = {uid: u.name for uid, u in self.ws.users.items()}
        return RenderContext(me=me, names=names, bot_user_id=self.ws.bot_user_id, channel=channel)

    def snapshot(self, me: str, channel: str, thread: str | None) -> dict[str, Any]:
        """What the page shows `me`: the channel, one open thread, the top modal."""
        version = self.ws.version
        ctx = self._context(me, channel)
        messages = self.emulator.messages(channel)
        mine = self.emulator.ephemerals(channel, me)
        top = [m for m in messages if m.get("thread_ts") in (None, m["ts"])]
        top += [m for m in mine if not m.get("thread_ts")]
        top.sort(key=lambda m: _order(m["ts"]))
        channel_html = "".join(message_html(m, ctx) for m in top) or (
            '<div class="empty">No messages yet. Incidents appear here when an alert arrives.</div>'
        )
        thread_html = ""
        if thread:
            replies = [m for m in messages if m["ts"] == thread or m.get("thread_ts") == thread]
            replies += [m for m in mine if m.get("thread_ts") == thread]
            replies.sort(key=lambda m: _order(m["ts"]))
            thread_html = "".join(message_html(m, ctx, in_thread=True) for m in replies)
        modal = None
        views = self.ws.open_views(me)
        if views:
            view = views[-1]
            errors = self.ws.view_errors(view["id"])
            ctx.errors = errors
            key = f"{view['id']}:{view['hash']}:{json.dumps(errors, sort_keys=True)}"
            modal = {"key": key, "html": view_html(view, ctx), "depth": len(views)}
        channel_name = self.ws.channel(channel).name
        return {
            "version": version,
            "me": me,
            "channel": channel,
            "channel_name": channel_name,
            "channel_html": channel_html,
            "thread": thread or "",
            "thread_html": thread_html,
            "modal": modal,
            "visitors": [
                {"id": uid, "label": f"{self.ws.user(uid).name} ({role})"}
                for uid, role in self.visitors
            ],
        }

    # --- acting -----------------------------------------------------------------------------

    def _driver(self) -> PageDriver:
        driver = self.emulator.driver
        if not isinstance(driver, PageDriver):
            raise web.HTTPConflict(
                text=json.dumps({"error": "no bot is connected to this emulator yet"}),
                content_type="application/json",
            )
        return driver

    def _message(self, channel: str, ts: str, me: str, ephemeral: bool) -> dict[str, Any]:
        if ephemeral:
            found = next((m for m in self.emulator.ephemerals(channel, me) if m["ts"] == ts), None)
        else:
            found = self.emulator.message(channel, ts)
        if found is None:
            raise BadRequest(f"no message {ts} in {channel} (deleted?)")
        return found

    async def click(self, spec: dict[str, Any]) -> Answer:
        """A button click as a signed block_actions request."""
        me = self._visitor(spec.get("as"))
        driver = self._driver()
        action_id = str(spec.get("action_id", ""))
        block_id = str(spec["block_id"]) if spec.get("block_id") else None
        try:
            if spec.get("view_id"):
                return await driver.click_in_view(
                    str(spec["view_id"]), action_id=action_id, block_id=block_id, user_id=me
                )
            channel = str(spec.get("channel") or self.channel)
            message = self._message(
                channel, str(spec.get("ts", "")), me, bool(spec.get("ephemeral"))
            )
            return await driver.click(message, action_id=action_id, block_id=block_id, user_id=me)
        except LookupError as exc:
            raise BadRequest(str(exc)) from exc

    def _state_values(
        self, view: dict[str, Any], entered: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """view.state.values as Slack builds it from the inputs, and required-field errors."""
        values: dict[str, Any] = {}
        errors: dict[str, str] = {}
        for block in view.get("blocks") or []:
            if not isinstance(block, dict) or block.get("type") != "input":
                continue
            block_id = str(block.get("block_id", ""))
            element = block.get("element") or {}
            action_id = str(element.get("action_id", ""))
            kind = str(element.get("type", ""))
            raw = (entered.get(block_id) or {}).get(action_id)
            options = {str(o.get("value")): o for o in element.get("options") or []}
            state: dict[str, Any] = {"type": kind}
            if kind in ("plain_text_input", "number_input"):
                text = str(raw or "")
                state["value"] = text or None
                empty = not text.strip()
            elif kind in ("static_select", "radio_buttons"):
                chosen = options.get(str(raw)) if raw else None
                state["selected_option"] = chosen
                empty = chosen is None
            elif kind == "checkboxes":
                picked = raw if isinstance(raw, list) else []
                state["selected_options"] = [options[str(v)] for v in picked if str(v) in options]
                empty = not state["selected_options"]
            else:
                continue
            values.setdefault(block_id, {})[action_id] = state
            if empty and not block.get("optional"):
                errors[block_id] = REQUIRED
        return values, errors

    async def submit(self, spec: dict[str, Any]) -> Answer | None:
        """The modal's submit button: Slack's own checks, then a signed view_submission."""
        me = self._visitor(spec.get("as"))
        view_id = str(spec.get("view_id", ""))
        view = next((v for v in self.ws.open_views(me) if v["id"] == view_id), None)
        if view is None:
            raise BadRequest(f"modal {view_id} is not open for {me}")
        entered = spec.get("values") if isinstance(spec.get("values"), dict) else {}
        values, errors = self._state_values(view, entered or {})
        if errors:
            self.ws.set_view_state(view_id, values)
            self.ws.set_view_errors(view_id, errors)
            return None
        return await self._driver().submit_view(view_id, values, user_id=me)

    async def close(self, spec: dict[str, Any]) -> Answer | None:
        """The modal's close button."""
        me = self._visitor(spec.get("as"))
        try:
            return await self._driver().close_view(str(spec.get("view_id", "")), user_id=me)
        except LookupError as exc:
            raise BadRequest(str(exc)) from exc

    async def command(self, spec: dict[str, Any]) -> Answer:
        """A slash command typed in the composer; Slack shows the ack's body to the user."""
        me = self._visitor(spec.get("as"))
        channel = str(spec.get("channel") or self.channel)
        line = str(spec.get("text", "")).strip()
        if not line.startswith("/") or len(line) > 4000:
            raise BadRequest("a slash command starts with / (for example /ad1411 list)")
        command, _, text = line.partition(" ")
        answer = await self._driver().slash_command(
            command, text.strip(), user_id=me, channel_id=channel
        )
        content = _ack_content(answer)
        if content:
            self.ws.post_ephemeral(channel, me, content, source="slash command response")
        return answer

    async def message(self, spec: dict[str, Any]) -> Answer:
        """A message (or thread reply) the visitor posts; the bot gets the event."""
        me = self._visitor(spec.get("as"))
        channel = str(spec.get("channel") or self.channel)
        text = str(spec.get("text", ""))
        if not text.strip() or len(text) > 40_000:
            raise BadRequest("a message needs text (at most 40,000 characters)")
        thread = str(spec["thread_ts"]) if spec.get("thread_ts") else None
        return await self._driver().message_event(channel, text, user=me, thread_ts=thread)

    # --- HTTP -------------------------------------------------------------------------------

    async def _page(self, request: web.Request) -> web.Response:
        return _static("index.html", "text/html")

    async def _script(self, request: web.Request) -> web.Response:
        return _static("slack.js", "text/javascript")

    async def _style(self, request: web.Request) -> web.Response:
        return _static("slack.css", "text/css")

    async def _state(self, request: web.Request) -> web.Response:
        me = self._visitor(request.query.get("as"))
        channel = request.query.get("channel") or self.channel
        thread = request.query.get("thread") or None
        try:
            since = int(request.query.get("since", "-1"))
        except ValueError:
            since = -1
        deadline = time.monotonic() + LONG_POLL_SECONDS
        # The workspace changes from other threads too: polling a counter is the cheap way.
        while self.ws.version == since and time.monotonic() < deadline and not self.closing:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        try:
            return web.json_response(self.snapshot(me, channel, thread), headers=_NO_STORE)
        except SlackApiFailure as exc:
            raise BadRequest(f"channel {channel!r}: {exc.error}") from exc

    def _acting(self, action: Any) -> Any:
        async def handle(request: web.Request) -> web.Response:
            _same_origin(request)
            try:
                spec = await request.json()
            except json.JSONDecodeError as exc:
                raise BadRequest("expected a JSON body") from exc
            if not isinstance(spec, dict):
                raise BadRequest("expected a JSON object")
            answer = await action(spec)
            if answer is None:
                return web.json_response({"status": 200, "body": ""})
            return web.json_response({"status": answer.status, "body": answer.body[:4000]})

        return handle

    def add_routes(self, app: web.Application) -> None:
        """Register the page and its endpoints on the emulator's app."""
        app.router.add_get("/", self._page)
        app.router.add_get("/_web/slack.js", self._script)
        app.router.add_get("/_web/slack.css", self._style)
        app.router.add_get("/_web/state", self._state)
        for name, action in (
            ("click", self.click),
            ("submit", self.submit),
            ("close", self.close),
            ("command", self.command),
            ("message", self.message),
        ):
            app.router.add_post(f"/_web/{name}", self._acting(action))


_NO_STORE = {"Cache-Control": "no-store"}


def _order(ts: str) -> tuple[int, ...]:
    return tuple(int(part) for part in ts.split(".") if part.isdigit())


def _static(name: str, content_type: str) -> web.Response:
    headers = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", **_NO_STORE}
    body = (STATIC / name).read_text(encoding="utf-8")
    return web.Response(text=body, content_type=content_type, headers=headers)


def _same_origin(request: web.Request) -> None:
    """Only the page itself may act: JSON bodies (a preflight elsewhere) from its own origin."""
    if request.content_type != "application/json":
        raise BadRequest("expected Content-Type: application/json")
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"{request.scheme}://{request.host}":
        raise web.HTTPForbidden(text="cross-origin requests are refused")


def _ack_content(answer: Answer) -> dict[str, Any] | None:
    """What Slack shows for a slash command's ack body: its text/blocks, or the plain text."""
    if answer.status != 200 or not answer.body.strip():
        return None
    try:
        body = json.loads(answer.body)
    except json.JSONDecodeError:
        return {"text": answer.body}
    if isinstance(body, dict) and (body.get("text") or body.get("blocks")):
        return {k: body[k] for k in ("text", "blocks") if k in body}
    return None
