"""Alert intake: bytes from a webhook, a file or a Slack message in, validated Alerts out.

`parse_alerts` recognizes the format itself (event text, event XML, or JSON from Winlogbeat/
Elastic, Splunk, Azure Monitor, Alertmanager, or the generic shape). A body is all or
nothing: if any event in it is bad, the whole body is rejected with the bad item's position,
so a retrying sender never has half its batch accepted twice. Resolved notifications are
skipped, so a body of only resolved alerts gives an empty list.

`find_alerts_in_text` looks for 1411 event blocks in a Slack message posted by another
integration: ordinary chat gives [], a block that is clearly a 1411 event but is malformed
raises AlertRejected so the bot can say why it was not used.
"""

from __future__ import annotations

import json
import re
from typing import Final

from bot.alerts.event_text import parse_event_text, split_events
from bot.alerts.event_xml import event_elements, parse_event_xml, parse_xml_tree, raw_from_event
from bot.alerts.json_payloads import Found, collect
from bot.alerts.model import Alert, shown
from bot.alerts.raw import RawAlert
from bot.errors import AlertRejected

MAX_ALERT_BYTES: Final = 1024 * 1024

_UTF16_BOMS: Final = ((b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))
_SLACK_LINK = re.compile(r"<([^<>|\s]{1,2000})(?:\|([^<>]{0,2000}))?>")
_SLACK_ENTITIES: Final = (("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&"))
_XML_START = re.compile(r"<Event[\s>]")
_XML_END = "</Event>"
_LINK_SCHEME = re.compile(r"^(?:https?|mailto):(?://)?", re.IGNORECASE)


def decode_body(data: bytes | str) -> str:
    """The body as text (UTF-8, or UTF-16 with a BOM), refusing bodies over MAX_ALERT_BYTES."""
    if isinstance(data, str):
        if len(data) > MAX_ALERT_BYTES:
            raise _too_big(len(data))
        try:
            size = len(data.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise AlertRejected(
                "body: contains invalid Unicode (lone surrogates); expected UTF-8 text",
                field="body",
            ) from exc
        if size > MAX_ALERT_BYTES:
            raise _too_big(size)
        text = data
    else:
        if len(data) > MAX_ALERT_BYTES:
            raise _too_big(len(data))
        encoding = "utf-8"
        for bom, name in _UTF16_BOMS:
            if data.startswith(bom):
                # PowerShell 5 redirection and some exports write UTF-16 with a BOM.
                data, encoding = data[len(bom) :], name
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError as exc:
            raise AlertRejected(
                f"body: is not valid {encoding.upper()} text (byte {exc.start}); expected UTF-8 "
                "(or UTF-16 with a byte-order mark)",
                field="body",
            ) from exc
    return text.removeprefix("\ufeff")


def _too_big(size: int) -> AlertRejected:
    return AlertRejected(
        f"body: {size} bytes; expected at most {MAX_ALERT_BYTES} bytes per request "
        "(send large batches in several requests)",
        field="body",
    )


def _reject_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    # Two values for one key are read differently by different parsers: refuse, don't guess.
    doc: dict[str, object] = {}
    for key, value in pairs:
        if key in doc:
            raise AlertRejected(
                f"body: the JSON object repeats key {shown(key)}; expected each key once",
                field="body",
            )
        doc[key] = value
    return doc


def _no_constants(name: str) -> object:
    raise AlertRejected(f"body: found {name} in JSON; expected standard JSON numbers", field="body")


_DECODER = json.JSONDecoder(object_pairs_hook=_reject_duplicate_keys, parse_constant=_no_constants)


def load_json_documents(text: str) -> list[object]:
    """One JSON document, or several written back to back (Splunk HEC and export style)."""
    documents: list[object] = []
    position, end = 0, len(text)
    while True:
        while position < end and text[position] in " \t\r\n":
            position += 1
        if position >= end:
            return documents
        try:
            document, position = _DECODER.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            raise AlertRejected(
                f"body: looks like JSON but does not parse ({exc.msg}, line {exc.lineno} "
                f"column {exc.colno}); expected one JSON alert, a list, or concatenated objects",
                field="body",
            ) from exc
        except (RecursionError, ValueError) as exc:
            raise AlertRejected(
                "body: JSON nested too deeply or with numbers too large; expected an alert",
                field="body",
            ) from exc
        documents.append(document)


def _json_alerts(text: str) -> Found:
    documents = load_json_documents(text)
    items: list[object] = []
    for document in documents:
        items.extend(document if isinstance(document, list) else [document])
    if not items:
        raise AlertRejected("body: an empty JSON list; expected at least one alert", field="body")
    found = Found()
    many = len(items) > 1
    for i, item in enumerate(items):
        collect(item, found, f"item {i}" if many else "")
    return found


def _validated(items: list[tuple[str, RawAlert]]) -> list[Alert]:
    alerts: list[Alert] = []
    for location, raw in items:
        try:
            alerts.append(raw.to_alert())
        except AlertRejected as exc:
            if not location:
                raise
            message = f"{location}: {str(exc).rstrip('.')}"
            if len(items) > 1:
                message += " (nothing in this body was accepted)"
            raise AlertRejected(message, field=exc.field) from exc
    return alerts


def parse_alerts(data: bytes | str) -> list[Alert]:
    """Every Event 1411 alert in a body of any supported format; AlertRejected if any is bad."""
    text = decode_body(data)
    start = text.lstrip()[:1]
    if start in ("{", "["):
        found = _json_alerts(text)
        if not found.items and not found.skipped:
            raise AlertRejected("body: no alerts found; expected at least one", field="body")
        return _validated(found.items)
    if start == "<":
        return _validated(parse_event_xml(text))
    if not start:
        raise AlertRejected("body: empty; expected an Event 1411 alert", field="body")
    return _validated(parse_event_text(text))


def _unwrap_slack(text: str) -> str:
    """Slack's message markup back to plain text: links, entities, code and bold marks."""

    def link(match: re.Match[str]) -> str:
        label = match.group(2)
        return label if label else _LINK_SCHEME.sub("", match.group(1))

    plain = _SLACK_LINK.sub(link, text)
    for entity, char in _SLACK_ENTITIES:
        plain = plain.replace(entity, char)
    return plain.replace("`", "").replace("*", "")


def find_alerts_in_text(text: str) -> list[Alert]:
    """Alerts from 1411 event blocks (text or XML) in a chat message; [] when there are none."""
    # Chat text is never refused for its encoding: unpaired surrogates become "?".
    clean = text.encode("utf-8", "replace").decode("utf-8")
    plain = _unwrap_slack(decode_body(clean))
    alerts: list[Alert] = []
    rest: list[str] = []
    position = 0
    # Cut out <Event>...</Event> blocks in one forward pass (no backtracking over long text).
    while (start := _XML_START.search(plain, position)) is not None:
        end = plain.find(_XML_END, start.start())
        if end < 0:
            break
        end += len(_XML_END)
        rest.append(plain[position : start.start()])
        alerts.extend(_xml_block_alerts(plain[start.start() : end]))
        position = end
    rest.append(plain[position:])
    for event in split_events("\n".join(rest)):
        if event.is_1411_block:
            alerts.append(event.to_raw("event_text").to_alert())
    return alerts


def _xml_block_alerts(block: str) -> list[Alert]:
    try:
        events = event_elements(parse_xml_tree(block))
    except AlertRejected:
        return []  # an XML-looking fragment in chat is not an event
    raws = [raw_from_event(event) for event in events]
    return [
        raw.to_alert() for raw in raws if isinstance(raw.event_id, str) and raw.event_id == "1411"
    ]
