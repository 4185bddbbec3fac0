"""Alert storm: 20,000 alerts in mixed formats about 300 problems, into one serve process.

Run: `python -m bench.bench_alert_storm [--alerts N] [--problems N] [--concurrency N]`.
Baseline, measured in the same run with the same client and bodies: a bare aiohttp server on
the same stack whose handler reads the body and answers 202 (no parsing, Redis or Slack).
The load generator runs in a process of its own: in the bench's process it would share a GIL
with the Slack emulator's thread (busy with serve's updates during the storm, idle during the
baseline) and with the bare server, and measure itself as much as either server.
Prints a markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor

import aiohttp
import redis
from aiohttp import web

from bench.lab_bot import FOREST, WEBHOOK_TOKEN, lab_bot
from bench.results import Measure, RunResult
from lab.alert_samples import FORMATS, alert_body, dsa_guid
from state.keys import OPEN_INCIDENTS


def _bodies(alerts: int, problems: int) -> list[tuple[bytes, str]]:
    # One reporting DC per problem: 300 distinct DC/GUID pairs give 300 incidents.
    return [
        alert_body(
            FORMATS[i % len(FORMATS)], f"dc{i % problems}.{FOREST}", dsa_guid(i % problems), FOREST
        )
        for i in range(alerts)
    ]


async def _blast(url: str, bodies: list[tuple[bytes, str]], concurrency: int) -> float:
    """Seconds to POST every body with `concurrency` requests in flight; all must be 202."""
    sem = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(body: bytes, ctype: str) -> None:
            async with (
                sem,
                session.post(
                    url,
                    data=body,
                    headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}", "Content-Type": ctype},
                ) as r,
            ):
                await r.read()
                if r.status != 202:
                    raise RuntimeError(f"{url}: HTTP {r.status}")

        start = time.perf_counter()
        await asyncio.gather(*[one(b, c) for b, c in bodies])
        return time.perf_counter() - start


def blast(url: str, alerts: int, problems: int, concurrency: int) -> float:
    """_blast of the storm's bodies, in the calling process (the load generator's own)."""
    return asyncio.run(_blast(url, _bodies(alerts, problems), concurrency))


async def _storm_and_baseline(url: str, args: argparse.Namespace) -> tuple[float, float]:
    """Seconds of the storm into serve, then of the same storm into the bare server."""

    async def accept(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"accepted": 1}, status=202)

    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        shape = (args.alerts, args.problems, args.concurrency)
        storm_s = await loop.run_in_executor(pool, blast, url, *shape)
        app = web.Application()
        app.router.add_post("/alerts", accept)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        bare = f"http://127.0.0.1:{runner.addresses[0][1]}/alerts"
        try:
            base_s = await loop.run_in_executor(pool, blast, bare, *shape)
        finally:
            await runner.cleanup()
    return storm_s, base_s


def run(args: argparse.Namespace | None = None) -> RunResult:
    """One storm and its baseline; measures and the run's table."""
    args = args or parse([])
    # The flood brake would group most of 300 new problems a minute; this measures correlation.
    caps = "max_new_incidents_per_minute = 100000"
    config = f"[alerts]\ncoalesce_seconds = 1\n{caps}\n{args.config}"
    with lab_bot(config, processes=args.processes) as bot:
        storm_s, base_s = asyncio.run(_storm_and_baseline(bot.url + "/alerts", args))
        time.sleep(3)  # let the last coalesced updates go out before counting Slack calls
        incidents = redis.Redis.from_url(bot.redis_url).zcard(OPEN_INCIDENTS)
        calls = Counter(c.method for c in bot.emulator.calls())
    rate, base_rate = args.alerts / storm_s, args.alerts / base_s
    if incidents != args.problems:
        raise SystemExit(f"expected exactly {args.problems} incidents, found {incidents}")
    lines = [
        "| measure | alerts/s | seconds | incidents | Slack calls | vs baseline |",
        "|---|---|---|---|---|---|",
        f"| bare aiohttp 202 (baseline) | {base_rate:.0f} | {base_s:.2f} | - | - | 1.00 |",
        f"| ad1411 serve POST /alerts | {rate:.0f} | {storm_s:.2f} | {incidents} | "
        f"{json.dumps(dict(sorted(calls.items())))} | {rate / base_rate:.2f} |",
    ]
    n = args.processes
    measure = Measure(
        "alerts_rate" if n == 1 else f"alerts_rate_p{n}",
        "`/alerts` throughput, one serve process" if n == 1 else f"the same, serve --processes {n}",
        "alerts/s",
        rate,
        base_rate,
        "bare aiohttp 202 handler",
        lower_is_better=False,
    )
    return RunResult([measure], lines)


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The benchmark's options."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--alerts", type=int, default=20_000)
    parser.add_argument("--problems", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--config", default="", help="extra TOML for the bot's configuration")
    parser.add_argument("--processes", type=int, default=1, help="serve --processes N")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    print("\n".join(run(parse(argv)).table))


if __name__ == "__main__":
    main()
