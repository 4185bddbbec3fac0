"""The simulator's WinRM listener as a client sees it over the wire, and its CLI."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from pypsrp.shell import Process, WinRS
from pypsrp.wsman import WSMan

from bot.windows import commands
from bot.windows.commands import NtdsValue
from lab.dcsim.simulator import DcLab
from tests.fixtures_dcsim import *  # noqa: F403
from tests.fixtures_dcsim import DCSIM_PASSWORD, DCSIM_USER, executor_at

pytestmark = pytest.mark.winrm

_CLI = 'import sys; from bot.app.cli import main; sys.exit(main(["lab", "dc", *sys.argv[1:]]))'


def test_unauthenticated_and_unencrypted_requests_are_refused(dcsim_lab: DcLab) -> None:
    dc = dcsim_lab.add_dc("dc1.corp.example.com", user=DCSIM_USER, password=DCSIM_PASSWORD)
    url = f"http://127.0.0.1:{dc.port}/wsman"
    anonymous = requests.post(url, data=b"<x/>", timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"] == "Negotiate"
    assert requests.get(url, timeout=10).status_code in (401, 404)
    assert dc.commands() == []


def test_one_connection_carries_a_whole_command(dcsim_lab: DcLab) -> None:
    dc = dcsim_lab.add_dc("dc1.corp.example.com", user=DCSIM_USER, password=DCSIM_PASSWORD)
    wsman = WSMan(
        "127.0.0.1",
        port=dc.port,
        username=DCSIM_USER,
        password=DCSIM_PASSWORD,
        ssl=False,
        auth="ntlm",
        operation_timeout=5,
        read_timeout=15,
    )
    # NTLM authenticates the connection: if keep-alive broke, the second request would 401.
    with WinRS(wsman, codepage=65001) as shell:
        first = Process(shell, "repadmin.exe", ["/kcc"])
        first.invoke()
        second = Process(shell, "repadmin.exe", ["/kcc"])
        second.invoke()
    wsman.close()
    assert (first.rc, second.rc) == (0, 0)
    assert len(dc.state.kcc_runs) == 2


def test_codepage_437_is_honoured_when_asked(dcsim_lab: DcLab) -> None:
    dc = dcsim_lab.add_dc("dc1.corp.example.com", user=DCSIM_USER, password=DCSIM_PASSWORD)
    wsman = WSMan(
        "127.0.0.1",
        port=dc.port,
        username=DCSIM_USER,
        password=DCSIM_PASSWORD,
        ssl=False,
        auth="ntlm",
        operation_timeout=5,
        read_timeout=15,
    )
    with WinRS(wsman) as shell:
        process = Process(shell, "café.exe", [])
        process.invoke()
    wsman.close()
    assert process.rc == 1
    assert process.stderr.decode("cp437").startswith("'café.exe' is not recognized")


def _start_cli(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _CLI, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    return proc, first


@pytest.mark.parametrize("auth", ["ntlm", "basic"])
def test_lab_dc_cli_serves_until_terminated(auth: str, tmp_path: Path) -> None:
    env = {**os.environ, "AD1411_LAB_PASSWORD": DCSIM_PASSWORD}
    args = ["--host", "dc5.corp.example.com", "--auth", auth, "--user", DCSIM_USER]
    if auth == "basic":
        args += ["--tls-dir", str(tmp_path / "tls")]
    proc, first = _start_cli(args, env)
    try:
        match = re.search(r"listening on (https?)://127\.0\.0\.1:(\d+)/wsman", first)
        assert match, first
        assert DCSIM_PASSWORD not in first
        scheme, port = match.group(1), int(match.group(2))
        ca = tmp_path / "tls" / "ca.pem" if scheme == "https" else None
        ex = executor_at("dc5.corp.example.com", port, scheme=scheme, auth=auth, ca_file=ca)
        spn_fallback = commands.reg_add_dword(NtdsValue.ALLOW_SPN_FALLBACK, 1)
        assert ex.run("dc5.corp.example.com", spn_fallback).exit_code == 0
        query = ex.run("dc5.corp.example.com", commands.reg_query(NtdsValue.ALLOW_SPN_FALLBACK))
        assert "Replicator Allow SPN Fallback    REG_DWORD    0x1" in query.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "stopping" in out


def test_lab_dc_cli_needs_the_password_variable() -> None:
    env = {k: v for k, v in os.environ.items() if k != "AD1411_LAB_PASSWORD"}
    proc = subprocess.run(
        [sys.executable, "-c", _CLI, "--host", "dc5.corp.example.com", "--user", DCSIM_USER],
        capture_output=True,
        check=False,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        timeout=60,
    )
    assert proc.returncode == 2 and "AD1411_LAB_PASSWORD" in proc.stderr
