"""The readings `ad1411 output parse` prints: one per kind, the contract's field names, for
every sample in its real shape with CRLF and with LF line ends, and refusals that name the line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.windows.output import UnrecognizedOutput, WindowsCommandError
from bot.windows.readings import (
    KINDS,
    MAX_TRANSCRIPT_BYTES,
    TranscriptTooLarge,
    decode_transcript,
    read_output,
)

SAMPLES = Path(__file__).parent / "outputs"
NEIGHBOR_FIELDS = {
    "naming_context",
    "source",
    "source_site",
    "last_result",
    "consecutive_failures",
    "last_attempt",
    "last_success",
}
ROW_FIELDS = {"dc", "largest_delta_seconds", "fails", "total", "error"}


def sample(name: str, eol: str) -> str:
    return (SAMPLES / name).read_bytes().decode("utf-8").replace("\r\n", eol)


EOLS = pytest.mark.parametrize("eol", ["\r\n", "\n"], ids=["crlf", "lf"])

# (kind, sample) pairs every one of which must give a reading.
GOOD = [
    ("showrepl", "showrepl_healthy.stdout.txt"),
    ("showrepl", "showrepl_8589.stdout.txt"),
    ("showrepl", "showrepl_kerberos.stdout.txt"),
    ("showrepl", "showrepl_new_link.stdout.txt"),
    ("showrepl", "showrepl_no_partners.stdout.txt"),
    ("showrepl-csv", "showrepl.csv.stdout.txt"),
    ("showrepl-csv", "showrepl_kerberos.csv.stdout.txt"),
    ("replsummary", "replsummary_healthy.stdout.txt"),
    ("replsummary", "replsummary_errors.stdout.txt"),
    ("replsummary", "replsummary_empty_tables.stdout.txt"),
    ("replsummary", "replsummary_reached_no_dc.stdout.txt"),
    ("replsummary", "replsummary_kerberos_unindented.stdout.txt"),
    ("replsummary", "replsummary_qna_primary.stdout.txt"),
    ("replsummary", "replsummary_qna_secondary.stdout.txt"),
    ("showrepl", "showrepl_qna_secondary.stdout.txt"),
    ("options", "repadmin_options_read.stdout.txt"),
    ("options", "repadmin_options_disable_xlate.stdout.txt"),
    ("options", "repadmin_options_enable_xlate.stdout.txt"),
    ("options", "repadmin_options_to_none.stdout.txt"),
    ("add", "repadmin_add_success.stdout.txt"),
    ("add", "repadmin_add_success_spaced.stdout.txt"),
    ("add", "repadmin_add_exists.stdout.txt"),
    ("add", "repadmin_add_bad_nc.stdout.txt"),
    ("add", "repadmin_add_bad_nc_w2000.stdout.txt"),
    ("add", "repadmin_unreachable.stdout.txt"),
    ("kcc", "repadmin_kcc_local.stdout.txt"),
    ("kcc", "repadmin_kcc_remote.stdout.txt"),
    ("kcc", "repadmin_kcc_site_options.stdout.txt"),
    ("kcc", "repadmin_kcc_w2003.stdout.txt"),
    ("kcc", "repadmin_kcc_denied.stdout.txt"),
    ("reg-query", "reg_query_repsto.stdout.txt"),
    ("reg-query", "reg_query_spn_fallback.stdout.txt"),
    ("reg-query", "reg_not_found.stderr.txt"),
]
# (kind, sample, line the refusal names or None)
BAD = [
    ("showrepl", "showrepl_truncated.stdout.txt", 19),
    ("showrepl", "replsummary_healthy.stdout.txt", 1),
    ("showrepl-csv", "showrepl_healthy.stdout.txt", 2),
    ("replsummary", "replsummary_russian.stdout.txt", 1),
    ("replsummary", "showrepl.csv.stdout.txt", 1),
    ("options", "repadmin_kcc_local.stdout.txt", 2),
    ("add", "repadmin_kcc_local.stdout.txt", 2),
    ("kcc", "repadmin_add_success.stdout.txt", 1),
    ("reg-query", "reg_success.stdout.txt", 1),
]


@EOLS
@pytest.mark.parametrize(("kind", "name"), GOOD, ids=[f"{k}:{n}" for k, n in GOOD])
def test_every_sample_gives_a_reading_with_the_contract_fields(
    kind: str, name: str, eol: str
) -> None:
    reading = read_output(kind, sample(name, eol))
    if kind in ("showrepl", "showrepl-csv"):
        assert {"dc", "neighbors"} <= reading.keys()
        assert all(n.keys() >= NEIGHBOR_FIELDS for n in reading["neighbors"])
    elif kind == "replsummary":
        assert {"healthy", "sources", "destinations", "operational_errors"} <= reading.keys()
        assert all(r.keys() >= ROW_FIELDS for r in reading["sources"] + reading["destinations"])
    elif kind == "options":
        assert set(reading) == {"current", "new"}
    elif kind == "add":
        assert {"outcome", "source", "destination", "status"} <= reading.keys()
        assert reading["outcome"] in ("added", "already_exists", "failed")
    elif kind == "kcc":
        assert {"outcome", "dc"} <= reading.keys()
        assert reading["outcome"] in ("ok", "failed")
    else:
        assert {"present", "name", "type", "data"} <= reading.keys()
    assert reading == read_output(kind, sample(name, "\r\n"))


@EOLS
@pytest.mark.parametrize(("kind", "name", "line"), BAD, ids=[f"{k}:{n}" for k, n, _ in BAD])
def test_unrecognized_output_names_the_line_and_what_was_expected(
    kind: str, name: str, line: int | None, eol: str
) -> None:
    with pytest.raises(UnrecognizedOutput) as refused:
        read_output(kind, sample(name, eol))
    assert refused.value.line == line
    assert refused.value.expected
    assert f"line {line}: expected" in refused.value.why


def test_showrepl_reading_of_a_kerberos_failure() -> None:
    reading = read_output("showrepl", sample("showrepl_kerberos.stdout.txt", "\r\n"))
    assert reading["dc"] == "CONTOSODC2"
    first = reading["neighbors"][0]
    assert first == {
        "naming_context": "DC=contoso,DC=com",
        "source": "CONTOSODC1",
        "source_site": "Default-First-Site-Name",
        "source_dsa_guid": "74fbe06c-932c-46b5-831b-af9e31f496b2",
        "last_result": -2146893022,
        "result_message": "The target principal name is incorrect.",
        "consecutive_failures": 3,
        "last_attempt": "2019-11-16T16:48:35",
        "last_success": "2019-11-16T14:48:34",
    }
    never = read_output("showrepl", sample("showrepl_8589.stdout.txt", "\n"))["neighbors"][1]
    assert (never["last_result"], never["last_success"]) == (8589, None)
    fresh = read_output("showrepl", sample("showrepl_new_link.stdout.txt", "\n"))["neighbors"][0]
    assert (fresh["last_result"], fresh["last_attempt"], fresh["last_success"]) == (0, None, None)


def test_csv_reading_takes_the_later_time_as_the_last_attempt() -> None:
    reading = read_output("showrepl-csv", sample("showrepl.csv.stdout.txt", "\r\n"))
    assert reading["dc"] == "DC1"
    good, bad = reading["neighbors"]
    assert (good["last_result"], good["last_attempt"]) == (0, "2024-06-11T15:52:38")
    assert (bad["last_result"], bad["consecutive_failures"]) == (8589, 1700)
    assert (bad["last_attempt"], bad["last_success"]) == ("2024-06-11T10:44:16", None)


def test_replsummary_readings() -> None:
    errors = read_output("replsummary", sample("replsummary_errors.stdout.txt", "\n"))
    assert errors["healthy"] is False
    assert errors["operational_errors"] == [{"code": 58, "dc": "dc3.corp.example.com"}]
    hou = errors["sources"][2]
    assert (hou["dc"], hou["largest_delta_seconds"], hou["over_60_days"], hou["error"]) == (
        "HOUDC01",
        None,
        True,
        8589,
    )
    assert errors["destinations"][0]["largest_delta_seconds"] == 3723
    empty = read_output("replsummary", sample("replsummary_empty_tables.stdout.txt", "\n"))
    assert (empty["healthy"], empty["reached_no_dc"], empty["sources"]) == (False, True, [])
    healthy = read_output("replsummary", sample("replsummary_healthy.stdout.txt", "\r\n"))
    assert healthy["healthy"] is True


def test_options_add_kcc_and_reg_readings() -> None:
    def read(kind: str, name: str) -> dict[str, Any]:
        return read_output(kind, sample(name, "\n"))

    assert read("options", "repadmin_options_disable_xlate.stdout.txt") == {
        "current": ["IS_GC"],
        "new": ["IS_GC", "DISABLE_NTDSCONN_XLATE"],
    }
    assert read("options", "repadmin_options_read.stdout.txt")["new"] is None
    assert read("add", "repadmin_add_success.stdout.txt") == {
        "outcome": "added",
        "source": "dc2.corp.example.com",
        "destination": "dc1.corp.example.com",
        "status": 0,
        "message": "",
    }
    exists = read("add", "repadmin_add_exists.stdout.txt")
    assert (exists["outcome"], exists["status"], exists["source"]) == ("already_exists", 8441, None)
    failed = read("add", "repadmin_add_bad_nc_w2000.stdout.txt")
    assert (failed["outcome"], failed["status"]) == ("failed", 8440)
    kcc = read("kcc", "repadmin_kcc_remote.stdout.txt")
    assert (kcc["outcome"], kcc["dc"], kcc["site"]) == (
        "ok",
        "dc2.corp.example.com",
        "Default-First-Site-Name",
    )
    denied = read("kcc", "repadmin_kcc_denied.stdout.txt")
    assert (denied["outcome"], denied["dc"], denied["status"]) == (
        "failed",
        "dc2.corp.example.com",
        8453,
    )
    value = read("reg-query", "reg_query_repsto.stdout.txt")
    assert value["present"] is True
    assert (value["name"], value["type"], value["data"]) == (
        "RepsTo Failure Time (sec)",
        "REG_DWORD",
        60,
    )
    assert read("reg-query", "reg_not_found.stderr.txt") == {
        "present": False,
        "name": None,
        "type": None,
        "data": None,
        "key": None,
    }


def test_listing_kinds_refuse_a_failure_report() -> None:
    for kind in ("showrepl", "showrepl-csv", "replsummary", "options"):
        with pytest.raises(WindowsCommandError) as reported:
            read_output(kind, sample("repadmin_unreachable.stdout.txt", "\r\n"))
        assert reported.value.code == 1722


def test_transcripts_decode_as_windows_saves_them() -> None:
    text = "Consistency check on dc1 successful.\r\n"
    assert decode_transcript(text.encode("utf-8")) == text
    assert decode_transcript(b"\xef\xbb\xbf" + text.encode()) == text
    assert decode_transcript(b"\xff\xfe" + text.encode("utf-16-le")) == text
    assert decode_transcript(b"\xfe\xff" + text.encode("utf-16-be")) == text
    # cmd.exe's `>` writes the OEM code page: a Russian DC's text stays Cyrillic-looking junk.
    oem = decode_transcript("Проверка".encode("cp866"))
    assert oem and not oem.isascii()
    with pytest.raises(TranscriptTooLarge):
        decode_transcript(b"x" * (MAX_TRANSCRIPT_BYTES + 1))
    assert set(KINDS) == {
        "showrepl",
        "showrepl-csv",
        "replsummary",
        "options",
        "add",
        "kcc",
        "reg-query",
    }
