"""Pasted repadmin output (pure): what is read, which links involve the incident's target, and
reasons that never quote the pasted text."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.windows.pasted import (
    REPLSUMMARY,
    SHOWREPL,
    SHOWREPL_CSV,
    IncidentTarget,
    NotRecognized,
    kind_of,
    pasted_text,
    read_pasted,
)
from handlers.render.paste import MAX_LINKS_SHOWN, not_recognized_text, pasted_reading_text
from handlers.render.text import SECTION_TEXT_LIMIT

SAMPLES = Path(__file__).parent / "outputs"
HOUDC01_GUID = "3dab7f9b-92e7-4391-b8db-71df532c1493"


def sample(name: str) -> str:
    return (SAMPLES / name).read_text(encoding="utf-8")


def test_slack_formatting_around_the_output_is_taken_off() -> None:
    message = (
        "<@U0BOT0001> from LIVDC01:\n```C:\\Users\\admin&gt;repadmin /showrepl\n"
        + sample("showrepl_8589.stdout.txt")
        + "```\nthanks"
    )
    text = pasted_text(message)
    assert text.startswith("Repadmin: running command /showrepl")
    assert "thanks" not in text and "```" not in text
    assert kind_of(text) == SHOWREPL
    assert kind_of(sample("showrepl.csv.stdout.txt")) == SHOWREPL_CSV
    assert kind_of(sample("replsummary_errors.stdout.txt")) == REPLSUMMARY
    assert kind_of("all good here") is None


def test_showrepl_failures_involving_the_target_by_guid() -> None:
    reading = read_pasted(sample("showrepl_8589.stdout.txt"), IncidentTarget(HOUDC01_GUID))
    assert (reading.command, reading.dcs, reading.links) == (SHOWREPL, ("LIVDC01",), 3)
    assert [(f.source, f.code, f.involves_target) for f in reading.failing] == [
        ("Houston\\HOUDC01", 8589, True),
        ("Charlotte\\ROOTDC1", 1256, False),
    ]
    assert reading.failing[0].words.startswith("cannot derive the SPN")
    assert reading.target_failing == reading.failing[:1]


def test_showrepl_of_several_dcs_and_a_target_known_by_name() -> None:
    both = sample("showrepl_8589.stdout.txt") + sample("showrepl_kerberos.stdout.txt")
    target = IncidentTarget("00000000-0000-0000-0000-000000000001", "contosodc1.contoso.com")
    reading = read_pasted(both, target)
    assert reading.dcs == ("LIVDC01", "CONTOSODC2")
    assert reading.links == 5
    involved = [(f.destination, f.code) for f in reading.target_failing]
    assert involved == [("CONTOSODC2", -2146893022), ("CONTOSODC2", -2146893022)]


def test_csv_and_replsummary_match_the_target_by_name() -> None:
    target = IncidentTarget("00000000-0000-0000-0000-000000000001", "houdc01.corp.example.com")
    csv = read_pasted(sample("showrepl.csv.stdout.txt"), target)
    assert [(f.source, f.code, f.involves_target) for f in csv.failing] == [
        ("Houston\\HOUDC01", 8589, True)
    ]
    summary = read_pasted(sample("replsummary_errors.stdout.txt"), target)
    assert [(f.source or f.destination, f.involves_target) for f in summary.failing] == [
        ("DC02", False),
        ("HOUDC01", True),
        ("DC01", False),
        ("LIVDC01", False),
    ]
    assert summary.unreachable == ((58, "dc3.corp.example.com"),)
    empty = read_pasted(sample("replsummary_empty_tables.stdout.txt"), target)
    assert empty.reached_no_dc and not empty.failing
    assert "*not* an all-clear" in pasted_reading_text(empty, target)


def test_reasons_say_the_line_and_what_was_expected() -> None:
    with pytest.raises(NotRecognized) as refused:
        read_pasted(sample("showrepl_truncated.stdout.txt"), IncidentTarget(HOUDC01_GUID))
    assert refused.value.reason == (
        "it looks like `repadmin /showrepl` output but at line 19 of the output it expected "
        "'        Last success @ TIME.' after a failed attempt"
    )
    with pytest.raises(NotRecognized, match=r"not in English \(Cyrillic letters\)"):
        read_pasted(sample("replsummary_russian.stdout.txt"), IncidentTarget(HOUDC01_GUID))
    with pytest.raises(NotRecognized, match="failure instead of its listing: status 1722"):
        read_pasted(
            "Repadmin: running command /showrepl against full DC dc3\n"
            + sample("repadmin_unreachable.stdout.txt"),
            IncidentTarget(HOUDC01_GUID),
        )


@given(st.text(min_size=1, max_size=40).filter(lambda s: s.strip() and "\n" not in s))
def test_a_reason_never_quotes_what_was_pasted(secret: str) -> None:
    marker = f"zq{abs(hash(secret)) % 10**9}zq"
    for base in ("showrepl_8589.stdout.txt", "showrepl.csv.stdout.txt"):
        text = sample(base)
        lines = text.splitlines()
        lines[len(lines) // 2] = f"{marker} {secret}"
        try:
            read_pasted("\n".join(lines), IncidentTarget(HOUDC01_GUID))
        except NotRecognized as exc:
            assert marker not in exc.reason
            assert marker not in not_recognized_text(exc.reason)


def test_the_reply_is_bounded_and_escaped() -> None:
    block = sample("showrepl_8589.stdout.txt")
    many = "".join(block.replace("LIVDC01", f"LIV<{i}>") for i in range(MAX_LINKS_SHOWN * 2))
    reading = read_pasted(many, IncidentTarget(HOUDC01_GUID))
    said = pasted_reading_text(reading, IncidentTarget(HOUDC01_GUID, "houdc01.corp.example.com"))
    assert len(reading.failing) == MAX_LINKS_SHOWN * 4
    assert f"… and {MAX_LINKS_SHOWN * 3} more failing." in said
    assert "<" not in said.replace("&lt;", "")
    assert len(said) < SECTION_TEXT_LIMIT
    assert said.endswith("involve the incident's target DC (houdc01.corp.example.com).")
