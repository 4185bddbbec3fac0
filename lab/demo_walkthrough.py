"""The demo's procedure clicked through on its own page, as its three visitors would.

`ad1411 demo --once` (CI) runs it after the incident opens: the responder starts the
procedure, asks for each approval and runs each step; the approvers take turns approving (both
vote where a step needs two), then the responder closes the procedure. Every click goes through
the page's endpoint (`POST /_web/click`), so it is the same signed block_actions request a
visitor's click makes. It proves that the demo's configuration (responders, approvers, WinRM to
the simulated DCs, approval counts) lets a visitor reach the end of the procedure.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from bot.procedure.outcomes import REPLICATION_RETRY_HINT
from lab.slack_driver import SlackDriver
from lab.slack_emulator import SlackEmulator

STEP_TIMEOUT = 180.0
FINISHED = ("done", "skipped", "satisfied", "failed")
Say = Callable[[str], None]


class WalkthroughFailed(RuntimeError):
    """The page offered no way forward, or a step failed: what it showed."""


def procedure_message(emulator: SlackEmulator, channel: str, incident_ts: str) -> dict[str, Any]:
    """The procedure message in the incident's thread, as it is now (empty when none yet)."""
    for m in emulator.messages(channel):
        in_thread = m.get("thread_ts") == incident_ts and m["ts"] != incident_ts
        if in_thread and "KB938704 procedure" in json.dumps(m.get("blocks", [])):
            return m
    return {}


def _sections(message: dict[str, Any]) -> list[str]:
    return [
        str(b.get("text", {}).get("text", ""))
        for b in message.get("blocks") or []
        if b.get("type") == "section"
    ]


def step_line(message: dict[str, Any], key: str) -> str:
    """What the message shows for step `key` (its first line is `<icon> *KEY. title* · ...`)."""
    return next((t for t in _sections(message) if f"*{key}. " in t.split("\n", 1)[0]), "")


def step_state(message: dict[str, Any], key: str) -> str:
    """The state word of step `key` (pending, awaiting approval, done, failed, ...)."""
    head = step_line(message, key).split("\n", 1)[0]
    return head.rsplit("· _", 1)[1].rstrip("_") if "· _" in head else ""


def labels(message: dict[str, Any]) -> list[str]:
    """The labels of the message's buttons."""
    return [str(b["text"]["text"]) for b in SlackDriver.buttons(message)]


def current_key(message: dict[str, Any]) -> str:
    """The step the message's buttons act on ('' once every step is finished)."""
    for button in SlackDriver.buttons(message):
        value = json.loads(button.get("value") or "{}")
        if value.get("s"):
            return str(value["s"])
    return ""


def finished(key: str, run: int | None = None) -> Callable[[dict[str, Any]], bool]:
    """Whether step `key` (its run number `run`, when given) has finished."""

    def check(message: dict[str, Any]) -> bool:
        line = step_line(message, key)
        return step_state(message, key) in FINISHED and (run is None or f"run {run} " in line)

    return check


def _attempt(line: str) -> int:
    found = re.search(r"\brun (\d+) queued", line)
    return int(found.group(1)) if found else 0


class PageWalk:
    """Clicks on the demo page's messages as one visitor or another."""

    def __init__(
        self,
        emulator: SlackEmulator,
        channel: str,
        incident_ts: str,
        say: Say,
        *,
        responder: str,
        approvers: tuple[str, ...],
    ) -> None:
        self.emulator = emulator
        self.channel = channel
        self.incident_ts = incident_ts
        self.say = say
        self.responder = responder
        self.approvers = approvers
        self.votes = 0

    async def click(self, user: str, message: dict[str, Any], label: str) -> None:
        """`user` presses the button labelled `label` through the page's endpoint."""
        button = next((b for b in SlackDriver.buttons(message) if b["text"]["text"] == label), None)
        if button is None:
            raise WalkthroughFailed(f"no {label!r} button; the message offers {labels(message)}")
        spec = {
            "as": user,
            "channel": self.channel,
            "ts": message["ts"],
            "block_id": button["block_id"],
            "action_id": button["action_id"],
        }
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
            session.post(self.emulator.base_url + "/_web/click", json=spec) as resp,
        ):
            answer = await resp.json()
        if resp.status != 200 or answer.get("status") != 200:
            raise WalkthroughFailed(f"the page could not click {label!r}: {resp.status} {answer}")

    async def message_when(
        self, predicate: Callable[[dict[str, Any]], bool], what: str
    ) -> dict[str, Any]:
        """The procedure message once `predicate` holds it."""

        def probe() -> dict[str, Any] | None:
            m = procedure_message(self.emulator, self.channel, self.incident_ts)
            return m if m and predicate(m) else None

        try:
            found = await self.emulator.wait_for_async(probe, timeout=STEP_TIMEOUT)
        except TimeoutError as exc:
            raise WalkthroughFailed(f"waited {STEP_TIMEOUT:.0f} s for {what}") from exc
        assert found is not None  # wait_for_async returns only a truthy value
        return found

    async def approve(self, key: str) -> None:
        """The responder asks; as many different approvers as the step needs vote (taking
        turns from one step to the next, so each visitor has something to do)."""

        def votable(message: dict[str, Any]) -> bool:
            return "Approve" in labels(message)

        def voted_once(message: dict[str, Any]) -> bool:
            return votable(message) and "approved by" in step_line(message, key)

        message = await self.message_when(votable, f"step {key}'s request")
        needed = 2 if "needs 2 approval" in step_line(message, key) else 1
        for n in range(needed):
            if n:
                message = await self.message_when(voted_once, f"step {key}'s second vote")
            approver = self.approvers[self.votes % len(self.approvers)]
            self.votes += 1
            await self.click(approver, message, "Approve")
            self.say(f"page: {approver} approved step {key}")

    async def advance(self, message: dict[str, Any], key: str, *, retry_wait: float) -> None:
        """Make step `key` go forward once (run it, get it approved, or retry it)."""
        state, offered, line = step_state(message, key), labels(message), step_line(message, key)
        if state == "failed" and REPLICATION_RETRY_HINT in line:
            # What the step's note asks of a visitor: let the DCs' schedule come round.
            self.say(
                f"page: step {key} failed on replication results from before the fix; "
                f"retrying after the DCs' next scheduled replication (every {retry_wait:.0f} s)"
            )
            await asyncio.sleep(retry_wait)
            await self.click(self.responder, message, "Retry")
            await self.message_when(finished(key, _attempt(line) + 1), f"step {key}'s retry")
            return
        if state in ("failed", "satisfied"):
            raise WalkthroughFailed(f"step {key} {state}: {line}")
        if "Run" in offered:
            await self.click(self.responder, message, "Run")
        elif "Request approval" in offered:
            await self.click(self.responder, message, "Request approval")
            await self.approve(key)
        else:
            raise WalkthroughFailed(f"no way forward at step {key} ({state}): {offered}")
        await self.message_when(finished(key), f"step {key} to finish")


def _has_buttons(message: dict[str, Any]) -> bool:
    return bool(labels(message))


def _closed(message: dict[str, Any]) -> bool:
    return not labels(message)


async def walk_procedure(
    walk: PageWalk, incident: dict[str, Any], *, retries: int = 3, retry_wait: float = 15.0
) -> dict[str, Any]:
    """Start the procedure, run every step, close it; returns the closed procedure message.

    A step that fails only on replication results recorded before the fix is retried after
    `retry_wait`, at most `retries` times in all.
    """
    await walk.click(walk.responder, incident, "Start procedure")
    walk.say(f"page: {walk.responder} pressed Start procedure")
    message = await walk.message_when(_has_buttons, "the procedure's plan")
    keys = [t.split("*", 2)[1].split(". ", 1)[0] for t in _sections(message) if "*" in t]
    walk.say(f"page: the plan has steps {', '.join(k for k in keys if k)}")
    for _ in range(100):
        message = await walk.message_when(_has_buttons, "the procedure's buttons")
        key = current_key(message)
        if not key and "Close procedure" in labels(message):
            await walk.click(walk.responder, message, "Close procedure")
            closed = await walk.message_when(_closed, "the procedure to close")
            walk.say(f"page: {walk.responder} closed the procedure")
            return closed
        if step_state(message, key) == "failed":
            retries -= 1
            if retries < 0:
                raise WalkthroughFailed(f"step {key} failed: {step_line(message, key)}")
        began = time.monotonic()
        await walk.advance(message, key, retry_wait=retry_wait)
        message = await walk.message_when(finished(key), f"step {key} to finish")
        note = step_line(message, key).rsplit("\n", 1)[-1]
        walk.say(
            f"page: step {key} {step_state(message, key)} in {time.monotonic() - began:.0f} s: "
            f"{note[:160]}"
        )
    raise WalkthroughFailed("the procedure did not end after 100 clicks")
