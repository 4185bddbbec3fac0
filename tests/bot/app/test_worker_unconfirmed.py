"""A step job whose reports Redis cannot confirm (no replica answers WAIT) is neither failed nor
acked: it stays pending, and once Redis is whole another worker reclaims it and runs it once.
In-process bot and workers, real redis-server, simulated DCs over real WinRM."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.app.slack import slack_client
from bot.app.worker import Worker
from state.connection import async_client
from state.keys import JOBS_GROUP, JOBS_STREAM
from tests.procedure_lab import (
    RESPONDER,
    ROOT,
    LabFactory,
    ProcedureLab,
    buttons,
    step_state,
)

pytestmark = [pytest.mark.slack, pytest.mark.winrm]
FAST = """
[approvals]
change = 0
[worker]
heartbeat_seconds = 0.3
heartbeat_stale_seconds = 2
reclaim_idle_seconds = 1
"""


@pytest.fixture
async def lab(
    new_lab: LabFactory,
) -> AsyncIterator[ProcedureLab]:
    async with new_lab(
        extra_config=FAST,
        workers=0,
    ) as running:
        yield running


async def test_a_step_redis_cannot_confirm_is_left_pending_then_reclaimed_and_run_once(
    lab: ProcedureLab,
) -> None:
    iid, incident = await lab.open_incident()
    await lab.seed_diagnosis(iid)
    await lab.driver.click(incident, text="Start procedure", user_id=RESPONDER)
    msg = await lab.wait_message(incident["ts"], lambda m: "Run" in buttons(m))
    await lab.click(msg, "Run", RESPONDER)

    # This worker's Redis wants a replica that does not exist: nothing it writes is confirmed.
    client = async_client(lab.redis_url + "?wait_replicas=1&wait_timeout_ms=50")
    cut_off = Worker(lab.settings, client, slack_client(lab.settings))
    cut_off.procedures.retry_seconds = 0.5
    try:
        await cut_off.jobs.ensure_group()
        job = await cut_off.jobs.take(cut_off.consumer, block_ms=5000)
        assert job is not None and job.kind == "step"
        assert await cut_off.handle(job) == "redis-error"
    finally:
        await client.aclose()
    plain = async_client(lab.redis_url)
    pending = await plain.xpending(JOBS_STREAM, JOBS_GROUP)
    await plain.aclose()
    assert pending["pending"] == 1  # not acked: left for reclaim
    assert not [c for c in lab.dcs.dc(ROOT).commands() if "reg.exe add" in c.command_line]
    events = [e["event"] for e in await lab.audit()]
    assert "step_failed" not in events

    lab.start_worker()  # a worker with a whole Redis takes it over
    done = await lab.wait_message(incident["ts"], lambda m: step_state(m, "1.1") == "done")
    adds = [c for c in lab.dcs.dc(ROOT).commands() if "reg.exe add" in c.command_line]
    assert len(adds) == 1 and step_state(done, "1.1") == "done"
    events = [e["event"] for e in await lab.audit()]
    # Its unconfirmed claim had been applied on the primary: the run is taken over, once.
    assert events.count("step_reclaimed") == 1 and events.count("step_done") == 1
    assert "step_failed" not in events
