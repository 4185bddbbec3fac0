"""The one rule for DNS names (RFC 1123) that alerts, command parameters and config share."""

from __future__ import annotations

import re

_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def normalize_dns_name(value: str) -> str:
    """Lower case, without the one trailing dot of the absolute form (it names the same host)."""
    name = value.lower()
    return name[:-1] if name.endswith(".") else name


def dns_name_problem(name: str) -> str | None:
    """What a normalized name should have been ("expected ..."), or None when it is fine."""
    if not name.isascii():
        return "an ASCII DNS name (internationalized names in their xn-- form)"
    if not name or len(name) > 253:
        return "a DNS name of 1 to 253 characters"
    labels = name.split(".")
    if not all(_LABEL.fullmatch(label) for label in labels):
        return (
            "a DNS name whose dot-separated labels are 1-63 characters of a-z, 0-9 and '-', "
            "not starting or ending with '-'"
        )
    if labels[-1].isdigit():
        return "a DNS name, not an IP address"
    return None
