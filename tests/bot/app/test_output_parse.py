"""`ad1411 output parse KIND FILE|-` as an operator runs it: the reading as JSON and exit 0, or
exit 2 with one line naming the line and what was expected; never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot.app.cli import main

SAMPLES = Path(__file__).parents[1] / "windows" / "outputs"


def _cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "bot.app.cli", "output", "parse", *args],
        input=stdin,
        capture_output=True,
        env={"PATH": "/usr/bin:/bin"},
        timeout=60,
        check=False,
    )


def _with_eol(name: str, eol: str, tmp_path: Path) -> Path:
    text = (SAMPLES / name).read_bytes().decode("utf-8").replace("\r\n", eol)
    path = tmp_path / f"{name}.{'crlf' if eol == chr(13) + chr(10) else 'lf'}"
    path.write_bytes(text.encode("utf-8"))
    return path


def _one_error_line(res: subprocess.CompletedProcess[bytes]) -> str:
    assert res.returncode == 2
    assert res.stdout == b""
    err = res.stderr.decode()
    assert "Traceback" not in err
    assert err.endswith("\n") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("eol", ["\r\n", "\n"], ids=["crlf", "lf"])
def test_a_kerberos_showrepl_file_gives_its_reading(eol: str, tmp_path: Path) -> None:
    res = _cli("showrepl", str(_with_eol("showrepl_kerberos.stdout.txt", eol, tmp_path)))
    assert res.returncode == 0, res.stderr
    reading = json.loads(res.stdout)
    assert reading["dc"] == "CONTOSODC2"
    assert [n["last_result"] for n in reading["neighbors"]] == [-2146893022, -2146893022]
    assert res.stderr == b""


@pytest.mark.parametrize("eol", ["\r\n", "\n"], ids=["crlf", "lf"])
def test_add_success_and_reported_failure_from_stdin(eol: str) -> None:
    added = (
        (SAMPLES / "repadmin_add_success.stdout.txt").read_bytes().replace(b"\r\n", eol.encode())
    )
    res = _cli("add", "-", stdin=added)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {
        "outcome": "added",
        "source": "dc2.corp.example.com",
        "destination": "dc1.corp.example.com",
        "status": 0,
        "message": "",
    }
    exists = (SAMPLES / "repadmin_add_exists.stdout.txt").read_bytes()
    res = _cli("add", "-", stdin=exists.replace(b"\r\n", eol.encode()))
    assert res.returncode == 0
    assert json.loads(res.stdout)["outcome"] == "already_exists"


def test_powershell_utf16_transcript_of_replsummary(tmp_path: Path) -> None:
    text = (SAMPLES / "replsummary_reached_no_dc.stdout.txt").read_bytes().decode()
    path = tmp_path / "replsum.txt"
    path.write_bytes(b"\xff\xfe" + text.encode("utf-16-le"))
    res = _cli("replsummary", str(path))
    assert res.returncode == 0, res.stderr
    reading = json.loads(res.stdout)
    assert (reading["healthy"], reading["reached_no_dc"]) == (False, True)
    assert len(reading["operational_errors"]) == 2


@pytest.mark.parametrize("eol", ["\r\n", "\n"], ids=["crlf", "lf"])
def test_truncated_showrepl_names_the_line(eol: str, tmp_path: Path) -> None:
    res = _cli("showrepl", str(_with_eol("showrepl_truncated.stdout.txt", eol, tmp_path)))
    err = _one_error_line(res)
    assert err.startswith("ad1411: not repadmin /showrepl output: line 19: expected")
    assert "Last success" in err


def test_russian_replsummary_is_refused_as_not_english(tmp_path: Path) -> None:
    res = _cli("replsummary", str(SAMPLES / "replsummary_russian.stdout.txt"))
    err = _one_error_line(res)
    assert "not in English (Cyrillic letters)" in err
    assert "line 1: expected" in err


def test_wrong_kind_missing_file_and_failure_reports(tmp_path: Path) -> None:
    err = _one_error_line(_cli("kcc", str(SAMPLES / "repadmin_add_success.stdout.txt")))
    assert "line 1: expected 'Consistency check on DC successful.'" in err
    err = _one_error_line(_cli("showrepl", str(tmp_path / "missing.txt")))
    assert err.startswith("ad1411: cannot read") and "No such file" in err
    err = _one_error_line(_cli("options", str(SAMPLES / "repadmin_unreachable.stdout.txt")))
    assert "failure report" in err and "1722" in err
    res = _cli("dcdiag", "-", stdin=b"")
    assert res.returncode == 2 and b"Traceback" not in res.stderr
    assert b"invalid choice" in res.stderr


# Every shape the issue names, through the CLI's own entry point (in process: fast enough to
# run each with CRLF and LF): (kind, sample, exit code, what the reading or the error says).
SHAPES = [
    ("add", "repadmin_add_success.stdout.txt", 0, '"outcome": "added"'),
    ("add", "repadmin_add_success_spaced.stdout.txt", 0, '"source": "LONEMEADC.Emea.contoso.com"'),
    ("add", "repadmin_add_exists.stdout.txt", 0, '"outcome": "already_exists"'),
    ("add", "repadmin_add_bad_nc_w2000.stdout.txt", 0, '"status": 8440'),
    ("kcc", "repadmin_kcc_remote.stdout.txt", 0, '"site": "Default-First-Site-Name"'),
    ("kcc", "repadmin_kcc_site_options.stdout.txt", 0, '"site_options": "(None)"'),
    ("showrepl", "showrepl_qna_secondary.stdout.txt", 0, '"last_result": -2146893022'),
    ("showrepl-csv", "showrepl_kerberos.csv.stdout.txt", 0, '"last_result": -2146893022'),
    ("replsummary", "replsummary_empty_tables.stdout.txt", 0, '"healthy": false'),
    ("replsummary", "replsummary_qna_primary.stdout.txt", 0, '"error": -2146893022'),
    ("replsummary", "replsummary_kerberos_unindented.stdout.txt", 0, '"fails": 6'),
    ("options", "repadmin_options_disable_xlate.stdout.txt", 0, '"DISABLE_NTDSCONN_XLATE"'),
    ("reg-query", "reg_not_found.stderr.txt", 0, '"present": false'),
    ("replsummary", "replsummary_russian.stdout.txt", 2, "not in English (Cyrillic letters)"),
    ("add", "repadmin_kcc_remote.stdout.txt", 2, "line 2: expected 'One-way replication"),
    ("kcc", "repadmin_add_success.stdout.txt", 2, "line 1: expected 'Consistency check on"),
    ("showrepl-csv", "showrepl_truncated.stdout.txt", 2, "line 2: expected the 'showrepl_COLUMNS"),
    ("reg-query", "repadmin_add_exists.stdout.txt", 2, "line 1: expected the key line"),
]


@pytest.mark.parametrize("eol", ["\r\n", "\n"], ids=["crlf", "lf"])
@pytest.mark.parametrize("shape", SHAPES, ids=[f"{k}:{n}" for k, n, _, _ in SHAPES])
def test_each_shape_through_the_cli(
    shape: tuple[str, str, int, str], eol: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kind, name, code, says = shape
    path = _with_eol(name, eol, tmp_path)
    assert main(["output", "parse", kind, str(path)]) == code
    captured = capsys.readouterr()
    if code == 0:
        assert says in captured.out and captured.err == ""
        json.loads(captured.out)
    else:
        assert captured.out == ""
        assert says in captured.err and captured.err.count("\n") == 1
