"""Failures of the store, named so that layers above never import the Redis client."""

from __future__ import annotations

from redis.exceptions import RedisError

# Redis is down, loading, read-only or too slow: the operation did not happen.
StoreUnavailable = RedisError

__all__ = ["StoreUnavailable"]
