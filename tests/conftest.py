"""Session-wide fixtures: real peers only."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from hypothesis import HealthCheck, settings

from state.redis_server import RedisServer


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server for the session (on a loopback TCP port)."""
    server = RedisServer(tmp_path_factory.mktemp("redis"), port=free_port()).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """The session server's URL, flushed before each test."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    yield redis_server.url


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A per-test data directory."""
    d = tmp_path / "data"
    d.mkdir()
    return d


# Hypothesis profiles: "ci" (the default, used by the test command) explores enough to find
# real bugs and never fails for slowness on a loaded machine; "dev" is quick; "thorough" is
# for a night run. Choose with HYPOTHESIS_PROFILE.
settings.register_profile(
    "ci",
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile("dev", max_examples=20, deadline=None)
settings.register_profile(
    "thorough", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# Fixtures of the lab peers live beside their own tests and are shared from here.
from tests.fixtures_dcsim import *  # noqa: E402,F403
from tests.fixtures_kerberos import *  # noqa: E402,F403
from tests.fixtures_samba import *  # noqa: E402,F403
from tests.fixtures_slack import *  # noqa: E402,F403
from tests.procedure_lab import new_lab  # noqa: E402,F401
