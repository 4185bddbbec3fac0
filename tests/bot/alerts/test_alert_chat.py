"""Finding Event 1411 blocks in Slack messages that other integrations post."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.alerts.formats import find_alerts_in_text
from bot.errors import AlertRejected

GOOD = Path(__file__).parent / "corpus" / "good"
GUID = "5471be24-1fdf-4fed-9074-ec3f1cd2f0fc"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "prod is down, has anyone seen event 1411 before?",
        "Event ID: 1411 again on dc02, looking",
        f"can someone check the {GUID}._msdcs.corp.example.com CNAME?",
        "Computer: dc1\nComputer: dc2\nError value: 5",
        "<Event>not really</Event> and "
        "<Event xmlns='x'><System><EventID>4625</EventID></System></Event>",
        "Active Directory failed to construct a mutual authentication service principal name, why?",
        "<http://dc02.corp.example.com|dc02.corp.example.com> is slow &amp; grumpy",
    ],
)
def test_ordinary_chat_gives_nothing(text: str) -> None:
    assert find_alerts_in_text(text) == []


def test_slack_formatted_integration_message() -> None:
    text = (
        ":rotating_light: *Windows event forwarded by SCOM*\n"
        "```Log Name:      Directory Service\n"
        "Source:        Microsoft-Windows-ActiveDirectory_DomainService\n"
        "Event ID:      1411\n"
        "*Computer:*      <http://DC02.corp.example.com|DC02.corp.example.com>\n"
        "Description:\n"
        "Active Directory Domain Services failed to construct a mutual authentication service "
        "principal name (SPN) for the following directory service.\n\n"
        "Directory service:\n"
        f"<http://{GUID}._msdcs.corp.example.com|{GUID}._msdcs.corp.example.com>\n\n"
        "Additional Data\nError value:\n8589 The DS cannot derive a service principal name```"
    )
    [alert] = find_alerts_in_text(text)
    assert alert.to_json() == {
        "event_id": 1411,
        "reporting_dc": "dc02.corp.example.com",
        "target_dsa_guid": GUID,
        "forest": "corp.example.com",
        "error_code": 8589,
        "observed_at": None,
        "source_format": "event_text",
    }


def test_escaped_event_xml_in_a_message() -> None:
    xml = (GOOD / "wevtutil_single_rendered.xml").read_text(encoding="utf-8")
    escaped = xml.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    [alert] = find_alerts_in_text(f"forwarded from dc02:\n{escaped}\nplease have a look")
    assert alert.source_format == "event_xml"
    assert alert.reporting_dc == "dc02.corp.example.com"
    assert alert.observed_at == "2026-11-25T03:12:44Z"


def test_two_pasted_events_give_two_alerts() -> None:
    text = (GOOD / "two_events_pasted.txt").read_text(encoding="utf-8")
    alerts = find_alerts_in_text(text)
    assert [a.reporting_dc for a in alerts] == [
        "dc02.corp.example.com",
        "dc11.emea.corp.example.com",
    ]
    assert len({a.correlation_key for a in alerts}) == 1


def test_a_real_1411_block_that_is_malformed_says_why() -> None:
    text = (GOOD / "kb938704_symptoms_block.txt").read_text(encoding="utf-8")
    with pytest.raises(AlertRejected) as refused:
        find_alerts_in_text(text.replace("Computer: DC01.corp.example.com", "Computer: DC01"))
    assert refused.value.field == "reporting_dc"
    assert "NetBIOS" in str(refused.value)


def test_injection_in_a_chat_block_is_refused() -> None:
    text = (GOOD / "kb938704_symptoms_block.txt").read_text(encoding="utf-8")
    with pytest.raises(AlertRejected) as refused:
        find_alerts_in_text(
            text.replace(".corp.example.com\n\nThe call", ".corp.example.com&calc\n\nThe call")
        )
    assert refused.value.field == "forest"


def test_unpaired_surrogates_in_chat_are_not_an_error() -> None:
    assert find_alerts_in_text("odd \ud800 text from a bridge") == []
