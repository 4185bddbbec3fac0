"""Ack latency of a button click on an incident message, at concurrency 1 and 20.

Run: `python -m bench.bench_ack_latency [--requests N]`.
The bot: `ad1411 serve` (subprocess, real redis-server, Slack emulator) answering a signed
block_actions click on the Diagnose button of a real incident (authorization, Redis SET NX and
audit before the ack). Baseline, in the same run with the same client: a bare slack-bolt
AsyncApp on the same aiohttp stack with Bolt's defaults whose action listener only acks.
Latency is measured per request at the client (send to full response), loopback only, by a
load generator in its own process (the emulator's thread must not share its GIL).
Prints a markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import time
from concurrent.futures import ProcessPoolExecutor

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncAck, AsyncApp

from bench.lab_bot import FOREST, SIGNING_SECRET, WEBHOOK_TOKEN, lab_bot
from bench.results import Measure, RunResult
from lab.alert_samples import alert_body, dsa_guid
from lab.slack_driver import SlackDriver, slack_signature
from lab.slack_emulator import LAB_BOT_TOKEN, SlackEmulator


async def _clicks(url: str, body: bytes, total: int, concurrency: int) -> list[float]:
    sem = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    sent = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def one() -> None:
            nonlocal sent
            async with sem:
                # Every Slack click is a new body (trigger_id, action_ts); serve refuses a
                # signed body it has already seen, so each click here differs too.
                sent += 1
                data = body + f"&click={sent}".encode()
                ts = str(int(time.time()))
                headers = {
                    "Content-Type": "application/x-www-form-urlencoded",
                    "X-Slack-Request-Timestamp": ts,
                    "X-Slack-Signature": slack_signature(SIGNING_SECRET, ts, data),
                }
                start = time.perf_counter()
                async with session.post(url, data=data, headers=headers) as r:
                    await r.read()
                latencies.append(time.perf_counter() - start)
                if r.status != 200:
                    raise RuntimeError(f"{url}: HTTP {r.status}")

        for _ in range(20):  # warm-up: connections, Bolt's first auth.test
            await one()
        latencies.clear()
        await asyncio.gather(*[one() for _ in range(total)])
    return latencies


def measure_clicks(url: str, body: bytes, total: int, concurrency: int) -> list[float]:
    """Latencies of `total` clicks, measured in a process of their own (no GIL sharing)."""
    return asyncio.run(_clicks(url, body, total, concurrency))


def _p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] * 1000


async def _bare_bolt(emulator: SlackEmulator) -> tuple[web.AppRunner, str]:
    from slack_sdk.web.async_client import AsyncWebClient  # noqa: PLC0415

    app = AsyncApp(
        client=AsyncWebClient(token=LAB_BOT_TOKEN, base_url=emulator.api_url),
        signing_secret=SIGNING_SECRET,
    )

    @app.action("incident_diagnose")
    async def ack_only(ack: AsyncAck) -> None:
        await ack()

    async def events(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await app.async_dispatch(await to_bolt_request(request)))

    web_app = web.Application()
    web_app.router.add_post("/slack/events", events)
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"


async def _run(
    args: argparse.Namespace, serve_url: str, emulator: SlackEmulator
) -> dict[tuple[str, int], list[float]]:
    driver = SlackDriver(
        emulator, signing_secret=SIGNING_SECRET, bot_url=serve_url + "/slack/events"
    )
    body, ctype = alert_body("generic_json", f"dc1.{FOREST}", dsa_guid(1), FOREST)
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            serve_url + "/alerts",
            data=body,
            headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}", "Content-Type": ctype},
        ) as r,
    ):
        assert r.status == 202
    msg = await emulator.wait_for_async(
        lambda: next((m for m in emulator.messages("C0INCIDENT") if "blocks" in m), None), 30
    )
    assert msg is not None
    button = SlackDriver.find_button(msg, action_id="incident_diagnose")
    payload = driver.block_actions_payload(msg, button, user_id="U0ONCALL1")
    body = SlackDriver.interactive_request(payload).body
    runner, bare_url = await _bare_bolt(emulator)
    latencies: dict[tuple[str, int], list[float]] = {}
    loop = asyncio.get_running_loop()
    try:
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            for conc in (1, 20):
                n = args.requests if conc == 1 else args.requests * 4
                latencies[BARE, conc] = await loop.run_in_executor(
                    pool, measure_clicks, bare_url, body, n, conc
                )
                latencies[SERVE, conc] = await loop.run_in_executor(
                    pool, measure_clicks, serve_url + "/slack/events", body, n, conc
                )
    finally:
        await runner.cleanup()
    return latencies


BARE = "bare Bolt app, defaults (baseline)"
SERVE = "ad1411 serve"


def run(args: argparse.Namespace | None = None) -> RunResult:
    """One run: both apps at concurrency 1 and 20; measures and the run's table."""
    args = args or parse([])
    with lab_bot(args.config, processes=args.processes) as bot:
        lat = asyncio.run(_run(args, bot.url, bot.emulator))
    lines = [
        "| app | concurrency | clicks | p50 ms | p99 ms | p50 vs baseline | p99 vs baseline |",
        "|---|---|---|---|---|---|---|",
    ]
    measures = []
    n = args.processes
    suffix = "" if n == 1 else f"_p{n}"
    for conc in (1, 20):
        base = lat[BARE, conc]
        for label in (BARE, SERVE):
            ms = lat[label, conc]
            shown = label if label == BARE or n == 1 else f"{label} --processes {n}"
            lines.append(
                f"| {shown} | {conc} | {len(ms)} | {_p(ms, 50):.2f} | {_p(ms, 99):.2f} | "
                f"{_p(ms, 50) / _p(base, 50):.2f} | {_p(ms, 99) / _p(base, 99):.2f} |"
            )
        for q in (50, 99):
            measures.append(
                Measure(
                    f"ack_p{q}_c{conc}{suffix}",
                    f"click-to-ack p{q}, concurrency {conc} (incl. Redis)"
                    + (f", serve --processes {n}" if n > 1 else ""),
                    "ms",
                    _p(lat[SERVE, conc], q),
                    _p(base, q),
                    f"bare default Bolt p{q}",
                )
            )
    return RunResult(measures, lines)


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The benchmark's options."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--config", default="", help="extra TOML for the bot's configuration")
    parser.add_argument("--processes", type=int, default=1, help="serve --processes N")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    result = run(parse(argv))
    print("\n".join(result.table))
    print(
        json.dumps(
            {"note": "the first click queues a diagnosis; later ones answer 'already running'"}
        )
    )


if __name__ == "__main__":
    main()
