"""An alert storm on two serve replicas sharing one Redis: one incident and message per problem."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import random
import time
from collections import defaultdict
from pathlib import Path

import aiohttp
import pytest

from lab.alert_samples import FORMATS, alert_body, dsa_guid
from lab.slack_emulator import SlackEmulator
from tests.handlers.serve_config import FOREST, write_config
from tests.procs import http_env, serve

pytestmark = [pytest.mark.slack, pytest.mark.e2e, pytest.mark.slow]
TOKEN = "storm-token"
PROBLEMS = 30
ALERTS = 2000
WINDOW = 1.0


async def test_storm_gives_one_incident_per_problem(
    tmp_path: Path, redis_url: str, slack_env: dict[str, str], slack_emulator: SlackEmulator
) -> None:
    cfg = write_config(tmp_path / "c.toml", coalesce_seconds=WINDOW)
    env = http_env(
        slack_env,
        REDIS_URL=redis_url,
        AD1411_CONFIG=str(cfg),
        ALERT_WEBHOOK_TOKEN=TOKEN,
    )
    rng = random.Random(1411)
    # Each problem is reported by 2-5 DCs; the expected reporters are what we actually send.
    reporters = {
        dsa_guid(p): [f"dc{d}.{FOREST}" for d in rng.sample(range(1, 40), rng.randint(2, 5))]
        for p in range(PROBLEMS)
    }
    sent: dict[str, set[str]] = defaultdict(set)
    counts: dict[str, int] = defaultdict(int)
    bodies = []
    for i in range(ALERTS):
        guid = dsa_guid(i % PROBLEMS)
        dc = rng.choice(reporters[guid])
        sent[guid].add(dc)
        counts[guid] += 1
        bodies.append(alert_body(FORMATS[i % len(FORMATS)], dc, guid, FOREST))

    with serve(env, tmp_path, "a") as (_, url_a), serve(env, tmp_path, "b") as (_, url_b):
        urls = [url_a, url_b]
        created: list[str] = []
        sem = asyncio.Semaphore(40)
        started = time.monotonic()

        async with aiohttp.ClientSession() as session:

            async def send(i: int, body: bytes, ctype: str) -> None:
                async with (
                    sem,
                    session.post(
                        urls[i % 2] + "/alerts",
                        data=body,
                        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": ctype},
                    ) as r,
                ):
                    assert r.status == 202, await r.text()
                    reply = json.loads(await r.text())
                    created.extend(x["incident_id"] for x in reply["incidents"] if x["created"])

            await asyncio.gather(*[send(i, b, c) for i, (b, c) in enumerate(bodies)])
        assert len(created) == PROBLEMS == len(set(created))

        def settled() -> list[dict[str, object]] | None:
            top = [
                m
                for m in slack_emulator.messages("C0INCIDENT")
                if "blocks" in m and "Reporting DCs" in json.dumps(m["blocks"])
            ]
            if len(top) < PROBLEMS:
                return None
            for m in top:
                text = json.dumps(m["blocks"])
                guid = next(g for g in sent if g in text)
                if not all(dc in text for dc in sent[guid]):
                    return None
                if f"*Alerts*\\n{counts[guid]}" not in text:
                    return None
            return top

        top = await slack_emulator.wait_for_async(settled, timeout=60)
        elapsed = time.monotonic() - started

    # Exactly one message per problem, each naming exactly its own reporters (and count, above).
    assert len(top) == PROBLEMS
    for m in top:
        text = json.dumps(m["blocks"])
        guid = next(g for g in sent if g in text)
        for other in {dc for dcs in reporters.values() for dc in dcs} - sent[guid]:
            assert f"`{other}`" not in text
    posts = [c for c in slack_emulator.calls("chat.postMessage") if "thread_ts" not in c.params]
    assert len(posts) == PROBLEMS
    # Coalescing: per incident, updates are at least one window apart, so their number is
    # bounded by the run's length: at most ceil(elapsed / WINDOW) + 1 per incident.
    updates = slack_emulator.calls("chat.update")
    by_ts: dict[str, list[float]] = defaultdict(list)
    for call in updates:
        by_ts[str(call.params["ts"])].append(call.at)
    bound = PROBLEMS * (math.ceil(elapsed / WINDOW) + 1)
    assert len(updates) <= bound, (len(updates), bound)
    for times in by_ts.values():
        times.sort()
        gaps = [b - a for a, b in itertools.pairwise(times)]
        # Receive times jitter with load; the send side waits a full window between updates.
        assert all(g >= WINDOW * 0.5 for g in gaps), gaps
