"""`ad1411 lab dc`: one simulated DC in the foreground, for trying commands by hand."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path
from types import FrameType

from lab.dcsim.simulator import DcLab, RestartTiming

PASSWORD_VARIABLE = "AD1411_LAB_PASSWORD"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ad1411 lab dc",
        description=(
            "Run one simulated domain controller (WinRM on 127.0.0.1) until interrupted. "
            f"The account's password is read from {PASSWORD_VARIABLE}."
        ),
    )
    parser.add_argument("--host", required=True, help="the DC's FQDN, e.g. dc1.corp.example.com")
    parser.add_argument("--port", type=int, default=0, help="TCP port (0: any free port)")
    parser.add_argument("--auth", choices=["ntlm", "basic"], default="ntlm")
    parser.add_argument("--user", required=True, help="DOMAIN\\name the DC accepts")
    parser.add_argument(
        "--tls-dir",
        type=Path,
        default=None,
        help="serve HTTPS with a lab CA and certificate written here (required for basic)",
    )
    parser.add_argument(
        "--restart-downtime",
        type=float,
        default=20.0,
        help="seconds the DC stays unreachable after `shutdown /r` (default 20)",
    )
    return parser


def main(argv: list[str]) -> int:
    """Serve until SIGINT/SIGTERM; 2 on bad arguments, 1 when the port cannot be opened."""
    args = _parser().parse_args(argv)
    password = os.environ.get(PASSWORD_VARIABLE, "")
    if not password:
        print(f"error: set {PASSWORD_VARIABLE} to the lab account's password", file=sys.stderr)
        return 2
    if args.auth == "basic" and args.tls_dir is None:
        print(
            "error: --auth basic needs --tls-dir (Basic is only served over HTTPS)", file=sys.stderr
        )
        return 2
    host = args.host.lower().rstrip(".")
    if "." not in host:
        print(
            "error: --host must be a fully qualified name such as dc1.corp.example.com",
            file=sys.stderr,
        )
        return 2
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    work_dir = Path(tempfile.mkdtemp(prefix="ad1411-lab-dc-"))
    try:
        return _serve(args, host, password, work_dir, stop)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def _serve(
    args: argparse.Namespace, host: str, password: str, work_dir: Path, stop: threading.Event
) -> int:
    with DcLab(host.split(".", 1)[1], work_dir, tls_dir=args.tls_dir) as lab:
        try:
            dc = lab.add_dc(
                host,
                auth=args.auth,
                user=args.user,
                password=password,
                https=args.tls_dir is not None,
                port=args.port,
                restart=RestartTiming(downtime_seconds=args.restart_downtime),
            )
        except (OSError, ValueError) as exc:
            print(f"error: cannot start the simulated DC: {exc}", file=sys.stderr)
            return 1
        print(
            f"simulated DC {dc.fqdn} listening on {dc.scheme}://127.0.0.1:{dc.port}/wsman "
            f"(auth {args.auth}, user {args.user})",
            flush=True,
        )
        if dc.ca_file is not None:
            print(f"trust this CA to validate its certificate: {dc.ca_file}", flush=True)
        print(f"directory port (TCP probe): 127.0.0.1:{dc.directory_port}", flush=True)
        stop.wait()
        print("stopping", flush=True)
    return 0
