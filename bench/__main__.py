"""Every benchmark, each several times, side by side: `python -m bench`.

Runs the procedure, ack latency, alert storm and diagnosis benchmarks `--repeats` times each
(baselines measured in the same repeat), then writes the results part of docs/benchmarks.md:
machine, versions, date and load, each figure as median and spread with its ratio to its
baseline, and whether each target of the issue's table is met. The hand-written notes of the
doc (what was tried, what would close a gap) are kept as they are.

The diagnosis needs root (it provisions the Samba lab); without root it is reported as not run.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.results import Measure, RunResult
from bench.targets import TARGETS, Summary

BEGIN = "<!-- python -m bench: results begin -->"
END = "<!-- python -m bench: results end -->"
DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
PACKAGES = ("slack-bolt", "slack-sdk", "aiohttp", "redis", "ldap3", "pydantic", "uvloop")


@dataclass
class Outcome:
    """What one benchmark gave over all repeats."""

    name: str
    command: str
    results: list[RunResult] = field(default_factory=list)
    seconds: float = 0.0
    skipped: str = ""


def _procedure(args: argparse.Namespace) -> list[RunResult]:
    from bench import bench_procedure  # noqa: PLC0415

    opts = bench_procedure.parse(["--procedures", str(args.procedures)])
    return [bench_procedure.run(opts) for _ in range(args.repeats)]


def _clicks(args: argparse.Namespace) -> list[RunResult]:
    from bench import bench_clicks  # noqa: PLC0415

    return [bench_clicks.run() for _ in range(args.repeats)]


def _ack(args: argparse.Namespace) -> list[RunResult]:
    from bench import bench_ack_latency  # noqa: PLC0415

    runs = []
    for _ in range(args.repeats):
        for n in sorted({1, args.processes}):
            opts = bench_ack_latency.parse(["--requests", str(args.clicks), "--processes", str(n)])
            runs.append(bench_ack_latency.run(opts))
    return runs


def _alerts(args: argparse.Namespace) -> list[RunResult]:
    from bench import bench_alert_storm  # noqa: PLC0415

    runs = []
    for _ in range(args.repeats):
        for n in sorted({1, args.processes}):
            opts = bench_alert_storm.parse(["--alerts", str(args.alerts), "--processes", str(n)])
            runs.append(bench_alert_storm.run(opts))
    return runs


def _diagnosis(args: argparse.Namespace) -> list[RunResult]:
    from bench import bench_diagnosis  # noqa: PLC0415

    argv = ["--first-address", args.lab_address, "--runs", str(args.diagnosis_runs)]
    if args.lab_dir:
        argv += ["--workdir", str(args.lab_dir)]
    return bench_diagnosis.run(bench_diagnosis.parse(argv), repeats=args.repeats)


BENCHES: dict[str, tuple[str, Callable[[argparse.Namespace], list[RunResult]]]] = {
    "procedure": ("python -m bench.bench_procedure", _procedure),
    "clicks": ("python -m bench.bench_clicks", _clicks),
    "ack": ("python -m bench.bench_ack_latency", _ack),
    "alerts": ("python -m bench.bench_alert_storm", _alerts),
    "diagnosis": ("python -m bench.bench_diagnosis (root)", _diagnosis),
}
TITLES = {
    "procedure": "Procedure transitions in Redis",
    "clicks": "Redis round trips of a procedure click through serve",
    "ack": "Ack latency of a button click",
    "alerts": "Alert storm",
    "diagnosis": "Diagnosis on a large forest",
}


def _run(name: str, args: argparse.Namespace) -> Outcome:
    command, bench = BENCHES[name]
    outcome = Outcome(name, command)
    if name == "diagnosis" and os.geteuid() != 0:
        outcome.skipped = "not run: the diagnosis benchmark needs root (it provisions Samba)"
        return outcome
    start = time.monotonic()
    print(f"bench: {name} x{args.repeats} ...", file=sys.stderr, flush=True)
    outcome.results = bench(args)
    outcome.seconds = time.monotonic() - start
    print(f"bench: {name} done in {outcome.seconds:.0f} s", file=sys.stderr, flush=True)
    return outcome


# -- the machine ------------------------------------------------------------------------


def _first_line(cmd: list[str]) -> str:
    if shutil.which(cmd[0]) is None:
        return "not installed"
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else ""


def _cpu() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    model = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    return model.group(1).strip() if model else "unknown"


def _memory_gib() -> str:
    try:
        kb = int(re.findall(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())[0])
    except (OSError, IndexError):
        return "unknown"
    return f"{kb / 1024 / 1024:.0f} GiB"


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _redis_version() -> str:
    from state.redis_server import find_redis_server  # noqa: PLC0415

    binary = find_redis_server()
    line = _first_line([binary.path, "--version"])
    found = re.search(r"v=(\S+)", line)
    return f"{found.group(1) if found else line} ({binary.source})"


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def _commit() -> str:
    return _first_line(["git", "-C", str(DOC.parent.parent), "rev-parse", "--short", "HEAD"])


def machine(load_before: str, load_after: str) -> list[str]:
    """The machine and versions section."""
    return [
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; commit {_commit()}.",
        f"- Machine: {os.cpu_count()} cores ({_cpu()}), {_memory_gib()}, "
        f"{platform.system()} {platform.release()}.",
        f"- Load average (1/5/15 min) before: {load_before}; after: {load_after}. The machine "
        "is shared with other engineers' test suites: a load above 2 means the figures "
        "include queueing behind work that is not ours.",
        f"- Python {platform.python_version()}; "
        + ", ".join(f"{p} {_version(p)}" for p in PACKAGES)
        + f"; redis-server {_redis_version()}; "
        f"{_first_line(['redis-benchmark', '--version'])}; "
        f"Samba {_first_line(['samba', '--version']).removeprefix('Version ')}.",
    ]


# -- the report -------------------------------------------------------------------------


def _fmt(value: float, unit: str) -> str:
    if unit == "bytes":
        return f"{value / 1024:,.1f} KiB"
    if unit in ("ms",):
        return f"{value:,.2f} ms" if value < 100 else f"{value:,.0f} ms"
    if unit in ("round trips",):
        return f"{value:.2f}"
    return f"{value:,.0f} {unit}" if value >= 100 else f"{value:,.2f} {unit}"


def summaries(outcomes: list[Outcome]) -> dict[str, Summary]:
    """Each figure over its repeats."""
    by_key: dict[str, list[Measure]] = {}
    for o in outcomes:
        for result in o.results:
            for m in result.measures:
                by_key.setdefault(m.key, []).append(m)
    return {k: Summary.of(v) for k, v in by_key.items()}


def report(outcomes: list[Outcome], args: argparse.Namespace, header: list[str]) -> list[str]:
    """The generated part of docs/benchmarks.md."""
    s = summaries(outcomes)
    total = sum(o.seconds for o in outcomes)
    lines = [
        BEGIN,
        "## Latest run of `python -m bench`",
        "",
        *header,
        f"- {args.repeats} repeats of each benchmark (baselines measured in the same repeat); "
        f"{total / 60:.1f} min in all. Median over the repeats, spread = lowest..highest.",
        "",
        "### Targets",
        "",
        "| measure | median | spread | baseline (same run) | ratio to baseline | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for target in TARGETS:
        f = s.get(target.key)
        if f is None:
            lines.append(f"| {target.key} | - | - | - | - | {target.text} | not run |")
            continue
        try:
            verdict = target.check(s)
        except KeyError as missing:
            lines.append(f"| {f.label} | - | - | - | - | {target.text} | not run: {missing} |")
            continue
        base = f"{_fmt(f.baseline, f.unit)} ({f.baseline_label})" if f.baseline else "-"
        ratio = f"{f.ratio:.2f} ({min(f.ratios):.2f}..{max(f.ratios):.2f})" if f.ratios else "-"
        mark = "**met**" if verdict.met else "**not met**"
        spread = f"{_fmt(f.low, f.unit)}..{_fmt(f.high, f.unit)}"
        lines.append(
            f"| {f.label} | {_fmt(f.median, f.unit)} | {spread} | {base} | {ratio} | "
            f"{target.text} | {mark}: {verdict.how} |"
        )
    lines += ["", "### Every figure", ""]
    lines += [
        "| figure | median | spread | baseline (same run) | ratio (spread) |",
        "|---|---|---|---|---|",
    ]
    for f in s.values():
        base = f"{_fmt(f.baseline, f.unit)} ({f.baseline_label})" if f.baseline else "-"
        ratio = f"{f.ratio:.2f} ({min(f.ratios):.2f}..{max(f.ratios):.2f})" if f.ratios else "-"
        lines.append(
            f"| {f.label} | {_fmt(f.median, f.unit)} | "
            f"{_fmt(f.low, f.unit)}..{_fmt(f.high, f.unit)} | {base} | {ratio} |"
        )
    for o in outcomes:
        lines += ["", f"### {TITLES[o.name]}", "", f"`{o.command}`."]
        if o.skipped:
            lines += ["", o.skipped + "."]
            continue
        per_repeat = max(1, len(o.results) // args.repeats)
        lines += ["", f"{args.repeats} repeats, {o.seconds:.0f} s. The last repeat:", ""]
        for result in o.results[-per_repeat:]:
            lines += [*result.table, ""]
        lines.pop()
    lines.append(END)
    return lines


def write(doc: Path, generated: list[str]) -> None:
    """Replace the generated part of the doc (or add it after the first paragraph)."""
    text = doc.read_text(encoding="utf-8") if doc.exists() else "# Benchmarks\n\n"
    block = "\n".join(generated) + "\n"
    if BEGIN in text and END in text:
        head, _, rest = text.partition(BEGIN)
        _, _, tail = rest.partition(END)
        text = head + block.rstrip("\n") + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block
    doc.write_text(text, encoding="utf-8")


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The runner's options."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--repeats", type=int, default=3, help="repeats of each benchmark")
    parser.add_argument(
        "--only", default=",".join(BENCHES), help=f"comma-separated: {', '.join(BENCHES)}"
    )
    parser.add_argument("--out", type=Path, default=DOC, help="the doc to write (results part)")
    parser.add_argument("--no-write", action="store_true", help="print the results only")
    parser.add_argument("--clicks", type=int, default=500, help="clicks at concurrency 1")
    parser.add_argument(
        "--processes",
        type=int,
        default=2,
        help="also measure serve --processes N (ack latency, alert storm); 1: only one",
    )
    parser.add_argument("--alerts", type=int, default=20_000)
    parser.add_argument("--procedures", type=int, default=10)
    parser.add_argument("--diagnosis-runs", type=int, default=7)
    parser.add_argument(
        "--lab-address",
        default="127.0.0.150",
        help="first loopback address of the diagnosis lab (away from the test suite's)",
    )
    parser.add_argument("--lab-dir", type=Path, default=None, help="reuse a provisioned lab")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {unknown}; choose from {list(BENCHES)}")
    before = _load()
    outcomes = [_run(name, args) for name in names]
    generated = report(outcomes, args, machine(before, _load()))
    if args.no_write:
        print("\n".join(generated))
        return
    write(args.out, generated)
    print(f"bench: wrote {args.out}", file=sys.stderr)
    print("\n".join(line for line in generated if line.startswith("| ") and "met" in line))


if __name__ == "__main__":
    main()
