"""`ad1411 config check --probe`: try each configured authentication against each DC."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.config import FileConfig, ForestSection
from bot.directory.client import DirectoryClient
from bot.errors import ConfigError, DirectoryError, RemoteCommandFailed
from bot.kerberos import KerberosFailed, login_for
from bot.remote.winrm import WinrmExecutor

_TIMEOUT_SECONDS = 15.0


@dataclass(frozen=True)
class ProbeResult:
    """What one check found: which forest, DC and protocol, and whether it worked."""

    forest: str
    target: str  # a DC's FQDN, or the realm for the Kerberos login itself
    protocol: str  # "kerberos", "ldap" or "winrm"
    method: str  # how it authenticated, e.g. "ldaps, kerberos"
    ok: bool
    detail: str

    def line(self) -> str:
        """One line of the report."""
        status = "ok" if self.ok else "FAILED"
        return f"  {self.target}  {self.protocol} ({self.method}): {status}: {self.detail}"


def dcs_of(forest: ForestSection) -> list[str]:
    """Every DC the configuration names for a forest, in order, once each."""
    names = [*forest.ldap_hosts, *(d.fqdn for d in forest.dcs)]
    return list(dict.fromkeys(names))


def _timed(check: Callable[[], str]) -> tuple[bool, str]:
    begin = time.monotonic()
    try:
        what = check()
    except (KerberosFailed, DirectoryError, RemoteCommandFailed, ConfigError) as exc:
        return False, str(exc)
    return True, f"{what} in {time.monotonic() - begin:.2f} s"


def probe_forest(forest: ForestSection) -> list[ProbeResult]:
    """The Kerberos login (when configured), then LDAP and WinRM on each DC."""
    results: list[ProbeResult] = []
    kerberos_ok = True
    if forest.kerberos is not None:
        login = login_for(forest.kerberos)
        source = "keytab" if forest.kerberos.keytab is not None else "password"

        def ticket() -> str:
            expires = datetime.fromtimestamp(login.ticket().expires_at, UTC)
            return f"ticket for {login.principal} until {expires:%Y-%m-%d %H:%M}Z"

        kerberos_ok, detail = _timed(ticket)
        results.append(
            ProbeResult(forest.name, forest.kerberos.realm, "kerberos", source, kerberos_ok, detail)
        )
    ldap_method = f"{forest.ldap.tls}, {forest.ldap.auth}"
    winrm_kerberos = forest.kerberos is not None and forest.winrm.auth in ("kerberos", "negotiate")
    winrm_method = f"{forest.winrm.scheme}, {forest.winrm.auth}"
    if winrm_kerberos:
        winrm_method += f" as {forest.winrm.kerberos_service}/<dc>"
    for dc in dcs_of(forest):
        results.append(_ldap(forest, dc, ldap_method, kerberos_ok))
        results.append(
            _winrm(forest, dc, winrm_method, kerberos_ok or not winrm_kerberos),
        )
    return results


def _skipped(forest: ForestSection, dc: str, protocol: str, method: str) -> ProbeResult:
    detail = "not tried: the Kerberos login above failed"
    return ProbeResult(forest.name, dc, protocol, method, False, detail)


def _ldap(forest: ForestSection, dc: str, method: str, kerberos_ok: bool) -> ProbeResult:
    if forest.ldap.auth == "kerberos" and not kerberos_ok:
        return _skipped(forest, dc, "ldap", method)

    def bind() -> str:
        with DirectoryClient.for_forest(forest) as client:
            client.root_dse(dc=dc)
            return f"bound as {client.identity or 'anonymous'} and read the rootDSE"

    ok, detail = _timed(bind)
    return ProbeResult(forest.name, dc, "ldap", method, ok, detail)


def _winrm(forest: ForestSection, dc: str, method: str, may_try: bool) -> ProbeResult:
    if not may_try:
        return _skipped(forest, dc, "winrm", method)

    def shell() -> str:
        executor = WinrmExecutor.for_forest(forest)
        executor.check_access(dc, timeout_seconds=_TIMEOUT_SECONDS)
        who = executor.kerberos.principal if executor.kerberos else forest.winrm.user
        return f"opened a shell as {who or 'the current user'}"

    ok, detail = _timed(shell)
    return ProbeResult(forest.name, dc, "winrm", method, ok, detail)


def probe(cfg: FileConfig) -> list[ProbeResult]:
    """Every forest's checks, in configuration order."""
    return [result for forest in cfg.forests for result in probe_forest(forest)]


def report(results: list[ProbeResult]) -> str:
    """The printed report: one block per forest, a summary line last."""
    lines: list[str] = []
    forest = None
    for result in results:
        if result.forest != forest:
            forest = result.forest
            lines.append(f"forest {forest}")
        lines.append(result.line())
    failed = sum(1 for r in results if not r.ok)
    lines.append(f"ad1411: {len(results) - failed} of {len(results)} checks passed")
    return "\n".join(lines)
