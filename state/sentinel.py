"""Redis behind Sentinel: the URL form, and clients that follow the primary across failovers.

    redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/service[/db][?options]
    rediss+sentinel://...   (TLS to the data nodes and the Sentinels)

Ports default to 26379. The password (and user) authenticate to the Redis nodes; the Sentinels
get them too only with `sentinel_auth=yes` (Sentinel has its own `requirepass`). The write
durability options of `state.durability` (`wait_replicas`, default 1 here, `wait_timeout_ms`)
may follow. Example: `redis+sentinel://:s3cret@10.0.0.5,10.0.0.6,10.0.0.7/ad1411/0`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel
from redis.asyncio.connection import BlockingConnectionPool

SCHEMES = ("redis+sentinel", "rediss+sentinel")
DEFAULT_SENTINEL_PORT = 26379
_SERVICE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]{0,252})(?::([0-9]{1,5}))?$")
_OPTIONS = ("sentinel_auth", "socket_timeout")
EXAMPLE = "redis+sentinel://:password@sentinel-1:26379,sentinel-2:26379,sentinel-3:26379/ad1411/0"


@dataclass(frozen=True)
class SentinelTarget:
    """Where the Sentinels are, which service they watch, and how to log in to the nodes."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False
    sentinel_auth: bool = False
    socket_timeout: float = 5.0

    def describe(self) -> str:
        """A loggable description (never the password)."""
        hosts = ",".join(f"{h}:{p}" for h, p in self.sentinels)
        return f"Sentinel service {self.service!r} db {self.db} via {hosts}"


def is_sentinel_url(url: str) -> bool:
    """True for redis+sentinel:// and rediss+sentinel:// URLs."""
    return url.split("://", 1)[0].lower() in SCHEMES


def _bad(url_part: str, expected: str) -> ValueError:
    return ValueError(f"REDIS_URL: {url_part}; expected {expected}, e.g. {EXAMPLE}")


def _sentinel_hosts(netloc: str) -> tuple[tuple[str, int], ...]:
    hosts = []
    for item in netloc.split(","):
        m = _HOST.match(item.strip())
        if m is None:
            raise _bad(f"Sentinel address {item[:60]!r} is not host[:port]", "host:port pairs")
        host = m.group(1).strip("[]")
        port = int(m.group(2) or DEFAULT_SENTINEL_PORT)
        if not 1 <= port <= 65535:
            raise _bad(f"Sentinel port {port} is out of range", "a port from 1 to 65535")
        hosts.append((host, port))
    return tuple(hosts)


def parse_sentinel_url(url: str) -> SentinelTarget:
    """The target of a redis+sentinel:// URL (durability options already removed)."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in SCHEMES:
        raise _bad(f"scheme {parts.scheme!r} is not a Sentinel scheme", "redis+sentinel://")
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    if not hostlist:
        raise _bad("no Sentinel address", "at least one host[:port]")
    username, _, password = userinfo.partition(":") if userinfo else ("", "", "")
    path = [p for p in parts.path.split("/") if p]
    if not path or not _SERVICE.match(path[0]) or len(path) > 2:
        raise _bad(f"path {parts.path[:60]!r} does not name a service", "/service_name[/db]")
    if len(path) == 2 and not path[1].isdigit():
        raise _bad(f"database {path[1][:20]!r} is not a number", "/service_name/0")
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise _bad(f"unknown option(s) {', '.join(unknown)}", f"only {', '.join(_OPTIONS)}")
    try:
        timeout = float(options.get("socket_timeout", "5"))
    except ValueError:
        raise _bad("socket_timeout is not a number", "seconds, e.g. 5") from None
    return SentinelTarget(
        sentinels=_sentinel_hosts(hostlist),
        service=path[0],
        db=int(path[1]) if len(path) == 2 else 0,
        username=unquote(username) or None,
        password=unquote(password) or None,
        tls=parts.scheme.lower() == "rediss+sentinel",
        sentinel_auth=options.get("sentinel_auth", "no").lower() in ("yes", "true", "1"),
        socket_timeout=timeout,
    )


def _node_kwargs(target: SentinelTarget) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "db": target.db,
        "socket_timeout": target.socket_timeout,
        "socket_connect_timeout": target.socket_timeout,
        "health_check_interval": 30,
    }
    if target.username:
        kwargs["username"] = target.username
    if target.password:
        kwargs["password"] = target.password
    if target.tls:
        kwargs["ssl"] = True
    return kwargs


def _sentinel_kwargs(target: SentinelTarget) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "socket_timeout": target.socket_timeout,
        "socket_connect_timeout": target.socket_timeout,
    }
    if target.tls:
        kwargs["ssl"] = True
    if target.sentinel_auth:
        kwargs.update(username=target.username, password=target.password)
    return kwargs


class BlockingSentinelPool(redis.asyncio.sentinel.SentinelConnectionPool, BlockingConnectionPool):
    """Follows the primary Sentinel names, and (as serve's plain pool) waits when exhausted."""


def async_sentinel_client(target: SentinelTarget, max_connections: int) -> redis.asyncio.Redis:
    """An asyncio client on the current primary; it re-asks the Sentinels after a failover."""
    sentinel = redis.asyncio.sentinel.Sentinel(  # type: ignore[no-untyped-call]
        list(target.sentinels), sentinel_kwargs=_sentinel_kwargs(target)
    )
    client: redis.asyncio.Redis = sentinel.master_for(
        target.service,
        connection_pool_class=BlockingSentinelPool,
        max_connections=max_connections,
        timeout=20,
        **_node_kwargs(target),
    )
    return client


def sync_sentinel_client(target: SentinelTarget) -> redis.Redis:
    """A synchronous client on the current primary."""
    sentinel = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
        list(target.sentinels), sentinel_kwargs=_sentinel_kwargs(target)
    )
    client: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
        target.service, **_node_kwargs(target)
    )
    return client
