"""Building the plan from a diagnosis (pure).

Every DC a step names comes from the diagnosis (LDAP), never from the alert: reporting DCs the
directory does not know are left out, and nothing is aimed at a DC the diagnosis found gone.
Steps 4 to 10 (the KB's links, with their temporary weakening) are planned only when the root
DC really misses links.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import replace

from bot.directory.model import Cause, Diagnosis
from bot.procedure.operations import Prior, operation_lines
from bot.procedure.plan import ApprovalPolicy, Plan, PlannedStep
from bot.procedure.steps import SPECS
from bot.windows.commands import Fqdn, InvalidParameter


class PlanRefused(InvalidParameter):
    """The diagnosis does not allow a plan (for example no root DC)."""


def _fqdn(name: str) -> str:
    return Fqdn(name).value


def _keyed(number: str, items: Sequence[PlannedStep]) -> list[PlannedStep]:
    """Keys 1.1, 1.2 ... when a step runs on several targets, plain 1 when on one."""
    if len(items) == 1:
        return [_with(items[0], key=number)]
    return [_with(s, key=f"{number}.{i}") for i, s in enumerate(items, start=1)]


def _with(step: PlannedStep, *, key: str | None = None, digest: str | None = None) -> PlannedStep:
    return replace(step, key=key or step.key, digest=digest or step.digest)


def build_plan(diagnosis: Diagnosis, policy: ApprovalPolicy) -> Plan:
    """The procedure for this diagnosis: KB938704's steps that apply, on the DCs LDAP knows."""
    if diagnosis.root_dc is None:
        raise PlanRefused(
            "the diagnosis found no root DC (no reporting DC in the forest root domain and no "
            "PDC emulator); the procedure needs one. Check the forest's ldap_hosts and run "
            "Diagnose again."
        )
    root = _fqdn(diagnosis.root_dc)
    target = diagnosis.target
    target_gone = diagnosis.cause in (Cause.DC_REMOVED, Cause.DC_ORPHANED)
    unknown = set(diagnosis.unknown_reporting_dcs)
    reporting = [_fqdn(h) for h in diagnosis.reporting_dcs if h not in unknown]
    if target.dns_host_name:
        reporting = [h for h in reporting if h != target.dns_host_name]
    notes = [
        f"reporting DC {h} is not a DC of {diagnosis.forest} in LDAP: no step runs on it"
        for h in sorted(unknown)
    ]
    dead = {d.fqdn for d in diagnosis.dead_dcs}
    missing = [_fqdn(s.fqdn) for s in diagnosis.missing_links if s.fqdn not in dead]

    def planned(
        number: str,
        *,
        dc: str | None = None,
        source_dc: str | None = None,
        server_dn: str | None = None,
        computer_dn: str | None = None,
        dcs: tuple[str, ...] = (),
        sources: tuple[str, ...] = (),
    ) -> PlannedStep:
        return PlannedStep(
            key=number,
            number=number,
            approvals=policy.needed(SPECS[number].kind),
            dc=dc,
            source_dc=source_dc,
            server_dn=server_dn,
            computer_dn=computer_dn,
            dcs=dcs,
            sources=sources,
        )

    steps: list[PlannedStep] = [planned("0")]
    steps += _keyed("1", [planned("1", dc=h) for h in reporting])
    steps += _keyed("2", [planned("2", dc=h) for h in reporting])
    steps.append(planned("3", sources=tuple(missing)))
    if (
        diagnosis.cause is Cause.SERVER_REFERENCE_MISSING
        and target.computer_dn
        and target.server_dn
    ):
        steps.append(planned("3b", server_dn=target.server_dn, computer_dn=target.computer_dn))
    elif target_gone:
        notes.append(
            "the target DC is gone for good: no links are made to it; do a metadata clean-up "
            "(ntdsutil metadata cleanup) after this procedure"
        )
    if missing:
        steps += [planned("4", dc=root), planned("5", dc=root), planned("6", dc=root)]
        steps += _keyed("7", [planned("7", dc=root, source_dc=s) for s in missing])
        steps += [
            planned("8", dc=root, sources=tuple(missing)),
            planned("9", dc=root),
            planned("10", dc=root),
        ]
    root_domain = _root_domain_dcs(diagnosis, root, dead)
    steps += _keyed("11", [planned("11", dc=h) for h in root_domain])
    final_dcs = tuple(dict.fromkeys([root, *reporting, *root_domain]))
    steps.append(planned("12", dc=root, dcs=final_dcs, sources=tuple(missing)))
    plan = Plan(
        forest=diagnosis.forest,
        root_dc=root,
        target_dsa_guid=target.dsa_guid,
        target_dc=None if target_gone else target.dns_host_name,
        cause=diagnosis.cause.value,
        configuration_nc=diagnosis.configuration_nc,
        steps=tuple(steps),
        notes=tuple(notes),
    )
    return with_digests(plan)


def _root_domain_dcs(diagnosis: Diagnosis, root: str, dead: set[str]) -> list[str]:
    """The root DC and the reporting DCs of its domain (those LDAP told us about), alive."""
    suffix = root.split(".", 1)[1]
    hosts = [root]
    for h in diagnosis.reporting_dcs:
        if h in diagnosis.unknown_reporting_dcs or h in dead:
            continue
        if h.split(".", 1)[-1] == suffix and h != diagnosis.target.dns_host_name:
            hosts.append(_fqdn(h))
    return list(dict.fromkeys(hosts))


def with_digests(plan: Plan, priors: Mapping[str, Prior] | None = None) -> Plan:
    """The plan with each step's digest set from its exact commands and parameters (undo
    steps' commands depend on what their step found before it: `priors`)."""
    steps = []
    for s in plan.steps:
        material = {
            "key": s.key,
            "number": s.number,
            "kind": s.kind.value,
            "approvals": s.approvals,
            "dc": s.dc,
            "source_dc": s.source_dc,
            "server_dn": s.server_dn,
            "computer_dn": s.computer_dn,
            "dcs": list(s.dcs),
            "sources": list(s.sources),
            "undoes": s.undoes,
            "commands": operation_lines(plan, s, priors),
        }
        digest = hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:16]
        steps.append(_with(s, digest=digest))
    return Plan(
        forest=plan.forest,
        root_dc=plan.root_dc,
        target_dsa_guid=plan.target_dsa_guid,
        target_dc=plan.target_dc,
        cause=plan.cause,
        configuration_nc=plan.configuration_nc,
        steps=tuple(steps),
        notes=plan.notes,
    )
