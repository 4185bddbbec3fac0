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


async def _run(args: argparse.Namespace, serve_url: str, emulator: SlackEmulator) -> list[str]:
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
    rows = []
    loop = asyncio.get_running_loop()
    try:
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            for conc in (1, 20):
                n = args.requests if conc == 1 else args.requests * 4
                base = await loop.run_in_executor(pool, measure_clicks, bare_url, body, n, conc)
                ours = await loop.run_in_executor(
                    pool, measure_clicks, serve_url + "/slack/events", body, n, conc
                )
                for label, lat in (
                    ("bare Bolt app, defaults (baseline)", base),
                    ("ad1411 serve", ours),
                ):
                    rows.append(
                        f"| {label} | {conc} | {n} | {_p(lat, 50):.2f} | {_p(lat, 99):.2f} | "
                        f"{_p(lat, 50) / _p(base, 50):.2f} | {_p(lat, 99) / _p(base, 99):.2f} |"
                    )
    finally:
        await runner.cleanup()
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args(argv)
    with lab_bot() as bot:
        rows = asyncio.run(_run(args, bot.url, bot.emulator))
    print("| app | concurrency | clicks | p50 ms | p99 ms | p50 vs baseline | p99 vs baseline |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(
        json.dumps(
            {"note": "the first click queues a diagnosis; later ones answer 'already running'"}
        )
    )


if __name__ == "__main__":
    main()
