"""What the emulated Slack workspace holds: people, channels, groups, messages and every call."""

from __future__ import annotations

import copy
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,20}$")
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,20}$")
RESPONSE_URL_MAX_USES = 5  # Slack: a response_url works five times within 30 minutes
RESPONSE_URL_TTL = 30 * 60.0


class SlackApiFailure(Exception):
    """A Web API answer with ok=false; `error` is Slack's error code."""

    def __init__(self, error: str, **extra: Any) -> None:
        self.error = error
        self.extra = extra
        super().__init__(error)

    def body(self) -> dict[str, Any]:
        """The JSON body Slack sends for this failure."""
        return {"ok": False, "error": self.error, **self.extra}


@dataclass(frozen=True)
class SlackUser:
    """A member of the workspace."""

    id: str
    name: str
    real_name: str = ""
    is_bot: bool = False
    tz: str = "Etc/UTC"

    def to_api(self, team_id: str) -> dict[str, Any]:
        """The user object as users.info returns it."""
        real = self.real_name or self.name
        return {
            "id": self.id,
            "team_id": team_id,
            "name": self.name,
            "real_name": real,
            "deleted": False,
            "is_bot": self.is_bot,
            "is_admin": False,
            "tz": self.tz,
            "profile": {"real_name": real, "display_name": self.name, "team": team_id},
        }


@dataclass(frozen=True)
class SlackChannel:
    """A conversation the bot can post to."""

    id: str
    name: str
    is_private: bool = False
    is_archived: bool = False

    def to_api(self) -> dict[str, Any]:
        """The channel object as conversations.info returns it."""
        return {
            "id": self.id,
            "name": self.name,
            "is_channel": not self.is_private,
            "is_group": self.is_private,
            "is_im": self.id.startswith("D"),
            "is_private": self.is_private,
            "is_archived": self.is_archived,
            "is_member": True,
            "created": 1_700_000_000,
        }


@dataclass(frozen=True)
class ApiCall:
    """One request the emulator answered."""

    method: str
    params: dict[str, Any]
    at: float
    status: int
    response: dict[str, Any]

    @property
    def ok(self) -> bool:
        """True when Slack would have answered ok=true."""
        return self.status == 200 and bool(self.response.get("ok"))


@dataclass
class ResponseUrl:
    """A response_url handed to the bot with a slash command or an interaction."""

    id: str
    channel: str
    user: str
    message_ts: str | None
    issued_at: float
    uses: int = 0


@dataclass
class _Clock:
    """Slack-like message timestamps: unique and increasing ("1732500000.000100")."""

    last: int = 0

    def next(self) -> str:
        micros = max(int(time.time() * 1_000_000), self.last + 1)
        self.last = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def _ts_order(ts: str) -> tuple[int, ...]:
    # Integer parts, not float: a double cannot hold ten digits plus six exactly.
    return tuple(int(part) for part in ts.split(".") if part.isdigit())


DEFAULT_USERS = (
    SlackUser("U0ONCALL1", "alice", "Alice Oncall"),
    SlackUser("U0ONCALL2", "bob", "Bob Oncall"),
    SlackUser("U0APPROV1", "carol", "Carol Approver"),
    SlackUser("U0APPROV2", "dave", "Dave Approver"),
    SlackUser("U0VISITOR", "eve", "Eve Visitor"),
)
DEFAULT_CHANNELS = (
    SlackChannel("C0INCIDENT", "ad-incidents"),
    SlackChannel("C0ALERTS", "ad-alerts"),
)
DEFAULT_USERGROUPS = {
    "S0RESPOND": ("U0ONCALL1", "U0ONCALL2"),
    "S0APPROVE": ("U0APPROV1", "U0APPROV2"),
}


@dataclass(eq=False)
class SlackWorkspace:
    """The workspace's directory and everything posted in it; safe to use from any thread."""

    team_id: str = "T0LAB0001"
    team_name: str = "AD Lab"
    domain: str = "adlab"
    bot_user_id: str = "U0BOT0001"
    bot_id: str = "B0BOT0001"
    app_id: str = "A0APP0001"
    bot_name: str = "ad1411"
    strict: bool = False  # True: unknown channel/user IDs fail as in a real workspace
    users: dict[str, SlackUser] = field(default_factory=dict)
    channels: dict[str, SlackChannel] = field(default_factory=dict)
    usergroups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False)
    _changed: threading.Condition = field(init=False, repr=False)
    _clock: _Clock = field(default_factory=_Clock, init=False, repr=False)
    _calls: list[ApiCall] = field(default_factory=list, init=False, repr=False)
    _messages: dict[tuple[str, str], dict[str, Any]] = field(
        default_factory=dict, init=False, repr=False
    )
    _ephemerals: list[dict[str, Any]] = field(default_factory=list, init=False, repr=False)
    _views: dict[str, dict[str, Any]] = field(default_factory=dict, init=False, repr=False)
    _homes: dict[str, dict[str, Any]] = field(default_factory=dict, init=False, repr=False)
    _response_urls: dict[str, ResponseUrl] = field(default_factory=dict, init=False, repr=False)
    _triggers: dict[str, tuple[float, str | None]] = field(
        default_factory=dict, init=False, repr=False
    )
    _view_stacks: dict[str, list[str]] = field(default_factory=dict, init=False, repr=False)
    _view_errors: dict[str, dict[str, str]] = field(default_factory=dict, init=False, repr=False)
    version: int = field(default=0, init=False)  # counts changes, for pages that long-poll
    _files: dict[str, tuple[dict[str, Any], str]] = field(
        default_factory=dict, init=False, repr=False
    )
    trigger_ttl: float = 10.0  # Slack allows 3 s; longer here so slow CI machines do not flake

    def __post_init__(self) -> None:
        self._changed = threading.Condition(self._lock)
        if not self.users and not self.channels and not self.usergroups:
            self.users = {u.id: u for u in DEFAULT_USERS}
            self.channels = {c.id: c for c in DEFAULT_CHANNELS}
            self.usergroups = dict(DEFAULT_USERGROUPS)
        self.users.setdefault(
            self.bot_user_id, SlackUser(self.bot_user_id, self.bot_name, self.bot_name, is_bot=True)
        )

    # -- directory -------------------------------------------------------------------------

    def add_user(self, user: SlackUser) -> None:
        """Add or replace a member."""
        with self._lock:
            self.users[user.id] = user

    def add_channel(self, channel: SlackChannel) -> None:
        """Add or replace a channel."""
        with self._lock:
            self.channels[channel.id] = channel

    def set_usergroup(self, group_id: str, members: Iterable[str]) -> None:
        """Set a user group's members (what usergroups.users.list answers)."""
        with self._lock:
            self.usergroups[group_id] = tuple(members)

    def user(self, user_id: object) -> SlackUser:
        """A member by ID; unknown but well-formed IDs exist unless the workspace is strict."""
        with self._lock:
            if not isinstance(user_id, str) or not user_id:
                raise SlackApiFailure("user_not_found")
            found = self.users.get(user_id)
            if found is None:
                if self.strict or not _USER_ID.match(user_id):
                    raise SlackApiFailure("user_not_found")
                found = SlackUser(user_id, user_id.lower())
                self.users[user_id] = found
            return found

    def channel(self, channel_id: object) -> SlackChannel:
        """A channel by ID; unknown but well-formed IDs exist unless the workspace is strict."""
        with self._lock:
            if not isinstance(channel_id, str) or not channel_id:
                raise SlackApiFailure("channel_not_found")
            found = self.channels.get(channel_id)
            if found is None:
                if self.strict or not _CHANNEL_ID.match(channel_id):
                    raise SlackApiFailure("channel_not_found")
                found = SlackChannel(channel_id, channel_id.lower())
                self.channels[channel_id] = found
            return found

    def usergroup_members(self, group_id: object) -> list[str]:
        """Members of a user group."""
        with self._lock:
            if not isinstance(group_id, str) or group_id not in self.usergroups:
                raise SlackApiFailure("no_such_subteam")
            return list(self.usergroups[group_id])

    # -- waiting ---------------------------------------------------------------------------

    def _notify(self) -> None:
        self.version += 1
        self._changed.notify_all()

    def wait_for(self, predicate: Callable[[], T | None], timeout: float) -> T:
        """Block until predicate() is truthy and return its value; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                value = predicate()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(self.timeout_message(timeout))
                self._changed.wait(min(left, 0.5))

    def timeout_message(self, timeout: float) -> str:
        """What a wait_for timeout reports: the last calls the emulator answered."""
        recent = ", ".join(f"{c.method}({c.status})" for c in self._calls[-8:]) or "none"
        return f"condition not met within {timeout:g} s; last Slack calls: {recent}"

    # -- calls -----------------------------------------------------------------------------

    def record_call(self, call: ApiCall) -> None:
        """Append a call to the log."""
        with self._lock:
            self._calls.append(call)
            self._notify()

    def calls(self, method: str | None = None) -> list[ApiCall]:
        """Every recorded call, or those of one method, oldest first."""
        with self._lock:
            return [c for c in self._calls if method is None or c.method == method]

    # -- messages --------------------------------------------------------------------------

    def next_ts(self) -> str:
        """A fresh message timestamp."""
        with self._lock:
            return self._clock.next()

    def post_message(self, channel: str, content: dict[str, Any], *, user: str) -> dict[str, Any]:
        """Record a new message (bot's when user is the bot user) and return it."""
        with self._lock:
            ts = self._clock.next()
            message: dict[str, Any] = {"type": "message", "user": user, "ts": ts, **content}
            if user == self.bot_user_id:
                message.update(bot_id=self.bot_id, app_id=self.app_id, team=self.team_id)
            thread_ts = content.get("thread_ts")
            if isinstance(thread_ts, str) and thread_ts:
                parent = self._messages.get((channel, thread_ts))
                if parent is not None:
                    parent["thread_ts"] = thread_ts
                    parent["reply_count"] = parent.get("reply_count", 0) + 1
                    parent["latest_reply"] = ts
                    parent["reply_users"] = sorted({*parent.get("reply_users", []), user})
            self._messages[(channel, ts)] = message
            self._notify()
            return self._public(channel, message)

    def update_message(
        self, channel: str, ts: object, content: dict[str, Any], *, replace: bool = False
    ) -> dict[str, Any]:
        """Change a message (chat.update keeps omitted fields; replace=True drops them, as
        a response_url's replace_original does); message_not_found when it is gone."""
        with self._lock:
            message = self._messages.get((channel, ts)) if isinstance(ts, str) else None
            if message is None:
                raise SlackApiFailure("message_not_found")
            if message.get("user") != self.bot_user_id:
                raise SlackApiFailure("cant_update_message")
            for key in ("text", "blocks", "attachments", "metadata"):
                if key in content:
                    message[key] = content[key]
                elif replace:
                    message.pop(key, None)
            if not replace:
                message["edited"] = {"user": self.bot_user_id, "ts": self._clock.next()}
            self._notify()
            return self._public(channel, message)

    def delete_message(self, channel: str, ts: str) -> None:
        """Remove a message (delete_original)."""
        with self._lock:
            if self._messages.pop((channel, ts), None) is None:
                raise SlackApiFailure("message_not_found")
            self._notify()

    def add_reaction(self, channel: str, ts: object, name: object, user: str) -> None:
        """React to a message as user."""
        with self._lock:
            if not isinstance(name, str) or not name:
                raise SlackApiFailure("invalid_name")
            message = self._messages.get((channel, ts)) if isinstance(ts, str) else None
            if message is None:
                raise SlackApiFailure("message_not_found")
            reactions: list[dict[str, Any]] = message.setdefault("reactions", [])
            for reaction in reactions:
                if reaction["name"] == name:
                    if user in reaction["users"]:
                        raise SlackApiFailure("already_reacted")
                    reaction["users"].append(user)
                    reaction["count"] += 1
                    break
            else:
                reactions.append({"name": name, "users": [user], "count": 1})
            self._notify()

    def message(self, channel: str, ts: str) -> dict[str, Any] | None:
        """The current state of one message (with its "channel"), or None."""
        with self._lock:
            found = self._messages.get((channel, ts))
            return None if found is None else self._public(channel, found)

    def messages(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Current state of the messages in a channel (or all), oldest first, replies included."""
        with self._lock:
            keys = sorted(
                (k for k in self._messages if channel is None or k[0] == channel),
                key=lambda k: _ts_order(k[1]),
            )
            return [self._public(k[0], self._messages[k]) for k in keys]

    def thread(self, channel: str, ts: object) -> list[dict[str, Any]]:
        """A parent message and its replies (conversations.replies)."""
        with self._lock:
            if not isinstance(ts, str) or (channel, ts) not in self._messages:
                raise SlackApiFailure("thread_not_found")
            return [m for m in self.messages(channel) if m["ts"] == ts or m.get("thread_ts") == ts]

    @staticmethod
    def _public(channel: str, message: dict[str, Any]) -> dict[str, Any]:
        return {**copy.deepcopy(message), "channel": channel}

    # -- ephemeral messages ----------------------------------------------------------------

    def post_ephemeral(
        self, channel: str, user: str, content: dict[str, Any], *, source: str
    ) -> dict[str, Any]:
        """Record a message only `user` sees."""
        with self._lock:
            message = {
                "type": "message",
                "ts": self._clock.next(),
                "channel": channel,
                "user": user,
                "is_ephemeral": True,
                "source": source,
                **content,
            }
            self._ephemerals.append(message)
            self._notify()
            return copy.deepcopy(message)

    def ephemerals(
        self, channel: str | None = None, user: str | None = None
    ) -> list[dict[str, Any]]:
        """Ephemeral messages, oldest first, optionally for one channel and/or user."""
        with self._lock:
            return [
                copy.deepcopy(m)
                for m in self._ephemerals
                if (channel is None or m["channel"] == channel)
                and (user is None or m["user"] == user)
            ]

    # -- response_url and trigger_id -------------------------------------------------------

    def issue_response_url(self, channel: str, user: str, message_ts: str | None) -> ResponseUrl:
        """Register a response_url; message_ts is the message an interaction came from."""
        with self._lock:
            ref = ResponseUrl(secrets.token_urlsafe(12), channel, user, message_ts, time.time())
            self._response_urls[ref.id] = ref
            return ref

    def use_response_url(self, response_id: str) -> ResponseUrl:
        """Count one use of a response_url; used_url/expired_url like Slack."""
        with self._lock:
            ref = self._response_urls.get(response_id)
            if ref is None:
                raise SlackApiFailure("no_such_url")
            if time.time() - ref.issued_at > RESPONSE_URL_TTL:
                raise SlackApiFailure("expired_url")
            if ref.uses >= RESPONSE_URL_MAX_USES:
                raise SlackApiFailure("used_url")
            ref.uses += 1
            return ref

    def issue_trigger_id(self, user: str | None = None) -> str:
        """A trigger_id views.open will accept for `trigger_ttl` seconds (for `user`'s client)."""
        with self._lock:
            trigger = (
                f"{secrets.randbelow(10**10)}.{secrets.randbelow(10**12)}.{secrets.token_hex(16)}"
            )
            self._triggers[trigger] = (time.monotonic(), user)
            return trigger

    def use_trigger_id(self, trigger: object) -> str | None:
        """Consume a trigger_id and return whose it was; invalid/expired_trigger_id like Slack."""
        with self._lock:
            issued = self._triggers.pop(trigger, None) if isinstance(trigger, str) else None
            if issued is None:
                raise SlackApiFailure("invalid_trigger_id")
            if time.monotonic() - issued[0] > self.trigger_ttl:
                raise SlackApiFailure("expired_trigger_id")
            return issued[1]

    # -- files -----------------------------------------------------------------------------

    def add_file(
        self,
        name: str,
        content: str,
        *,
        user: str,
        filetype: str = "text",
        mimetype: str = "text/plain",
    ) -> dict[str, Any]:
        """Store an uploaded file (a text snippet by default); returns its file object."""
        with self._lock:
            file_id = "F" + secrets.token_hex(5).upper()
            size = len(content.encode("utf-8"))
            obj = {
                "id": file_id,
                "created": int(time.time()),
                "name": name,
                "title": name,
                "mimetype": mimetype,
                "filetype": filetype,
                "pretty_type": "Plain Text" if filetype == "text" else filetype,
                "user": user,
                "mode": "snippet" if filetype == "text" else "hosted",
                "editable": filetype == "text",
                "is_external": False,
                "size": size,
                "url_private": f"https://files.slack.com/files-pri/{self.team_id}-{file_id}/{name}",
                "permalink": f"https://{self.domain}.slack.com/files/{user}/{file_id}/{name}",
            }
            self._files[file_id] = (obj, content)
            return copy.deepcopy(obj)

    def file(self, file_id: object) -> tuple[dict[str, Any], str]:
        """A file object and its content (files.info); file_not_found like Slack."""
        with self._lock:
            found = self._files.get(file_id) if isinstance(file_id, str) else None
            if found is None:
                raise SlackApiFailure("file_not_found")
            return copy.deepcopy(found[0]), found[1]

    # -- views -----------------------------------------------------------------------------

    def open_view(
        self, view: dict[str, Any], user: str | None, *, push: bool = False
    ) -> dict[str, Any]:
        """Record an opened (or, with push, stacked) modal and return it with Slack's ids."""
        with self._lock:
            view_id = "V" + secrets.token_hex(5).upper()
            stack = self._view_stacks.setdefault(user or "", [])
            if not push:
                stack.clear()
            stored = {
                **view,
                "id": view_id,
                "team_id": self.team_id,
                "app_id": self.app_id,
                "bot_id": self.bot_id,
                "hash": secrets.token_hex(8),
                "user": user,
                "state": {"values": {}},
                "root_view_id": stack[0] if stack else view_id,
                "previous_view_id": stack[-1] if stack else None,
            }
            stack.append(view_id)
            self._views[view_id] = stored
            self._notify()
            return copy.deepcopy(stored)

    def open_views(self, user: str) -> list[dict[str, Any]]:
        """The modals open in `user`'s client, bottom to top (the top one is shown)."""
        with self._lock:
            return [copy.deepcopy(self._views[v]) for v in self._view_stacks.get(user, [])]

    def close_view(self, view_id: str, *, clear: bool = False) -> None:
        """Close one modal (the user cancelled or submitted it), or with clear its whole stack."""
        with self._lock:
            for stack in self._view_stacks.values():
                if view_id in stack:
                    del stack[0 if clear else stack.index(view_id) :]
            self._view_errors.pop(view_id, None)
            self._notify()

    def set_view_errors(self, view_id: str, errors: dict[str, str]) -> None:
        """Errors the app returned for a submission (response_action: errors), per block."""
        with self._lock:
            self._view_errors[view_id] = dict(errors)
            self._notify()

    def view_errors(self, view_id: str) -> dict[str, str]:
        """The errors shown on a modal now."""
        with self._lock:
            return dict(self._view_errors.get(view_id, {}))

    def set_view_state(self, view_id: str, values: dict[str, Any]) -> None:
        """What the user entered in a modal (view.state.values)."""
        with self._lock:
            found = self._views.get(view_id)
            if found is not None:
                found["state"] = {"values": copy.deepcopy(values)}
                self._notify()

    def update_view(
        self, view_id: object, external_id: object, view: dict[str, Any], hash_: object
    ) -> dict[str, Any]:
        """Replace an open view; not_found/hash_conflict like Slack."""
        with self._lock:
            found = None
            if isinstance(view_id, str):
                found = self._views.get(view_id)
            elif isinstance(external_id, str):
                found = next(
                    (v for v in self._views.values() if v.get("external_id") == external_id), None
                )
            if found is None:
                raise SlackApiFailure("not_found")
            if isinstance(hash_, str) and hash_ and hash_ != found["hash"]:
                raise SlackApiFailure("hash_conflict")
            kept = ("id", "team_id", "app_id", "bot_id", "user", "state", "root_view_id")
            keep = {k: found[k] for k in (*kept, "previous_view_id")}
            self._view_errors.pop(found["id"], None)
            found.clear()
            found.update(view, **keep, hash=secrets.token_hex(8))
            self._notify()
            return copy.deepcopy(found)

    def publish_home(self, user: str, view: dict[str, Any]) -> dict[str, Any]:
        """views.publish: the user's Home tab, replaced whole."""
        if view.get("type") != "home":
            raise SlackApiFailure("invalid_arguments")
        with self._lock:
            old = self._homes.get(user)
            stored = {
                **view,
                "id": old["id"] if old else "V" + secrets.token_hex(5).upper(),
                "team_id": self.team_id,
                "app_id": self.app_id,
                "bot_id": self.bot_id,
                "hash": secrets.token_hex(8),
                "user": user,
                "state": {"values": {}},
            }
            self._homes[user] = stored
            self._notify()
            return copy.deepcopy(stored)

    def home(self, user: str) -> dict[str, Any] | None:
        """The Home tab the app published for this user, if any."""
        with self._lock:
            found = self._homes.get(user)
            return copy.deepcopy(found) if found else None

    def views(self) -> list[dict[str, Any]]:
        """Every view opened, in its current state."""
        with self._lock:
            return [copy.deepcopy(v) for v in self._views.values()]
