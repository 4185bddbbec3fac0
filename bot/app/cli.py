"""The `ad1411` command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
from datetime import datetime
from pathlib import Path

from bot.errors import AlertRejected, ConfigError

EXIT_USAGE = 2


def _setup_logging(level: str = "INFO") -> None:
    from bot.app.logs import setup_logging  # noqa: PLC0415

    setup_logging(level)


def _cmd_serve(args: argparse.Namespace) -> int:
    from bot.app.serve import run_serve  # noqa: PLC0415
    from bot.config import load_settings  # noqa: PLC0415

    settings = load_settings()
    _setup_logging(settings.env.LOG_LEVEL)
    if args.processes > 1:
        from bot.app.serve_group import ServeGroup  # noqa: PLC0415

        return ServeGroup(settings, args.processes).run()
    from bot.app.loop import run_on  # noqa: PLC0415

    run_on(settings.file.serve.event_loop, run_serve(settings, reuse_port=args.reuse_port))
    return 0


def _cmd_worker(args: argparse.Namespace) -> int:
    from bot.app.worker import check_workers, run_worker  # noqa: PLC0415
    from bot.config import load_settings  # noqa: PLC0415

    if args.check:
        settings = load_settings(require_slack=False)
        return asyncio.run(check_workers(settings, this_host_only=args.this_host))
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
        from lab.demo import prepare_lab, run_demo  # noqa: PLC0415
    except ImportError as exc:
        return _lab_missing(exc)

    _setup_logging("WARNING")
    lab_dir = Path(args.lab_dir).resolve()
    if args.prepare:
        return asyncio.run(prepare_lab(lab_dir))
    data_dir = Path(args.data_dir).resolve()
    # The demo's Slack is new each run, so its Redis starts empty too.
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    return asyncio.run(
        run_demo(
            once=args.once,
            data_dir=data_dir,
            lab_dir=lab_dir,
            page_port=args.port,
            simulator_only=args.simulator_only,
        )
    )


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


def _since_ms(value: str | None) -> int | None:
    """--since as epoch milliseconds: ISO 8601 with a zone, or Unix seconds."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.replace(".", "", 1).isdigit():
        return int(float(text) * 1000)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            [
                f"--since: {value[:40]!r} is not a time; expected ISO 8601 (2026-11-30T03:00Z) "
                "or Unix seconds"
            ]
        ) from None
    if moment.tzinfo is None:
        raise ConfigError([f"--since: {value[:40]!r} has no time zone; add Z or +hh:mm"])
    return int(moment.timestamp() * 1000)


def _cmd_output_parse(args: argparse.Namespace) -> int:
    from bot.windows.output import UnrecognizedOutput, WindowsCommandError  # noqa: PLC0415
    from bot.windows.readings import (  # noqa: PLC0415
        KINDS,
        TranscriptTooLarge,
        decode_transcript,
        read_output,
    )
    from bot.windows.repadmin import format_status  # noqa: PLC0415

    command = KINDS[args.kind]
    try:
        data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
        reading = read_output(args.kind, decode_transcript(data))
    except OSError as exc:
        print(f"ad1411: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    except TranscriptTooLarge as exc:
        print(f"ad1411: {args.file}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except UnrecognizedOutput as exc:
        print(f"ad1411: not {command} output: {exc.why}", file=sys.stderr)
        return EXIT_USAGE
    except WindowsCommandError as exc:
        print(
            f"ad1411: {command} printed a failure report, not its output: status "
            f"{format_status(exc.code)}: {exc.message}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    print(json.dumps(reading, indent=2))
    return 0


def _cmd_audit_export(args: argparse.Namespace) -> int:
    from bot.config import load_env  # noqa: PLC0415
    from state.audit import AuditLog, incident_stream  # noqa: PLC0415
    from state.connection import async_client, resolve_redis_url  # noqa: PLC0415
    from state.keys import GLOBAL_AUDIT, parse_incident_id  # noqa: PLC0415

    env = load_env()
    since = _since_ms(args.since)
    stream = GLOBAL_AUDIT
    if args.incident is not None:
        try:
            parse_incident_id(args.incident)
        except ValueError as exc:
            raise ConfigError([f"--incident: {exc}"]) from None
        stream = incident_stream(args.incident.lower())
    incident = args.incident.lower() if args.incident else None

    out = sys.stdout if args.output == "-" else open(args.output, "w", encoding="utf-8")  # noqa: SIM115

    async def export() -> int:
        client = async_client(resolve_redis_url(env.REDIS_URL, env.AD1411_DATA_DIR))
        n = 0
        try:
            async for line in AuditLog(client).export(stream, since_ms=since, incident=incident):
                out.write(line + "\n")
                n += 1
        finally:
            if out is not sys.stdout:
                out.close()
            await client.aclose()
        print(f"ad1411: exported {n} audit entries", file=sys.stderr)
        return 0

    return asyncio.run(export())


def _cmd_audit_verify(args: argparse.Namespace) -> int:
    from bot.config import load_env  # noqa: PLC0415
    from state.audit import AuditLog, incident_stream  # noqa: PLC0415
    from state.connection import async_client, resolve_redis_url  # noqa: PLC0415
    from state.keys import parse_incident_id  # noqa: PLC0415

    env = load_env()
    if args.incident is not None:
        try:
            parse_incident_id(args.incident)
        except ValueError as exc:
            raise ConfigError([f"--incident: {exc}"]) from None

    async def verify() -> int:
        client = async_client(resolve_redis_url(env.REDIS_URL, env.AD1411_DATA_DIR))
        log = AuditLog(client)
        broken = 0
        try:
            streams = (
                [incident_stream(args.incident.lower())] if args.incident else await log.streams()
            )
            for stream in streams:
                check = await log.verify(stream)
                if check.ok:
                    note = " (older entries trimmed)" if check.trimmed else ""
                    print(f"ok      {stream}: {check.entries} entries chained{note}")
                else:
                    broken += 1
                    print(
                        f"BROKEN  {stream}: entry {check.bad_id}: {check.why} "
                        f"({check.entries} entries verified before it)"
                    )
        finally:
            await client.aclose()
        if broken:
            print(
                f"ad1411: {broken} audit stream(s) were altered; keep this output and a copy of "
                "`ad1411 audit export` as evidence, and treat Redis as compromised",
                file=sys.stderr,
            )
            return 1
        return 0

    return asyncio.run(verify())


def _cmd_audit_report(args: argparse.Namespace) -> int:
    from bot.config import load_env  # noqa: PLC0415
    from bot.procedure.model import procedure_from_json  # noqa: PLC0415
    from bot.procedure.report import build_report, report_markdown  # noqa: PLC0415
    from state.audit import AuditLog, incident_stream  # noqa: PLC0415
    from state.connection import async_client, resolve_redis_url  # noqa: PLC0415
    from state.keys import parse_incident_id  # noqa: PLC0415
    from state.procedures import ProcedureStore  # noqa: PLC0415

    env = load_env()
    try:
        parse_incident_id(args.incident)
    except ValueError as exc:
        raise ConfigError([f"INCIDENT_ID: {exc}"]) from None
    incident = args.incident.lower()

    async def report() -> str | None:
        client = async_client(resolve_redis_url(env.REDIS_URL, env.AD1411_DATA_DIR))
        try:
            store = ProcedureStore(client)
            ids = await store.ids_for(incident)
            entries = [
                json.loads(line)
                async for line in AuditLog(client).export(
                    incident_stream(incident), incident=incident
                )
            ]
            parts = []
            for pid in ids:
                stored = await store.load(pid)
                if stored is not None:
                    proc = procedure_from_json(stored.data, stored.version)
                    parts.append(report_markdown(build_report(proc, entries)))
            return "\n".join(parts) if parts else None
        finally:
            await client.aclose()

    text = asyncio.run(report())
    if text is None:
        print(f"ad1411: incident {incident} has no procedure to report on", file=sys.stderr)
        return 1
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8")
    return 0


def _cmd_config_check(args: argparse.Namespace) -> int:
    from bot.config import check_secrets, load_env, load_file_config  # noqa: PLC0415

    problems: list[str] = []
    try:
        env = load_env()
    except ConfigError as exc:
        problems.extend(exc.problems)
        env = None
    if env is not None and env.REDIS_URL:
        from state.connection import redis_url_problem  # noqa: PLC0415

        if (problem := redis_url_problem(env.REDIS_URL)) is not None:
            problems.append(problem)
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
    if args.probe:
        from bot.app.probe import probe, report  # noqa: PLC0415

        results = probe(cfg)
        print(report(results))
        return 0 if all(r.ok for r in results) else 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(
        prog="ad1411", description="AD 1411 Responder: Slack chat-ops for Event ID 1411"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the Slack app, alert webhook and health endpoints")
    serve.add_argument(
        "--processes",
        type=int,
        default=1,
        choices=range(1, 65),
        metavar="N",
        help="N serve processes on one port (SO_REUSEPORT), one per core (default 1)",
    )
    serve.add_argument(
        "--reuse-port",
        action="store_true",
        help="bind with SO_REUSEPORT beside other serve processes (set by --processes)",
    )
    serve.set_defaults(func=_cmd_serve)
    worker = sub.add_parser("worker", help="run step and diagnosis jobs against the DCs")
    worker.add_argument(
        "--check",
        action="store_true",
        help="exit 0 when a worker heartbeat is fresh, 1 otherwise (liveness probe)",
    )
    worker.add_argument(
        "--this-host",
        action="store_true",
        help="with --check: only workers on this host count (a container's own probe)",
    )
    worker.set_defaults(func=_cmd_worker)
    demo = sub.add_parser("demo", help="run everything on embedded defaults (lab peers)")
    demo.add_argument(
        "--once", action="store_true", help="run the incident, Diagnose from the page, and exit"
    )
    demo.add_argument("--data-dir", default="var/demo", help="where embedded Redis keeps data")
    demo.add_argument(
        "--lab-dir", default="var/lab", help="where the Samba lab forest is kept between runs"
    )
    demo.add_argument("--port", type=int, default=8411, help="port of the Slack page (0: any)")
    demo.add_argument(
        "--prepare", action="store_true", help="only provision the Samba lab forest, then exit"
    )
    demo.add_argument(
        "--simulator-only", action="store_true", help="no Samba forest: the DC simulator alone"
    )
    demo.set_defaults(func=_cmd_demo)
    alert = sub.add_parser("alert", help="alert tools").add_subparsers(
        dest="alert_cmd", required=True
    )
    parse = alert.add_parser("parse", help="print the normalized alert of FILE (or - for stdin)")
    parse.add_argument("file")
    parse.set_defaults(func=_cmd_alert_parse)
    from bot.windows.readings import KINDS  # noqa: PLC0415

    output = sub.add_parser("output", help="Windows output tools").add_subparsers(
        dest="output_cmd", required=True
    )
    read = output.add_parser(
        "parse", help="print what the bot reads in saved command output (FILE or - for stdin)"
    )
    read.add_argument("kind", choices=list(KINDS), help="which command printed it")
    read.add_argument("file")
    read.set_defaults(func=_cmd_output_parse)
    audit = sub.add_parser("audit", help="audit tools").add_subparsers(
        dest="audit_cmd", required=True
    )
    export = audit.add_parser("export", help="write the audit stream as JSON lines")
    export.add_argument("-o", "--output", default="-", help="file to write (default stdout)")
    export.add_argument("--incident", help="only this incident's entries (e.g. 3f9a0c1b2e-1)")
    export.add_argument(
        "--since", help="only entries from this time on (ISO 8601 with zone, or Unix seconds)"
    )
    export.set_defaults(func=_cmd_audit_export)
    verify = audit.add_parser(
        "verify", help="check the audit hash chains; name the first edited, removed or moved entry"
    )
    verify.add_argument("--incident", help="only this incident's stream")
    verify.set_defaults(func=_cmd_audit_verify)
    report = audit.add_parser("report", help="the post-incident report of an incident (Markdown)")
    report.add_argument("incident", metavar="INCIDENT_ID")
    report.add_argument("-o", "--output", default="-", help="file to write (default stdout)")
    report.set_defaults(func=_cmd_audit_report)
    config = sub.add_parser("config", help="configuration tools").add_subparsers(
        dest="config_cmd", required=True
    )
    check = config.add_parser("check", help="validate a config file and print every problem")
    check.add_argument("file", nargs="?", help="TOML file (default: AD1411_CONFIG)")
    check.add_argument(
        "--probe",
        action="store_true",
        help="also try each configured authentication (Kerberos login, LDAP bind, WinRM shell) "
        "against each DC; exit 1 when any fails",
    )
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
    except BrokenPipeError:
        # The reader (`| head`) left: no traceback, and none at exit when stdout is flushed.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
