"""Who may do what: pure rules over Slack user and user-group IDs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def is_member(
    user_id: str, principals: Iterable[str], groups: Mapping[str, frozenset[str]]
) -> bool:
    """True when the user is listed directly or through one of the listed user groups."""
    for principal in principals:
        if principal == user_id:
            return True
        if principal.startswith("S") and user_id in groups.get(principal, frozenset()):
            return True
    return False


def group_ids(principals: Iterable[str]) -> list[str]:
    """The user-group IDs (S...) among principals, whose members must be looked up."""
    return sorted({p for p in principals if p.startswith("S")})
