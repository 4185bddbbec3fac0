"""Every sample in corpus/ parses to exactly its expected alerts, or is refused as expected.

good/NAME has good/NAME.expected.json (the list `ad1411 alert parse` would print);
bad/NAME has bad/NAME.expected.json ({"field": ..., "contains": [...]}).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.alerts.formats import parse_alerts
from bot.alerts.model import SOURCE_FORMATS
from bot.errors import AlertRejected

CORPUS = Path(__file__).parent / "corpus"
EXPECTED = ".expected.json"


def _samples(kind: str) -> list[Path]:
    return sorted(p for p in (CORPUS / kind).iterdir() if not p.name.endswith(EXPECTED))


def _expected(sample: Path) -> object:
    return json.loads(sample.with_name(sample.name + EXPECTED).read_text(encoding="utf-8"))


def _expected_alerts(sample: Path) -> list[Any]:
    """A good sample's expected alerts (its expectation file holds a JSON list)."""
    expected = _expected(sample)
    assert isinstance(expected, list)
    return expected


GOOD = _samples("good")
BAD = _samples("bad")


@pytest.mark.parametrize("sample", GOOD, ids=[p.name for p in GOOD])
def test_good_sample_gives_its_expected_alerts(sample: Path) -> None:
    alerts = parse_alerts(sample.read_bytes())
    assert [a.to_json() for a in alerts] == _expected(sample)


@pytest.mark.parametrize("sample", GOOD, ids=[p.name for p in GOOD])
def test_good_sample_parses_the_same_as_text(sample: Path) -> None:
    data = sample.read_bytes()
    text = data.decode("utf-16" if data.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8")
    assert parse_alerts(text) == parse_alerts(data)


@pytest.mark.parametrize("sample", BAD, ids=[p.name for p in BAD])
def test_bad_sample_is_refused_naming_the_field(sample: Path) -> None:
    expected = _expected(sample)
    assert isinstance(expected, dict)
    with pytest.raises(AlertRejected) as refused:
        parse_alerts(sample.read_bytes())
    assert refused.value.field == expected["field"]
    for fragment in expected["contains"]:
        assert fragment in str(refused.value)
    # Messages stay one readable line: no raw control characters from the input.
    assert all(ch.isprintable() for ch in str(refused.value))


def test_corpus_covers_every_source_format_and_is_big_enough() -> None:
    formats = {alert["source_format"] for sample in GOOD for alert in _expected_alerts(sample)}
    assert formats == SOURCE_FORMATS
    assert len(GOOD) >= 25
    assert len(BAD) >= 15


def test_resolved_only_notification_gives_no_alert_and_no_error() -> None:
    sample = CORPUS / "good" / "alertmanager_all_resolved.json"
    assert parse_alerts(sample.read_bytes()) == []
