"""The value rules of an Alert: DC names, DSA GUIDs, targets, event IDs, error codes, times."""

from __future__ import annotations

import dataclasses

import pytest

from bot.alerts.formats import MAX_ALERT_BYTES, find_alerts_in_text, parse_alerts
from bot.alerts.model import (
    KNOWN_ERROR_CODES,
    Alert,
    normalize_timestamp,
    parse_event_id,
    shown,
    validate_dsa_guid,
    validate_error_code,
    validate_event_id,
    validate_fqdn,
    validate_target,
)
from bot.errors import AlertRejected

GUID = "5471be24-1fdf-4fed-9074-ec3f1cd2f0fc"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("dc1.corp.example.com", "dc1.corp.example.com"),
        ("DC1.Corp.Example.COM", "dc1.corp.example.com"),
        ("dc1.corp.example.com.", "dc1.corp.example.com"),
        ("xn--dc-1la.corp.example.com", "xn--dc-1la.corp.example.com"),
        ("a-b.c0", "a-b.c0"),
        (("a" * 63 + ".") * 3 + "b" * 61, ("a" * 63 + ".") * 3 + "b" * 61),
    ],
)
def test_fqdn_accepted_and_normalized(raw: str, expected: str) -> None:
    assert validate_fqdn(raw) == expected


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("DC1", "NetBIOS"),
        ("dc1.corp.example.com&calc.exe", "labels"),
        ("dc1;rm -rf /", "labels"),
        ("dc1.corp.example.com|whoami", "labels"),
        ("dc1.corp.example.com\nComputer: x.example.com", "\\x0a"),
        ("dc1.corp.example.com ", "labels"),
        ("dc1.corp.ex\u0430mple.com", "non-ASCII"),  # Cyrillic a
        ("dc1.corp.example.com\u200b", "non-ASCII"),  # zero-width space
        ("dc1\uff0ecorp.example.com", "non-ASCII"),  # fullwidth full stop
        ("-dc1.corp.example.com", "labels"),
        ("dc1-.corp.example.com", "labels"),
        ("dc1..corp.example.com", "labels"),
        ("dc_1.corp.example.com", "labels"),
        ("a" * 64 + ".example.com", "1-63"),
        (("a" * 63 + ".") * 4 + "com", "253"),
        ("10.0.0.1", "IP address"),
        ("", "1 to 253"),
        (".", "1 to 253"),
        ("dc1.corp.example.com..", "labels"),
    ],
)
def test_fqdn_refused_with_reason(raw: str, fragment: str) -> None:
    with pytest.raises(AlertRejected) as refused:
        validate_fqdn(raw, "reporting_dc")
    assert refused.value.field == "reporting_dc"
    assert fragment in str(refused.value)
    assert str(refused.value).isprintable()


@pytest.mark.parametrize("raw", [None, 1411, ["dc1.corp.example.com"], b"dc1.corp.example.com"])
def test_fqdn_must_be_text(raw: object) -> None:
    with pytest.raises(AlertRejected, match="expected a DNS name as text"):
        validate_fqdn(raw, "forest")


@pytest.mark.parametrize(
    "raw",
    [
        GUID,
        GUID.upper(),
        "{" + GUID + "}",
        "{" + GUID.upper() + "}",
        "5471BE24-1fdf-4FED-9074-ec3f1cd2f0fc",
    ],
)
def test_guid_any_case_with_or_without_braces(raw: str) -> None:
    assert validate_dsa_guid(raw) == GUID


@pytest.mark.parametrize(
    "raw",
    [
        GUID.replace("-", ""),
        "{" + GUID,
        GUID + "}",
        "urn:uuid:" + GUID,
        GUID + "0",
        GUID[:-1] + "g",
        " " + GUID,
        "(" + GUID + ")",
        "5471be24-1fdf-4fed-9074-ec3f1cd2f0f\u0441",  # Cyrillic es
        "00000000-0000-0000-0000-000000000000",
        "5471be241-fdf-4fed-9074-ec3f1cd2f0fc",
    ],
)
def test_guid_wrong_shape_refused(raw: str) -> None:
    with pytest.raises(AlertRejected) as refused:
        validate_dsa_guid(raw)
    assert refused.value.field == "target_dsa_guid"


def test_target_splits_into_guid_and_forest() -> None:
    assert validate_target("{" + GUID.upper() + "}._MSDCS.Corp.Example.com") == (
        GUID,
        "corp.example.com",
    )


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ("dc2.corp.example.com", "target"),
        (GUID + "._msdcs.corp", "forest"),
        (GUID + "._msdcs.corp.example.com&net user", "forest"),
        (GUID + "._msdcs.", "forest"),
        ("dc2._msdcs.corp.example.com", "target_dsa_guid"),
        (GUID + ".msdcs.corp.example.com", "target"),
        (GUID + "._msdcs.c\u043erp.example.com", "target"),
    ],
)
def test_target_refused_naming_the_part(raw: str, field: str) -> None:
    with pytest.raises(AlertRejected) as refused:
        validate_target(raw)
    assert refused.value.field == field


@pytest.mark.parametrize(
    ("raw", "number"),
    [
        (1411, 1411),
        ("1411", 1411),
        (" 1411 ", 1411),
        ("0xC0000583", 1411),
        (3221226883, 1411),
        ("4625", 4625),
    ],
)
def test_event_id_forms(raw: object, number: int) -> None:
    assert parse_event_id(raw) == number


@pytest.mark.parametrize(
    "raw", [True, 1411.0, "1411a", "", None, "\uff11\uff14\uff11\uff11", 2**40]
)
def test_event_id_not_a_number(raw: object) -> None:
    with pytest.raises(AlertRejected, match="expected an event ID number"):
        parse_event_id(raw)


def test_other_event_named_as_such() -> None:
    with pytest.raises(AlertRejected, match="event 1234 is not Event ID 1411"):
        validate_event_id("1234")


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (8589, 8589),
        ("8589", 8589),
        ("0x218d", 8589),
        ("-2146893022", 2148074274),
        (2148074274, 2148074274),
        ("0x80090322", 2148074274),
        ("8453", 8453),
        (1396, 1396),
    ],
)
def test_error_code_forms(raw: object, code: int) -> None:
    assert validate_error_code(raw) == code


def test_unknown_error_code_lists_the_accepted_ones() -> None:
    with pytest.raises(AlertRejected) as refused:
        validate_error_code(1722)
    for code in KNOWN_ERROR_CODES:
        assert str(code) in str(refused.value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-11-25T03:12:44Z", "2026-11-25T03:12:44Z"),
        ("2026-11-25T03:12:44.5127349Z", "2026-11-25T03:12:44Z"),
        ("2026-11-25T04:12:44.739266876+01:00", "2026-11-25T03:12:44Z"),
        ("2026-11-24T22:12:44-0500", "2026-11-25T03:12:44Z"),
        ("2026-11-25 03:12:44+00:00", "2026-11-25T03:12:44Z"),
        (1795576364, "2026-11-25T03:12:44Z"),
        (1795576364.9, "2026-11-25T03:12:44Z"),
        ("1795576364.512", "2026-11-25T03:12:44Z"),
        (None, None),
    ],
)
def test_timestamps_normalized_to_utc_seconds(raw: object, expected: str | None) -> None:
    assert normalize_timestamp(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "2026-11-25T03:12:44",
        "11/25/2026 3:12:44 AM",
        "2026-02-30T00:00:00Z",
        "2026-11-25T25:00:00Z",
        float("nan"),
        float("inf"),
        -1,
        True,
        "0001-01-01T00:00:00Z",
        "2026-11-25T03:12:44+24:00",
        "",
    ],
)
def test_bad_timestamps_refused(raw: object) -> None:
    with pytest.raises(AlertRejected) as refused:
        normalize_timestamp(raw)
    assert refused.value.field == "observed_at"


def _alert(**changes: object) -> Alert:
    fields: dict[str, object] = {
        "event_id": 1411,
        "reporting_dc": "DC02.corp.example.com",
        "target_dsa_guid": "{" + GUID.upper() + "}",
        "forest": "Corp.Example.com.",
        "error_code": "8589",
        "observed_at": "2026-11-25T04:12:44+01:00",
        "source_format": "generic_json",
    }
    fields.update(changes)
    return Alert(**fields)  # type: ignore[arg-type]


def test_alert_built_by_hand_is_normalized_and_frozen() -> None:
    alert = _alert()
    assert alert.to_json() == {
        "event_id": 1411,
        "reporting_dc": "dc02.corp.example.com",
        "target_dsa_guid": GUID,
        "forest": "corp.example.com",
        "error_code": 8589,
        "observed_at": "2026-11-25T03:12:44Z",
        "source_format": "generic_json",
    }
    assert alert.correlation_key == ("corp.example.com", GUID)
    assert alert.target == f"{GUID}._msdcs.corp.example.com"
    assert "dc02.corp.example.com" in alert.summary()
    with pytest.raises(dataclasses.FrozenInstanceError):
        alert.reporting_dc = "evil.example.com"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"event_id": 1412}, "event_id"),
        ({"reporting_dc": "dc02"}, "reporting_dc"),
        ({"target_dsa_guid": "not-a-guid"}, "target_dsa_guid"),
        ({"forest": "corp"}, "forest"),
        ({"error_code": 5}, "error_code"),
        ({"observed_at": "yesterday"}, "observed_at"),
        ({"source_format": "email"}, "source_format"),
    ],
)
def test_alert_refuses_any_unvalidated_field(change: dict[str, object], field: str) -> None:
    with pytest.raises(AlertRejected) as refused:
        _alert(**change)
    assert refused.value.field == field


def test_same_target_from_two_dcs_correlates() -> None:
    one = _alert(reporting_dc="dc02.corp.example.com")
    two = _alert(reporting_dc="dc11.emea.corp.example.com", target_dsa_guid=GUID.upper())
    assert one.correlation_key == two.correlation_key
    assert one != two


def test_shown_escapes_and_truncates() -> None:
    text = shown("a\x1b[31mred\u202e" + "x" * 200)
    assert text.startswith('"a\\x1b[31mred\\u202e')
    assert text.endswith('"...')
    assert len(text) <= 86
    assert text.isprintable()


def test_oversized_body_refused_before_parsing() -> None:
    body = b'{"event_id": 1411, "message": "' + b"x" * MAX_ALERT_BYTES + b'"}'
    with pytest.raises(AlertRejected, match="at most 1048576 bytes") as refused:
        parse_alerts(body)
    assert refused.value.field == "body"
    with pytest.raises(AlertRejected, match="at most"):
        parse_alerts(body.decode())
    # Multi-byte characters count as bytes, not characters.
    with pytest.raises(AlertRejected, match="at most"):
        parse_alerts("\u00e9" * (MAX_ALERT_BYTES // 2 + 1))


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"", "empty"),
        (b"   \n", "empty"),
        (b"[]", "empty JSON list"),
        (b"[[1411]]", "expected a JSON object"),
        (b'{"event_id": NaN}', "NaN"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"event_id": 1' + b"0" * 5000 + b"}", "numbers too large"),
        (b"hello team, is prod down?", "no Event ID 1411"),
        ('{"event_id": "\ud800"}'.encode("utf-8", "surrogatepass"), "not valid UTF-8"),
    ],
)
def test_odd_bodies_refused_plainly(body: bytes, fragment: str) -> None:
    with pytest.raises(AlertRejected, match=fragment):
        parse_alerts(body)


PATHOLOGICAL = {
    "one long token around _msdcs": "Event ID: 1411\nComputer: dc1.corp.example.com\n"
    + "a" * 500_000
    + "._msdcs."
    + "b" * 500_000,
    "many targets": "Event ID: 1411\n" + "._msdcs." * 120_000,
    "whitespace after a header": "Computer:" + " " * 1_000_000 + "x",
    "unclosed event elements": "<Event " * 130_000,
    "deep nesting": "<Event>" + "<a>" * 300_000,
    "many event headers": "Log Name: x\nEvent ID: 1411\n" * 34_000,
    "open brackets": "<a|" * 340_000,
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("body", PATHOLOGICAL.values(), ids=PATHOLOGICAL.keys())
def test_near_limit_bodies_are_refused_not_hung(body: str) -> None:
    # Guards against regexes that backtrack on long input (the global timeout would catch a hang).
    with pytest.raises(AlertRejected):
        parse_alerts(body)
    try:
        assert find_alerts_in_text(body) == []
    except AlertRejected as refused:
        assert refused.field in ("reporting_dc", "target", "forest")
