"""What each planned step runs, derived from the plan with the fixed command templates (pure).

Nothing here is stored: the worker asks for a step's operations when it runs it, so a command
line always comes from `bot.windows.commands`, built from values the plan validated. The
same derivation feeds the digest approvals are bound to, and the plan shown in Slack.
"""

from __future__ import annotations

from collections.abc import Mapping
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


def ops_for(plan: Plan, step: PlannedStep, priors: Mapping[str, Prior]) -> StepOps:
    """The operations of a step; cleanup steps read the priors of what they undo."""
    n, dc = step.number, step.dc or ""
    read: tuple[Op, ...]
    if n in ("0", "3"):
        return StepOps((), (LdapOp(LdapAction.DIAGNOSE),), ())
    if n == "1":
        value = NtdsValue.REPS_TO_FAILURE_TIME
        query = (_reg_query(dc, value),)
        return StepOps(query, (_reg_set(dc, value, REPS_TO_FAILURE_SECONDS),), query)
    if n == "2":
        return StepOps((), (RemoteOp(dc, cmd.repadmin_kcc(), Reads.KCC),), ())
    if n == "3b":
        read = (LdapOp(LdapAction.READ_SERVER_REFERENCE, step.server_dn),)
        write = LdapOp(LdapAction.SET_SERVER_REFERENCE, step.server_dn, step.computer_dn)
        return StepOps(read, (write,), read)
    if n == "4":
        value = NtdsValue.ALLOW_SPN_FALLBACK
        query = (_reg_query(dc, value),)
        return StepOps(query, (_reg_set(dc, value, 1),), query)
    if n == "5":
        return StepOps((), (RemoteOp(dc, cmd.restart(), Reads.RESTART),), ())
    if n == "6":
        read = (_options(dc),)
        return StepOps(read, (_options(dc, f"+{XLATE}"),), read)
    if n == "7":
        add = cmd.repadmin_add(
            DistinguishedName(plan.configuration_nc), Fqdn(dc), Fqdn(step.source_dc or "")
        )
        read = (_showrepl(dc),)
        return StepOps(read, (RemoteOp(dc, add, Reads.ADD_LINK),), read)
    if n == "8":
        return StepOps((), (_showrepl(dc),), ())
    if n == "9":
        read = (_options(dc),)
        return StepOps(read, (_options(dc, f"-{XLATE}"),), read)
    if n == "10":
        value = NtdsValue.ALLOW_SPN_FALLBACK
        query = (_reg_query(dc, value),)
        restore = restore_registry(dc, value, priors.get(_key_of(plan, "4")))
        return StepOps(query, restore or (_reg_delete(dc, value),), query)
    if n == "11":
        return StepOps((), (RemoteOp(dc, cmd.repadmin_kcc(Fqdn(dc)), Reads.KCC),), ())
    if n == "12":
        reads: list[Op] = [_showrepl(h) for h in step.dcs]
        reads.append(RemoteOp(dc, cmd.repadmin_replsummary(), Reads.REPLSUMMARY))
        reads.append(LdapOp(LdapAction.DIAGNOSE))
        return StepOps((), tuple(reads), ())
    raise ValueError(f"step {n!r} is not in the catalog")


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


def operation_lines(plan: Plan, step: PlannedStep) -> list[str]:
    """The step's changing (or, for reads, reading) operations as people read them."""
    return [op.line for op in ops_for(plan, step, {}).apply]
