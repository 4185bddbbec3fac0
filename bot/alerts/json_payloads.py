"""Event 1411 inside JSON alerts: Winlogbeat/Elastic, Splunk, Azure Monitor, Alertmanager and
the generic shape. Each function picks values out of one shape; `collect` recognizes the shape.

Resolved notifications (Alertmanager `status: resolved`, Azure `monitorCondition: Resolved`)
announce that something stopped, not a new failure: they are counted as skipped, not alerts.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from xml.sax.saxutils import unescape

from bot.alerts.event_text import parse_event_text
from bot.alerts.event_xml import parse_event_xml
from bot.alerts.model import shown
from bot.alerts.raw import RawAlert
from bot.errors import AlertRejected

COMMON_ALERT_SCHEMA = "azureMonitorCommonAlertSchema"
_PARAM = re.compile(r"<Param>([^<]{0,2000})</Param>")
_PORT = re.compile(r":[0-9]{1,5}")
_HEC_KEYS = ("time", "host", "source", "sourcetype", "index", "fields")
_SPLUNK_WEBHOOK_KEYS = ("sid", "search_name", "results_link", "preview", "owner", "app")


@dataclass
class Found:
    """Alerts found in a body so far (with where they were) and resolved ones skipped."""

    items: list[tuple[str, RawAlert]] = field(default_factory=list)
    skipped: int = 0

    def add(self, location: str, raw: RawAlert) -> None:
        self.items.append((location, raw))

    def extend(self, prefix: str, located: list[tuple[str, RawAlert]]) -> None:
        for location, raw in located:
            self.add(_join(prefix, location), raw)


def _join(prefix: str, location: str) -> str:
    return ", ".join(part for part in (prefix, location) if part)


def _get(doc: dict[str, object], path: str) -> object:
    """doc["a"]["b"] for "a.b", or doc["a.b"] when the document uses dotted keys."""
    if path in doc:
        return doc[path]
    node: object = doc
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _first(doc: dict[str, object], *paths: str) -> object:
    for path in paths:
        value = _get(doc, path)
        if value is not None:
            return value
    return None


def _object(value: object, where: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise AlertRejected(
            f"{where}: found {type(value).__name__} {shown(value)}; expected a JSON object",
            field=where.split("[", 1)[0].split(".", 1)[0] or "body",
        )
    return value


def _list(value: object, where: str) -> list[object]:
    if not isinstance(value, list):
        raise AlertRejected(
            f"{where}: found {type(value).__name__} {shown(value)}; expected a JSON list",
            field=where.split("[", 1)[0].split(".", 1)[0] or "body",
        )
    return value


# --- Winlogbeat / Elastic -------------------------------------------------------------------


def from_winlogbeat(doc: dict[str, object]) -> RawAlert:
    """A Winlogbeat (or Elastic Agent) Windows event document."""
    event_data = _get(doc, "winlog.event_data")
    data = list(event_data.values()) if isinstance(event_data, dict) else []
    return RawAlert(
        source_format="winlogbeat",
        event_id=_first(doc, "winlog.event_id", "event.code"),
        computer=_get(doc, "winlog.computer_name"),
        provider=_first(doc, "winlog.provider_name", "event.provider"),
        message=_get(doc, "message"),
        observed_at=_get(doc, "@timestamp"),
        data=data,
    )


def _from_hits(hits: list[object], found: Found, prefix: str) -> None:
    for i, hit in enumerate(hits):
        where = f"{prefix}[{i}]"
        source = _object(hit, where).get("_source")
        found.add(where, from_winlogbeat(_object(source, f"{where}._source")))


# --- Splunk ---------------------------------------------------------------------------------


def from_splunk_row(row: dict[str, object], time: object = None, host: object = None) -> Found:
    """A Splunk search result row (webhook `result`, export line, HEC `event` object)."""
    found = Found()
    message = row.get("Message")
    raw_event = row.get("_raw")
    observed_at = _first(row, "_time") or time
    computer = _first(row, "ComputerName", "Computer") or row.get("host") or host
    if message is None and isinstance(raw_event, str):
        # No extracted fields: the raw event (classic text or XmlWinEventLog) says it all.
        for location, raw in _raw_splunk_event(raw_event):
            found.add(location, _fill(raw, computer=computer, observed_at=observed_at))
        return found
    found.add(
        "",
        RawAlert(
            source_format="splunk",
            event_id=_first(row, "EventCode", "EventID"),
            computer=computer,
            provider=row.get("SourceName"),
            message=message,
            observed_at=observed_at,
        ),
    )
    return found


def _raw_splunk_event(text: str) -> list[tuple[str, RawAlert]]:
    if text.lstrip().startswith("<"):
        return parse_event_xml(text, source_format="splunk")
    return parse_event_text(text, source_format="splunk")


def _fill(raw: RawAlert, computer: object, observed_at: object) -> RawAlert:
    """Values the raw event lacks, taken from the envelope around it."""
    return replace(
        raw,
        computer=raw.computer if raw.computer is not None else computer,
        observed_at=raw.observed_at if raw.observed_at is not None else observed_at,
    )


def from_splunk_hec(doc: dict[str, object]) -> Found:
    """A Splunk HTTP Event Collector event: `{"event": ..., "time": ..., "host": ...}`."""
    event = doc.get("event")
    if isinstance(event, str):
        found = Found()
        for location, raw in _raw_splunk_event(event):
            found.add(location, _fill(raw, computer=doc.get("host"), observed_at=doc.get("time")))
        return found
    row = dict(_object(event, "event"))
    fields = doc.get("fields")
    if isinstance(fields, dict):
        for key, value in fields.items():
            row.setdefault(key, value)
    return from_splunk_row(row, time=doc.get("time"), host=doc.get("host"))


# --- Azure Monitor --------------------------------------------------------------------------


def from_azure_row(row: dict[str, object], fallback_time: object = None) -> RawAlert:
    """A Log Analytics `Event` table row (or the dimensions of a log search alert)."""
    parameters = row.get("ParameterXml")
    data: list[object] = []
    if isinstance(parameters, str):
        data = [unescape(p, {"&quot;": '"', "&apos;": "'"}) for p in _PARAM.findall(parameters)]
    return RawAlert(
        source_format="azure_monitor",
        event_id=row.get("EventID"),
        computer=row.get("Computer"),
        provider=row.get("Source"),
        target=row.get("Target"),
        error_code=_first(row, "ErrorValue", "ErrorCode"),
        message=row.get("RenderedDescription") or None,
        observed_at=row.get("TimeGenerated") or fallback_time,
        data=data,
    )


def _azure_tables(tables: object, found: Found, prefix: str, fallback_time: object) -> None:
    for t, table_value in enumerate(_list(tables, f"{prefix}tables")):
        where = f"{prefix}tables[{t}]"
        table = _object(table_value, where)
        names = []
        for column in _list(table.get("columns"), f"{where}.columns"):
            name = column.get("name") if isinstance(column, dict) else column
            names.append(name if isinstance(name, str) else "")
        for r, row_value in enumerate(_list(table.get("rows"), f"{where}.rows")):
            row = _list(row_value, f"{where}.rows[{r}]")
            if len(row) != len(names):
                raise AlertRejected(
                    f"{where}.rows[{r}]: {len(row)} values for {len(names)} columns; "
                    "expected one value per column",
                    field="tables",
                )
            found.add(
                f"{where}.rows[{r}]",
                from_azure_row(dict(zip(names, row, strict=True)), fallback_time),
            )


def _azure_common(doc: dict[str, object], found: Found) -> None:
    data = _object(doc.get("data"), "data")
    essentials = _object(data.get("essentials"), "data.essentials")
    if essentials.get("monitorCondition") == "Resolved":
        found.skipped += 1
        return
    fired = essentials.get("firedDateTime")
    context = data.get("alertContext")
    before = len(found.items)
    if isinstance(context, dict):
        results = context.get("SearchResults")
        if isinstance(results, dict) and "tables" in results:
            _azure_tables(results["tables"], found, "alertContext.SearchResults.", fired)
        condition = context.get("condition")
        all_of = condition.get("allOf") if isinstance(condition, dict) else None
        for i, criterion in enumerate(all_of if isinstance(all_of, list) else []):
            dimensions = criterion.get("dimensions") if isinstance(criterion, dict) else None
            row = {
                d["name"]: d.get("value")
                for d in (dimensions if isinstance(dimensions, list) else [])
                if isinstance(d, dict) and isinstance(d.get("name"), str)
            }
            if {"EventID", "Computer"} & row.keys():
                found.add(f"alertContext.condition.allOf[{i}]", from_azure_row(row, fired))
    if len(found.items) == before:
        raise AlertRejected(
            f"alertContext: the Azure Monitor alert {shown(essentials.get('alertRule'))} "
            f"(signal {shown(essentials.get('signalType'))}) carries no event data; expected a "
            "log search alert with search results included (alertContext.SearchResults) or "
            "with dimensions EventID, Computer and RenderedDescription (or Target, ErrorValue)",
            field="alertContext",
        )


def _azure_legacy_log_alert(doc: dict[str, object], found: Found) -> None:
    """The log search alert webhook from before the common schema (Log Analytics API
    2018-04-16): `AlertRuleName`, `SearchResult.tables`, `Dimensions`, ..."""
    until = doc.get("SearchIntervalEndtimeUtc")
    before = len(found.items)
    results = doc.get("SearchResult")
    if isinstance(results, dict) and "tables" in results:
        _azure_tables(results["tables"], found, "SearchResult.", until)
    if len(found.items) == before:
        dimensions = doc.get("Dimensions")
        row = {
            d["name"]: d.get("value")
            for d in (dimensions if isinstance(dimensions, list) else [])
            if isinstance(d, dict) and isinstance(d.get("name"), str)
        }
        if "EventID" in row:
            found.add("Dimensions", from_azure_row(row, until))
    if len(found.items) == before:
        raise AlertRejected(
            f"SearchResult: the Azure Monitor log alert {shown(doc.get('AlertRuleName'))} carries "
            "no event rows; expected SearchResult.tables with the Event table's columns "
            "(EventID, Computer, RenderedDescription or ParameterXml), or Dimensions EventID and "
            "Computer (set the alert rule to include the search results)",
            field="SearchResult",
        )


# --- Alertmanager ---------------------------------------------------------------------------


def _alertmanager(doc: dict[str, object], found: Found) -> None:
    for i, value in enumerate(_list(doc.get("alerts"), "alerts")):
        where = f"alerts[{i}]"
        alert = _object(value, where)
        if alert.get("status") == "resolved":
            found.skipped += 1
            continue
        labels = alert.get("labels")
        labels = labels if isinstance(labels, dict) else {}
        annotations = alert.get("annotations")
        annotations = annotations if isinstance(annotations, dict) else {}
        computer = _first(labels, "computer", "hostname", "host")
        instance = labels.get("instance")
        if computer is None and isinstance(instance, str):
            # windows_exporter targets are host:port; the port is not part of the DC's name.
            port = _PORT.search(instance)
            computer = (
                instance[: port.start()] if port and port.end() == len(instance) else instance
            )
        texts = [annotations.get(k) for k in ("description", "message", "summary")]
        found.add(
            where,
            RawAlert(
                source_format="alertmanager",
                event_id=_first(labels, "event_id", "EventID", "event_code"),
                computer=computer,
                target=labels.get("target"),
                error_code=_first(labels, "error_code", "error_value"),
                message="\n".join(t for t in texts if isinstance(t, str)) or None,
                observed_at=alert.get("startsAt"),
            ),
        )


# --- generic --------------------------------------------------------------------------------


def from_generic(doc: dict[str, object]) -> RawAlert:
    """`{"event_id": 1411, "computer": ..., "message": ...}` (or the normalized fields)."""
    computer, reporting_dc = doc.get("computer"), doc.get("reporting_dc")
    if computer is not None and reporting_dc is not None and computer != reporting_dc:
        raise AlertRejected(
            f"reporting_dc: computer {shown(computer)} and reporting_dc {shown(reporting_dc)} "
            "disagree; expected one name",
            field="reporting_dc",
        )
    return RawAlert(
        source_format="generic_json",
        event_id=doc.get("event_id"),
        computer=computer if computer is not None else reporting_dc,
        target=doc.get("target"),
        target_dsa_guid=doc.get("target_dsa_guid"),
        forest=doc.get("forest"),
        error_code=doc.get("error_code"),
        message=doc.get("message"),
        observed_at=doc.get("observed_at"),
    )


# --- recognition ----------------------------------------------------------------------------


def _hits(doc: dict[str, object], sub: Found) -> None:
    hits = doc["hits"]
    if isinstance(hits, dict):
        _from_hits(_list(hits.get("hits"), "hits.hits"), sub, "hits.hits")
    else:
        _from_hits(_list(hits, "hits"), sub, "hits")


def _splunk_results(doc: dict[str, object], sub: Found) -> None:
    for i, row in enumerate(_list(doc["results"], "results")):
        sub.extend(f"results[{i}]", from_splunk_row(_object(row, f"results[{i}]")).items)


# (recognizer, reader) in the order shapes are tried: the first recognizer that matches wins.
_SHAPES: tuple[
    tuple[Callable[[dict[str, object]], bool], Callable[[dict[str, object], Found], None]], ...
] = (
    (lambda d: d.get("schemaId") == COMMON_ALERT_SCHEMA, _azure_common),
    (lambda d: "tables" in d, lambda d, sub: _azure_tables(d["tables"], sub, "", None)),
    (lambda d: "AlertRuleName" in d and "SearchQuery" in d, _azure_legacy_log_alert),
    (lambda d: "alerts" in d, _alertmanager),
    (
        lambda d: "winlog" in d or any(key.startswith("winlog.") for key in d),
        lambda d, sub: sub.add("", from_winlogbeat(d)),
    ),
    (
        lambda d: "_source" in d,
        lambda d, sub: sub.add("_source", from_winlogbeat(_object(d["_source"], "_source"))),
    ),
    (lambda d: "hits" in d, _hits),
    (
        lambda d: isinstance(d.get("result"), dict) and any(k in d for k in _SPLUNK_WEBHOOK_KEYS),
        lambda d, sub: sub.extend("result", from_splunk_row(_object(d["result"], "result")).items),
    ),
    (lambda d: "results" in d, _splunk_results),
    (
        lambda d: "event" in d and any(key in d for key in _HEC_KEYS),
        lambda d, sub: sub.extend("event", from_splunk_hec(d).items),
    ),
    (lambda d: "EventCode" in d, lambda d, sub: sub.extend("", from_splunk_row(d).items)),
    (lambda d: "EventID" in d, lambda d, sub: sub.add("", from_azure_row(d))),
    (lambda d: "event_id" in d, lambda d, sub: sub.add("", from_generic(d))),
)


def collect(doc: object, found: Found, prefix: str = "") -> None:
    """Add the alerts of one JSON document to `found`, recognizing its shape."""
    if not isinstance(doc, dict):
        raise AlertRejected(
            f"{prefix or 'body'}: found {type(doc).__name__} {shown(doc)}; expected a JSON "
            "object (an alert) or a list of them",
            field="body",
        )
    reader = next((read for matches, read in _SHAPES if matches(doc)), None)
    if reader is None:
        keys = ", ".join(sorted(doc)[:8])
        raise AlertRejected(
            f"format: found a JSON object with keys {shown(keys)}; expected a Winlogbeat, "
            'Splunk, Azure Monitor, Alertmanager or generic alert ({"event_id": 1411, '
            '"computer": ..., "message": ...})',
            field="format",
        )
    sub = Found()
    reader(doc, sub)
    found.extend(prefix, sub.items)
    found.skipped += sub.skipped
