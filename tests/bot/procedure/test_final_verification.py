"""Step 12's verdict, pure: clean only when replication and a fresh diagnosis both are, and a
replication failure recorded before the fix says how it clears."""

from __future__ import annotations

from bot.procedure.model import Procedure
from bot.procedure.outcomes import REPLICATION_RETRY_HINT, verify
from bot.procedure.readings import (
    DiagnosisReading,
    Neighbor,
    Reading,
    ReplSummaryReading,
    ShowReplReading,
)
from tests.bot.procedure.test_rules import _proc
from tests.procedure_lab import CONFIG_NC, MISSING, ROOT

HEALTHY = DiagnosisReading(True, "not_reproduced", (), "not reproduced")
LINK_OK = Neighbor(CONFIG_NC, MISSING.split(".")[0], 0, 0)


def _final(proc: Procedure, *readings: Reading) -> tuple[bool, str]:
    step = next(s for s in proc.plan.steps if s.number == "12")
    verdict = verify(proc, step, readings, ())
    return verdict.ok, verdict.note


def test_clean_replication_and_a_healthy_diagnosis_pass() -> None:
    ok, note = _final(_proc(), ShowReplReading(ROOT, (LINK_OK,)), ReplSummaryReading(True), HEALTHY)
    assert ok, note
    assert "no longer reproduces" in note


def test_a_failure_from_before_the_fix_says_it_clears_at_the_next_replication() -> None:
    ok, note = _final(
        _proc(),
        ShowReplReading(ROOT, (LINK_OK,)),
        ReplSummaryReading(False, ("DC2: 4/5 failed",)),
        HEALTHY,
    )
    assert not ok
    assert "repadmin /replsummary is not clean (DC2: 4/5 failed)" in note
    assert note.endswith(REPLICATION_RETRY_HINT)


def test_a_diagnosis_that_still_finds_the_cause_gets_no_replication_hint() -> None:
    ok, note = _final(
        _proc(),
        ShowReplReading(ROOT, (LINK_OK,)),
        ReplSummaryReading(True),
        DiagnosisReading(False, "no_connection_object", (), "no connection object"),
    )
    assert not ok
    assert note == "a fresh diagnosis still finds no_connection_object"
