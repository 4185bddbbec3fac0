"""The procedure message through Slack's 429s and 5xx: an update or a first post Slack does
not take past the Web API client's own retries is tried again (the message stays stale in
Redis until Slack takes it), never lost until the next change, never posted twice."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.procedure_lab import RESPONDER, LabFactory, ProcedureLab, buttons

pytestmark = [pytest.mark.slack, pytest.mark.winrm]

# The client retries 3 times: 4 faults in a row are one call Slack did not take.
ONE_CALL_REFUSED = 4


@pytest.fixture
async def lab(
    new_lab: LabFactory,
) -> AsyncIterator[ProcedureLab]:
    async with new_lab() as running:
        yield running


def _procedure_messages(lab: ProcedureLab, incident_ts: str) -> list[dict[str, Any]]:
    return [
        m
        for m in lab.emulator.messages("C0INCIDENT")
        if m.get("thread_ts") == incident_ts
        and m["ts"] != incident_ts
        and "KB938704 procedure" in json.dumps(m.get("blocks", []))
    ]


@pytest.mark.parametrize("status", [429, 503])
async def test_an_update_slack_refuses_is_shown_later(lab: ProcedureLab, status: int) -> None:
    iid, incident = await lab.open_incident()
    await lab.seed_diagnosis(iid)
    await lab.driver.click(incident, text="Start procedure", user_id=RESPONDER)
    msg = await lab.wait_message(incident["ts"], lambda m: "Request approval" in buttons(m))
    lab.emulator.faults.fail_next("chat.update", ONE_CALL_REFUSED, status=status, retry_after=1)
    assert (await lab.click(msg, "Request approval", RESPONDER)).status == 200
    shown = await lab.wait_message(incident["ts"], lambda m: "Approve" in buttons(m))
    assert lab.emulator.faults.pending("chat.update") == 0  # Slack did refuse the first call
    assert [m["ts"] for m in _procedure_messages(lab, incident["ts"])] == [shown["ts"]]


async def test_a_first_post_slack_rate_limits_is_posted_once_later(lab: ProcedureLab) -> None:
    iid, incident = await lab.open_incident()
    await lab.seed_diagnosis(iid)
    # Only the procedure message is posted to the thread by Start (its reply is ephemeral).
    lab.emulator.faults.fail_next("chat.postMessage", ONE_CALL_REFUSED, status=429, retry_after=1)
    await lab.driver.click(incident, text="Start procedure", user_id=RESPONDER)
    await lab.wait_message(incident["ts"], lambda m: "Request approval" in buttons(m))
    assert lab.emulator.faults.pending("chat.postMessage") == 0
    assert len(_procedure_messages(lab, incident["ts"])) == 1
