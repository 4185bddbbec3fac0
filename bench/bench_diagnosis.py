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


def _timed(
    runs: int, once: Callable[[DirectoryClient], tuple[int, int]], forest: Any
) -> dict[str, float]:
    """Median wall time of `runs` calls on a warm (bound) connection, plus query counts."""
    times: list[float] = []
    queries = trips = 0
    with _client(forest) as client:
        client.root_dse()  # bind outside the timing: connection set-up is not the diagnosis
        for _ in range(runs):
            start = time.perf_counter()
            queries, trips = once(client)
            times.append(time.perf_counter() - start)
    return {"median_ms": statistics.median(times) * 1000, "queries": queries, "trips": trips}


def _diagnosis(forest: Any) -> Callable[[DirectoryClient], tuple[int, int]]:
    def once(client: DirectoryClient) -> tuple[int, int]:
        d = diagnose(
            client,
            forest=forest.forest,
            target_dsa_guid=forest.dcs[1].dsa_guid,
            reporting_dcs=[forest.dcs[0].fqdn],
        )
        return d.queries, d.round_trips

    return once


def _raw_dsa_search(forest: Any) -> Callable[[DirectoryClient], tuple[int, int]]:
    def once(client: DirectoryClient) -> tuple[int, int]:
        q, t = client.queries, client.round_trips
        client.search(forest.configuration_dn, "(objectClass=nTDSDSA)", ["objectGUID"])
        return client.queries - q, client.round_trips - t

    return once


def measure(forest: Any, *, runs: int, phantoms: int) -> list[str]:
    """Run the three measurements on a lab forest; the markdown table lines."""
    forest.reset()
    empty = _timed(runs, _diagnosis(forest), forest)
    forest.add_phantom_servers(phantoms)
    try:
        big = _timed(runs, _diagnosis(forest), forest)
        raw = _timed(runs, _raw_dsa_search(forest), forest)
    finally:
        forest.remove_phantoms()
    n = len(forest.dcs)
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--phantoms", type=int, default=2000)
    parser.add_argument(
        "--workdir", type=Path, default=None, help="lab dir (reused if provisioned)"
    )
    parser.add_argument("--first-address", default="127.0.0.2", help="DC1's loopback address")
    args = parser.parse_args(argv)

    # Imported here so --help works on machines without the Samba lab.
    from lab.samba import SambaForest  # noqa: PLC0415

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-diagnosis-"))
    forest = SambaForest(workdir, first_address=args.first_address)
    forest.start()
    try:
        lines = measure(forest, runs=args.runs, phantoms=args.phantoms)
    finally:
        forest.stop()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
