"""The normalized Event 1411 alert and the validated values it is made of.

Every field of an `Alert` passes one of the validators below when the alert is built, so
nothing that reaches the rest of the bot is unchecked: a DC name is an RFC 1123 FQDN, a DSA
GUID is a canonical UUID, the error code is one this bot knows how to handle.
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Final

from bot.dns import dns_name_problem, normalize_dns_name
from bot.errors import AlertRejected
from bot.windows import win32

EVENT_ID: Final = 1411

SOURCE_FORMATS: Final = frozenset(
    {
        "event_text",
        "event_xml",
        "winlogbeat",
        "splunk",
        "azure_monitor",
        "alertmanager",
        "generic_json",
    }
)

# The event's provider, as the Windows event log names it (Server 2003 / Server 2008 and later).
KNOWN_PROVIDERS: Final = frozenset(
    {"ntds replication", "microsoft-windows-activedirectory_domainservice"}
)

# Error values a 1411 event carries that the KB938704 procedure answers (their meaning is in
# the one Win32 table). Kept small on purpose: any other value is a different problem, and a
# wrong runbook at 3 a.m. is worse than none.
KNOWN_ERROR_CODES: Final = (
    win32.ERROR_DS_CANT_DERIVE_SPN_WITHOUT_SERVER_REF,
    win32.ERROR_DS_DRA_ACCESS_DENIED,
    1396,  # ERROR_WRONG_TARGET_NAME
    win32.SEC_E_WRONG_PRINCIPAL,
)

MAX_SHOWN_CHARS: Final = 80

_GUID = re.compile(
    r"\{?([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\}?"
)
_MSDCS = "._msdcs."
_DECIMAL = re.compile(r"-?[0-9]{1,10}")
_HEX = re.compile(r"0[xX][0-9a-fA-F]{1,8}")
_EPOCH = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,9})?")
_ISO_TIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:[.,][0-9]{1,9})?([Zz]|[+-][0-9]{2}:?[0-9]{2})"
)
_MAX_EPOCH = 253402300800  # 10000-01-01T00:00:00Z
_MIN_YEAR = 1970


def shown(value: object) -> str:
    """A value as it may appear in an error message: quoted, escaped, at most ~80 characters."""
    text = value if isinstance(value, str) else repr(value)
    out: list[str] = []
    size = 0
    for char in text:
        # Escaping every non-ASCII character makes look-alike letters visible to the reader.
        if char.isascii() and char.isprintable():
            piece = char
        elif ord(char) <= 0xFF:
            piece = f"\\x{ord(char):02x}"
        else:
            piece = f"\\u{ord(char):04x}" if ord(char) <= 0xFFFF else f"\\U{ord(char):08x}"
        if size + len(piece) > MAX_SHOWN_CHARS:
            return '"' + "".join(out) + '"...'
        out.append(piece)
        size += len(piece)
    return '"' + "".join(out) + '"'


def validate_fqdn(value: object, field: str = "reporting_dc") -> str:
    """An RFC 1123 fully qualified name, lower case without trailing dot; else AlertRejected."""
    if not isinstance(value, str):
        raise AlertRejected(
            f"{field}: found {type(value).__name__} {shown(value)}; expected a DNS name as text",
            field=field,
        )
    if not value.isascii():
        raise AlertRejected(
            f"{field}: found {shown(value)} with non-ASCII characters; expected an ASCII DNS name "
            "(internationalized names in their xn-- form). Look-alike letters are refused.",
            field=field,
        )
    name = normalize_dns_name(value)
    problem = dns_name_problem(name)
    if problem is not None:
        raise AlertRejected(f"{field}: found {shown(value)}; expected {problem}", field=field)
    if "." not in name:
        raise AlertRejected(
            f"{field}: found {shown(value)}, a single-label (NetBIOS) name; expected the fully "
            "qualified DNS name, e.g. dc1.corp.example.com. Make the alert source send the "
            "event's Computer field as an FQDN (the event XML and Winlogbeat carry it).",
            field=field,
        )
    return name


def validate_dsa_guid(value: object, field: str = "target_dsa_guid") -> str:
    """A GUID (any case, braces optional) as a lower-case canonical UUID; else AlertRejected."""
    if not isinstance(value, str):
        raise AlertRejected(
            f"{field}: found {type(value).__name__} {shown(value)}; expected a GUID as text",
            field=field,
        )
    match = _GUID.fullmatch(value)
    if match is None or value.startswith("{") != value.endswith("}"):
        raise AlertRejected(
            f"{field}: found {shown(value)}; expected a GUID shaped "
            "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx (hex digits, braces optional)",
            field=field,
        )
    guid = str(uuid.UUID(match.group(1)))
    if guid == "00000000-0000-0000-0000-000000000000":
        raise AlertRejected(
            f"{field}: found the nil GUID; expected the objectGUID of the target DC's "
            "NTDS Settings object",
            field=field,
        )
    return guid


def validate_target(value: object, field: str = "target") -> tuple[str, str]:
    """Split `<DSA GUID>._msdcs.<forest DNS name>` into (guid, forest), both validated."""
    if not isinstance(value, str):
        raise AlertRejected(
            f"{field}: found {type(value).__name__} {shown(value)}; expected text shaped "
            "<DSA GUID>._msdcs.<forest DNS name>",
            field=field,
        )
    if not value.isascii():
        raise AlertRejected(
            f"{field}: found {shown(value)} with non-ASCII characters; expected "
            "<DSA GUID>._msdcs.<forest DNS name> in ASCII. Look-alike letters are refused.",
            field=field,
        )
    at = value.lower().find(_MSDCS)
    if at < 0:
        raise AlertRejected(
            f"{field}: found {shown(value)}; expected the target DC as "
            "<DSA GUID>._msdcs.<forest DNS name>, e.g. "
            "5471be24-1fdf-4fed-9074-ec3f1cd2f0fc._msdcs.corp.example.com",
            field=field,
        )
    guid = validate_dsa_guid(value[:at], field="target_dsa_guid")
    forest = validate_fqdn(value[at + len(_MSDCS) :], field="forest")
    return guid, forest


def parse_event_id(value: object, field: str = "event_id") -> int:
    """The event ID as an integer (qualifier bits of a full 32-bit event ID are dropped)."""
    number = _integer(value, field, "an event ID number such as 1411")
    # Windows sometimes prints the full ID with severity qualifiers, e.g. 0xC0000583 for 1411.
    if number > 0xFFFF and number >> 16 in (0x4000, 0x8000, 0xC000):
        number &= 0xFFFF
    return number


def validate_event_id(value: object, field: str = "event_id") -> int:
    """1411, or AlertRejected saying which event this is instead."""
    number = parse_event_id(value, field)
    if number != EVENT_ID:
        raise AlertRejected(
            f"{field}: event {number} is not Event ID 1411 (NTDS Replication, SPN construction "
            "failure); this bot only handles 1411. Filter the alert rule on EventID 1411.",
            field=field,
        )
    return number


def validate_provider(value: object, field: str = "provider") -> str:
    """The event source if it is the one that logs 1411 (NTDS Replication); else AlertRejected."""
    if not isinstance(value, str) or value.strip().lower() not in KNOWN_PROVIDERS:
        raise AlertRejected(
            f"{field}: event 1411 from {shown(value)} is not the Active Directory event; "
            "expected source 'NTDS Replication' or "
            "'Microsoft-Windows-ActiveDirectory_DomainService'",
            field=field,
        )
    return value.strip()


def parse_error_code(value: object, field: str = "error_code") -> int:
    """The Win32/SSPI error value as an unsigned 32-bit integer (decimal, negative or 0x hex)."""
    number = _integer(value, field, "an error number such as 8589")
    return number & 0xFFFFFFFF if number < 0 else number


def validate_error_code(value: object, field: str = "error_code") -> int:
    """An error code from KNOWN_ERROR_CODES; else AlertRejected listing the accepted ones."""
    number = parse_error_code(value, field)
    if number not in KNOWN_ERROR_CODES:
        accepted = ", ".join(str(code) for code in KNOWN_ERROR_CODES)
        raise AlertRejected(
            f"{field}: error {number} is not one the KB938704 procedure handles; "
            f"accepted: {accepted} (8589 is the KB's case). Diagnose this one by hand.",
            field=field,
        )
    return number


def _integer(value: object, field: str, expected: str) -> int:
    """An int from an int or a decimal / 0x-hex string, bounded to 32 bits."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str):
        text = value.strip()
        if _DECIMAL.fullmatch(text):
            number = int(text)
        elif _HEX.fullmatch(text):
            number = int(text, 16)
    if number is None or not -(2**31) <= number <= 0xFFFFFFFF:
        raise AlertRejected(f"{field}: found {shown(value)}; expected {expected}", field=field)
    return number


def normalize_timestamp(value: object, field: str = "observed_at") -> str | None:
    """ISO 8601 with a zone, or Unix seconds, as "YYYY-MM-DDTHH:MM:SSZ" (UTC); None stays None."""
    if value is None:
        return None
    moment: datetime | None = None
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            moment = _from_epoch(float(value))
        elif isinstance(value, str):
            text = value.strip()
            moment = _from_epoch(float(text)) if _EPOCH.fullmatch(text) else _from_iso(text)
    except (ValueError, OverflowError):
        moment = None
    if moment is None or moment.year < _MIN_YEAR:
        raise AlertRejected(
            f"{field}: found {shown(value)}; expected an ISO 8601 time with a zone, "
            "e.g. 2026-11-25T03:12:44Z, or Unix seconds",
            field=field,
        )
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _from_epoch(seconds: float) -> datetime | None:
    if not math.isfinite(seconds) or not 0 <= seconds < _MAX_EPOCH:
        return None
    return datetime.fromtimestamp(int(seconds), tz=UTC)


def _from_iso(text: str) -> datetime | None:
    match = _ISO_TIME.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    zone = match.group(7)
    offset = timedelta(0)
    if zone not in ("Z", "z"):
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        if zone[0] == "-":
            offset = -offset
    moment = datetime(year, month, day, hour, minute, second, tzinfo=timezone(offset))
    return moment.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Alert:
    """One Event 1411 occurrence, normalized: which DC failed to build an SPN for which DC."""

    event_id: int
    reporting_dc: str
    target_dsa_guid: str
    forest: str
    error_code: int
    observed_at: str | None
    source_format: str

    def __post_init__(self) -> None:
        # Validate here too, so an Alert built by hand is held to the same rules as a parsed one.
        checked = {
            "event_id": validate_event_id(self.event_id),
            "reporting_dc": validate_fqdn(self.reporting_dc, "reporting_dc"),
            "target_dsa_guid": validate_dsa_guid(self.target_dsa_guid),
            "forest": validate_fqdn(self.forest, "forest"),
            "error_code": validate_error_code(self.error_code),
            "observed_at": normalize_timestamp(self.observed_at),
        }
        if self.source_format not in SOURCE_FORMATS:
            raise AlertRejected(
                f"source_format: found {shown(self.source_format)}; expected one of "
                + ", ".join(sorted(SOURCE_FORMATS)),
                field="source_format",
            )
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    @property
    def correlation_key(self) -> tuple[str, str]:
        """(forest, target DSA GUID): alerts about the same broken DC belong to one incident."""
        return (self.forest, self.target_dsa_guid)

    @property
    def target(self) -> str:
        """The target as the event names it: `<guid>._msdcs.<forest>`."""
        return f"{self.target_dsa_guid}._msdcs.{self.forest}"

    def summary(self) -> str:
        """One line for people: who reported what about whom."""
        return (
            f"Event {self.event_id} on {self.reporting_dc}: no SPN for {self.target} "
            f"(error {self.error_code})"
        )

    def to_json(self) -> dict[str, object]:
        """The normalized alert as a JSON-ready dict (the `ad1411 alert parse` output)."""
        return {
            "event_id": self.event_id,
            "reporting_dc": self.reporting_dc,
            "target_dsa_guid": self.target_dsa_guid,
            "forest": self.forest,
            "error_code": self.error_code,
            "observed_at": self.observed_at,
            "source_format": self.source_format,
        }
