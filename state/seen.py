"""Things that may happen only once in a window: Slack event ids, signed requests."""

from __future__ import annotations

import hashlib

import redis.asyncio

from state.keys import PREFIX


class SeenOnce:
    """`first(kind, token, ttl)` is True exactly once per token within the window; `seen` and
    `mark` split that in two around work that must not be lost."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self.client = client

    async def first(self, kind: str, token: str, ttl_seconds: float) -> bool:
        """True the first time `token` is seen for `kind` within `ttl_seconds`."""
        ok = await self.client.set(
            _key(kind, token), b"1", nx=True, px=max(1, int(ttl_seconds * 1000))
        )
        return bool(ok)

    async def seen(self, kind: str, token: str) -> bool:
        """Whether `token` was marked done for `kind` (within its window)."""
        return bool(await self.client.exists(_key(kind, token)))

    async def mark(self, kind: str, token: str, ttl_seconds: float) -> None:
        """`token` is done for `kind`: `seen` says so for `ttl_seconds`, `first` is False.

        With `seen` before the work and `mark` after it, a delivery whose work failed is done
        again when redelivered (at least once); `first` alone would drop the redelivery.
        """
        await self.client.set(_key(kind, token), b"1", px=max(1, int(ttl_seconds * 1000)))

    async def forget(self, kind: str, token: str) -> None:
        """`token` was not taken after all (its handling failed): the next delivery is first."""
        await self.client.delete(_key(kind, token))


def _key(kind: str, token: str) -> str:
    return f"{PREFIX}:seen:{kind}:{hashlib.sha256(token.encode()).hexdigest()[:32]}"
