"""A TCP proxy on loopback that loses one reply: the request reaches the server and is applied,
the connection is then reset before the client reads the answer (as a failover does to the
commands in flight). Real sockets on both sides; the server is a real redis-server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

CHUNK = 65536


@dataclass
class LossyProxy:
    """Forwards 127.0.0.1:port to 127.0.0.1:target; `lose_reply_to(pattern)` arms one loss."""

    target: int
    port: int = 0
    query: str = ""  # appended to url (the bot's durability options)
    direct_url: str | None = None  # the server itself, for the test's own reads
    lost: list[bytes] = field(default_factory=list)  # the requests whose reply was lost
    refused: list[bytes] = field(default_factory=list)  # requests never forwarded
    _pattern: bytes | None = None
    _refuse: bytes | None = None
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def lose_reply_to(self, pattern: bytes) -> None:
        """The next request containing `pattern` is applied; its reply never arrives."""
        self._pattern = pattern

    def refuse(self, pattern: bytes) -> None:
        """The next request containing `pattern` never reaches the server: the connection is
        reset instead (Redis failing between two commands of one request)."""
        self._refuse = pattern

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0" + (f"?{self.query}" if self.query else "")

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        upstream: bool,
        armed: asyncio.Event,
        peers: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
    ) -> None:
        try:
            while data := await reader.read(CHUNK):
                if upstream and self._refuse is not None and self._refuse in data:
                    self._refuse = None
                    self.refused.append(data)
                    break
                if upstream and self._pattern is not None and self._pattern in data:
                    self._pattern = None
                    self.lost.append(data)
                    armed.set()
                elif not upstream and armed.is_set():
                    # The server answered the armed request: drop the answer, reset both sides.
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            for peer in peers:
                peer.close()

    async def _handle(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        try:
            s_reader, s_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            c_writer.close()
            return
        armed = asyncio.Event()
        peers = (c_writer, s_writer)
        await asyncio.gather(
            self._pipe(c_reader, s_writer, True, armed, peers),
            self._pipe(s_reader, c_writer, False, armed, peers),
        )

    def _track(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.ensure_future(self._handle(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[LossyProxy]:
        self._server = await asyncio.start_server(self._track, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            for task in list(self._tasks):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await self._server.wait_closed()
