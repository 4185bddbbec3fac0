"""Event 1411 as text: Event Viewer "copy details", the KB's Symptoms block, Get-WinEvent
Format-List output, and Splunk's classic WinEventLog `Key=Value` rendering.

Text is cut into events where a line each event has once ("Log Name:", "Event Type:",
"Description:", "Message") appears again. Known header keys give the event ID, computer,
source and time; the description gives the target and error value. Local dates without a
zone ("11/25/2026 3:12:44 AM") are not guessed: `observed_at` is then None.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

from bot.alerts.model import normalize_timestamp, parse_event_id, shown
from bot.alerts.raw import DESCRIPTION, RawAlert
from bot.errors import AlertRejected

_HEADER = re.compile(r"[ \t]*([A-Za-z][A-Za-z _]{0,30}?)[ \t]*[:=](.*)")
_MSDCS = re.compile(r"\._msdcs\.", re.IGNORECASE)
# Event Viewer's "Copy details as text" appends the event XML, whose time has a zone.
_SYSTEM_TIME = re.compile(r"<TimeCreated\s+SystemTime=[\"']([^\"'<>]{1,40})[\"']")

_EVENT_ID_KEYS: Final = frozenset({"eventid", "id", "eventcode"})
_COMPUTER_KEYS: Final = frozenset({"computer", "computername", "machinename"})
_PROVIDER_KEYS: Final = frozenset({"source", "eventsource", "sourcename", "providername"})
_TIME_KEYS: Final = frozenset({"timecreated", "timegenerated", "date", "timestamp", "observedat"})
_BOUNDARY_KEYS: Final = frozenset({"logname", "eventtype", "message", "description"})


@dataclass
class TextEvent:
    """One event's worth of text and the header values found in it."""

    text: str
    headers: dict[str, str] = field(default_factory=dict)
    # Raised only when the event is used, so chat text with odd lines never fails a scan.
    conflicts: list[AlertRejected] = field(default_factory=list)

    @property
    def names_target(self) -> bool:
        return _MSDCS.search(self.text) is not None

    @property
    def has_description(self) -> bool:
        return DESCRIPTION.search(self.text) is not None

    @property
    def looks_like_event(self) -> bool:
        """Any sign of an event at all (an ID line, the 1411 description or a target)."""
        return "event_id" in self.headers or self.has_description or self.names_target

    @property
    def is_1411_block(self) -> bool:
        """Unmistakably a 1411 event: it names a target and says it is 1411."""
        if not self.names_target:
            return False
        if self.has_description:
            return True
        try:
            return parse_event_id(self.headers.get("event_id")) == 1411
        except AlertRejected:
            return False

    def to_raw(self, source_format: str) -> RawAlert:
        """The event's values, unvalidated (AlertRejected if its headers contradict)."""
        if self.conflicts:
            raise self.conflicts[0]
        observed_at: str | None = None
        system_time = _SYSTEM_TIME.search(self.text)
        for candidate in (self.headers.get("time"), system_time and system_time.group(1)):
            try:
                observed_at = normalize_timestamp(candidate or None)
            except AlertRejected:
                continue  # local, zone-less times are not guessed
            if observed_at is not None:
                break
        return RawAlert(
            source_format=source_format,
            event_id=self.headers.get("event_id"),
            computer=self.headers.get("computer"),
            provider=self.headers.get("provider"),
            message=self.text,
            observed_at=observed_at,
        )


def split_events(text: str) -> list[TextEvent]:
    """The text cut into events, each with its header values (conflicting headers refused)."""
    events: list[TextEvent] = []
    lines: list[str] = []
    event = TextEvent("")
    seen: set[str] = set()
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        match = _HEADER.match(line)
        key = _key(match.group(1)) if match else None
        if key in _BOUNDARY_KEYS:
            # Each event has these lines once: seeing one again means the next event began.
            if key in seen:
                event.text = "\n".join(lines)
                events.append(event)
                lines, event, seen = [], TextEvent(""), set()
            seen.add(key)
        lines.append(line)
        if match and key is not None:
            _note_header(event, key, match.group(2).strip())
    event.text = "\n".join(lines)
    events.append(event)
    return events


def _key(raw: str) -> str:
    return raw.lower().replace(" ", "").replace("_", "")


def _note_header(event: TextEvent, key: str, value: str) -> None:
    headers = event.headers
    if key in _EVENT_ID_KEYS:
        name = "event_id"
    elif key in _COMPUTER_KEYS:
        name = "computer"
    elif key in _PROVIDER_KEYS:
        name = "provider"
    elif key in _TIME_KEYS:
        headers.setdefault("time", value)
        return
    else:
        return
    if name == "computer" and not value:
        return  # Format-List prints empty properties; an empty line names no computer
    previous = headers.setdefault(name, value)
    if previous != value:
        field_name = "reporting_dc" if name == "computer" else name
        event.conflicts.append(
            AlertRejected(
                f"{field_name}: the event text gives two values ({shown(previous)} and "
                f"{shown(value)}); expected one",
                field=field_name,
            )
        )


def parse_event_text(text: str, source_format: str = "event_text") -> list[tuple[str, RawAlert]]:
    """Every event in `text` (with its position label); AlertRejected if there is none."""
    events = [event for event in split_events(text) if event.looks_like_event]
    if not events:
        raise AlertRejected(
            f"body: found text {shown(text.strip())} with no Event ID 1411 in it; expected an "
            "event (Event Viewer text, event XML) or a JSON alert from a supported source",
            field="body",
        )
    many = len(events) > 1
    return [(f"event {i}" if many else "", e.to_raw(source_format)) for i, e in enumerate(events)]
