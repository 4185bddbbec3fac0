"""Redis connection factory: REDIS_URL, or the embedded redis-server when it is unset."""

from __future__ import annotations

import atexit
from pathlib import Path

import redis
import redis.asyncio

from state.durability import require, split_durability
from state.embedded import EmbeddedRedis
from state.sentinel import (
    async_sentinel_client,
    is_sentinel_url,
    parse_sentinel_url,
    sync_sentinel_client,
)

_embedded: EmbeddedRedis | None = None
CONNECT_TIMEOUT_SECONDS = 5.0
COMMAND_TIMEOUT_SECONDS = 30.0  # above the longest blocking read (XREADGROUP, 0.5-1 s)


def resolve_redis_url(redis_url: str | None, data_dir: Path) -> str:
    """The URL to use. With REDIS_URL unset: the embedded server of data_dir, which this
    process starts when no other process owns it, or joins when one does."""
    global _embedded  # noqa: PLW0603 - one embedded server per process
    if redis_url:
        return redis_url
    if _embedded is None:
        candidate = EmbeddedRedis(data_dir)
        url = candidate.ensure()
        _embedded = candidate
        atexit.register(stop_embedded)
        return url
    return _embedded.url


def embedded() -> EmbeddedRedis | None:
    """The embedded server this process uses (owned or joined), if any."""
    return _embedded


def stop_embedded() -> None:
    """Stop the embedded server if this process owns it; a joined one keeps running."""
    global _embedded  # noqa: PLW0603
    if _embedded is not None:
        _embedded.release()
        _embedded = None


def sync_client(url: str) -> redis.Redis:
    """A synchronous client (CLI, worker)."""
    url, _ = split_durability(url)
    if is_sentinel_url(url):
        return sync_sentinel_client(parse_sentinel_url(url))
    return redis.Redis.from_url(
        url,
        decode_responses=False,
        health_check_interval=30,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        socket_timeout=COMMAND_TIMEOUT_SECONDS,
    )


ASYNC_POOL_SIZE = 64


def async_client(url: str) -> redis.asyncio.Redis:
    """An asyncio client (serve): a bounded pool where a burst waits for a connection.

    redis-py's default pool raises "Too many connections" past 100 at once; an alert storm
    with hundreds of coalesced-update tasks must queue instead of failing. Every command has
    a deadline, so a Redis that hangs fails requests instead of holding them. A Sentinel URL
    follows the primary; the URL's write-durability options apply to transitions.
    """
    sentinel = is_sentinel_url(url)
    url, durability = split_durability(url, default_replicas=1 if sentinel else 0)
    if sentinel:
        return require(async_sentinel_client(parse_sentinel_url(url), ASYNC_POOL_SIZE), durability)
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        url,
        max_connections=ASYNC_POOL_SIZE,
        timeout=20,
        health_check_interval=30,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        socket_timeout=COMMAND_TIMEOUT_SECONDS,
    )
    return require(redis.asyncio.Redis.from_pool(pool), durability)


def redis_url_problem(url: str) -> str | None:
    """What is wrong with a REDIS_URL (for `ad1411 config check`), without connecting."""
    try:
        plain, _ = split_durability(url)
        if is_sentinel_url(plain):
            parse_sentinel_url(plain)
        else:
            redis.connection.parse_url(plain)  # type: ignore[no-untyped-call]
    except ValueError as exc:
        # Never echo the URL: it may hold the Redis password.
        return str(exc) if str(exc).startswith("REDIS_URL") else f"REDIS_URL: {exc}"
    return None
