"""Driving a procedure from its message to Close as on-call would, and keeping a ledger of what
the bot acknowledged, to check against the audit (each click took effect exactly once) and
against the DC simulator's command log (each change ran exactly once).

Used by the acceptance runs across processes and through a Redis failover. Steps that need a
real directory (3, 3b, 5, 12) are skipped with a reason; tests/e2e/test_procedure_full_run.py
runs them on the Samba lab.
"""

from __future__ import annotations

import functools
import json
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lab.dcsim.simulator import DcLab
from lab.slack_driver import SlackDriver
from lab.slack_emulator import SlackEmulator
from tests.procedure_lab import (
    MISSING,
    REPORTER,
    RESPONDER,
    ROOT,
    buttons,
    current_key,
    reason_values,
    step_line,
    step_state,
)

NO_LDAP = frozenset({"3", "3b", "5", "12"})
# What a person's click leaves in the audit (a worker's reports carry a `worker` field).
PERSON_EVENTS = frozenset(
    {
        "procedure_started",
        "approval_requested",
        "approved",
        "step_queued",
        "step_skipped",
        "procedure_closed",
        "refused",
    }
)
# Refusals of a click on a message that was behind the procedure (see Clicks.told_refusals).
BEHIND_CODES = frozenset({"not_current", "already_requested", "already_queued", "wrong_state"})
# The changes steps 1, 4, 6, 7, 9 and 10 make on dc1, in this order.
ROOT_CHANGES = (
    r"reg\.exe add .*RepsTo Failure Time",
    r"reg\.exe add .*Replicator Allow SPN Fallback",
    r"/options \S+ \+DISABLE_NTDSCONN_XLATE",
    r"/add CN=Configuration,\S+ \S+ dc3\.",
    r"/options \S+ -DISABLE_NTDSCONN_XLATE",
    r"reg\.exe delete .*Replicator Allow SPN Fallback",
)
_CHANGE = re.compile(r"reg\.exe (add|delete)|repadmin(\.exe)? /add|/options \S+ [+-]")

Hook = Callable[[str, dict[str, Any]], Awaitable[None]]


@dataclass
class Clicks:
    """Sends a person's clicks (each through the driver `next_driver` gives) and keeps, for every
    click the bot acknowledged (HTTP 200 once its listener ran), the audit entries it must have
    left: (event, step, user)."""

    next_driver: Callable[[], SlackDriver]
    emulator: SlackEmulator
    incident_ts: str
    expected: Counter[tuple[str, str, str]] = field(default_factory=Counter)

    async def click(self, msg: dict[str, Any], label: str, user: str, *leaves: str) -> str:
        """Press a button of `msg`; returns the step it acted on."""
        key = current_key(msg) if label != "Start procedure" else ""
        reply = await self.next_driver().click(msg, text=label, user_id=user)
        assert reply.status == 200, (label, reply.status, reply.body)
        self.expected.update((event, key, user) for event in leaves)
        return key

    async def skip(self, msg: dict[str, Any], reason: str) -> None:
        """Skip the current step, with a reason typed in the modal the click opens."""
        opened = len(self.emulator.views())
        key = await self.click(msg, "Skip", RESPONDER)
        views = await self.emulator.wait_for_async(
            lambda: self.emulator.views()[opened:], timeout=30
        )
        reply = await self.next_driver().submit_view(
            views[-1]["id"], reason_values(reason), user_id=RESPONDER
        )
        assert reply.status == 200, reply.body
        self.expected[("step_skipped", key, RESPONDER)] += 1

    def message(self) -> dict[str, Any] | None:
        """The procedure message in the incident thread, as it is now."""
        for m in self.emulator.messages("C0INCIDENT"):
            in_thread = m.get("thread_ts") == self.incident_ts and m["ts"] != self.incident_ts
            if in_thread and "KB938704 procedure" in json.dumps(m.get("blocks", [])):
                return m
        return None

    async def wait(
        self,
        predicate: Callable[[dict[str, Any]], bool],
        timeout: float = 60,  # noqa: ASYNC109 - a hang guard
    ) -> dict[str, Any]:
        """The procedure message once it satisfies `predicate`."""

        def probe() -> dict[str, Any] | None:
            m = self.message()
            return m if m is not None and predicate(m) else None

        try:
            found = await self.emulator.wait_for_async(probe, timeout=timeout)
        except TimeoutError:
            raise AssertionError(
                f"the procedure message never got there: {self.message()}"
            ) from None
        assert found is not None
        return found

    def took_effect_once(self, audit: list[dict[str, str]]) -> None:
        """Every acknowledged click is in the audit exactly once, and nothing else a person did
        but refusals of a click on a message that was behind (each told to its clicker)."""
        done = Counter(
            (e["event"], e.get("step", ""), e.get("user", ""))
            for e in audit
            if e["event"] in PERSON_EVENTS and not e.get("worker")
        )
        for e in self.told_refusals(audit):
            key = ("refused", e.get("step", ""), e.get("user", ""))
            if done[key] > self.expected[key]:
                done[key] -= 1
        unexpected = done - self.expected
        assert done == self.expected, {
            "missing": self.expected - done,
            "unexpected": unexpected,
            "unexpected entries": [
                e for e in audit if (e["event"], e.get("step", ""), e.get("user", "")) in unexpected
            ],
        }

    def told_refusals(self, audit: list[dict[str, str]]) -> list[dict[str, str]]:
        """Refusals of a click on a button the message no longer offered (a person who clicks
        while a newer update of the message is on its way; the message shows the latest state
        again within one update window), each told to its clicker in the words audited."""
        told = {(e.get("user", ""), str(e.get("text", ""))) for e in self.emulator.ephemerals()}
        return [
            e
            for e in audit
            if e["event"] == "refused"
            and e.get("code") in BEHIND_CODES
            and (e.get("user", ""), e.get("reason", "")) in told
        ]


def _moved_on(m: dict[str, Any], key: str) -> bool:
    return step_state(m, key) in ("done", "skipped", "satisfied", "failed") or current_key(m) != key


async def _nothing(_key: str, _msg: dict[str, Any]) -> None:
    return None


async def drive(
    clicks: Clicks,
    approvers: Mapping[str, tuple[str, ...]],
    *,
    before_run: Hook = _nothing,
    after_run: Hook = _nothing,
) -> dict[str, Any]:
    """Click through every step to Close: Run, or Request approval then the step's approvers in
    turn, or Skip (with a reason) a step that needs LDAP. `before_run` is awaited just before
    the click that queues a step's run, `after_run` just after it. Returns the closed message."""
    for _ in range(60):
        msg = await clicks.wait(lambda m: bool(buttons(m)))
        labels = buttons(msg)
        if "Close procedure" in labels:
            await clicks.click(msg, "Close procedure", RESPONDER, "procedure_closed")
            return await clicks.wait(lambda m: "closed" in json.dumps(m["blocks"]))
        key = current_key(msg)
        state = step_state(msg, key)
        assert state != "failed", step_line(msg, key)
        if key in NO_LDAP:
            await clicks.skip(msg, "needs LDAP: run on the Samba lab")
        elif "Run" in labels:
            await before_run(key, msg)
            await clicks.click(msg, "Run", RESPONDER, "step_queued")
            await after_run(key, msg)
        elif "Request approval" in labels:
            await clicks.click(msg, "Request approval", RESPONDER, "approval_requested")
            msg = await clicks.wait(lambda m: "Approve" in buttons(m))
            *first, last = approvers[key]
            for approver in first:
                await clicks.click(msg, "Approve", approver, "approved")
            await before_run(key, msg)
            await clicks.click(msg, "Approve", last, "approved", "step_queued")
            await after_run(key, msg)
        else:
            raise AssertionError(f"no way forward at step {key} ({state}): {labels}")
        await clicks.wait(functools.partial(_moved_on, key=key))
    raise AssertionError("the procedure never reached its end")


def changes_made(dcs: DcLab) -> dict[str, list[str]]:
    """Per DC, the command lines that changed something, in the order they ran."""
    return {
        fqdn: [c.command_line for c in dcs.dc(fqdn).commands() if _CHANGE.search(c.command_line)]
        for fqdn in (ROOT, REPORTER, MISSING)
    }


def each_change_once(dcs: DcLab) -> None:
    """The simulator's command log: every change of the procedure ran exactly once."""
    made = changes_made(dcs)
    assert len(made[ROOT]) == len(ROOT_CHANGES), made
    assert all(re.search(p, line) for p, line in zip(ROOT_CHANGES, made[ROOT], strict=True)), made
    assert len(made[REPORTER]) == 1 and "RepsTo" in made[REPORTER][0], made
    assert made[MISSING] == [], made


def procedure_id_of(msg: dict[str, Any]) -> str:
    """The procedure a message's buttons act on."""
    return str(json.loads(SlackDriver.buttons(msg)[0]["value"])["p"])
