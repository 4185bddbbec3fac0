"""What each planned step runs, derived from the plan with the fixed command templates (pure).

Nothing here is stored: the worker asks for a step's operations when it runs it, so a command
line always comes from `bot.windows.commands`, built from values the plan validated. The
same derivation feeds the digest approvals are bound to, and the plan shown in Slack.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from bot.procedure.plan import Plan, PlannedStep
from bot.windows import commands as cmd
from bot.windows.commands import DistinguishedName, Fqdn, NtdsValue, RemoteCommand

# The value KB938704 sets for 'RepsTo Failure Time (sec)'.
REPS_TO_FAILURE_SECONDS = 60
XLATE = cmd.DsaOption.DISABLE_NTDSCONN_XLATE.value


class Reads(StrEnum):
    """Which parser reads a remote command's output."""

    REG_VALUE = "reg_value"
    REG_WRITE = "reg_write"
    KCC = "kcc"
    OPTIONS = "options"
    ADD_LINK = "add_link"
    SHOWREPL = "showrepl"
    REPLSUMMARY = "replsummary"
    RESTART = "restart"


@dataclass(frozen=True)
class RemoteOp:
    """One command on one DC over WinRM."""

    dc: str
    command: RemoteCommand
    reads: Reads

    @property
    def line(self) -> str:
        """Where and what, as shown to people and hashed into the digest."""
        return f"{self.dc}: {self.command.command_line()}"


class LdapAction(StrEnum):
    """The directory operations a step may do."""

    READ_SERVER_REFERENCE = "read_server_reference"
    SET_SERVER_REFERENCE = "set_server_reference"
    CLEAR_SERVER_REFERENCE = "clear_server_reference"
    DIAGNOSE = "diagnose"


@dataclass(frozen=True)
class LdapOp:
    """One directory operation."""

    action: LdapAction
    dn: str | None = None
    value: str | None = None

    @property
    def line(self) -> str:
        """What it does, as shown to people and hashed into the digest."""
        if self.action is LdapAction.SET_SERVER_REFERENCE:
            return f"LDAP: modify {self.dn}: replace serverReference with {self.value}"
        if self.action is LdapAction.CLEAR_SERVER_REFERENCE:
            return f"LDAP: modify {self.dn}: delete serverReference"
        if self.action is LdapAction.READ_SERVER_REFERENCE:
            return f"LDAP: read serverReference of {self.dn}"
        return "LDAP: diagnose the forest (read only)"


Op = RemoteOp | LdapOp


@dataclass(frozen=True)
class Prior:
    """What a step found before it changed anything, so its undo can put it back."""

    present: bool
    value: str | int | None = None
    kind: str | None = None

    def describe(self) -> str:
        """`absent`, or the value (and its type)."""
        if not self.present:
            return "absent"
        return f"{self.value}" + (f" ({self.kind})" if self.kind else "")


@dataclass(frozen=True)
class StepOps:
    """The three phases of one run: precheck (read), apply (change), verify (read back)."""

    precheck: tuple[Op, ...]
    apply: tuple[Op, ...]
    verify: tuple[Op, ...]


def _reg_query(dc: str, value: NtdsValue) -> RemoteOp:
    return RemoteOp(dc, cmd.reg_query(value), Reads.REG_VALUE)


def _reg_set(dc: str, value: NtdsValue, data: int) -> RemoteOp:
    return RemoteOp(dc, cmd.reg_add_dword(value, data), Reads.REG_WRITE)


def _reg_delete(dc: str, value: NtdsValue) -> RemoteOp:
    return RemoteOp(dc, cmd.reg_delete(value), Reads.REG_WRITE)


def _options(dc: str, change: str | None = None) -> RemoteOp:
    return RemoteOp(dc, cmd.repadmin_options(Fqdn(dc), change), Reads.OPTIONS)


def _showrepl(dc: str) -> RemoteOp:
    return RemoteOp(dc, cmd.repadmin_showrepl(Fqdn(dc)), Reads.SHOWREPL)


def restore_registry(dc: str, value: NtdsValue, prior: Prior | None) -> tuple[Op, ...] | None:
    """Put a registry value back as it was: delete it when it was absent (never set it to 0)."""
    if prior is None or not prior.present:
        return (_reg_delete(dc, value),)
    if prior.kind == "REG_DWORD" and isinstance(prior.value, int):
        return (_reg_set(dc, value, prior.value),)
    return None  # a value of another type cannot be rebuilt by the templates


def _undo(plan: Plan, step: PlannedStep, priors: Mapping[str, Prior]) -> StepOps:
    original = plan.step(step.undoes)
    if original is None:
        raise ValueError(f"undo of {step.undoes!r}, which is not in the plan")
    restore = undo_ops(plan, original, priors.get(original.key))
    if restore is None:
        raise ValueError(f"step {original.key} has no undo")
    look = ops_for(plan, original, priors).precheck
    return StepOps(look, restore, look)


def _registry_step(value: NtdsValue, data: int) -> _Builder:
    def build(plan: Plan, step: PlannedStep, priors: Mapping[str, Prior]) -> StepOps:
        query = (_reg_query(step.dc or "", value),)
        return StepOps(query, (_reg_set(step.dc or "", value, data),), query)

    return build


def _diagnose(plan: Plan, step: PlannedStep, priors: Mapping[str, Prior]) -> StepOps:
    return StepOps((), (LdapOp(LdapAction.DIAGNOSE),), ())


def _kcc_local(plan: Plan, step: PlannedStep, priors: Mapping[str, Prior]) -> StepOps:
    return StepOps((), (RemoteOp(step.dc or "", cmd.repadmin_kcc(), Reads.KCC),), ())


def _kcc_on(plan: Plan, step: PlannedStep, priors: Mapping[str, Prior]) -> StepOps:
    dc = step.dc or ""
    return StepOps((), (RemoteOp(dc, cmd.repadmin_kcc(Fqdn(dc)), Reads.KCC),), ())


def _server_reference(plan: Plan, step: PlannedStep, priors: Mapping[str, Prior]) -> StepOps:
    read: tuple[Op, ...] = (LdapOp(LdapAction.READ_SERVER_REFERENCE, step.server_dn),)
    write = LdapOp(LdapAction.SET_SERVER_REFERENCE, step.server_dn, step.computer_dn)
    return StepOps(read, (write,), read)


def _restart(plan: Plan, step: PlannedStep, priors: Mapping[str, Prior]) -> StepOps:
    return StepOps((), (RemoteOp(step.dc or "", cmd.restart(), Reads.RESTART),), ())


def _xlate(change: str) -> _Builder:
    def build(plan: Plan, step: PlannedStep, priors: Mapping[str, Prior]) -> StepOps:
        read: tuple[Op, ...] = (_options(step.dc or ""),)
        return StepOps(read, (_options(step.dc or "", change),), read)

    return build


def _add_link(plan: Plan, step: PlannedStep, priors: Mapping[str, Prior]) -> StepOps:
    dc = step.dc or ""
    add = cmd.repadmin_add(
        DistinguishedName(plan.configuration_nc), Fqdn(dc), Fqdn(step.source_dc or "")
    )
    read: tuple[Op, ...] = (_showrepl(dc),)
    return StepOps(read, (RemoteOp(dc, add, Reads.ADD_LINK),), read)


def _showrepl_root(plan: Plan, step: PlannedStep, priors: Mapping[str, Prior]) -> StepOps:
    return StepOps((), (_showrepl(step.dc or ""),), ())


def _remove_fallback(plan: Plan, step: PlannedStep, priors: Mapping[str, Prior]) -> StepOps:
    dc, value = step.dc or "", NtdsValue.ALLOW_SPN_FALLBACK
    query = (_reg_query(dc, value),)
    restore = restore_registry(dc, value, priors.get(_key_of(plan, "4")))
    return StepOps(query, restore or (_reg_delete(dc, value),), query)


def _final(plan: Plan, step: PlannedStep, priors: Mapping[str, Prior]) -> StepOps:
    reads: list[Op] = [_showrepl(h) for h in step.dcs]
    reads.append(RemoteOp(step.dc or "", cmd.repadmin_replsummary(), Reads.REPLSUMMARY))
    reads.append(LdapOp(LdapAction.DIAGNOSE))
    return StepOps((), tuple(reads), ())


_Builder = Callable[[Plan, PlannedStep, Mapping[str, Prior]], StepOps]
_BUILDERS: dict[str, _Builder] = {
    "0": _diagnose,
    "1": _registry_step(NtdsValue.REPS_TO_FAILURE_TIME, REPS_TO_FAILURE_SECONDS),
    "2": _kcc_local,
    "3": _diagnose,
    "3b": _server_reference,
    "4": _registry_step(NtdsValue.ALLOW_SPN_FALLBACK, 1),
    "5": _restart,
    "6": _xlate(f"+{XLATE}"),
    "7": _add_link,
    "8": _showrepl_root,
    "9": _xlate(f"-{XLATE}"),
    "10": _remove_fallback,
    "11": _kcc_on,
    "12": _final,
    "undo": _undo,
}


def ops_for(plan: Plan, step: PlannedStep, priors: Mapping[str, Prior]) -> StepOps:
    """The operations of a step; cleanup and undo steps read the priors of what they undo."""
    build = _BUILDERS.get(step.number)
    if build is None:
        raise ValueError(f"step {step.number!r} is not in the catalog")
    return build(plan, step, priors)


def undo_ops(plan: Plan, step: PlannedStep, prior: Prior | None) -> tuple[Op, ...] | None:
    """How to undo an applied step from what it found before; None when there is no undo.

    Links added by step 7 have none: the KCC owns inbound links and replaces them itself.
    """
    dc = step.dc or ""
    if step.number == "1":
        return restore_registry(dc, NtdsValue.REPS_TO_FAILURE_TIME, prior)
    if step.number == "4":
        return restore_registry(dc, NtdsValue.ALLOW_SPN_FALLBACK, prior)
    if step.number == "6":
        was_set = prior is not None and prior.present
        return None if was_set else (_options(dc, f"-{XLATE}"),)
    if step.number == "3b":
        if prior is not None and prior.present and isinstance(prior.value, str):
            return (LdapOp(LdapAction.SET_SERVER_REFERENCE, step.server_dn, prior.value),)
        return (LdapOp(LdapAction.CLEAR_SERVER_REFERENCE, step.server_dn),)
    return None


def _key_of(plan: Plan, number: str) -> str:
    return next((s.key for s in plan.steps if s.number == number), number)


def operation_lines(
    plan: Plan, step: PlannedStep, priors: Mapping[str, Prior] | None = None
) -> list[str]:
    """The step's changing (or, for reads, reading) operations as people read them."""
    return [op.line for op in ops_for(plan, step, priors or {}).apply]
