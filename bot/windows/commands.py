"""Command templates for the KB938704 steps: validated values in, cmd.exe command lines out.

Nothing reaches a command line unless it is one of the typed values below, each validated
once at construction. WinRS runs commands through cmd.exe and joins the Command and
Arguments elements with spaces, so callers pass `RemoteCommand.quoted_arguments()` (or
`command_line()`) to pypsrp, never the raw `arguments`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from bot.dn import split_dn
from bot.dns import dns_name_problem, normalize_dns_name
from bot.errors import Ad1411Error

# cmd.exe metacharacters (plus parentheses and ';' for good measure): none may come from input.
CMD_METACHARACTERS = frozenset('&|<>^%!"`\r\n();')
# What may never appear in any argument, even a fixed one; parentheses are allowed only in the
# fixed registry value name "RepsTo Failure Time (sec)", which is always double-quoted.
_NEVER_IN_ARGUMENT = frozenset('&|<>^%!"`\r\n;')

NTDS_PARAMETERS_KEY = r"HKLM\SYSTEM\CurrentControlSet\Services\NTDS\Parameters"

_DN_ATTRIBUTE = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,63}$")
_DN_VALUE = re.compile(r"^[A-Za-z0-9-](?:[A-Za-z0-9 -]{0,62}[A-Za-z0-9-])?$")
_INCIDENT_ID = re.compile(r"^[A-Za-z0-9-]{1,40}$")
_MAX_DN_LENGTH = 1024
_MAX_RESTART_DELAY = 3600


class InvalidParameter(Ad1411Error, ValueError):
    """A value was refused before it could reach a command line on a domain controller."""


def _describe(raw: object) -> str:
    """A short, printable rendering of a refused value (never echo control characters)."""
    text = repr(raw)
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass(frozen=True)
class Fqdn:
    """A fully qualified DNS host or domain name (RFC 1123), lower case, two labels or more."""

    value: str

    def __post_init__(self) -> None:
        raw: object = self.value
        if not isinstance(raw, str):
            raise InvalidParameter(f"DNS name must be text, got {type(raw).__name__}")
        name = normalize_dns_name(raw)
        expected = dns_name_problem(name)
        if expected is None and "." not in name:
            expected = "a fully qualified name (host.domain), not a single label"
        if expected is not None:
            raise InvalidParameter(
                f"{_describe(raw)} is not a valid DNS name: expected {expected}. "
                "Use the DC's fully qualified name, e.g. dc1.corp.example.com."
            )
        object.__setattr__(self, "value", name)

    def __str__(self) -> str:
        return self.value

    @property
    def host(self) -> str:
        """The first label (the computer name, lower case)."""
        return self.value.split(".", 1)[0]

    @property
    def domain(self) -> str:
        """Everything after the first label."""
        return self.value.split(".", 1)[1]

    def to_dn(self) -> DistinguishedName:
        """The domain-component DN of this name: corp.example.com -> DC=corp,DC=example,DC=com."""
        return DistinguishedName(",".join(f"DC={label}" for label in self.value.split(".")))


@dataclass(frozen=True, eq=False)
class DistinguishedName:
    """An RFC 4514 DN of attr=value pairs, values restricted to letters, digits, space and '-'.

    Equality and hashing ignore case, as Active Directory does.
    """

    value: str
    rdns: tuple[tuple[str, str], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        raw: object = self.value
        if not isinstance(raw, str):
            raise InvalidParameter(f"DN must be text, got {type(raw).__name__}")
        if not raw or len(raw) > _MAX_DN_LENGTH:
            raise InvalidParameter(f"DN must be 1 to {_MAX_DN_LENGTH} characters")
        rdns: list[tuple[str, str]] = []
        for part in split_dn(raw):
            attribute, sep, value = part.partition("=")
            if not sep or not _DN_ATTRIBUTE.fullmatch(attribute) or not _DN_VALUE.fullmatch(value):
                raise InvalidParameter(
                    f"{_describe(raw)} is not an accepted DN: every part must be attr=value with "
                    "letters, digits, spaces and '-' only (no quotes, escapes or multi-valued "
                    "RDNs), e.g. CN=Configuration,DC=corp,DC=example,DC=com."
                )
            rdns.append((attribute.upper(), value))
        object.__setattr__(self, "value", ",".join(f"{a}={v}" for a, v in rdns))
        object.__setattr__(self, "rdns", tuple(rdns))

    def __str__(self) -> str:
        return self.value

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DistinguishedName):
            return NotImplemented
        return self.value.lower() == other.value.lower()

    def __hash__(self) -> int:
        return hash(self.value.lower())


class NtdsValue(StrEnum):
    """The only registry values under the NTDS Parameters key the bot may touch."""

    REPS_TO_FAILURE_TIME = "RepsTo Failure Time (sec)"
    ALLOW_SPN_FALLBACK = "Replicator Allow SPN Fallback"


class DsaOption(StrEnum):
    """DSA options as `repadmin /options` names them; only DISABLE_NTDSCONN_XLATE is changed."""

    DISABLE_NTDSCONN_XLATE = "DISABLE_NTDSCONN_XLATE"
    IS_GC = "IS_GC"  # read-only: shown by /options, never set by the bot


# The only option changes a template will build (KB938704 steps 6 and 9).
OPTION_CHANGES = frozenset({"+DISABLE_NTDSCONN_XLATE", "-DISABLE_NTDSCONN_XLATE"})


class RestartReason(StrEnum):
    """Fixed comments for `shutdown /c`; no free text reaches the command line."""

    SPN_FALLBACK = (
        "AD1411 Responder KB938704 step 5 - restart to apply Replicator Allow SPN Fallback"
    )


@dataclass(frozen=True)
class IncidentId:
    """An incident reference for the restart comment: 1 to 40 of A-Z, a-z, 0-9 and '-'."""

    value: str

    def __post_init__(self) -> None:
        raw: object = self.value
        if not isinstance(raw, str) or not _INCIDENT_ID.fullmatch(raw):
            raise InvalidParameter(
                f"{_describe(raw)} is not an accepted incident id: use 1 to 40 letters, digits "
                "or '-', e.g. INC-20240611-7."
            )

    def __str__(self) -> str:
        return self.value


def _quote(argument: str) -> str:
    """Double-quote an argument for cmd.exe when it holds a space, parenthesis or a path."""
    if argument == "" or any(c in argument for c in " \t()\\"):
        return f'"{argument}"'
    return argument


@dataclass(frozen=True)
class RemoteCommand:
    """One command to run on a domain controller through WinRS (cmd.exe)."""

    executable: str
    arguments: tuple[str, ...]
    description: str

    def __post_init__(self) -> None:
        # Defence in depth: the templates only build safe arguments, but refuse anything else.
        for part in (self.executable, *self.arguments):
            bad = sorted(set(part) & _NEVER_IN_ARGUMENT)
            if bad:
                raise InvalidParameter(
                    f"refusing to build a command with cmd.exe metacharacters {bad!r} in {part!r}"
                )
        if not re.fullmatch(r"[a-z]+\.exe", self.executable):
            raise InvalidParameter(f"{self.executable!r} is not a plain system executable name")

    def quoted_arguments(self) -> tuple[str, ...]:
        """Arguments as cmd.exe must see them (WinRS joins them with single spaces)."""
        return tuple(_quote(a) for a in self.arguments)

    def command_line(self) -> str:
        """The full command line as typed at a cmd.exe prompt."""
        return " ".join((self.executable, *self.quoted_arguments()))

    def __str__(self) -> str:
        return self.command_line()


def configuration_nc(forest: Fqdn) -> DistinguishedName:
    """The configuration naming context of a forest: CN=Configuration,DC=...,DC=..."""
    return DistinguishedName(f"CN=Configuration,{forest.to_dn()}")


def _ntds(value: NtdsValue) -> NtdsValue:
    if not isinstance(value, NtdsValue):
        raise InvalidParameter(
            f"{_describe(value)} is not one of the NTDS values the bot may touch"
        )
    return value


def reg_query(value: NtdsValue) -> RemoteCommand:
    """Read one value under the NTDS Parameters key."""
    value = _ntds(value)
    return RemoteCommand(
        "reg.exe",
        ("query", NTDS_PARAMETERS_KEY, "/v", value.value),
        f"Read registry value '{value.value}' under {NTDS_PARAMETERS_KEY}",
    )


def reg_add_dword(value: NtdsValue, data: int) -> RemoteCommand:
    """Set one NTDS Parameters value as REG_DWORD (overwriting without a prompt)."""
    value = _ntds(value)
    if isinstance(data, bool) or not isinstance(data, int) or not 0 <= data <= 2**32 - 1:
        raise InvalidParameter(f"REG_DWORD data must be an integer 0..4294967295, got {data!r}")
    return RemoteCommand(
        "reg.exe",
        ("add", NTDS_PARAMETERS_KEY, "/v", value.value, "/t", "REG_DWORD", "/d", str(data), "/f"),
        f"Set registry value '{value.value}' to {data} (REG_DWORD) under {NTDS_PARAMETERS_KEY}",
    )


def reg_delete(value: NtdsValue) -> RemoteCommand:
    """Delete one NTDS Parameters value (without a prompt)."""
    value = _ntds(value)
    return RemoteCommand(
        "reg.exe",
        ("delete", NTDS_PARAMETERS_KEY, "/v", value.value, "/f"),
        f"Delete registry value '{value.value}' under {NTDS_PARAMETERS_KEY}",
    )


def _fqdn(dc: Fqdn) -> Fqdn:
    if not isinstance(dc, Fqdn):
        raise InvalidParameter(f"{_describe(dc)} must be a validated Fqdn")
    return dc


def repadmin_kcc(dc: Fqdn | None = None) -> RemoteCommand:
    """Make the KCC recalculate the replication topology (on the local DC, or on `dc`)."""
    if dc is None:
        return RemoteCommand("repadmin.exe", ("/kcc",), "Recalculate replication topology (KCC)")
    dc = _fqdn(dc)
    return RemoteCommand(
        "repadmin.exe", ("/kcc", dc.value), f"Recalculate replication topology (KCC) on {dc}"
    )


def repadmin_options(dc: Fqdn, change: str | None = None) -> RemoteCommand:
    """Show the DSA options of `dc`, or apply +/-DISABLE_NTDSCONN_XLATE."""
    dc = _fqdn(dc)
    if change is None:
        return RemoteCommand("repadmin.exe", ("/options", dc.value), f"Show DSA options of {dc}")
    if change not in OPTION_CHANGES:
        raise InvalidParameter(
            f"{_describe(change)} is not an allowed DSA option change; "
            f"only {sorted(OPTION_CHANGES)} are"
        )
    verb = "Disable" if change.startswith("+") else "Re-enable"
    return RemoteCommand(
        "repadmin.exe",
        ("/options", dc.value, change),
        f"{verb} connection translation on {dc} ({change})",
    )


def repadmin_add(nc: DistinguishedName, dest: Fqdn, source: Fqdn) -> RemoteCommand:
    """Add an inbound replication link for `nc` on `dest` from `source`."""
    if not isinstance(nc, DistinguishedName):
        raise InvalidParameter(f"{_describe(nc)} must be a validated DistinguishedName")
    dest, source = _fqdn(dest), _fqdn(source)
    return RemoteCommand(
        "repadmin.exe",
        ("/add", nc.value, dest.value, source.value),
        f"Add replication link for {nc} on {dest} from {source}",
    )


def repadmin_showrepl(dc: Fqdn | None = None, csv: bool = False) -> RemoteCommand:
    """Show inbound replication status (of the local DC, or of `dc`), as text or CSV."""
    args: list[str] = ["/showrepl"]
    if dc is not None:
        args.append(_fqdn(dc).value)
    if csv:
        args.append("/csv")
    where = f" of {dc}" if dc is not None else ""
    return RemoteCommand("repadmin.exe", tuple(args), f"Show inbound replication status{where}")


def repadmin_replsummary() -> RemoteCommand:
    """Summarize replication health of every DC in the forest."""
    return RemoteCommand("repadmin.exe", ("/replsummary",), "Summarize forest replication health")


def restart(
    reason: RestartReason = RestartReason.SPN_FALLBACK,
    incident: IncidentId | None = None,
    delay_seconds: int = 30,
) -> RemoteCommand:
    """Restart the DC after `delay_seconds` as a planned reconfiguration, with a fixed comment."""
    if not isinstance(reason, RestartReason):
        raise InvalidParameter(f"{_describe(reason)} is not one of the fixed restart comments")
    if incident is not None and not isinstance(incident, IncidentId):
        raise InvalidParameter(f"{_describe(incident)} must be a validated IncidentId")
    if (
        isinstance(delay_seconds, bool)
        or not isinstance(delay_seconds, int)
        or not 0 <= delay_seconds <= _MAX_RESTART_DELAY
    ):
        raise InvalidParameter(
            f"restart delay must be 0..{_MAX_RESTART_DELAY} seconds, got {delay_seconds!r}"
        )
    comment = reason.value if incident is None else f"{reason.value} - incident {incident}"
    return RemoteCommand(
        "shutdown.exe",
        # /d p:2:4 records "Operating System: Reconfiguration (Planned)" in the event log.
        ("/r", "/t", str(delay_seconds), "/d", "p:2:4", "/c", comment),
        f"Restart the domain controller in {delay_seconds} s",
    )
