"""The lab's event source: Event 1411 from the Samba forest's real replication failures.

A Windows DC that cannot build the mutual-authentication SPN of a partner (its server object
has no serverReference) logs Event 1411 in the Directory Service log, and a Windows event
forwarder sends it on. Samba logs no Event 1411, but it does refuse that partner: the source DC
logs "Failed to find account dn (serverReference) for <server DN>, parent of DSA with
objectGUID <guid>" and the partner's showrepl shows result 8453. This source watches both and
forwards each refusal to the bot's `POST /alerts` as Windows event XML with the bearer token,
exactly what a forwarder would deliver: reporting DC = the DC that refused, target = the DSA
without serverReference.

    source = EventSource(forest, "http://127.0.0.1:3000/alerts", token)
    task = asyncio.create_task(source.run(stop))   # polls until stop is set
    source.forwarded                               # what was sent and how the bot answered
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import re
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from lab.alert_samples import event_xml
from lab.samba import DcInfo, SambaForest, SambaLabError

log = logging.getLogger(__name__)

DENIAL_LOG_LINE = re.compile(
    r"Failed to find account dn \(serverReference\) for (?P<server_dn>CN=[^\r\n]+?), "
    r"parent of DSA with objectGUID (?P<guid>[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12})"
)
ACCESS_DENIED = 8453
MAX_PENDING = 50
MAX_LOG_READ = 4 * 1024 * 1024


@dataclass(frozen=True)
class Denial:
    """One refusal: `reporter` could not authenticate the DSA `target_guid` (no serverReference)."""

    reporter: DcInfo
    target_guid: str
    evidence: str  # "samba log" or "showrepl 8453"


@dataclass(frozen=True)
class Forwarded:
    """One alert the source sent, and the bot's answer (status 0: not delivered)."""

    denial: Denial
    status: int
    answer: str
    body: str


@dataclass
class _LogTail:
    """New complete lines of one samba log since the last read (survives rotation)."""

    path: Path
    offset: int = 0
    partial: bytes = b""

    def skip_to_end(self) -> None:
        self.offset = self.path.stat().st_size if self.path.exists() else 0
        self.partial = b""

    def read_lines(self) -> list[str]:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return []
        if size < self.offset:  # samba rotated the log (log.old): read the new one from 0
            self.offset, self.partial = 0, b""
        with self.path.open("rb") as fh:
            fh.seek(self.offset)
            data = self.partial + fh.read(MAX_LOG_READ)
            self.offset = fh.tell()
        *complete, self.partial = data.split(b"\n")
        return [line.decode("utf-8", errors="replace") for line in complete]


@dataclass
class EventSource:
    """Watches the Samba forest and forwards Event 1411 to the bot (see the module docstring)."""

    forest: SambaForest
    alerts_url: str
    token: str = field(repr=False)
    poll_seconds: float = 0.5
    showrepl_seconds: float | None = None  # None: the logs only (showrepl costs CPU)
    repeat_seconds: float = 60.0  # one alert per reporter and target per this many seconds
    post_timeout_seconds: float = 10.0
    forwarded: list[Forwarded] = field(default_factory=list)
    _tails: dict[str, _LogTail] = field(default_factory=dict, repr=False)
    _last_sent: dict[tuple[str, str], float] = field(default_factory=dict, repr=False)
    _pending: deque[Denial] = field(default_factory=lambda: deque(maxlen=MAX_PENDING))
    _record_ids: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.alerts_url.startswith(("http://127.", "http://localhost")):
            raise ValueError(f"the lab event source posts to loopback only, not {self.alerts_url}")
        for dc in self.forest.dcs:
            tail = _LogTail(self.forest.log_file(dc))
            tail.skip_to_end()  # a forwarder subscribes to new events, not the history
            self._tails[dc.fqdn] = tail

    # --- noticing ---------------------------------------------------------------------------

    def _by_guid(self, guid: str) -> DcInfo | None:
        return next((d for d in self.forest.dcs if d.dsa_guid == guid.lower()), None)

    def scan_logs(self) -> list[Denial]:
        """Refusals logged by any DC since the last scan."""
        found: list[Denial] = []
        for dc in self.forest.dcs:
            for line in self._tails[dc.fqdn].read_lines():
                match = DENIAL_LOG_LINE.search(line)
                if match is not None:
                    found.append(Denial(dc, match["guid"].lower(), "samba log"))
        return found

    def scan_showrepl(self) -> list[Denial]:
        """Inbound links failing with 8453 whose destination has no serverReference (blocking)."""
        found: list[Denial] = []
        for destination in self.forest.dcs:
            try:
                report = self.forest.showrepl_json(destination)
            except (SambaLabError, ValueError) as exc:  # a DC that is down shows nothing
                log.debug("showrepl of %s failed: %s", destination.fqdn, exc)
                continue
            for link in report.get("repsFrom", []):
                if str(ACCESS_DENIED) not in str(link.get("last attempt message", "")):
                    continue
                source = self._by_guid(str(link.get("DSA objectGUID", "")))
                if source is None or source is destination:
                    continue
                # 8453 has other causes: forward it as 1411 only when the reference is gone.
                if self.forest.server_reference(destination, on=source) is None:
                    found.append(Denial(source, destination.dsa_guid, "showrepl 8453"))
        return list({(d.reporter.fqdn, d.target_guid): d for d in found}.values())

    # --- forwarding -------------------------------------------------------------------------

    def _due(self, denial: Denial) -> bool:
        key = (denial.reporter.fqdn, denial.target_guid)
        last = self._last_sent.get(key)
        return last is None or time.monotonic() - last >= self.repeat_seconds

    def _body(self, denial: Denial) -> str:
        reporter = denial.reporter
        record = self._record_ids.get(reporter.fqdn, 48_000) + 1
        self._record_ids[reporter.fqdn] = record
        computer = f"{reporter.name}.{self.forest.forest}"  # Windows writes DC1.corp.example.com
        return event_xml(
            computer,
            denial.target_guid,
            self.forest.forest,
            when=datetime.datetime.now(datetime.UTC),
            record_id=record,
        )

    async def forward(self, session: aiohttp.ClientSession, denial: Denial) -> Forwarded:
        """POST one Event 1411 to the bot; status 0 when the bot could not be reached."""
        body = self._body(denial)
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/xml"}
        try:
            async with session.post(self.alerts_url, data=body.encode(), headers=headers) as r:
                sent = Forwarded(denial, r.status, (await r.text())[:2000], body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            sent = Forwarded(denial, 0, f"{type(exc).__name__}: {exc}", body)
        self.forwarded.append(sent)
        log.info(
            "event 1411 from %s about DSA %s (%s) -> %s",
            denial.reporter.fqdn,
            denial.target_guid,
            denial.evidence,
            sent.status or sent.answer,
        )
        return sent

    async def poll_once(self, session: aiohttp.ClientSession, *, showrepl: bool = False) -> None:
        """One look at the forest, then forward what is new (and what failed before)."""
        denials = self.scan_logs()
        if showrepl:
            denials += await asyncio.to_thread(self.scan_showrepl)
        queued = {(d.reporter.fqdn, d.target_guid) for d in self._pending}
        for denial in denials:
            key = (denial.reporter.fqdn, denial.target_guid)
            if self._due(denial) and key not in queued:  # one alert per pair, whatever saw it
                self._pending.append(denial)
                queued.add(key)
        retry: list[Denial] = []
        while self._pending:
            denial = self._pending.popleft()
            sent = await self.forward(session, denial)
            if sent.status == 0 or sent.status >= 500:
                retry.append(denial)  # the bot is down or failing: a forwarder tries again
            else:
                self._last_sent[(denial.reporter.fqdn, denial.target_guid)] = time.monotonic()
        self._pending.extend(retry)

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until `stop` is set."""
        timeout = aiohttp.ClientTimeout(total=self.post_timeout_seconds)
        next_showrepl = time.monotonic()
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while not stop.is_set():
                showrepl = self.showrepl_seconds is not None and time.monotonic() >= next_showrepl
                if showrepl and self.showrepl_seconds is not None:
                    next_showrepl = time.monotonic() + self.showrepl_seconds
                try:
                    await self.poll_once(session, showrepl=showrepl)
                except OSError as exc:  # a log we cannot read this time: try again next poll
                    log.warning("event source: %s", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.poll_seconds)
