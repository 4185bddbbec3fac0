"""Running commands on domain controllers over WinRM (pypsrp), one object per run, with a deadline.

pypsrp is synchronous: the worker calls these from threads. Every failure becomes one of the
RemoteCommandFailed subclasses below; nothing that did not finish with exit code 0 is success.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import requests
import spnego.exceptions
from pypsrp.complex_objects import GenericComplexObject, PSInvocationState
from pypsrp.exceptions import (
    AuthenticationError,
    WinRMError,
    WinRMTransportError,
    WSManFaultError,
)
from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.shell import CommandState, Process, SignalCode, WinRS
from pypsrp.wsman import WSMan

from bot.config import DcOverride, ForestSection, WinrmSection
from bot.errors import ConfigError, RemoteCommandFailed
from bot.kerberos import KerberosFailed, KerberosFailure, KerberosLogin, login_for, minor_code
from bot.windows.commands import NTDS_PARAMETERS_KEY, NtdsValue, RemoteCommand
from bot.windows.output import CommandOutput, excerpt

log = logging.getLogger(__name__)

UTF8_CODEPAGE = 65001
# pypsrp's HTTP read timeout must outlast the WS-Man OperationTimeout, or every idle poll fails.
_READ_TIMEOUT_MARGIN = 10
_CMDLET_NAME = re.compile(r"^[A-Z][a-zA-Z]+-[A-Z][a-zA-Z0-9]+$")
_PARAMETER_NAME = re.compile(r"^[A-Z][a-zA-Z0-9]{0,63}$")


# --- failures ---------------------------------------------------------------------------------


class DcUnreachable(RemoteCommandFailed):
    """The DC's WinRM listener could not be reached, or the connection was lost."""

    def __init__(self, host: str, what: str, detail: str, *, may_have_run: bool) -> None:
        self.host = host
        self.may_have_run = may_have_run
        if may_have_run:
            advice = (
                "The command had started, so it may or may not have taken effect: run the "
                "step's precheck (read the value back) before retrying."
            )
        else:
            advice = (
                f"Nothing ran. Check that {host} is up, that its name resolves from the worker, "
                "and that the WinRM listener answers (Test-WSMan from another host); then retry."
            )
        super().__init__(f"WinRM to {host} failed while {what}: {detail}. {advice}")


class DcAuthFailed(RemoteCommandFailed):
    """The DC refused the configured credentials."""

    def __init__(
        self, host: str, user: str | None, auth: str, detail: str, *, spn: str | None = None
    ) -> None:
        self.host = host
        if spn is not None:
            check = (
                f"The DC did not accept the Kerberos ticket for {spn}. Check that {spn} is an "
                "SPN of this DC's computer account and of no other (setspn -Q), that the DC's "
                "clock is within 5 minutes of the KDC's, and that the account may use WinRM on "
                "the DC (Remote Management Users or Administrators)."
            )
        else:
            check = (
                "Check the account and password the config references (winrm.user / "
                "winrm.password), that the account is not locked out, and that it may use "
                "WinRM on the DC (Remote Management Users or Administrators)."
            )
        super().__init__(
            f"{host} refused WinRM authentication for {user or 'the current credentials'} "
            f"({auth}): {detail}. Nothing ran. {check}"
        )


class DcKerberosFailed(RemoteCommandFailed):
    """No Kerberos ticket for the DC could be had; `kind` says why. Nothing ran."""

    def __init__(self, host: str, failure: KerberosFailed) -> None:
        self.host = host
        self.kind: KerberosFailure = failure.kind
        super().__init__(f"WinRM to {host}: nothing ran. {failure}")


class DcCertificateRejected(RemoteCommandFailed):
    """The DC's HTTPS certificate did not validate."""

    def __init__(self, host: str, detail: str) -> None:
        self.host = host
        super().__init__(
            f"the HTTPS certificate of {host} was not trusted: {detail}. Nothing ran. Point "
            "winrm.ca_file at the CA that issued the DC's WinRM certificate, or fix the "
            "certificate's names; do not turn validation off in production."
        )


class WinrmProtocolError(RemoteCommandFailed):
    """WinRM answered with a fault or an HTTP error the bot cannot interpret as a result."""

    def __init__(self, host: str, what: str, detail: str, *, may_have_run: bool) -> None:
        self.host = host
        self.may_have_run = may_have_run
        tail = (
            "The command may have started: run the step's precheck before retrying."
            if may_have_run
            else "Nothing ran."
        )
        super().__init__(
            f"WinRM on {host} returned an error while {what}: {detail}. {tail} Check the "
            "WinRM service on the DC (winrm quickconfig, event log Microsoft-Windows-WinRM)."
        )


@dataclass(frozen=True)
class CommandResult:
    """What one command printed and returned on one DC."""

    host: str
    command_line: str
    stdout: str
    stderr: str
    exit_code: int
    started_at: datetime
    duration_seconds: float

    @property
    def output(self) -> CommandOutput:
        """stdout, stderr and exit code for the output parsers."""
        return CommandOutput(self.stdout, self.stderr, self.exit_code)


class CommandTimedOut(RemoteCommandFailed):
    """The command did not finish before its deadline and was terminated."""

    def __init__(self, host: str, command_line: str, deadline: float, partial: CommandResult):
        self.host = host
        self.partial = partial
        super().__init__(
            f"`{command_line}` on {host} did not finish within {deadline:g} s and was "
            "terminated (WinRS Signal terminate). It may have taken effect partly: run the "
            "step's precheck, then retry; if it hangs again, run it by hand on the DC console. "
            f"Output so far: {excerpt(partial.output) or '(none)'}"
        )


class CommandExitedNonZero(RemoteCommandFailed):
    """The command ran and exited with a non-zero code."""

    def __init__(self, result: CommandResult) -> None:
        self.result = result
        super().__init__(
            f"`{result.command_line}` on {result.host} exited with code {result.exit_code}. "
            "Read its output below, fix the cause on the DC, then retry the step. Output: "
            f"{excerpt(result.output) or '(none)'}"
        )


class CmdletFailed(RemoteCommandFailed):
    """A PowerShell cmdlet wrote errors."""

    def __init__(self, result: CmdletResult) -> None:
        self.result = result
        super().__init__(
            f"`{result.cmdlet_line}` on {result.host} reported: {'; '.join(result.errors)}. "
            "Check the DC by hand before retrying."
        )


# --- where and how --------------------------------------------------------------------------


@dataclass(frozen=True)
class WinrmEndpoint:
    """How to reach one DC's WinRM listener. The password is held but never shown."""

    host: str
    address: str
    port: int
    scheme: Literal["https", "http"]
    auth: Literal["negotiate", "kerberos", "ntlm", "credssp", "basic"]
    user: str | None
    password: str | None = field(repr=False)
    ca_file: Path | None
    validate_certificates: bool
    encryption: Literal["auto", "always", "never"]
    operation_timeout_seconds: int
    connection_timeout_seconds: int = 10
    kerberos: KerberosLogin | None = field(default=None, repr=False)
    kerberos_service: str = "host"

    @property
    def uses_kerberos(self) -> bool:
        """Whether this endpoint authenticates with the bot's own Kerberos login."""
        return self.kerberos is not None and self.auth in ("kerberos", "negotiate")

    @property
    def spn(self) -> str:
        """The service principal a Kerberos ticket is asked for."""
        return f"{self.kerberos_service}/{self.host}"

    @property
    def identity(self) -> str | None:
        """Who the DC sees: the Kerberos principal, or the configured user."""
        return self.kerberos.principal if self.uses_kerberos and self.kerberos else self.user

    def __post_init__(self) -> None:
        if self.auth == "basic" and self.scheme != "https":
            raise ConfigError(
                [
                    f"winrm for {self.host}: auth 'basic' over http would send the password in "
                    'clear text; set scheme = "https" (port 5986) or use negotiate/kerberos'
                ]
            )

    @property
    def url(self) -> str:
        """The listener URL (no credentials)."""
        return f"{self.scheme}://{self.address}:{self.port}/wsman"

    def wsman(
        self, *, operation_timeout: int | None = None, connect_timeout: int | None = None
    ) -> WSMan:
        """A fresh pypsrp WSMan for one run."""
        op_timeout = operation_timeout or self.operation_timeout_seconds
        cert_validation: bool | str = self.validate_certificates
        if self.scheme == "https" and not self.validate_certificates:
            log.warning(
                "WinRM to %s: certificate validation is OFF (validate_certificates=false); "
                "anyone on the network path can impersonate the DC and read the commands",
                self.host,
            )
        elif self.scheme == "https" and self.ca_file is not None:
            cert_validation = str(self.ca_file)
        if self.scheme == "http" and self.encryption == "never":
            log.warning(
                "WinRM to %s: HTTP without message encryption; traffic is readable", self.host
            )
        extra: dict[str, Any] = {}
        if self.auth in ("negotiate", "kerberos") and self.address != self.host:
            # Kerberos needs the DC's name for the SPN even when we dial an address.
            extra["negotiate_hostname_override"] = self.host
        username: Any = self.user
        password = self.password
        if self.uses_kerberos:
            username, password = self._kerberos_credentials(), None
            extra["negotiate_service"] = self.kerberos_service
        # pypsrp hands cert_validation to requests' `verify`: True, False or a CA bundle path.
        return WSMan(
            self.address,
            port=self.port,
            username=username,
            password=password,
            ssl=self.scheme == "https",
            auth=self.auth,
            cert_validation=cert_validation,  # type: ignore[arg-type]
            encryption=self.encryption,
            operation_timeout=op_timeout,
            read_timeout=op_timeout + _READ_TIMEOUT_MARGIN,
            connection_timeout=connect_timeout or self.connection_timeout_seconds,
            no_proxy=True,
            reconnection_retries=0,
            reconnection_backoff=0.5,
            **extra,
        )

    def _kerberos_credentials(self) -> list[spnego.Credential]:
        """The login's ticket cache; with negotiate, the password too as NTLM's fallback."""
        assert self.kerberos is not None
        try:
            credentials: list[spnego.Credential] = [self.kerberos.spnego_credential()]
        except KerberosFailed as exc:
            raise DcKerberosFailed(self.host, exc) from None
        if self.auth == "negotiate" and self.user and self.password:
            credentials.append(spnego.Password(self.user, self.password))
        return credentials


def endpoint_for(
    section: WinrmSection,
    host: str,
    *,
    password: str | None,
    address: str | None = None,
    port: int | None = None,
    kerberos: KerberosLogin | None = None,
) -> WinrmEndpoint:
    """The endpoint of `host` from the forest's [winrm] settings plus an address/port override."""
    return WinrmEndpoint(
        host=host.lower(),
        address=address or host.lower(),
        port=port or section.port,
        scheme=section.scheme,
        auth=section.auth,
        user=section.user,
        password=password,
        ca_file=section.ca_file,
        validate_certificates=section.validate_certificates,
        encryption=section.encryption,
        operation_timeout_seconds=section.operation_timeout_seconds,
        kerberos=kerberos,
        kerberos_service=section.kerberos_service,
    )


# --- one command run ------------------------------------------------------------------------


def _translate(
    exc: Exception, endpoint: WinrmEndpoint, what: str, started: bool
) -> RemoteCommandFailed:
    """Map a pypsrp/requests failure to the failure the operator must react to."""
    host = endpoint.host
    if isinstance(exc, requests.exceptions.SSLError):
        return DcCertificateRejected(host, _short(exc))
    if isinstance(exc, requests.exceptions.ConnectionError | requests.exceptions.Timeout):
        if started:
            return DcUnreachable(host, what, f"connection lost ({_short(exc)})", may_have_run=True)
        return DcUnreachable(
            host, what, f"{endpoint.url} did not answer ({_short(exc)})", may_have_run=False
        )
    if isinstance(exc, spnego.exceptions.SpnegoError) and endpoint.uses_kerberos:
        kerberos = _kerberos_failure(exc, endpoint)
        if kerberos is not None:
            return kerberos
    if isinstance(exc, AuthenticationError | spnego.exceptions.SpnegoError):
        return DcAuthFailed(host, endpoint.identity, endpoint.auth, _short(exc), spn=_spn(endpoint))
    if isinstance(exc, WSManFaultError):
        return WinrmProtocolError(
            host, what, f"fault {exc.code}: {exc.reason}", may_have_run=started
        )
    if isinstance(exc, WinRMTransportError):
        if exc.code == 401:
            return DcAuthFailed(
                host, endpoint.identity, endpoint.auth, "HTTP 401", spn=_spn(endpoint)
            )
        return WinrmProtocolError(host, what, f"HTTP {exc.code}", may_have_run=started)
    if isinstance(exc, ImportError):
        return WinrmProtocolError(
            host,
            what,
            f"auth '{endpoint.auth}' needs a package that is not installed "
            f"({_short(exc)}); install it or choose another winrm.auth",
            may_have_run=False,
        )
    if isinstance(exc, ValueError) and "auth" in str(exc).lower():
        return DcAuthFailed(host, endpoint.identity, endpoint.auth, _short(exc), spn=_spn(endpoint))
    return WinrmProtocolError(host, what, _short(exc), may_have_run=started)


def _spn(endpoint: WinrmEndpoint) -> str | None:
    return endpoint.spn if endpoint.uses_kerberos else None


def _kerberos_failure(
    exc: spnego.exceptions.SpnegoError, endpoint: WinrmEndpoint
) -> DcKerberosFailed | None:
    """A Kerberos failure behind a pyspnego error (None when it is not one)."""
    assert endpoint.kerberos is not None
    if minor_code(exc) is None and endpoint.auth != "kerberos":
        return None
    failure = endpoint.kerberos.explain(exc, spn=endpoint.spn)
    if failure.kind is KerberosFailure.OTHER and endpoint.auth != "kerberos":
        return None
    return DcKerberosFailed(endpoint.host, failure)


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 240 else text[:237] + "..."


_TRANSLATED = (
    ImportError,
    requests.exceptions.RequestException,
    WinRMError,
    spnego.exceptions.SpnegoError,
    ValueError,
)


class CommandRun:
    """One command on one DC: open a WinRS shell, start, poll until done or deadline, clean up."""

    def __init__(
        self,
        endpoint: WinrmEndpoint,
        command: RemoteCommand,
        *,
        deadline_seconds: float,
    ) -> None:
        self.endpoint = endpoint
        self.command = command
        self.deadline_seconds = deadline_seconds
        self.command_line = command.command_line()
        self.started = False

    def run(self, *, check: bool = True) -> CommandResult:
        """Run to completion. Non-zero exit raises CommandExitedNonZero unless check=False."""
        begin = time.monotonic()
        deadline = begin + self.deadline_seconds
        started_at = datetime.now(UTC)
        wsman = self.endpoint.wsman()
        shell = WinRS(wsman, codepage=UTF8_CODEPAGE)
        process: Process | None = None
        what = "opening a shell"
        try:
            shell.open()
            process = Process(shell, self.command.executable, list(self.command.quoted_arguments()))
            what = "starting the command"
            process.begin_invoke()
            self.started = True
            what = "waiting for the command"
            while process.state != CommandState.DONE:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    partial = self._result(process, started_at, begin, exit_code=-1)
                    self._terminate(process)
                    raise CommandTimedOut(
                        self.endpoint.host, self.command_line, self.deadline_seconds, partial
                    )
                poll = max(1, math.ceil(min(self.endpoint.operation_timeout_seconds, remaining)))
                process.poll_invoke(timeout=poll)
        except _TRANSLATED as exc:
            raise _translate(exc, self.endpoint, what, self.started) from None
        finally:
            self._close(shell, process)
            wsman.close()
        if process.rc is None:
            raise WinrmProtocolError(
                self.endpoint.host,
                "reading the result",
                "the shell reported no exit code",
                may_have_run=True,
            )
        result = self._result(process, started_at, begin, exit_code=process.rc)
        log.info(
            "ran on %s: %s -> exit %d in %.1f s",
            self.endpoint.host,
            self.command_line,
            result.exit_code,
            result.duration_seconds,
        )
        if check and result.exit_code != 0:
            raise CommandExitedNonZero(result)
        return result

    def _result(
        self, process: Process, started_at: datetime, begin: float, exit_code: int
    ) -> CommandResult:
        return CommandResult(
            host=self.endpoint.host,
            command_line=self.command_line,
            stdout=process.stdout.decode("utf-8", errors="replace"),
            stderr=process.stderr.decode("utf-8", errors="replace"),
            exit_code=exit_code,
            started_at=started_at,
            duration_seconds=time.monotonic() - begin,
        )

    def _terminate(self, process: Process) -> None:
        try:
            process.signal(SignalCode.TERMINATE)
        except _TRANSLATED as exc:
            log.warning(
                "could not terminate the command on %s: %s", self.endpoint.host, _short(exc)
            )

    def _close(self, shell: WinRS, process: Process | None) -> None:
        # Cleanup failures never change the outcome (a restarting DC drops us here on purpose).
        try:
            if process is not None and process.id and process.state == CommandState.DONE:
                process.signal(SignalCode.TERMINATE)
            shell.close()
        except _TRANSLATED as exc:
            log.info("could not close the WinRS shell on %s: %s", self.endpoint.host, _short(exc))


# --- PowerShell cmdlets (PSRP) ----------------------------------------------------------------


ParameterValue = str | int | bool


@dataclass(frozen=True)
class CmdletCall:
    """One cmdlet with named parameters, sent as a PSRP command (never as script text)."""

    name: str
    parameters: tuple[tuple[str, ParameterValue], ...] = ()

    def __post_init__(self) -> None:
        if not _CMDLET_NAME.match(self.name):
            raise ValueError(f"{self.name!r} is not a Verb-Noun cmdlet name")
        for key, _ in self.parameters:
            if not _PARAMETER_NAME.match(key):
                raise ValueError(f"{key!r} is not a parameter name")

    def line(self) -> str:
        """How the call reads at a PowerShell prompt (for logs and audit)."""
        parts = [self.name]
        for key, value in self.parameters:
            shown = f"${str(value).lower()}" if isinstance(value, bool) else f"'{value}'"
            parts.append(f"-{key} {shown}")
        return " ".join(parts)


def get_ntds_parameter(value: NtdsValue) -> CmdletCall:
    """Get-ItemProperty of one value under the NTDS Parameters key."""
    path = "HKLM:\\" + NTDS_PARAMETERS_KEY.split("\\", 1)[1]
    return CmdletCall("Get-ItemProperty", (("Path", path), ("Name", NtdsValue(value).value)))


@dataclass(frozen=True)
class CmdletResult:
    """Objects and error records a cmdlet produced."""

    host: str
    cmdlet_line: str
    output: tuple[Any, ...]
    errors: tuple[str, ...]
    duration_seconds: float


def _plain(obj: Any) -> Any:
    """PSCustomObject and friends as a dict of their properties; primitives unchanged."""
    if isinstance(obj, GenericComplexObject):
        return {**obj.adapted_properties, **obj.extended_properties}
    return obj


class CmdletRun:
    """One cmdlet on one DC through a runspace pool, with a deadline."""

    def __init__(
        self, endpoint: WinrmEndpoint, call: CmdletCall, *, deadline_seconds: float
    ) -> None:
        self.endpoint = endpoint
        self.call = call
        self.deadline_seconds = deadline_seconds

    def run(self, *, check: bool = True) -> CmdletResult:
        """Invoke; errors written by the cmdlet raise CmdletFailed unless check=False."""
        begin = time.monotonic()
        deadline = begin + self.deadline_seconds
        wsman = self.endpoint.wsman()
        started = False
        what = "opening a runspace pool"
        pool = RunspacePool(wsman)
        try:
            pool.open()
            ps = PowerShell(pool)
            ps.add_cmdlet(self.call.name)
            for key, value in self.call.parameters:
                ps.add_parameter(key, value)
            what = "running the cmdlet"
            ps.begin_invoke()
            started = True
            while ps.state == PSInvocationState.RUNNING:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    ps.stop()
                    partial = CommandResult(
                        self.endpoint.host,
                        self.call.line(),
                        "",
                        "",
                        -1,
                        datetime.now(UTC),
                        time.monotonic() - begin,
                    )
                    raise CommandTimedOut(
                        self.endpoint.host, self.call.line(), self.deadline_seconds, partial
                    )
                poll = max(1, math.ceil(min(self.endpoint.operation_timeout_seconds, remaining)))
                ps.poll_invoke(timeout=poll)
        except _TRANSLATED as exc:
            raise _translate(exc, self.endpoint, what, started) from None
        finally:
            try:
                pool.close()
            except _TRANSLATED as exc:
                log.info(
                    "could not close the runspace pool on %s: %s", self.endpoint.host, _short(exc)
                )
            wsman.close()
        result = CmdletResult(
            host=self.endpoint.host,
            cmdlet_line=self.call.line(),
            output=tuple(_plain(o) for o in ps.output),
            errors=tuple(str(e) for e in ps.streams.error),
            duration_seconds=time.monotonic() - begin,
        )
        if check and (result.errors or ps.state == PSInvocationState.FAILED):
            raise CmdletFailed(result)
        return result


# --- the executor the worker uses -----------------------------------------------------------


class WinrmExecutor:
    """Runs commands and cmdlets on the DCs of one forest (synchronous; call from threads)."""

    def __init__(
        self,
        section: WinrmSection,
        *,
        password: str | None,
        overrides: Sequence[DcOverride] = (),
        kerberos: KerberosLogin | None = None,
    ) -> None:
        self.section = section
        self._password = password
        self._overrides = {o.fqdn: o for o in overrides}
        self.kerberos = kerberos
        if section.auth == "kerberos" and kerberos is None:
            raise ConfigError(
                ["winrm.auth = kerberos needs a [forests.kerberos] section (the bot's login)"]
            )

    @classmethod
    def for_forest(cls, forest: ForestSection) -> WinrmExecutor:
        """An executor for a configured forest, resolving its password reference now."""
        password: str | None = None
        if forest.winrm.password is not None:
            try:
                password = forest.winrm.password.resolve()
            except (KeyError, OSError) as exc:
                raise ConfigError(
                    [
                        f"forests[{forest.name}].winrm.password: secret "
                        f"{forest.winrm.password.describe()} cannot be read: {exc}"
                    ]
                ) from None
        uses_kerberos = forest.kerberos is not None and forest.winrm.auth in (
            "kerberos",
            "negotiate",
        )
        return cls(
            forest.winrm,
            password=password,
            overrides=forest.dcs,
            kerberos=login_for(forest.kerberos) if uses_kerberos and forest.kerberos else None,
        )

    def __repr__(self) -> str:
        who = self.kerberos.principal if self.kerberos else self.section.user
        return f"WinrmExecutor(auth={self.section.auth!r}, user={who!r})"

    def endpoint(self, host: str) -> WinrmEndpoint:
        """The endpoint of one DC (applying its address/port override)."""
        override = self._overrides.get(host.lower())
        return endpoint_for(
            self.section,
            host,
            password=self._password,
            address=(override.winrm_address or override.address) if override else None,
            port=override.winrm_port if override else None,
            kerberos=self.kerberos,
        )

    def run(
        self,
        host: str,
        command: RemoteCommand,
        *,
        deadline_seconds: float | None = None,
        check: bool = True,
    ) -> CommandResult:
        """Run one command on `host` and return its result (see CommandRun.run)."""
        deadline = deadline_seconds or self.section.command_deadline_seconds
        return CommandRun(self.endpoint(host), command, deadline_seconds=deadline).run(check=check)

    def run_cmdlet(
        self,
        host: str,
        call: CmdletCall,
        *,
        deadline_seconds: float | None = None,
        check: bool = True,
    ) -> CmdletResult:
        """Run one cmdlet on `host` (see CmdletRun.run)."""
        deadline = deadline_seconds or self.section.command_deadline_seconds
        return CmdletRun(self.endpoint(host), call, deadline_seconds=deadline).run(check=check)

    def check_access(self, host: str, timeout_seconds: float = 10.0) -> float:
        """Authenticate to `host` and open (then close) a shell; seconds it took.

        Every failure raises the RemoteCommandFailed an operator would see for a real step.
        """
        begin = time.monotonic()
        seconds = max(1, math.ceil(timeout_seconds))
        endpoint = self.endpoint(host)
        wsman = endpoint.wsman(operation_timeout=seconds, connect_timeout=seconds)
        shell = WinRS(wsman, codepage=UTF8_CODEPAGE)
        try:
            shell.open()
            shell.close()
        except _TRANSLATED as exc:
            raise _translate(exc, endpoint, "opening a shell", False) from None
        finally:
            wsman.close()
        return time.monotonic() - begin

    def is_answering(self, host: str, timeout_seconds: float = 5.0) -> bool:
        """Whether `host`'s WinRM listener answers at all (a shell opens and closes).

        An authentication failure counts as answering: the service is up.
        """
        seconds = max(1, math.ceil(timeout_seconds))
        endpoint = self.endpoint(host)
        try:
            wsman = endpoint.wsman(operation_timeout=seconds, connect_timeout=seconds)
        except DcKerberosFailed as exc:
            if exc.kind is KerberosFailure.KDC_UNREACHABLE:
                return False  # the DC coming back may be the KDC we ask: not up yet
            raise
        shell = WinRS(wsman, codepage=UTF8_CODEPAGE)
        try:
            shell.open()
            shell.close()
        except requests.exceptions.SSLError as exc:
            raise DcCertificateRejected(endpoint.host, _short(exc)) from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout):
            return False
        except _TRANSLATED as exc:
            log.info("WinRM on %s answers but refused a probe shell: %s", host, _short(exc))
            return True
        finally:
            wsman.close()
        return True
