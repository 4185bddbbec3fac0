"""Typed reads of Redis streams (redis-py types every reply as bytes | str | None)."""

from __future__ import annotations

import redis
from redis.typing import StreamRangeResponse


def _range(client: redis.Redis, stream: str) -> StreamRangeResponse:
    entries = client.xrange(stream)
    assert entries is not None  # XRANGE answers [] for a missing stream, never nil
    return entries


def _raw(value: bytes | str | None) -> bytes:
    assert isinstance(value, bytes), f"a client without decode_responses gave {value!r}"
    return value


def _text(value: bytes | str | None) -> str:
    assert isinstance(value, str), f"a decode_responses client gave {value!r}"
    return value


def raw_entries(client: redis.Redis, stream: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """Every entry of `stream`, oldest first, as bytes (a client without decode_responses)."""
    out: list[tuple[bytes, dict[bytes, bytes]]] = []
    for sid, fields in _range(client, stream):
        assert fields is not None
        out.append((_raw(sid), {_raw(k): _raw(v) for k, v in fields.items()}))
    return out


def text_entries(client: redis.Redis, stream: str) -> list[tuple[str, dict[str, str]]]:
    """Every entry of `stream`, oldest first, as str (a client with decode_responses=True)."""
    out: list[tuple[str, dict[str, str]]] = []
    for sid, fields in _range(client, stream):
        assert fields is not None
        out.append((_text(sid), {_text(k): _text(v) for k, v in fields.items()}))
    return out
