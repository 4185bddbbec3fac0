"""A procedure transition whose commit the primary applied but no replica confirmed (WAIT).

Real redis-server processes: a primary, replicas and three Sentinels on loopback. The store
retries the same commit until replicas hold it; the commit's request token and attempt nonce
tell "this very attempt was applied before" (it stands, once) from "never applied where we are
now" (a promoted replica that lacks it: commit now, once).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bot.procedure.approval import Actor
from bot.procedure.plan import ApprovalPolicy
from bot.procedure.planner import build_plan
from bot.procedure.rules import Act, Intent
from handlers.transitions import Acted, ProcedureEngine, Refused, Repeated
from state.connection import async_client
from state.keys import GLOBAL_AUDIT, JOBS_STREAM
from state.procedures import ProcedureStore, procedure_key
from tests.procedure_lab import RESPONDER, seeded_diagnosis
from tests.redis_ha import RedisHA
from tests.streams import raw_entries
from tests.waiting import until

pytestmark = pytest.mark.slow
INCIDENT = "5a5a5a5a5a-1"
# Step 1.1 queues a job at once (no approval): the commit writes state, audit and job.
POLICY = ApprovalPolicy(change=0, temporary=1, disruptive=2, ttl_seconds=900)
PERSON = Actor(RESPONDER, responder=True)


async def _started(engine: ProcedureEngine) -> tuple[str, Intent]:
    """A new procedure and the Run of its step 1.1 (as its button carries it)."""
    outcome = await engine.start(
        incident_id=INCIDENT,
        plan=build_plan(seeded_diagnosis(), POLICY),
        actor=PERSON,
        diagnosis_at_ms=int(time.time() * 1000),
        diagnosis_summary="seeded",
        once="start-click",
    )
    assert isinstance(outcome, Acted)
    proc = outcome.procedure
    return proc.id, Intent(Act.RUN, "1.1", proc.planned("1.1").digest)


def _version(node: redis.Redis, procedure_id: str) -> int:
    return int(node.hget(procedure_key(procedure_id), "version") or 0)


async def _at_version(node: redis.Redis, procedure_id: str, version: int) -> bool:
    return await asyncio.to_thread(_version, node, procedure_id) == version


def _waits(node: redis.Redis) -> int:
    """How many WAITs the node has answered (each retry of an unconfirmed commit asks again)."""
    return int(node.info("commandstats").get("cmdstat_wait", {}).get("calls", 0))


def _queued(node: redis.Redis, procedure_id: str) -> tuple[list[str], list[str]]:
    """(job ids of step 1.1 in the stream, job ids of its step_queued audit entries)."""
    jobs = [
        f[b"job_id"].decode()
        for _id, f in raw_entries(node, JOBS_STREAM)
        if f.get(b"procedure") == procedure_id.encode() and f.get(b"step") == b"1.1"
    ]
    audited = [
        f[b"job_id"].decode()
        for _id, f in raw_entries(node, GLOBAL_AUDIT)
        if f.get(b"event") == b"step_queued" and f.get(b"procedure") == procedure_id.encode()
    ]
    return jobs, audited


@pytest.fixture
def ha1(tmp_path: Path) -> Iterator[RedisHA]:
    cluster = RedisHA(tmp_path / "ha", replica_count=1).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def ha2(tmp_path: Path) -> Iterator[RedisHA]:
    cluster = RedisHA(tmp_path / "ha", replica_count=2).start()
    yield cluster
    cluster.stop()


async def test_applied_but_unconfirmed_is_acknowledged_once_when_the_replica_holds_it(
    ha1: RedisHA,
) -> None:
    client = async_client(ha1.url("wait_timeout_ms=200"))
    engine = ProcedureEngine(ProcedureStore(client), 900)
    primary = redis.Redis(host="127.0.0.1", port=ha1.primary.port)
    try:
        pid, run = await _started(engine)
        await asyncio.to_thread(ha1.replica.stop)
        click = asyncio.create_task(engine.act(pid, run, PERSON, once="run-click"))
        # The primary applied it; no replica confirms it, so nobody is told it happened.
        await until(lambda: _at_version(primary, pid, 2), timeout=10, what="applied on primary")
        waits = _waits(primary)

        async def asked_again() -> bool:
            return await asyncio.to_thread(_waits, primary) >= waits + 2

        await until(asked_again, timeout=10, what="WAIT asked again")
        assert not click.done()
        await asyncio.to_thread(ha1.replica.start)
        outcome = await asyncio.wait_for(click, 30)

        assert isinstance(outcome, Acted) and outcome.procedure.version == 2
        assert outcome.change.job is not None
        replica = redis.Redis(host="127.0.0.1", port=ha1.replica.port)
        try:
            # Acknowledged means on the replica too: the retry's WAIT covered the first commit.
            assert _version(replica, pid) == 2
        finally:
            replica.close()
        jobs, audited = _queued(primary, pid)
        assert jobs == audited == [outcome.change.job.job_id]

        # Slack's retry of that click is a no-op; a second click is refused, on fresh state.
        assert isinstance(await engine.act(pid, run, PERSON, once="run-click"), Repeated)
        again = await engine.act(pid, run, PERSON, once="second-click")
        assert isinstance(again, Refused) and again.refusal.code == "already_queued"
        assert _version(primary, pid) == 2 and _queued(primary, pid)[0] == jobs
    finally:
        primary.close()
        await client.aclose()


async def test_applied_on_a_primary_that_dies_is_committed_once_on_the_promoted_replica(
    ha2: RedisHA,
) -> None:
    client = async_client(ha2.url("wait_timeout_ms=200"))
    engine = ProcedureEngine(ProcedureStore(client), 900)
    old = redis.Redis(host="127.0.0.1", port=ha2.primary.port, password="cut-off")
    try:
        pid, run = await _started(engine)
        # Cut both replicas off: they cannot resync without the password they do not have.
        old.execute_command("CONFIG", "SET", "requirepass", "cut-off")  # type: ignore[no-untyped-call]
        old.execute_command("CLIENT", "KILL", "TYPE", "replica")  # type: ignore[no-untyped-call]
        click = asyncio.create_task(engine.act(pid, run, PERSON, once="run-click"))
        await until(lambda: _at_version(old, pid, 2), timeout=10, what="applied on the primary")
        for node in ha2.replicas:
            replica = redis.Redis(host="127.0.0.1", port=node.port)
            assert _version(replica, pid) == 1, "a replica got it: this would prove nothing"
            replica.close()
        assert not click.done()
        old_port = ha2.primary.port
        await asyncio.to_thread(ha2.primary.kill)

        # Sentinel promotes a replica without that commit; the retry lands there, once.
        outcome = await asyncio.wait_for(click, 60)
        new_port = ha2.master_port()
        assert new_port not in (None, old_port)
        assert isinstance(outcome, Acted) and outcome.procedure.version == 2
        assert outcome.change.job is not None
        new = redis.Redis(host="127.0.0.1", port=new_port)
        try:
            assert _version(new, pid) == 2
            jobs, audited = _queued(new, pid)
            assert jobs == audited == [outcome.change.job.job_id]
            events = [f[b"event"] for _i, f in raw_entries(new, GLOBAL_AUDIT)]
            assert events == [b"procedure_started", b"step_queued"]  # nothing doubled
        finally:
            new.close()
    finally:
        old.close()
        await client.aclose()
