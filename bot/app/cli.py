"""The `ad1411` command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
from pathlib import Path

from bot.errors import AlertRejected, ConfigError

EXIT_USAGE = 2


def _setup_logging(level: str = "INFO") -> None:
    from bot.app.logs import setup_logging  # noqa: PLC0415

    setup_logging(level)


def _cmd_serve(_: argparse.Namespace) -> int:
    from bot.app.serve import run_serve  # noqa: PLC0415
    from bot.config import load_settings  # noqa: PLC0415

    settings = load_settings()
    _setup_logging(settings.env.LOG_LEVEL)
    asyncio.run(run_serve(settings))
    return 0


def _cmd_worker(args: argparse.Namespace) -> int:
    from bot.app.worker import check_workers, run_worker  # noqa: PLC0415
    from bot.config import load_settings  # noqa: PLC0415

    if args.check:
        return asyncio.run(check_workers(load_settings(require_slack=False)))
    settings = load_settings()
    _setup_logging(settings.env.LOG_LEVEL)
    asyncio.run(run_worker(settings))
    return 0


def _lab_missing(exc: ImportError) -> int:
    print(
        f"ad1411: the lab is not installed ({exc.name or exc}). The demo and `lab dc` run from "
        "a source checkout: `./scripts/demo.sh` (or `pip install -e '.[lab]'` there).",
        file=sys.stderr,
    )
    return EXIT_USAGE


def _cmd_demo(args: argparse.Namespace) -> int:
    try:
        from lab.demo import run_demo  # noqa: PLC0415
    except ImportError as exc:
        return _lab_missing(exc)

    _setup_logging("WARNING")
    data_dir = Path(args.data_dir).resolve()
    # The demo's Slack is new each run, so its Redis starts empty too.
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    return asyncio.run(run_demo(once=args.once, data_dir=data_dir))


def _cmd_alert_parse(args: argparse.Namespace) -> int:
    from bot.alerts.formats import parse_alerts  # noqa: PLC0415

    data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    try:
        alerts = parse_alerts(data)
    except AlertRejected as exc:
        print(f"ad1411: alert rejected: {exc}", file=sys.stderr)
        return EXIT_USAGE
    out = [a.to_json() for a in alerts]
    print(json.dumps(out[0] if len(out) == 1 else out, indent=2, sort_keys=True))
    return 0


def _cmd_audit_export(args: argparse.Namespace) -> int:
    from bot.config import load_env  # noqa: PLC0415
    from state.audit import AuditLog  # noqa: PLC0415
    from state.connection import async_client, resolve_redis_url  # noqa: PLC0415

    env = load_env()

    out = sys.stdout if args.output == "-" else open(args.output, "w", encoding="utf-8")  # noqa: SIM115

    async def export() -> int:
        client = async_client(resolve_redis_url(env.REDIS_URL, env.AD1411_DATA_DIR))
        n = 0
        try:
            async for line in AuditLog(client).export():
                out.write(line + "\n")
                n += 1
        finally:
            if out is not sys.stdout:
                out.close()
            await client.aclose()
        print(f"ad1411: exported {n} audit entries", file=sys.stderr)
        return 0

    return asyncio.run(export())


def _cmd_config_check(args: argparse.Namespace) -> int:
    from bot.config import check_secrets, load_env, load_file_config  # noqa: PLC0415

    problems: list[str] = []
    try:
        env = load_env()
    except ConfigError as exc:
        problems.extend(exc.problems)
        env = None
    path = Path(args.file) if args.file else (env.AD1411_CONFIG if env else None)
    if path is None:
        problems.append("AD1411_CONFIG: not set and no FILE given; expected a TOML config path")
    else:
        try:
            cfg = load_file_config(path)
            problems.extend(check_secrets(cfg))
            if not cfg.slack.responders:
                problems.append("slack.responders: empty; nobody could run a diagnosis or step")
            if not cfg.forests:
                problems.append("forests: none configured; every alert would be refused")
            for i, f in enumerate(cfg.forests):
                if not f.ldap.validate_certificates:
                    print(
                        f"warning: forests.{i}.ldap.validate_certificates is false", file=sys.stderr
                    )
                if not f.winrm.validate_certificates:
                    print(
                        f"warning: forests.{i}.winrm.validate_certificates is false",
                        file=sys.stderr,
                    )
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        for p in problems:
            print(f"error: {p}", file=sys.stderr)
        print(f"ad1411: {len(problems)} configuration problem(s)", file=sys.stderr)
        return 1
    print(f"ad1411: {path} is valid")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(
        prog="ad1411", description="AD 1411 Responder: Slack chat-ops for Event ID 1411"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "serve", help="run the Slack app, alert webhook and health endpoints"
    ).set_defaults(func=_cmd_serve)
    worker = sub.add_parser("worker", help="run step and diagnosis jobs against the DCs")
    worker.add_argument(
        "--check",
        action="store_true",
        help="exit 0 when a worker heartbeat is fresh, 1 otherwise (liveness probe)",
    )
    worker.set_defaults(func=_cmd_worker)
    demo = sub.add_parser("demo", help="run everything on embedded defaults (lab peers)")
    demo.add_argument("--once", action="store_true", help="run the scripted scenario and exit")
    demo.add_argument("--data-dir", default="var/demo", help="where embedded Redis keeps data")
    demo.set_defaults(func=_cmd_demo)
    alert = sub.add_parser("alert", help="alert tools").add_subparsers(
        dest="alert_cmd", required=True
    )
    parse = alert.add_parser("parse", help="print the normalized alert of FILE (or - for stdin)")
    parse.add_argument("file")
    parse.set_defaults(func=_cmd_alert_parse)
    audit = sub.add_parser("audit", help="audit tools").add_subparsers(
        dest="audit_cmd", required=True
    )
    export = audit.add_parser("export", help="write the audit stream as JSON lines")
    export.add_argument("-o", "--output", default="-", help="file to write (default stdout)")
    export.set_defaults(func=_cmd_audit_export)
    config = sub.add_parser("config", help="configuration tools").add_subparsers(
        dest="config_cmd", required=True
    )
    check = config.add_parser("check", help="validate a config file and print every problem")
    check.add_argument("file", nargs="?", help="TOML file (default: AD1411_CONFIG)")
    check.set_defaults(func=_cmd_config_check)
    lab = sub.add_parser("lab", help="lab peers").add_subparsers(dest="lab_cmd", required=True)
    lab.add_parser(
        "dc",
        help="one simulated DC in the foreground (--host FQDN --port N --auth ntlm|basic "
        "--user DOMAIN\\name [--tls-dir DIR]; password from AD1411_LAB_PASSWORD)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:2] == ["lab", "dc"]:
        # The simulated DC has its own parser; hand it everything after `lab dc`.
        try:
            from lab.dcsim.cli import main as dc_main  # noqa: PLC0415
        except ImportError as exc:
            return _lab_missing(exc)
        return dc_main(argv[2:])
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"ad1411: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
