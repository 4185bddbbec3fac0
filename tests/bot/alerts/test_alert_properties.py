"""Property tests: every parser turns any input into valid Alerts or an AlertRejected, nothing else.

Hypothesis budgets are modest on purpose (suite time); `deadline=None` keeps them independent
of machine speed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.alerts.formats import find_alerts_in_text, parse_alerts
from bot.alerts.model import (
    KNOWN_ERROR_CODES,
    SOURCE_FORMATS,
    Alert,
    normalize_timestamp,
    validate_dsa_guid,
    validate_fqdn,
)
from bot.errors import AlertRejected

CORPUS = sorted(
    p
    for p in (Path(__file__).parent / "corpus" / "good").iterdir()
    if not p.name.endswith(".expected.json")
)
FEW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SOME = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

DESCRIPTION = (
    "Active Directory Domain Services failed to construct a mutual authentication service "
    "principal name (SPN) for the following directory service.\n\nDirectory service:\n{target}\n\n"
    "The call was denied. Communication with this directory service might be affected.\n\n"
    "Additional Data\nError value:\n{error} The DS cannot derive a service principal name (SPN)."
)
NASTY = [
    "&",
    ";",
    "|",
    "\n",
    "\r\n",
    "\x00",
    "\u0430",
    "\u202e",
    "\u200b",
    "'",
    '"',
    "<",
    ">",
    "{",
    "}",
    "..",
    "-",
    "_msdcs.",
    "._msdcs.",
    "1411",
    "8589",
    "0x",
    "\\",
    "%",
    "$(calc)",
    " ",
    "\t",
    "\ufeff",
]


def _label() -> st.SearchStrategy[str]:
    return st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)


fqdns = st.builds(
    lambda first, rest, tld: ".".join([first, *rest, tld]),
    _label(),
    st.lists(_label(), max_size=2),
    st.from_regex(r"[a-z][a-z0-9]{1,5}", fullmatch=True),
)
cased = st.sampled_from([str.lower, str.upper, str.title])
guid_texts = st.builds(
    lambda u, upper, braces: ("{%s}" if braces else "%s") % (str(u).upper() if upper else str(u)),
    st.uuids().filter(lambda u: u.int != 0),
    st.booleans(),
    st.booleans(),
)
errors = st.sampled_from(sorted(KNOWN_ERROR_CODES))
times = st.integers(min_value=946684800, max_value=4102444800)


def assert_valid(alert: Alert) -> None:
    """What the rest of the bot relies on, checked independently of how the alert was parsed."""
    assert alert.event_id == 1411
    assert validate_fqdn(alert.reporting_dc) == alert.reporting_dc
    assert re.fullmatch(r"[a-z0-9.-]{3,253}", alert.reporting_dc)
    assert validate_dsa_guid(alert.target_dsa_guid) == alert.target_dsa_guid
    assert re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", alert.target_dsa_guid)
    assert validate_fqdn(alert.forest, "forest") == alert.forest
    assert alert.error_code in KNOWN_ERROR_CODES
    assert alert.observed_at is None or normalize_timestamp(alert.observed_at) == alert.observed_at
    assert alert.source_format in SOURCE_FORMATS


def parse_or_refuse(data: bytes | str) -> list[Alert]:
    try:
        alerts = parse_alerts(data)
    except AlertRejected as refused:
        assert refused.field
        assert str(refused).isprintable()
        return []
    for alert in alerts:
        assert_valid(alert)
    return alerts


# --- one renderer per format: the same event, as each source would send it ------------------


def _iso(seconds: int) -> str:
    return normalize_timestamp(seconds) or ""


def render(fmt: str, *, dc: str, guid: str, forest: str, error: int, seconds: int) -> str:
    target = f"{guid}._msdcs.{forest}"
    message = DESCRIPTION.format(target=target, error=error)
    doc: dict[str, Any]
    if fmt == "event_text":
        return (
            f"Log Name:      Directory Service\nSource:        NTDS Replication\n"
            f"Event ID:      1411\nComputer:      {dc}\nDescription:\n{message}\n"
        )
    if fmt == "event_xml":
        return (
            "<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System>"
            "<Provider Name='Microsoft-Windows-ActiveDirectory_DomainService'/>"
            f"<EventID Qualifiers='49152'>1411</EventID><TimeCreated SystemTime='{_iso(seconds)}'/>"
            f"<Computer>{escape(dc)}</Computer></System><EventData><Data>{escape(target)}</Data>"
            f"<Data>text</Data><Data>{error}</Data></EventData></Event>"
        )
    if fmt == "winlogbeat":
        doc = {
            "@timestamp": _iso(seconds),
            "message": message,
            "winlog": {
                "event_id": "1411",
                "computer_name": dc,
                "provider_name": "Microsoft-Windows-ActiveDirectory_DomainService",
                "event_data": {"param1": target, "param2": "x", "param3": str(error)},
            },
        }
    elif fmt == "splunk":
        doc = {
            "result": {
                "EventCode": "1411",
                "ComputerName": dc,
                "Message": message,
                "_time": str(seconds),
            },
            "sid": "s",
            "search_name": "1411",
        }
    elif fmt == "azure_monitor":
        doc = {
            "tables": [
                {
                    "name": "PrimaryResult",
                    "columns": [
                        {"name": n}
                        for n in ("EventID", "Computer", "TimeGenerated", "RenderedDescription")
                    ],
                    "rows": [[1411, dc, _iso(seconds), message]],
                }
            ]
        }
    elif fmt == "alertmanager":
        doc = {
            "version": "4",
            "alerts": [
                {
                    "status": "firing",
                    "labels": {"event_id": "1411", "instance": f"{dc}:9182"},
                    "annotations": {"description": message},
                    "startsAt": _iso(seconds),
                }
            ],
        }
    else:
        doc = {
            "event_id": 1411,
            "computer": dc,
            "target": target,
            "error_code": error,
            "observed_at": seconds,
        }
    return json.dumps(doc)


@SOME
@given(
    fmt=st.sampled_from(sorted(SOURCE_FORMATS)),
    dc=fqdns,
    case=cased,
    guid=guid_texts,
    forest=fqdns,
    error=errors,
    seconds=times,
)
def test_every_format_round_trips_to_the_same_alert(
    *, fmt: str, dc: str, case: Any, guid: str, forest: str, error: int, seconds: int
) -> None:
    alerts = parse_alerts(
        render(fmt, dc=case(dc), guid=guid, forest=case(forest), error=error, seconds=seconds)
    )
    assert len(alerts) == 1
    alert = alerts[0]
    assert_valid(alert)
    assert (alert.reporting_dc, alert.forest, alert.error_code, alert.source_format) == (
        dc,
        forest,
        error,
        fmt,
    )
    assert alert.target_dsa_guid == guid.strip("{}").lower()
    assert alert.observed_at in (None, _iso(seconds))
    # The normalized form is itself an accepted generic alert with the same facts.
    again = parse_alerts(json.dumps(alert.to_json()))[0]
    assert again.to_json() | {"source_format": fmt} == alert.to_json()


@SOME
@given(
    fmt=st.sampled_from(sorted(SOURCE_FORMATS)),
    dc=fqdns,
    junk=st.sampled_from(NASTY),
    where=st.sampled_from(["dc", "forest", "guid"]),
    at=st.integers(min_value=0, max_value=40),
    guid=guid_texts,
    forest=fqdns,
)
def test_junk_inside_any_field_is_refused_never_cleaned_away(
    *, fmt: str, dc: str, junk: str, where: str, at: int, guid: str, forest: str
) -> None:
    parts = {"dc": dc, "forest": forest, "guid": guid}
    cut = min(at, len(parts[where]))
    parts[where] = parts[where][:cut] + junk + parts[where][cut:]
    body = render(
        fmt,
        dc=parts["dc"],
        guid=parts["guid"],
        forest=parts["forest"],
        error=8589,
        seconds=1795576364,
    )
    for alert in parse_or_refuse(body):
        # Accepted only if the spoiled value is still a valid name as it stands: the parser may
        # drop surrounding whitespace, case and a trailing dot, and never anything else. In free
        # text whitespace ends a name, so a line break inside one leaves a (valid) shorter name.
        def allowed(value: str) -> set[str]:
            pieces = value.split() if junk.isspace() else [value.strip()]
            return {piece.lower().removesuffix(".") for piece in pieces}

        assert alert.reporting_dc in allowed(parts["dc"])
        assert alert.forest in allowed(parts["forest"])
        assert alert.target_dsa_guid in {
            validate_dsa_guid(g) for g in allowed(parts["guid"]) if len(g) in (36, 38)
        }


@FEW
@given(sample=st.sampled_from(CORPUS), data=st.data())
def test_mutated_corpus_samples_give_valid_alerts_or_a_refusal(
    sample: Path, data: st.DataObject
) -> None:
    body = bytearray(sample.read_bytes())
    for _ in range(data.draw(st.integers(min_value=1, max_value=6))):
        at = data.draw(st.integers(min_value=0, max_value=len(body)))
        action = data.draw(st.sampled_from(["insert", "delete", "flip", "duplicate"]))
        if action == "insert":
            body[at:at] = data.draw(st.sampled_from(NASTY)).encode("utf-8")
        elif action == "delete":
            del body[at : at + data.draw(st.integers(min_value=1, max_value=40))]
        elif action == "flip" and at < len(body):
            body[at] ^= data.draw(st.integers(min_value=1, max_value=255))
        else:
            body[at:at] = body[at : at + data.draw(st.integers(min_value=1, max_value=200))]
    parse_or_refuse(bytes(body))


@SOME
@given(st.binary(max_size=3000))
def test_random_bytes_are_refused_or_valid(data: bytes) -> None:
    parse_or_refuse(data)


@SOME
@given(st.text(max_size=3000))
def test_random_text_is_refused_or_valid(text: str) -> None:
    parse_or_refuse(text)


KEYS = [
    "event_id",
    "computer",
    "reporting_dc",
    "message",
    "target",
    "error_code",
    "observed_at",
    "target_dsa_guid",
    "forest",
    "winlog",
    "event_data",
    "computer_name",
    "provider_name",
    "_source",
    "hits",
    "result",
    "sid",
    "results",
    "event",
    "time",
    "host",
    "fields",
    "EventCode",
    "EventID",
    "ComputerName",
    "Computer",
    "Message",
    "_raw",
    "_time",
    "tables",
    "columns",
    "rows",
    "name",
    "schemaId",
    "data",
    "essentials",
    "alertContext",
    "SearchResults",
    "condition",
    "allOf",
    "dimensions",
    "value",
    "alerts",
    "labels",
    "annotations",
    "status",
    "startsAt",
    "instance",
    "ParameterXml",
    "RenderedDescription",
    "monitorCondition",
    "param1",
    "@timestamp",
]
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.sampled_from(
        [
            "1411",
            "8589",
            "dc1.corp.example.com",
            "DC1",
            "firing",
            "resolved",
            "azureMonitorCommonAlertSchema",
            f"{'5471be24-1fdf-4fed-9074-ec3f1cd2f0fc'}._msdcs.corp.example.com",
            "2026-11-25T03:12:44Z",
            "<Param>8589</Param>",
            "<Event><System/></Event>",
            DESCRIPTION.format(
                target="5471be24-1fdf-4fed-9074-ec3f1cd2f0fc._msdcs.c.example.com", error=8589
            ),
        ]
    ),
    st.text(max_size=20),
)
json_values = st.recursive(
    VALUES,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=6)
    ),
    max_leaves=25,
)


@SOME
@given(json_values)
def test_random_json_shapes_are_refused_or_valid(value: object) -> None:
    parse_or_refuse(json.dumps(value))


@SOME
@given(st.text(max_size=2000))
def test_chat_text_never_raises_without_an_event_block(text: str) -> None:
    try:
        alerts = find_alerts_in_text(text)
    except AlertRejected:
        assert "_msdcs." in text.lower().replace("*", "").replace("`", "")
        return
    for alert in alerts:
        assert_valid(alert)


# Chat noise that cannot itself read as a header line or a target (no ':', '=', '_', '.').
noise = st.text(
    alphabet=st.characters(exclude_characters=":=_.\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"),
    max_size=200,
)


@FEW
@given(
    before=noise,
    after=noise,
    dc=fqdns,
    guid=guid_texts,
    forest=fqdns,
)
def test_chat_finds_an_event_block_among_noise(
    before: str, after: str, dc: str, guid: str, forest: str
) -> None:
    block = render("event_text", dc=dc, guid=guid, forest=forest, error=8589, seconds=0)
    alerts = find_alerts_in_text(f"{before}\n{block}\n{after}")
    assert [a.correlation_key for a in alerts] == [(forest, guid.strip("{}").lower())]
