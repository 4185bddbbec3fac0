"""deploy/slack: the app manifests (HTTP and Socket Mode) are well formed, and their bot scopes
are exactly what the code needs: the Web API methods called under bot/ and handlers/, the
events listened to, and the slash command. A new call (views.open, users.info, ...) without its
scope in the manifest, or a method missing from SCOPES below, fails here."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from slack_sdk.web.async_client import AsyncWebClient

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = {
    "http": ROOT / "deploy" / "slack" / "manifest.http.yaml",
    "socket-mode": ROOT / "deploy" / "slack" / "manifest.socket-mode.yaml",
}
SCANNED = ("bot", "handlers")

# Bot-token scope each Web API method needs (Slack's method reference); None: no scope.
SCOPES: dict[str, str | None] = {
    "auth.test": None,
    "chat.postMessage": "chat:write",
    "chat.update": "chat:write",
    "chat.delete": "chat:write",
    "chat.postEphemeral": "chat:write",
    "chat.getPermalink": None,
    "conversations.info": "channels:read",
    "conversations.history": "channels:history",
    "conversations.replies": "channels:history",
    "conversations.members": "channels:read",
    "files.info": "files:read",
    "files.uploadV2": "files:write",
    "reactions.add": "reactions:write",
    "usergroups.list": "usergroups:read",
    "usergroups.users.list": "usergroups:read",
    "users.info": "users:read",
    "users.lookupByEmail": "users:read.email",
    "views.open": None,
    "views.push": None,
    "views.update": None,
    "views.publish": None,
}
# Event subscription -> the scope it needs; and the events each listener implies.
EVENT_SCOPES = {
    "message.channels": "channels:history",
    "message.groups": "groups:history",
    "message.im": "im:history",
    "app_home_opened": None,
    "app_mention": "app_mentions:read",
}
LISTENER_EVENTS = {
    "message": {"message.channels", "message.groups"},
    "app_home_opened": {"app_home_opened"},
    "app_mention": {"app_mention"},
}

URL = {"type": "string", "pattern": r"^https://[a-z0-9.-]+(:[0-9]+)?/slack/events$"}
MANIFEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["display_information", "features", "oauth_config", "settings"],
    "additionalProperties": False,
    "properties": {
        "_metadata": {
            "type": "object",
            "properties": {"major_version": {"const": 1}, "minor_version": {"type": "integer"}},
        },
        "display_information": {
            "type": "object",
            "required": ["name"],
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 35},
                "description": {"type": "string", "maxLength": 140},
                "long_description": {"type": "string", "minLength": 175, "maxLength": 4000},
                "background_color": {"type": "string", "pattern": "^#[0-9a-fA-F]{6}$"},
            },
        },
        "features": {
            "type": "object",
            "required": ["bot_user", "slash_commands"],
            "additionalProperties": False,
            "properties": {
                "app_home": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "home_tab_enabled": {"type": "boolean"},
                        "messages_tab_enabled": {"type": "boolean"},
                        "messages_tab_read_only_enabled": {"type": "boolean"},
                    },
                },
                "bot_user": {
                    "type": "object",
                    "required": ["display_name"],
                    "properties": {
                        "display_name": {"type": "string", "pattern": "^[a-z0-9._-]{1,80}$"},
                        "always_online": {"type": "boolean"},
                    },
                },
                "slash_commands": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["command", "description"],
                        "additionalProperties": False,
                        "properties": {
                            "command": {"type": "string", "pattern": "^/[a-z0-9_-]{1,31}$"},
                            "url": URL,
                            "description": {"type": "string", "maxLength": 2000},
                            "usage_hint": {"type": "string", "maxLength": 1000},
                            "should_escape": {"type": "boolean"},
                        },
                    },
                },
            },
        },
        "oauth_config": {
            "type": "object",
            "required": ["scopes"],
            "properties": {
                "scopes": {
                    "type": "object",
                    "required": ["bot"],
                    "additionalProperties": False,
                    "properties": {
                        "bot": {
                            "type": "array",
                            "uniqueItems": True,
                            "items": {"type": "string", "pattern": r"^[a-z_]+:?[a-z_.]*$"},
                        }
                    },
                }
            },
        },
        "settings": {
            "type": "object",
            "required": ["event_subscriptions", "interactivity", "socket_mode_enabled"],
            "additionalProperties": False,
            "properties": {
                "event_subscriptions": {
                    "type": "object",
                    "required": ["bot_events"],
                    "additionalProperties": False,
                    "properties": {
                        "request_url": URL,
                        "bot_events": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "interactivity": {
                    "type": "object",
                    "required": ["is_enabled"],
                    "additionalProperties": False,
                    "properties": {"is_enabled": {"type": "boolean"}, "request_url": URL},
                },
                "org_deploy_enabled": {"type": "boolean"},
                "socket_mode_enabled": {"type": "boolean"},
                "token_rotation_enabled": {"type": "boolean"},
            },
        },
    },
}


def manifest(kind: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(MANIFESTS[kind].read_text(encoding="utf-8"))
    return data


def web_api_methods_called() -> dict[str, list[str]]:
    """Web API methods (dotted) called anywhere under bot/ and handlers/, with where."""
    client_methods = {
        name
        for name in dir(AsyncWebClient)
        if not name.startswith("_") and "_" in name and name[0].islower()
    }
    found: dict[str, list[str]] = {}
    for package in SCANNED:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
            for node in calls:
                if not isinstance(node.func, ast.Attribute):
                    continue
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                if node.func.attr == "api_call":
                    # api_call("chat.update", ...) names its method; api_call(method, ...) in a
                    # wrapper is fed by the file's calls of the wrapper with a literal method.
                    first = node.args[0] if node.args else None
                    if isinstance(first, ast.Constant) and isinstance(first.value, str):
                        found.setdefault(first.value, []).append(where)
                    else:
                        for method, at in _literal_methods(calls, path):
                            found.setdefault(method, []).append(at)
                elif node.func.attr in client_methods:
                    method = node.func.attr.replace("_", ".")
                    found.setdefault(method, []).append(where)
    return found


def _literal_methods(calls: list[ast.Call], path: Path) -> list[tuple[str, str]]:
    """("chat.postMessage", where) for each call in a file whose first argument is a literal
    Web API method name (what a wrapper around api_call is given)."""
    dotted = re.compile(r"[a-z]+(\.[a-zA-Z]+)+")
    out = []
    for node in calls:
        first = node.args[0] if node.args else None
        if (
            isinstance(first, ast.Constant)
            and isinstance(first.value, str)
            and dotted.fullmatch(first.value)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr.endswith("call")
        ):
            out.append((first.value, f"{path.relative_to(ROOT)}:{node.lineno}"))
    return out


def listeners(kind: str) -> set[str]:
    """Arguments of @app.<kind>(...) decorators under handlers/ (events, commands, actions)."""
    pattern = re.compile(rf"@app\.{kind}\(\s*([A-Za-z_\"'/][^)]*)\)")
    names: set[str] = set()
    for path in (ROOT / "handlers").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for m in pattern.finditer(text):
            arg = m.group(1).strip()
            names.add(arg.strip("\"'") if arg[0] in "\"'" else _constant(text, arg))
    return names


def _constant(text: str, name: str) -> str:
    m = re.search(rf"^{re.escape(name)}\s*=\s*[\"']([^\"']+)[\"']", text, re.MULTILINE)
    return m.group(1) if m else name


def test_the_scan_finds_the_calls_we_know_of() -> None:
    called = web_api_methods_called()
    assert {"chat.postMessage", "chat.update", "auth.test", "usergroups.users.list"} <= set(called)


def required_scopes() -> set[str]:
    called = web_api_methods_called()
    unknown = {m: where for m, where in called.items() if m not in SCOPES}
    assert not unknown, (
        f"the code calls Web API methods this test has no scope for: {unknown}; add each to "
        "SCOPES (from Slack's method reference) and its scope to deploy/slack/manifest.*.yaml"
    )
    scopes = {s for m in called if (s := SCOPES[m]) is not None}
    for event in listeners("event"):
        for subscription in LISTENER_EVENTS[event]:
            if (s := EVENT_SCOPES[subscription]) is not None:
                scopes.add(s)
    if listeners("command"):
        scopes.add("commands")
    return scopes


@pytest.mark.parametrize("kind", sorted(MANIFESTS))
def test_manifest_structure(kind: str) -> None:
    doc = manifest(kind)
    jsonschema.validate(doc, MANIFEST_SCHEMA)
    settings = doc["settings"]
    socket_mode = kind == "socket-mode"
    assert settings["socket_mode_enabled"] is socket_mode
    urls = [
        settings["event_subscriptions"].get("request_url"),
        settings["interactivity"].get("request_url"),
        *[c.get("url") for c in doc["features"]["slash_commands"]],
    ]
    # HTTP mode: every request goes to /slack/events; Socket Mode: no URL at all.
    assert all(u is None for u in urls) if socket_mode else all(u is not None for u in urls)
    assert settings["interactivity"]["is_enabled"] is True


@pytest.mark.parametrize("kind", sorted(MANIFESTS))
def test_bot_scopes_are_exactly_what_the_code_uses(kind: str) -> None:
    assert set(manifest(kind)["oauth_config"]["scopes"]["bot"]) == required_scopes()


@pytest.mark.parametrize("kind", sorted(MANIFESTS))
def test_commands_events_and_interactivity_match_the_listeners(kind: str) -> None:
    doc = manifest(kind)
    assert {c["command"] for c in doc["features"]["slash_commands"]} == listeners("command")
    wanted = set().union(*(LISTENER_EVENTS[e] for e in listeners("event")))
    assert set(doc["settings"]["event_subscriptions"]["bot_events"]) == wanted
    assert listeners("action"), "buttons exist, so interactivity must be on"


def test_both_manifests_ask_for_the_same_app() -> None:
    http, socket = manifest("http"), manifest("socket-mode")
    assert http["oauth_config"] == socket["oauth_config"]
    assert http["display_information"] == socket["display_information"]
    assert (
        http["settings"]["event_subscriptions"]["bot_events"]
        == (socket["settings"]["event_subscriptions"]["bot_events"])
    )
