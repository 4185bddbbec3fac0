"""What the readings of a run mean for its step: already done? verified? (pure).

The worker runs a step's operations and hands the readings here. Nothing is read as success
unless the read-back shows the wanted state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from bot.procedure.model import Procedure
from bot.procedure.operations import REPS_TO_FAILURE_SECONDS, XLATE, Prior
from bot.procedure.plan import PlannedStep
from bot.procedure.readings import (
    AddLinkReading,
    DiagnosisReading,
    KccReading,
    OptionsReading,
    Reading,
    RegistryReading,
    ReplSummaryReading,
    RestartReading,
    ServerReferenceReading,
    ShowReplReading,
)
from bot.windows.win32 import describe

R = TypeVar("R")
# A link's last result stays what it was before the fix until that link replicates again.
REPLICATION_RETRY_HINT = (
    "Failures recorded before the fix clear when those links next replicate: wait for the "
    "schedule or force it (repadmin /syncall /AdeP), then Retry"
)


@dataclass(frozen=True)
class Precheck:
    """Before applying: is the wanted state already there, and what is there now."""

    satisfied: bool
    note: str
    prior: Prior | None = None


@dataclass(frozen=True)
class Verdict:
    """After applying: did the read-back show the wanted state."""

    ok: bool
    note: str
    replan: bool = False


def _one(readings: Sequence[Reading], kind: type[R]) -> R | None:
    return next((r for r in readings if isinstance(r, kind)), None)


def _registry_prior(reading: RegistryReading | None) -> Prior | None:
    if reading is None:
        return None
    return Prior(reading.present, reading.data, reading.kind)


def _dword_is(reading: RegistryReading | None, value: int) -> bool:
    return (
        reading is not None
        and reading.present
        and reading.kind == "REG_DWORD"
        and reading.data == value
    )


def _same_as(reading: RegistryReading | None, prior: Prior | None) -> bool:
    if reading is None:
        return False
    if prior is None or not prior.present:
        return not reading.present
    return reading.present and reading.data == prior.value and reading.kind == prior.kind


def _restored(proc: Procedure, step: PlannedStep, readings: Sequence[Reading]) -> Verdict:
    """For an undo: does what is there now equal what the undone step found before it?"""
    original = proc.planned(step.undoes)
    prior = proc.record(original.key).prior
    if original.number in ("1", "4"):
        reg = _one(readings, RegistryReading)
        ok = _same_as(reg, prior)
        return Verdict(
            ok,
            f"now {_registry_text(reg)}; before step {original.key}: "
            f"{prior.describe() if prior else 'absent'}",
        )
    if original.number == "6":
        opts = _one(readings, OptionsReading)
        ok = opts is not None and XLATE not in opts.options
        return Verdict(ok, f"{XLATE} {'cleared' if ok else 'still set'}")
    if original.number == "3b":
        ref = _one(readings, ServerReferenceReading)
        now = ref.value if ref else None
        before = prior.value if prior and prior.present else None
        ok = (now or "").lower() == (str(before) if before else "").lower()
        return Verdict(ok, f"serverReference now {now or 'absent'}, before {before or 'absent'}")
    return Verdict(False, f"step {original.key} has no undo")


def _registry_precheck(number: str, reg: RegistryReading | None) -> Precheck:
    wanted = REPS_TO_FAILURE_SECONDS if number == "1" else 1
    prior = _registry_prior(reg)
    if _dword_is(reg, wanted):
        return Precheck(True, f"the value is already {wanted} (REG_DWORD)", prior)
    return Precheck(False, f"the value is {prior.describe() if prior else 'unknown'}", prior)


def precheck(proc: Procedure, step: PlannedStep, readings: Sequence[Reading]) -> Precheck:
    """Whether the step is already in the wanted state (then it offers Skip), and the prior."""
    n = step.number
    if n == "undo":
        done = _restored(proc, step, readings)
        return Precheck(done.ok, f"already as before: {done.note}" if done.ok else done.note)
    reg = _one(readings, RegistryReading)
    if n in ("1", "4"):
        return _registry_precheck(n, reg)
    if n == "3b":
        ref = _one(readings, ServerReferenceReading)
        value = ref.value if ref else None
        prior = Prior(value is not None, value)
        if value is not None and value.lower() == (step.computer_dn or "").lower():
            return Precheck(True, f"serverReference already names {value}", prior)
        return Precheck(False, f"serverReference is {value or 'absent'}", prior)
    if n in ("6", "9"):
        opts = _one(readings, OptionsReading)
        is_set = opts is not None and XLATE in opts.options
        if n == "6":
            if is_set:
                return Precheck(True, f"{XLATE} is already set", Prior(True))
            return Precheck(False, f"{XLATE} is not set", Prior(False))
        before = proc.prior_of("6")
        if before is not None and before.present:
            return Precheck(True, f"{XLATE} was set before this procedure: left as found")
        if not is_set:
            return Precheck(True, f"{XLATE} is already cleared")
        return Precheck(False, f"{XLATE} is set")
    if n == "7":
        show = _one(readings, ShowReplReading)
        link = show.link(proc.plan.configuration_nc, step.source_dc or "") if show else None
        if link is not None and link.result == 0:
            return Precheck(True, f"{step.dc} already replicates the configuration NC from it")
        return Precheck(False, "no working inbound link for the configuration NC yet", Prior(False))
    if n == "10":
        before = proc.prior_of("4")
        if _same_as(reg, before):
            return Precheck(
                True, f"the value is already {before.describe() if before else 'absent'}"
            )
        return Precheck(False, "the SPN fallback value is still set")
    return Precheck(False, "no precheck for this step: it always runs")


def verify(
    proc: Procedure, step: PlannedStep, applied: Sequence[Reading], checked: Sequence[Reading]
) -> Verdict:
    """Whether the step did what it should, from what it printed and what was read back."""
    n = step.number
    if n == "undo":
        return _restored(proc, step, checked)
    reg = _one(checked, RegistryReading)
    if n in ("1", "4", "10"):
        return _verify_registry(proc, n, reg)
    if n in ("2", "11"):
        kcc = _one(applied, KccReading)
        return Verdict(kcc is not None, "consistency check successful" if kcc else "no KCC result")
    if n in ("0", "3"):
        return _verify_missing(step, _one(applied, DiagnosisReading))
    if n == "3b":
        ref = _one(checked, ServerReferenceReading)
        value = ref.value if ref else None
        if value is not None and value.lower() == (step.computer_dn or "").lower():
            return Verdict(True, f"read back: serverReference = {value}")
        return Verdict(False, f"read back serverReference = {value or 'absent'}")
    if n == "5":
        restart = _one(applied, RestartReading)
        if restart is None:
            return Verdict(False, "the restart was not observed")
        return Verdict(True, f"back after {restart.seconds:.0f} s (WinRM and LDAP answer)")
    if n in ("6", "9"):
        return _verify_options(n, _one(checked, OptionsReading))
    if n == "7":
        return _verify_link(
            proc, step, _one(applied, AddLinkReading), _one(checked, ShowReplReading)
        )
    if n == "8":
        return _verify_links(proc, step, _one(applied, ShowReplReading))
    if n == "12":
        return _verify_final(proc, step, applied)
    return Verdict(False, f"no verification known for step {n}")


def _verify_registry(proc: Procedure, number: str, reg: RegistryReading | None) -> Verdict:
    if number == "10":
        before = proc.prior_of("4")
        if _same_as(reg, before):
            return Verdict(True, f"read back: {before.describe() if before else 'absent'}")
        return Verdict(False, f"read back {_registry_text(reg)}")
    wanted = REPS_TO_FAILURE_SECONDS if number == "1" else 1
    if _dword_is(reg, wanted):
        return Verdict(True, f"read back: {wanted} (REG_DWORD)")
    return Verdict(False, f"read back {_registry_text(reg)}, expected {wanted} (REG_DWORD)")


def _verify_options(number: str, opts: OptionsReading | None) -> Verdict:
    is_set = opts is not None and XLATE in opts.options
    ok = is_set if number == "6" else (opts is not None and not is_set)
    shown = " ".join(sorted(opts.options)) if opts and opts.options else "(none)"
    return Verdict(ok, f"read back: DSA options {shown}")


def _registry_text(reading: RegistryReading | None) -> str:
    if reading is None:
        return "nothing"
    if not reading.present:
        return "absent"
    return f"{reading.data} ({reading.kind})"


def _verify_missing(step: PlannedStep, diag: DiagnosisReading | None) -> Verdict:
    if diag is None:
        return Verdict(False, "no diagnosis result")
    now = sorted(diag.missing)
    if now == sorted(step.sources):
        listed = ", ".join(now) or "none"
        return Verdict(True, f"DCs missing from the root DC's NTDS Settings: {listed}")
    return Verdict(
        True,
        f"the forest changed since the plan: missing now {', '.join(now) or 'none'} (plan had "
        f"{', '.join(sorted(step.sources)) or 'none'}); the steps after this one are re-planned",
        replan=True,
    )


def _verify_link(
    proc: Procedure,
    step: PlannedStep,
    added: AddLinkReading | None,
    show: ShowReplReading | None,
) -> Verdict:
    source = step.source_dc or ""
    link = show.link(proc.plan.configuration_nc, source) if show else None
    what = added.outcome.replace("_", " ") if added else "no repadmin /add result"
    if link is None:
        return Verdict(False, f"repadmin /add: {what}, but /showrepl shows no link from {source}")
    if link.result != 0:
        return Verdict(
            False,
            f"the link from {source} exists but its last attempt failed: {describe(link.result)}",
        )
    return Verdict(True, f"repadmin /add: {what}; /showrepl shows the link from {source} working")


def _verify_links(proc: Procedure, step: PlannedStep, show: ShowReplReading | None) -> Verdict:
    if show is None:
        return Verdict(False, "no /showrepl result")
    bad = []
    for source in step.sources:
        link = show.link(proc.plan.configuration_nc, source)
        if link is None:
            bad.append(f"{source}: no inbound link")
        elif link.result != 0:
            bad.append(f"{source}: {describe(link.result)}")
    if bad:
        return Verdict(False, "configuration NC inbound links not working: " + "; ".join(bad))
    return Verdict(True, f"configuration NC inbound links working from {len(step.sources)} DC(s)")


def _verify_final(proc: Procedure, step: PlannedStep, applied: Sequence[Reading]) -> Verdict:
    problems = []
    for show in (r for r in applied if isinstance(r, ShowReplReading)):
        for n in show.neighbors:
            if n.result != 0:
                problems.append(
                    f"{show.dc} from {n.source} ({n.naming_context}): {describe(n.result)}"
                )
    root = next((r for r in applied if isinstance(r, ShowReplReading) and r.dc == step.dc), None)
    if root is not None:
        for source in step.sources:
            if root.link(proc.plan.configuration_nc, source) is None:
                problems.append(f"the link from {source} added in step 7 is gone")
    summary = _one(applied, ReplSummaryReading)
    if summary is None or not summary.healthy:
        detail = "; ".join(summary.problems) if summary else "no result"
        problems.append(f"repadmin /replsummary is not clean ({detail})")
    replication_failing = bool(problems)
    diag = _one(applied, DiagnosisReading)
    if diag is None or not diag.resolved:
        problems.append(f"a fresh diagnosis still finds {diag.cause if diag else 'no result'}")
    if problems:
        shown = "; ".join(problems[:8]) + (
            f"; and {len(problems) - 8} more" if len(problems) > 8 else ""
        )
        if replication_failing:
            shown += f". {REPLICATION_RETRY_HINT}"
        return Verdict(False, shown)
    return Verdict(
        True,
        "replication is clean on every DC checked, /replsummary is healthy, and the diagnosis no "
        "longer reproduces the problem",
    )
