"""Things that may happen only once in a window: Slack event ids, signed requests."""

from __future__ import annotations

import hashlib

import redis.asyncio

from state.keys import PREFIX


class SeenOnce:
    """`first(kind, token, ttl)` is True exactly once per token within the window."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self.client = client

    async def first(self, kind: str, token: str, ttl_seconds: float) -> bool:
        """True the first time `token` is seen for `kind` within `ttl_seconds`."""
        digest = hashlib.sha256(token.encode()).hexdigest()[:32]
        ok = await self.client.set(
            f"{PREFIX}:seen:{kind}:{digest}", b"1", nx=True, px=max(1, int(ttl_seconds * 1000))
        )
        return bool(ok)
