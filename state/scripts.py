"""Lua scripts of state/lua, loaded by name: one script per atomic state change."""

from __future__ import annotations

from importlib import resources
from typing import Any

import redis.asyncio
from redis.commands.core import AsyncScript

from state.durability import run_transition


def _read(*parts: str) -> str:
    return resources.files("state").joinpath("lua", *parts).read_text(encoding="utf-8")


def _source(name: str) -> str:
    """A script's text, with the audit library in front when it appends to an audit stream."""
    text = _read(f"{name}.lua")
    if "audit_append(" in text:
        text = _read("lib", "audit_append.lua") + "\n" + text
    return text


class LuaScripts:
    """The registered scripts for one async client; call by file name."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self._client = client
        self._scripts: dict[str, AsyncScript] = {}

    async def __call__(self, name: str, keys: list[str], args: list[Any]) -> Any:
        script = self._scripts.get(name)
        if script is None:
            script = self._client.register_script(_source(name))
            self._scripts[name] = script
        # Waits for replicas when the client requires it (state/durability.py).
        return await run_transition(self._client, script, keys, args)
