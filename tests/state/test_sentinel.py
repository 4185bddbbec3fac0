"""Redis through Sentinel: the URL form, write durability (WAIT), and clients that follow the
primary. Real redis-server processes: a primary, a replica and three Sentinels on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from state.connection import async_client, sync_client
from state.durability import (
    WriteDurability,
    WriteNotReplicated,
    policy_of,
    split_durability,
    until_durable,
)
from state.incidents import AlertRecord, IncidentStore
from state.sentinel import SentinelTarget, is_sentinel_url, parse_sentinel_url
from tests.redis_ha import SERVICE, RedisHA

GUID = "5d4f3c2b-1a09-4e8d-9c7b-6a5f4e3d2c1b"


def _alert(dc: str = "dc1.corp.example.com") -> AlertRecord:
    return AlertRecord("corp.example.com", GUID, dc, 8589, None, "generic_json")


def test_sentinel_url_with_every_part() -> None:
    target = parse_sentinel_url(
        "rediss+sentinel://app:p%40ss@s1.corp:26380,[::1],10.0.0.7:26381/ad1411/3"
        "?sentinel_auth=yes&socket_timeout=2.5"
    )
    assert target == SentinelTarget(
        sentinels=(("s1.corp", 26380), ("::1", 26379), ("10.0.0.7", 26381)),
        service="ad1411",
        db=3,
        username="app",
        password="p@ss",
        tls=True,
        sentinel_auth=True,
        socket_timeout=2.5,
    )
    assert "p@ss" not in target.describe() and "ad1411" in target.describe()


def test_sentinel_url_defaults() -> None:
    target = parse_sentinel_url("redis+sentinel://sentinel/ad1411")
    assert target.sentinels == (("sentinel", 26379),)
    assert (target.db, target.password, target.tls, target.sentinel_auth) == (0, None, False, False)
    assert is_sentinel_url("REDIS+SENTINEL://x/y") and not is_sentinel_url("redis://x/0")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+sentinel:///ad1411/0", "no Sentinel address"),
        ("redis+sentinel://h1,h2:notaport/ad1411", "is not host[:port]"),
        ("redis+sentinel://h1:99999/ad1411", "out of range"),
        ("redis+sentinel://h1/", "does not name a service"),
        ("redis+sentinel://h1/ad1411/zero", "is not a number"),
        ("redis+sentinel://h1/ad1411/0/extra", "does not name a service"),
        ("redis+sentinel://h1/ad1411?password=x", "unknown option(s) password"),
    ],
)
def test_bad_sentinel_urls_say_what_is_expected(url: str, says: str) -> None:
    with pytest.raises(ValueError, match="REDIS_URL") as exc:
        parse_sentinel_url(url)
    assert says in str(exc.value)
    assert "redis+sentinel://" in str(exc.value)  # an example of the right form


def test_durability_options_are_taken_out_of_any_url() -> None:
    url, policy = split_durability("redis://r:6379/0?wait_replicas=2&wait_timeout_ms=500")
    assert (url, policy) == ("redis://r:6379/0", WriteDurability(2, 500))
    url, policy = split_durability("unix:///run/redis.sock?db=1&wait_replicas=1")
    assert (url, policy.replicas) == ("unix:///run/redis.sock?db=1", 1)
    assert split_durability("redis+sentinel://s/ad1411", default_replicas=1)[1].replicas == 1
    with pytest.raises(ValueError, match="wait_replicas='many'"):
        split_durability("redis://r/0?wait_replicas=many")


def test_sentinel_url_defaults_to_one_replica_and_plain_url_to_none() -> None:
    assert policy_of(async_client("redis+sentinel://127.0.0.1:1/ad1411")).replicas == 1
    assert (
        policy_of(async_client("redis+sentinel://127.0.0.1:1/ad1411?wait_replicas=0")).replicas == 0
    )
    assert policy_of(async_client("redis://127.0.0.1:1/0")).replicas == 0


@pytest.fixture
def ha(tmp_path: Path) -> Iterator[RedisHA]:
    cluster = RedisHA(tmp_path / "ha").start()
    yield cluster
    cluster.stop()


async def test_transitions_wait_for_the_replica_and_fail_loudly_without_it(ha: RedisHA) -> None:
    client = async_client(ha.url("wait_timeout_ms=300"))
    store = IncidentStore(client)
    try:
        intake = await store.record(_alert())
        assert intake.created
        # Acknowledged means on the replica too: read it there, not on the primary.
        replica = redis.Redis(host="127.0.0.1", port=ha.replica.port)
        assert replica.hget(f"ad1411:{{{intake.incident_id.split('-')[0]}}}:incident", "id")
        replica.close()

        await asyncio.to_thread(ha.replica.stop)
        with pytest.raises(WriteNotReplicated, match="0 of 1 replica"):
            await store.record(_alert("dc2.corp.example.com"))
    finally:
        await client.aclose()


async def test_idempotent_writes_are_retried_until_confirmed(ha: RedisHA) -> None:
    client = async_client(ha.url("wait_timeout_ms=200"))
    store = IncidentStore(client)
    try:
        intake = await store.record(_alert())
        await asyncio.to_thread(ha.replica.stop)
        # The replica comes back while set_message is retrying; then it is confirmed once.
        retry = asyncio.create_task(store.set_message(intake.incident_id, "C0INCIDENT", "1.000"))
        await asyncio.sleep(0.5)
        assert not retry.done()
        await asyncio.to_thread(ha.replica.start)
        assert await asyncio.wait_for(retry, 30) is True
        inc = await store.get(intake.incident_id)
        assert inc is not None and inc.ts == "1.000"
        # A different message for the same incident is still refused.
        assert await store.set_message(intake.incident_id, "C0INCIDENT", "2.000") is False
    finally:
        await client.aclose()


async def test_until_durable_gives_up_at_its_deadline() -> None:
    calls = 0

    async def never() -> int:
        nonlocal calls
        calls += 1
        raise WriteNotReplicated("0 of 1")

    with pytest.raises(WriteNotReplicated):
        await until_durable(never, what="test write", deadline_seconds=0.5)
    assert calls >= 2


def test_sync_client_reaches_the_primary_through_sentinel(ha: RedisHA) -> None:
    client = sync_client(ha.url())
    try:
        client.set("ad1411:probe", "through sentinel")
        primary = redis.Redis(host="127.0.0.1", port=ha.primary.port)
        assert primary.get("ad1411:probe") == b"through sentinel"
        primary.close()
        role = client.execute_command("ROLE")  # type: ignore[no-untyped-call]
        assert role[0] == b"master"
    finally:
        client.close()
    assert SERVICE in ha.url()


def test_config_check_reports_a_bad_redis_url_without_echoing_it(tmp_path: Path) -> None:
    import subprocess
    import sys

    config = tmp_path / "c.toml"
    config.write_text('[slack]\nchannel = "C0INCIDENT"\nresponders = ["U0ONCALL1"]\n')
    bad = "redis+sentinel://:hunter2@s1,s2/"
    done = subprocess.run(
        [sys.executable, "-m", "bot.app.cli", "config", "check", str(config)],
        env={"PATH": "/usr/bin:/bin", "REDIS_URL": bad},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "REDIS_URL: path '/' does not name a service" in done.stderr
    assert "hunter2" not in done.stderr + done.stdout
