"""What one alert format yields before validation, and the rules that turn it into an Alert.

Formats only pick values out of their payload; this module decides what they mean: where the
target and the error value come from when they are only in the event's insertion strings or in
the rendered message, and in which order fields are checked (so messages are predictable).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from bot.alerts.model import (
    EVENT_ID,
    Alert,
    normalize_timestamp,
    shown,
    validate_dsa_guid,
    validate_error_code,
    validate_event_id,
    validate_fqdn,
    validate_provider,
    validate_target,
)
from bot.errors import AlertRejected

# The 1411 description on Server 2003 ("Active Directory failed to ...") and 2008+ ("Active
# Directory Domain Services failed to ..."); it identifies the event when no ID is given.
DESCRIPTION: Final = re.compile(
    r"failed\s+to\s+construct\s+a\s+mutual\s+authentication\s+service\s+principal\s+name",
    re.IGNORECASE,
)
_TARGET_LABEL = re.compile(r"(?:domain controller|directory service)[ \t]*:\s*", re.IGNORECASE)
_MSDCS = re.compile(r"\._msdcs\.", re.IGNORECASE)
_ERROR_VALUE = re.compile(r"error\s+value\s*:\s*(\S{1,40})", re.IGNORECASE)
_NUMBER = re.compile(r"-?[0-9]{1,10}|0[xX][0-9a-fA-F]{1,8}")
_WHITESPACE = re.compile(r"\s")
_MAX_GUID_PART = 100
_MAX_NAME_PART = 300


@dataclass(frozen=True)
class RawAlert:
    """Unvalidated values one format found for one event; `to_alert` validates them."""

    source_format: str
    event_id: object = None
    computer: object = None
    provider: object = None
    target: object = None
    target_dsa_guid: object = None
    forest: object = None
    error_code: object = None
    message: object = None
    observed_at: object = None
    # The event's insertion strings (EventData), in order, when the format carries them.
    data: Sequence[object] = ()

    def to_alert(self) -> Alert:
        """The validated Alert, or AlertRejected naming the first field that is wrong."""
        message = self._message()
        if self.event_id is None:
            if message is None or DESCRIPTION.search(message) is None:
                raise AlertRejected(
                    "event_id: missing; expected Event ID 1411 (or the 1411 description text "
                    "'... failed to construct a mutual authentication service principal name')",
                    field="event_id",
                )
            event_id = EVENT_ID
        else:
            event_id = validate_event_id(self.event_id)
        if self.provider is not None:
            validate_provider(self.provider)
        if self.computer is None:
            raise AlertRejected(
                "reporting_dc: missing; expected the fully qualified name of the DC that logged "
                "the event (the event's Computer field)",
                field="reporting_dc",
            )
        reporting_dc = validate_fqdn(self.computer, "reporting_dc")
        guid, forest = self._target(message)
        error_code = validate_error_code(self._error_code(message))
        return Alert(
            event_id=event_id,
            reporting_dc=reporting_dc,
            target_dsa_guid=guid,
            forest=forest,
            error_code=error_code,
            observed_at=normalize_timestamp(self.observed_at),
            source_format=self.source_format,
        )

    def _message(self) -> str | None:
        if self.message is None or isinstance(self.message, str):
            return self.message
        raise AlertRejected(
            f"message: found {type(self.message).__name__} {shown(self.message)}; expected text",
            field="message",
        )

    def _target(self, message: str | None) -> tuple[str, str]:
        if self.target is not None:
            return validate_target(self.target)
        if self.target_dsa_guid is not None or self.forest is not None:
            if self.target_dsa_guid is None or self.forest is None:
                missing = "forest" if self.forest is None else "target_dsa_guid"
                raise AlertRejected(
                    f"{missing}: missing; target_dsa_guid and forest come together "
                    "(or give target as <DSA GUID>._msdcs.<forest>)",
                    field=missing,
                )
            return validate_dsa_guid(self.target_dsa_guid), validate_fqdn(self.forest, "forest")
        token = _one("target", [v.strip() for v in _texts(self.data) if _MSDCS.search(v)])
        if token is None and message is not None:
            token = find_target(message)
        if token is None:
            raise AlertRejected(
                "target: missing; expected the target DC as <DSA GUID>._msdcs.<forest> "
                "(the 'Domain controller:' or 'Directory service:' line of Event 1411)",
                field="target",
            )
        return validate_target(token)

    def _error_code(self, message: str | None) -> object:
        if self.error_code is not None:
            return self.error_code
        numbers = [v.strip() for v in _texts(self.data) if _NUMBER.fullmatch(v.strip())]
        numbers += [str(v) for v in self.data if isinstance(v, int) and not isinstance(v, bool)]
        found = _one("error_code", numbers)
        if found is None and message is not None:
            found = find_error_value(message)
        if found is None:
            raise AlertRejected(
                "error_code: missing; expected the event's 'Error value:' (8589 for KB938704)",
                field="error_code",
            )
        return found


def find_target(text: str) -> str | None:
    """The `<guid>._msdcs.<forest>` token a 1411 message names (labelled line first)."""
    labelled = [_token_after(text, m.end()) for m in _TARGET_LABEL.finditer(text)]
    found = _one("target", [t for t in labelled if t])
    if found is not None:
        return found
    return _one("target", (_token_around(text, m.start(), m.end()) for m in _MSDCS.finditer(text)))


def find_error_value(text: str) -> str | None:
    """The token after "Error value:" in a 1411 message, if there is exactly one."""
    return _one("error_code", (m.group(1) for m in _ERROR_VALUE.finditer(text)))


def _texts(values: Sequence[object]) -> list[str]:
    return [v for v in values if isinstance(v, str)]


def _one(field: str, candidates: Iterable[str]) -> str | None:
    """The single distinct candidate, None if there is none; AlertRejected if they disagree."""
    first: str | None = None
    for candidate in candidates:
        if first is None:
            first = candidate
        elif candidate != first:
            raise AlertRejected(
                f"{field}: the event names more than one ({shown(first)} and {shown(candidate)}); "
                "expected exactly one per event",
                field=field,
            )
    return first


def _token_after(text: str, start: int) -> str:
    """The run of non-whitespace starting at `start` (bounded, so long junk cannot hide)."""
    window = text[start : start + _MAX_GUID_PART + _MAX_NAME_PART + 1]
    token = _WHITESPACE.split(window, maxsplit=1)[0]
    if len(token) > _MAX_GUID_PART + _MAX_NAME_PART:
        raise AlertRejected(
            f"target: found an over-long name {shown(token)}; expected <DSA GUID>._msdcs.<forest>",
            field="target",
        )
    return token


def _token_around(text: str, start: int, end: int) -> str:
    """The whitespace-delimited token containing text[start:end]."""
    left = text[max(0, start - _MAX_GUID_PART - 1) : start]
    right = text[end : end + _MAX_NAME_PART + 1]
    head = _WHITESPACE.split(left)[-1]
    tail = _WHITESPACE.split(right, maxsplit=1)[0]
    if len(head) > _MAX_GUID_PART or len(tail) > _MAX_NAME_PART:
        raise AlertRejected(
            f"target: found an over-long name around {shown(text[start:end])}; expected "
            "<DSA GUID>._msdcs.<forest>",
            field="target",
        )
    return head + text[start:end] + tail
