"""Decoding of redis-py replies (bytes or str, depending on the client)."""

from __future__ import annotations

from collections.abc import Mapping


def text(value: object) -> str:
    """A reply value as str."""
    if isinstance(value, bytes):
        return value.decode()
    if value is None:
        return ""
    return str(value)


def text_map(raw: Mapping[bytes | str, bytes | str] | None) -> dict[str, str]:
    """A hash reply as a str dict."""
    return {text(k): text(v) for k, v in (raw or {}).items()}
