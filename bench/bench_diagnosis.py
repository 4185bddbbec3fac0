"""Diagnosis time and LDAP query count on a forest of 2,000 extra server objects.

Run: `python -m bench.bench_diagnosis [--runs N] [--phantoms N]` (root; provisions the Samba lab).
Baseline, measured in the same run: the same diagnosis on the forest without phantoms, and a
raw ldap3 paged search of every nTDSDSA object (the least any diagnosis must read).
Prints a markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.results import Measure, RunResult
from bot.config import DcOverride, LdapSection
from bot.directory.client import DirectoryClient
from bot.directory.gather import diagnose


def _client(forest: Any) -> DirectoryClient:
    return DirectoryClient(
        forest=forest.forest,
        hosts=[forest.dcs[0].fqdn],
        ldap=LdapSection(tls="ldaps", ca_file=forest.ca_file, user=forest.admin_dn),
        password=forest.admin_password,
        overrides=[
            DcOverride(fqdn=dc.fqdn, address=dc.address, ldap_port=dc.ldaps_port)
            for dc in forest.dcs
        ],
    )


Once = Callable[[DirectoryClient], tuple[int, int]]


def _timed(runs: int, forest: Any, *calls: Once) -> list[dict[str, float]]:
    """Median wall time of `runs` calls of each, taken in turns (so a burst of load on the
    shared machine hits them alike), on warm (bound) connections; plus query counts."""
    times: list[list[float]] = [[] for _ in calls]
    counts = [(0, 0) for _ in calls]
    with _client(forest) as client:
        for once in calls:
            once(client)  # bind outside the timing: connection set-up is not the diagnosis
        for _ in range(runs):
            for i, once in enumerate(calls):
                start = time.perf_counter()
                counts[i] = once(client)
                times[i].append(time.perf_counter() - start)
    return [
        {"median_ms": statistics.median(t) * 1000, "queries": q, "trips": r}
        for t, (q, r) in zip(times, counts, strict=True)
    ]


def _diagnosis(forest: Any) -> Once:
    def once(client: DirectoryClient) -> tuple[int, int]:
        d = diagnose(
            client,
            forest=forest.forest,
            target_dsa_guid=forest.dcs[1].dsa_guid,
            reporting_dcs=[forest.dcs[0].fqdn],
        )
        return d.queries, d.round_trips

    return once


def _raw_dsa_search(forest: Any) -> Once:
    def once(client: DirectoryClient) -> tuple[int, int]:
        q, t = client.queries, client.round_trips
        client.search(forest.configuration_dn, "(objectClass=nTDSDSA)", ["objectGUID"])
        return client.queries - q, client.round_trips - t

    return once


def _table(
    empty: dict[str, float], raw: dict[str, float], big: dict[str, float], n: int, phantoms: int
) -> list[str]:
    rows = [
        ("diagnosis (baseline)", f"{n} DCs", empty),
        ("raw nTDSDSA paged search", f"{n} DCs + {phantoms} servers", raw),
        ("diagnosis", f"{n} DCs + {phantoms} servers", big),
    ]
    lines = [
        "| measure | forest | median ms | LDAP queries | round trips | time vs baseline |",
        "|---|---|---|---|---|---|",
    ]
    for label, size, m in rows:
        lines.append(
            f"| {label} | {size} | {m['median_ms']:.1f} | {m['queries']:.0f} | "
            f"{m['trips']:.0f} | {m['median_ms'] / empty['median_ms']:.2f} |"
        )
    return lines


def _result(
    empty: dict[str, float], raw: dict[str, float], big: dict[str, float], n: int, phantoms: int
) -> RunResult:
    measures = [
        Measure(
            "diagnosis_time",
            f"diagnosis, {n} DCs + {phantoms:,} phantom servers",
            "ms",
            big["median_ms"],
            raw["median_ms"],
            "one raw paged nTDSDSA search",
        ),
        Measure(
            "diagnosis_queries",
            f"LDAP queries of the diagnosis, {n} DCs + {phantoms:,} phantom servers",
            "queries",
            big["queries"],
            empty["queries"],
            f"the same diagnosis on {n} DCs",
        ),
    ]
    return RunResult(measures, _table(empty, raw, big, n, phantoms))


def measure(forest: Any, *, runs: int, phantoms: int, repeats: int = 1) -> list[RunResult]:
    """Each repeat: the diagnosis without and with phantoms and the raw search, interleaved so
    each ratio compares figures taken at the same time (the phantoms are added once)."""
    forest.reset()
    empties = [_timed(runs, forest, _diagnosis(forest))[0] for _ in range(repeats)]
    forest.add_phantom_servers(phantoms)
    pairs = []
    try:
        for _ in range(repeats):
            raw, big = _timed(runs, forest, _raw_dsa_search(forest), _diagnosis(forest))
            pairs.append((raw, big))
    finally:
        forest.remove_phantoms()
    n = len(forest.dcs)
    return [
        _result(empty, raw, big, n, phantoms)
        for empty, (raw, big) in zip(empties, pairs, strict=True)
    ]


def run(args: argparse.Namespace | None = None, repeats: int = 1) -> list[RunResult]:
    """Provision (or reuse) the lab, measure `repeats` times, stop the lab."""
    args = args or parse([])
    # Imported here so --help works on machines without the Samba lab.
    from lab.samba import SambaForest  # noqa: PLC0415

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-diagnosis-"))
    forest = SambaForest(workdir, first_address=args.first_address)
    forest.start()
    try:
        return measure(forest, runs=args.runs, phantoms=args.phantoms, repeats=repeats)
    finally:
        forest.stop()


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The benchmark's options."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--phantoms", type=int, default=2000)
    parser.add_argument(
        "--workdir", type=Path, default=None, help="lab dir (reused if provisioned)"
    )
    parser.add_argument("--first-address", default="127.0.0.2", help="DC1's loopback address")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    for result in run(parse(argv)):
        print("\n".join(result.table))


if __name__ == "__main__":
    main()
