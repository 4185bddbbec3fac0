"""Alert storm: 20,000 alerts in mixed formats about 300 problems, into one serve process.

Run: `python -m bench.bench_alert_storm [--alerts N] [--problems N] [--concurrency N]`.
Baseline, measured in the same run with the same client and bodies: a bare aiohttp server on
the same stack whose handler reads the body and answers 202 (no parsing, Redis or Slack).
Prints a markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter

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


async def _baseline(bodies: list[tuple[bytes, str]], concurrency: int) -> float:
    async def accept(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"accepted": 1}, status=202)

    app = web.Application()
    app.router.add_post("/alerts", accept)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        return await _blast(f"http://127.0.0.1:{port}/alerts", bodies, concurrency)
    finally:
        await runner.cleanup()


def run(args: argparse.Namespace | None = None) -> RunResult:
    """One storm and its baseline; measures and the run's table."""
    args = args or parse([])
    bodies = _bodies(args.alerts, args.problems)
    # The flood brake would group most of 300 new problems a minute; this measures correlation.
    caps = "max_new_incidents_per_minute = 100000"
    with lab_bot(f"[alerts]\ncoalesce_seconds = 1\n{caps}\n{args.config}") as bot:
        storm_s = asyncio.run(_blast(bot.url + "/alerts", bodies, args.concurrency))
        base_s = asyncio.run(_baseline(bodies, args.concurrency))
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
    measure = Measure(
        "alerts_rate",
        "`/alerts` throughput, one serve process",
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
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    print("\n".join(run(parse(argv)).table))


if __name__ == "__main__":
    main()
