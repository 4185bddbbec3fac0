"""Write durability: an acknowledged transition is on a replica before anyone is told it happened.

A transition script runs on the primary; with `wait_replicas = N`, the same connection then
sends `WAIT N timeout` in the same round trip (one pipeline). Only when N replicas confirm is
the result returned (and the user or the alert sender acknowledged); otherwise
`WriteNotReplicated` is raised, the caller answers with an error, and the sender retries. After
a Sentinel failover the promoted replica therefore holds every acknowledged transition: with
one replica it is the only one that can be promoted, and with more Sentinel promotes the one
with the largest replication offset.

The policy travels in the Redis URL's query (`?wait_replicas=1&wait_timeout_ms=2000`), is
stripped before the URL reaches redis-py, and defaults to 1 replica behind Sentinel, 0 otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode

import redis.asyncio
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from state.errors import StoreUnavailable as _StoreUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

WAIT_REPLICAS = "wait_replicas"
WAIT_TIMEOUT_MS = "wait_timeout_ms"
DEFAULT_WAIT_TIMEOUT_MS = 2000
MAX_WAIT_TIMEOUT_MS = 60_000


# What handlers catch when the store cannot take or confirm a change (they never import redis).
StoreUnavailable = _StoreUnavailable


class WriteNotReplicated(RedisError):
    """The primary applied the write but too few replicas confirmed it in time."""


@dataclass(frozen=True)
class WriteDurability:
    """How many replicas must hold a transition before it is acknowledged, and how long to wait."""

    replicas: int = 0
    timeout_ms: int = DEFAULT_WAIT_TIMEOUT_MS


def split_durability(url: str, *, default_replicas: int = 0) -> tuple[str, WriteDurability]:
    """(the URL without the durability options, the policy they give); ValueError when bad."""
    base, _, query = url.partition("?")
    kept: list[tuple[str, str]] = []
    replicas, timeout_ms = default_replicas, DEFAULT_WAIT_TIMEOUT_MS
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name == WAIT_REPLICAS:
            replicas = _bounded_int(name, value, 0, 10)
        elif name == WAIT_TIMEOUT_MS:
            timeout_ms = _bounded_int(name, value, 1, MAX_WAIT_TIMEOUT_MS)
        else:
            kept.append((name, value))
    stripped = f"{base}?{urlencode(kept)}" if kept else base
    return stripped, WriteDurability(replicas, timeout_ms)


def _bounded_int(name: str, value: str, low: int, high: int) -> int:
    if not value.isdigit() or not low <= int(value) <= high:
        raise ValueError(
            f"Redis URL option {name}={value[:20]!r}: expected a whole number from {low} to {high}"
        )
    return int(value)


_policies: weakref.WeakKeyDictionary[redis.asyncio.Redis, WriteDurability] = (
    weakref.WeakKeyDictionary()
)


def require(client: redis.asyncio.Redis, policy: WriteDurability) -> redis.asyncio.Redis:
    """Make every transition run through `run_transition` on this client wait for replicas."""
    _policies[client] = policy
    return client


def policy_of(client: redis.asyncio.Redis) -> WriteDurability:
    """The durability required on this client (none unless `require` was called)."""
    return _policies.get(client, WriteDurability())


async def run_transition(
    client: redis.asyncio.Redis, script: AsyncScript, keys: Sequence[str], args: Sequence[Any]
) -> Any:
    """Run one transition script; with a replica policy, return only once replicas hold it."""
    policy = policy_of(client)
    if policy.replicas == 0:
        return await script(keys=keys, args=args)
    async with client.pipeline(transaction=False) as pipe:
        await script(keys=keys, args=args, client=pipe)
        pipe.execute_command("WAIT", policy.replicas, policy.timeout_ms)
        result, confirmed = await pipe.execute()
    if int(confirmed) < policy.replicas:
        raise WriteNotReplicated(
            f"the change was applied on the Redis primary but only {int(confirmed)} of "
            f"{policy.replicas} replica(s) confirmed it within {policy.timeout_ms} ms; it is "
            "not acknowledged (a failover now could lose it). Check the replicas "
            "(INFO replication), then retry"
        )
    return result


def is_transient(exc: BaseException) -> bool:
    """Failures a failover causes and that a retry of an idempotent write may outlive."""
    if isinstance(exc, WriteNotReplicated | RedisConnectionError | RedisTimeoutError):
        return True
    if isinstance(exc, ReadOnlyError):
        return True
    return isinstance(exc, ResponseError) and str(exc).startswith(("NOREPLICAS", "LOADING"))


async def until_durable(
    write: Callable[[], Awaitable[T]], *, what: str, deadline_seconds: float = 60.0
) -> T:
    """Retry an idempotent write through a failover until it is acknowledged, or give up.

    Only for writes whose retry with the same arguments is harmless (the script recognizes
    its own earlier attempt); a sender-facing write reports the failure instead.
    """
    deadline = time.monotonic() + deadline_seconds
    pause = 0.1
    while True:
        try:
            return await write()
        except RedisError as exc:
            if not is_transient(exc) or time.monotonic() + pause > deadline:
                raise
            log.warning("%s not confirmed (%s); retrying in %.1f s", what, exc, pause)
        await asyncio.sleep(pause)
        pause = min(pause * 2, 2.0)
