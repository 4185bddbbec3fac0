"""Plays Slack's side towards the bot: signed slash commands, button clicks and events."""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import aiohttp

if TYPE_CHECKING:
    from lab.slack_emulator import SlackEmulator

STALE_AFTER = 5 * 60  # Slack's replay window; older timestamps must be refused
LAB_VERIFICATION_TOKEN = "lab-verification-token"  # Slack's deprecated per-app token field
USER_AGENT = "Slackbot 1.0 (+https://api.slack.com/robots)"


def slack_signature(signing_secret: str, timestamp: str, body: bytes) -> str:
    """Slack's v0 request signature: HMAC-SHA256 of "v0:{timestamp}:{body}"."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()


class Forgery(enum.Enum):
    """Ways to send a request Slack would never send, for testing that the bot refuses it."""

    NONE = "none"
    BAD_SIGNATURE = "bad_signature"  # signed with another secret
    STALE_TIMESTAMP = "stale_timestamp"  # correctly signed, but more than 5 minutes old
    NO_SIGNATURE = "no_signature"  # signature headers left out


@dataclass(frozen=True)
class SentRequest:
    """One delivery to the bot, kept so it can be replayed."""

    kind: str  # "slash_commands", "interactive", "events_api" or "url_verification"
    payload: dict[str, Any]  # what Socket Mode would carry as the envelope's payload
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BotResponse:
    """The bot's answer: HTTP status and body, or in Socket Mode the ack (status 200)."""

    status: int
    body: str
    request: SentRequest
    headers: dict[str, str] = field(default_factory=dict)
    ack: dict[str, Any] | None = None

    def json(self) -> Any:
        """The body parsed as JSON (None when empty)."""
        return json.loads(self.body) if self.body.strip() else None


class SlackDriver:
    """Sends the bot what Slack sends, over HTTP (signed) or through the emulator's Socket Mode."""

    def __init__(
        self,
        emulator: SlackEmulator,
        *,
        signing_secret: str | None = None,
        bot_url: str | None = None,
        socket_mode: bool = False,
        timeout: float = 10.0,
        verification_token: str | None = None,
    ) -> None:
        if not socket_mode and (not bot_url or not signing_secret):
            raise ValueError("HTTP mode needs bot_url (…/slack/events) and the signing_secret")
        self.emulator = emulator
        self.bot_url = bot_url
        self.socket_mode = socket_mode
        self.timeout = timeout
        self._signing_secret = signing_secret or ""
        self._verification_token = verification_token or LAB_VERIFICATION_TOKEN

    def __repr__(self) -> str:
        mode = "socket" if self.socket_mode else self.bot_url
        return f"SlackDriver({mode})"

    # -- what Slack sends ------------------------------------------------------------------

    def _user(self, user_id: str) -> dict[str, Any]:
        ws = self.emulator.workspace
        user = ws.user(user_id)
        return {"id": user.id, "username": user.name, "name": user.name, "team_id": ws.team_id}

    def slash_command_fields(
        self, command: str, text: str = "", *, user_id: str, channel_id: str
    ) -> dict[str, str]:
        """The form fields of a slash command, with a fresh response_url and trigger_id."""
        ws = self.emulator.workspace
        user, channel = ws.user(user_id), ws.channel(channel_id)
        return {
            "token": self._verification_token,
            "team_id": ws.team_id,
            "team_domain": ws.domain,
            "channel_id": channel.id,
            "channel_name": channel.name,
            "user_id": user.id,
            "user_name": user.name,
            "command": command,
            "text": text,
            "api_app_id": ws.app_id,
            "is_enterprise_install": "false",
            "response_url": self.emulator.issue_response_url(channel.id, user.id),
            "trigger_id": self.emulator.issue_trigger_id(user.id),
        }

    @staticmethod
    def buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
        """Every button in a message's blocks, each with the block_id of its block."""
        found: list[dict[str, Any]] = []
        for block in message.get("blocks") or []:
            candidates = list(block.get("elements") or []) if block.get("type") == "actions" else []
            if isinstance(block.get("accessory"), dict):
                candidates.append(block["accessory"])
            found += [
                {**e, "block_id": block.get("block_id")}
                for e in candidates
                if isinstance(e, dict) and e.get("type") == "button"
            ]
        return found

    @classmethod
    def find_button(
        cls,
        message: dict[str, Any],
        *,
        action_id: str | None = None,
        text: str | None = None,
        block_id: str | None = None,
    ) -> dict[str, Any]:
        """The button with this action_id or visible text (in block_id's block when given);
        LookupError lists what is there. action_ids are unique per block only, as in Slack."""
        if (action_id is None) == (text is None):
            raise ValueError("give exactly one of action_id or text")
        buttons = cls.buttons(message)
        for button in buttons:
            if block_id is not None and button.get("block_id") != block_id:
                continue
            label = str(button.get("text", {}).get("text", ""))
            if (action_id is not None and button.get("action_id") == action_id) or (
                text is not None and label.strip().lower() == text.strip().lower()
            ):
                return button
        shown = ", ".join(
            f"{b.get('action_id')} ({b.get('text', {}).get('text')!r})" for b in buttons
        )
        wanted = f"action_id={action_id!r}" if action_id is not None else f"text={text!r}"
        raise LookupError(
            f"no button with {wanted} in message {message.get('ts')}; has: {shown or 'none'}"
        )

    def block_actions_payload(
        self,
        message: dict[str, Any],
        button: dict[str, Any],
        *,
        user_id: str,
        value: str | None = None,
    ) -> dict[str, Any]:
        """The block_actions payload Slack sends when user_id clicks button in message."""
        ws = self.emulator.workspace
        channel_id = message.get("channel")
        if not isinstance(channel_id, str):
            raise ValueError(
                "click a message taken from the emulator (messages()), which has its channel"
            )
        channel = ws.channel(channel_id)
        user = self._user(user_id)
        ephemeral = bool(message.get("is_ephemeral"))
        action: dict[str, Any] = {
            "action_id": button.get("action_id"),
            "block_id": button.get("block_id"),
            "text": button.get("text"),
            "type": "button",
            "action_ts": ws.next_ts(),
        }
        button_value = value if value is not None else button.get("value")
        if button_value is not None:
            action["value"] = button_value
        if "style" in button:
            action["style"] = button["style"]
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": user,
            "api_app_id": ws.app_id,
            "token": self._verification_token,
            "container": {
                "type": "message",
                "message_ts": message["ts"],
                "channel_id": channel.id,
                "is_ephemeral": ephemeral,
            },
            "trigger_id": self.emulator.issue_trigger_id(user_id),
            "team": {"id": ws.team_id, "domain": ws.domain},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": channel.id, "name": channel.name},
            "state": {"values": {}},
            "response_url": self.emulator.issue_response_url(
                channel.id, user_id, None if ephemeral else str(message["ts"])
            ),
            "actions": [action],
        }
        if not ephemeral:
            payload["message"] = {
                k: v for k, v in message.items() if k not in ("channel", "is_ephemeral", "source")
            }
        return payload

    def event_envelope(
        self, event: dict[str, Any], *, event_id: str | None = None
    ) -> dict[str, Any]:
        """The Events API event_callback envelope around one event."""
        ws = self.emulator.workspace
        return {
            "token": self._verification_token,
            "team_id": ws.team_id,
            "context_team_id": ws.team_id,
            "api_app_id": ws.app_id,
            "event": event,
            "type": "event_callback",
            "event_id": event_id or "Ev" + secrets.token_hex(5).upper(),
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": ws.team_id,
                    "user_id": ws.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": "4-" + secrets.token_urlsafe(24),
        }

    # -- sending ---------------------------------------------------------------------------

    async def slash_command(
        self,
        command: str,
        text: str = "",
        *,
        user_id: str = "U0ONCALL1",
        channel_id: str = "C0INCIDENT",
        forgery: Forgery = Forgery.NONE,
    ) -> BotResponse:
        """user_id types `command text` in channel_id."""
        fields = self.slash_command_fields(command, text, user_id=user_id, channel_id=channel_id)
        sent = SentRequest(
            "slash_commands",
            fields,
            urlencode(fields).encode(),
            "application/x-www-form-urlencoded",
        )
        return await self.send(sent, forgery=forgery)

    async def click(
        self,
        message: dict[str, Any],
        *,
        action_id: str | None = None,
        text: str | None = None,
        user_id: str = "U0ONCALL1",
        value: str | None = None,
        forgery: Forgery = Forgery.NONE,
        block_id: str | None = None,
    ) -> BotResponse:
        """user_id clicks a button (found by action_id or text) in a recorded message.

        `value` overrides the button's value, to test that the bot refuses tampered values.
        """
        button = self.find_button(message, action_id=action_id, text=text, block_id=block_id)
        payload = self.block_actions_payload(message, button, user_id=user_id, value=value)
        return await self.send(self.interactive_request(payload), forgery=forgery)

    # -- modals ----------------------------------------------------------------------------

    def _view_payload(self, kind: str, view: dict[str, Any], user_id: str) -> dict[str, Any]:
        ws = self.emulator.workspace
        return {
            "type": kind,
            "team": {"id": ws.team_id, "domain": ws.domain},
            "user": self._user(user_id),
            "api_app_id": ws.app_id,
            "token": self._verification_token,
            "trigger_id": self.emulator.issue_trigger_id(user_id),
            "view": view,
            "enterprise": None,
            "is_enterprise_install": False,
        }

    def _open_view(self, view_id: str, user_id: str) -> dict[str, Any]:
        for view in self.emulator.workspace.open_views(user_id):
            if view["id"] == view_id:
                return view
        raise LookupError(f"no modal {view_id} is open for {user_id}")

    async def submit_view(
        self, view_id: str, values: dict[str, Any], *, user_id: str = "U0ONCALL1"
    ) -> BotResponse:
        """user_id presses the submit button of an open modal with `values` (state.values);
        then Slack's side does what the ack's response_action says."""
        view = self._open_view(view_id, user_id)
        self.emulator.workspace.set_view_state(view_id, values)
        view["state"] = {"values": values}
        payload = {**self._view_payload("view_submission", view, user_id), "response_urls": []}
        answer = await self.send(self.interactive_request(payload))
        self.apply_view_answer(view_id, user_id, answer)
        return answer

    def apply_view_answer(self, view_id: str, user_id: str, answer: BotResponse) -> None:
        """What Slack does with the app's answer to a view_submission."""
        ws = self.emulator.workspace
        if answer.status != 200:
            # Slack keeps the modal open and says it could not reach the app.
            ws.set_view_errors(view_id, {"": "We had some trouble connecting. Try again?"})
            return
        try:
            body = answer.json() or {}
        except json.JSONDecodeError:
            body = {}
        action = body.get("response_action") if isinstance(body, dict) else None
        if action == "errors" and isinstance(body.get("errors"), dict):
            ws.set_view_errors(view_id, {str(k): str(v) for k, v in body["errors"].items()})
        elif action == "update" and isinstance(body.get("view"), dict):
            ws.update_view(view_id, None, body["view"], None)
        elif action == "push" and isinstance(body.get("view"), dict):
            ws.open_view(body["view"], user_id, push=True)
        elif action == "clear":
            ws.close_view(view_id, clear=True)
        else:
            ws.close_view(view_id)

    async def close_view(self, view_id: str, *, user_id: str = "U0ONCALL1") -> BotResponse | None:
        """user_id cancels a modal; the app hears of it only when it asked (notify_on_close)."""
        view = self._open_view(view_id, user_id)
        self.emulator.workspace.close_view(view_id)
        if not view.get("notify_on_close"):
            return None
        payload = {**self._view_payload("view_closed", view, user_id), "is_cleared": False}
        return await self.send(self.interactive_request(payload))

    async def click_in_view(
        self,
        view_id: str,
        *,
        action_id: str,
        block_id: str | None = None,
        user_id: str = "U0ONCALL1",
    ) -> BotResponse:
        """user_id clicks a button inside an open modal (block_actions from a view)."""
        view = self._open_view(view_id, user_id)
        button = self.find_button(
            {"blocks": view.get("blocks"), "ts": view_id}, action_id=action_id, block_id=block_id
        )
        ws = self.emulator.workspace
        action: dict[str, Any] = {
            "action_id": button.get("action_id"),
            "block_id": button.get("block_id"),
            "text": button.get("text"),
            "type": "button",
            "action_ts": ws.next_ts(),
        }
        if button.get("value") is not None:
            action["value"] = button["value"]
        payload = {
            **self._view_payload("block_actions", view, user_id),
            "container": {"type": "view", "view_id": view_id},
            "state": view.get("state", {"values": {}}),
            "actions": [action],
        }
        return await self.send(self.interactive_request(payload))

    @staticmethod
    def interactive_request(payload: dict[str, Any]) -> SentRequest:
        """An interactivity request: the payload as JSON in a form field named "payload"."""
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return SentRequest("interactive", payload, body, "application/x-www-form-urlencoded")

    async def open_home(self, user_id: str = "U0ONCALL1") -> BotResponse:
        """user_id opens the app's Home tab (the app_home_opened event)."""
        ws = self.emulator.workspace
        event = {
            "type": "app_home_opened",
            "user": ws.user(user_id).id,
            "channel": "D" + user_id[1:],
            "tab": "home",
            "event_ts": ws.next_ts(),
        }
        return await self.event(event)

    async def click_in_home(
        self,
        view: dict[str, Any],
        *,
        text: str,
        user_id: str = "U0ONCALL1",
        index: int = 0,
    ) -> BotResponse:
        """user_id clicks the index-th button labelled `text` in their Home tab `view`."""
        found = [
            b
            for b in self.buttons(view)
            if str(b.get("text", {}).get("text", "")).strip().lower() == text.strip().lower()
        ]
        if len(found) <= index:
            raise LookupError(f"no button {text!r} (#{index}) in view {view.get('id')}")
        button = found[index]
        ws = self.emulator.workspace
        payload = {
            "type": "block_actions",
            "user": self._user(user_id),
            "api_app_id": ws.app_id,
            "token": self._verification_token,
            "container": {"type": "view", "view_id": view.get("id")},
            "trigger_id": self.emulator.issue_trigger_id(user_id),
            "team": {"id": ws.team_id, "domain": ws.domain},
            "enterprise": None,
            "is_enterprise_install": False,
            "view": view,
            "actions": [
                {
                    "action_id": button.get("action_id"),
                    "block_id": button.get("block_id"),
                    "text": button.get("text"),
                    "value": button.get("value"),
                    "type": "button",
                    "action_ts": ws.next_ts(),
                }
            ],
        }
        return await self.send(self.interactive_request(payload))

    async def event(
        self,
        event: dict[str, Any],
        *,
        event_id: str | None = None,
        forgery: Forgery = Forgery.NONE,
    ) -> BotResponse:
        """Deliver one Events API event (wrapped in event_callback)."""
        envelope = self.event_envelope(event, event_id=event_id)
        sent = SentRequest(
            "events_api", envelope, json.dumps(envelope).encode(), "application/json"
        )
        return await self.send(sent, forgery=forgery)

    async def message_event(
        self,
        channel: str,
        text: str,
        *,
        user: str = "U0ONCALL1",
        bot_id: str | None = None,
        thread_ts: str | None = None,
        blocks: list[dict[str, Any]] | None = None,
        files: list[dict[str, Any]] | None = None,
    ) -> BotResponse:
        """Someone (or an integration, with bot_id) posts in channel; the bot gets the event.

        `files` are file objects from `workspace.add_file`: the message shares them, as an
        upload (or a text snippet) in Slack does.
        """
        content: dict[str, Any] = {"text": text}
        if thread_ts:
            content["thread_ts"] = thread_ts
        if blocks is not None:
            content["blocks"] = blocks
        if files:
            content.update(files=files, upload=True, subtype="file_share")
        if bot_id:
            content.update(subtype="bot_message", bot_id=bot_id)
        message = self.emulator.workspace.post_message(channel, content, user=user)
        event = {
            **{k: v for k, v in message.items() if k != "channel"},
            "channel": channel,
            "channel_type": "channel",
            "event_ts": message["ts"],
            "team": self.emulator.workspace.team_id,
        }
        return await self.event(event)

    async def url_verification(self, challenge: str | None = None) -> BotResponse:
        """The handshake Slack sends when the Request URL is configured."""
        if self.socket_mode:
            raise ValueError("url_verification only exists over HTTP")
        body = {
            "token": self._verification_token,
            "challenge": challenge or secrets.token_urlsafe(32),
            "type": "url_verification",
        }
        sent = SentRequest("url_verification", body, json.dumps(body).encode(), "application/json")
        return await self.send(sent)

    async def replay(
        self,
        sent: SentRequest,
        *,
        retry_num: int = 1,
        retry_reason: str = "http_timeout",
        resign: bool = True,
        same_second: bool = False,
    ) -> BotResponse:
        """Send a request again: as a Slack retry (resign=True; same_second: signed with the
        first delivery's timestamp, so with the same signature, as a retry within the second
        is) or byte for byte as an attacker (resign=False)."""
        if self.socket_mode:
            return await self._deliver(sent, retry_attempt=retry_num, retry_reason=retry_reason)
        if not resign:
            return await self._post(sent.body, dict(sent.headers), sent)
        extra = {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": retry_reason}
        if same_second:
            return await self._post(sent.body, {**sent.headers, **extra}, sent)
        return await self.send(sent, extra_headers=extra)

    async def send(
        self,
        sent: SentRequest,
        *,
        forgery: Forgery = Forgery.NONE,
        extra_headers: dict[str, str] | None = None,
    ) -> BotResponse:
        """Deliver a request the way the driver is set up (signed HTTP or Socket Mode)."""
        if self.socket_mode:
            if forgery is not Forgery.NONE:
                raise ValueError(
                    "Socket Mode messages are not signed; forgery only applies to HTTP"
                )
            return await self._deliver(sent)
        headers = {"Content-Type": sent.content_type, "User-Agent": USER_AGENT}
        headers.update(self.signature_headers(sent.body, forgery))
        headers.update(extra_headers or {})
        signed = SentRequest(sent.kind, sent.payload, sent.body, sent.content_type, headers)
        return await self._post(sent.body, headers, signed)

    def signature_headers(self, body: bytes, forgery: Forgery = Forgery.NONE) -> dict[str, str]:
        """X-Slack-Request-Timestamp and X-Slack-Signature for body, as Slack or a forger signs."""
        if forgery is Forgery.NO_SIGNATURE:
            return {}
        now = int(time.time())
        timestamp = str(now - STALE_AFTER - 60 if forgery is Forgery.STALE_TIMESTAMP else now)
        secret = self._signing_secret
        if forgery is Forgery.BAD_SIGNATURE:
            secret = secrets.token_hex(16)
        return {
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": slack_signature(secret, timestamp, body),
        }

    async def _post(self, body: bytes, headers: dict[str, str], sent: SentRequest) -> BotResponse:
        assert self.bot_url is not None
        client_timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with (
            aiohttp.ClientSession(timeout=client_timeout) as session,
            session.post(self.bot_url, data=body, headers=headers) as resp,
        ):
            text = await resp.text()
            return BotResponse(resp.status, text, sent, dict(resp.headers))

    async def _deliver(
        self, sent: SentRequest, *, retry_attempt: int = 0, retry_reason: str = ""
    ) -> BotResponse:
        if sent.kind == "url_verification":
            raise ValueError("url_verification only exists over HTTP")
        # Slack lets the ack carry a response for commands and view submissions, not for clicks.
        accepts = sent.kind == "slash_commands" or (
            sent.kind == "interactive" and sent.payload.get("type") != "block_actions"
        )
        ack = await self.emulator.deliver(
            sent.kind,
            sent.payload,
            accepts_response_payload=accepts,
            ack_timeout=self.timeout,
            retry_attempt=retry_attempt,
            retry_reason=retry_reason,
        )
        payload = ack.get("payload")
        body = json.dumps(payload) if payload is not None else ""
        return BotResponse(200, body, sent, {}, ack)
