"""The bot's own Kerberos logins: tickets from a keytab or a password, in a private cache.

Nobody runs kinit for the bot. Each configured identity (`[forests.kerberos]`) gets its TGT
from the KDC into a MEMORY credential cache of this process and gets a new one before it runs
out; LDAP (gssapi, through ldap3) and WinRM (pyspnego, through pypsrp) take their credentials
from that cache. The process reads a krb5.conf the bot writes from the configuration (or the
operator's own file). Every Kerberos failure becomes a `KerberosFailed` whose message says
what to check.
"""

from __future__ import annotations

import atexit
import enum
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import gssapi
import krb5
import spnego
from gssapi.raw.exceptions import MissingCredentialsError
from gssapi.raw.misc import GSSError

from bot.config import KerberosSection
from bot.errors import Ad1411Error, ConfigError

log = logging.getLogger(__name__)

# MIT krb5 error codes (com_err table "krb5", base -1765328384; KDC errors are base + code).
_BASE = -1765328384
KDC_ERR_C_PRINCIPAL_UNKNOWN = _BASE + 6
KDC_ERR_S_PRINCIPAL_UNKNOWN = _BASE + 7
KDC_ERR_CLIENT_REVOKED = _BASE + 18
KDC_ERR_KEY_EXPIRED = _BASE + 23
KDC_ERR_PREAUTH_FAILED = _BASE + 24
KRB_AP_ERR_BAD_INTEGRITY = _BASE + 31
KRB_AP_ERR_SKEW = _BASE + 37
KRB_AP_ERR_MODIFIED = _BASE + 41
KRB5_KT_NOTFOUND = -1765328203
KRB5_KDC_UNREACH = -1765328228
KRB5_REALM_UNKNOWN = -1765328230
KRB5_REALM_CANT_RESOLVE = -1765328164
KRB5_CC_NOTFOUND = -1765328243
KRB5_FCC_NOFILE = -1765328189
_ENOENT = 2
_EACCES = 13
_MINOR = re.compile(r"Minor \((\d+)\)")


class KerberosFailure(enum.Enum):
    """What went wrong, as an operator would look for it."""

    CLOCK_SKEW = "clock skew"
    UNKNOWN_PRINCIPAL = "unknown principal"
    CREDENTIALS_REFUSED = "credentials refused"
    ACCOUNT_UNUSABLE = "account unusable"
    NO_CREDENTIALS = "no credentials"
    KDC_UNREACHABLE = "KDC unreachable"
    WRONG_SPN = "wrong SPN"
    OTHER = "other"


class KerberosFailed(Ad1411Error):
    """A Kerberos failure; `kind` says which, the message what to check."""

    def __init__(self, kind: KerberosFailure, message: str) -> None:
        self.kind = kind
        super().__init__(message)


# --- the process's krb5.conf ------------------------------------------------------------------


def krb5_conf_text(sections: Sequence[KerberosSection]) -> str:
    """A krb5.conf naming each realm's KDCs, for a client that never guesses names."""
    if not sections:
        raise ValueError("krb5_conf_text needs at least one [forests.kerberos] section")
    lookup_kdc = any(not s.kdcs for s in sections)
    lines = [
        "[libdefaults]",
        f"    default_realm = {sections[0].realm}",
        "    dns_lookup_realm = false",
        f"    dns_lookup_kdc = {'true' if lookup_kdc else 'false'}",
        # SPNs are built from the configured FQDNs, never from DNS answers an attacker could forge
        "    dns_canonicalize_hostname = false",
        "    rdns = false",
        # a worker whose clock is off also stamps the audit and runs deadlines wrong: say so
        "    kdc_timesync = 0",
        "    request_timeout = 15",
        "    default_ccache_name = MEMORY:ad1411-default",
        "[realms]",
    ]
    seen: set[str] = set()
    for section in sections:
        if section.realm in seen:
            continue
        seen.add(section.realm)
        lines.append(f"    {section.realm} = {{")
        lines.extend(f"        kdc = {kdc}" for kdc in section.kdcs)
        lines.append("    }")
    return "\n".join(lines) + "\n"


class Krb5Profile:
    """The one krb5.conf of this process: KRB5_CONFIG and a private KRB5CCNAME point at ours."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sections: dict[str, KerberosSection] = {}
        self._operator_file: Path | None = None
        self._directory: Path | None = None
        self._path: Path | None = None
        self._serial = 0

    def include(self, section: KerberosSection) -> None:
        """Make `section`'s realm and KDCs known to every Kerberos call of this process."""
        with self._lock:
            if section.krb5_conf is not None:
                if self._operator_file not in (None, section.krb5_conf) or self._sections:
                    raise ConfigError(
                        [
                            "kerberos.krb5_conf: forests name different krb5.conf files (or one "
                            "names a file and another realm/kdcs); one process reads one file"
                        ]
                    )
                if not section.krb5_conf.is_file():
                    raise ConfigError([f"kerberos.krb5_conf: {section.krb5_conf} is not a file"])
                self._operator_file = section.krb5_conf
                self._path = section.krb5_conf
            else:
                if self._operator_file is not None:
                    raise ConfigError(
                        [
                            "kerberos: one forest names a krb5_conf and another realm/kdcs; "
                            "give every forest the same krb5_conf, or none"
                        ]
                    )
                known = self._sections.get(section.realm)
                if known is None or known.kdcs != section.kdcs:
                    self._sections[section.realm] = section
                    self._write()
        self.activate()

    def _write(self) -> None:
        if self._directory is None:
            self._directory = Path(tempfile.mkdtemp(prefix="ad1411-krb5-"))
            atexit.register(shutil.rmtree, self._directory, ignore_errors=True)
        # a new name per change: MIT krb5 re-reads a profile it has seen at most once a second
        self._serial += 1
        path = self._directory / f"krb5-{self._serial}.conf"
        path.write_text(krb5_conf_text(list(self._sections.values())), encoding="utf-8")
        self._path = path

    def activate(self) -> None:
        """Point this process's Kerberos library at our file and away from any user's tickets."""
        path = self._path
        if path is not None and os.environ.get("KRB5_CONFIG") != str(path):
            os.environ["KRB5_CONFIG"] = str(path)
        # never fall back to a ticket someone got with kinit: the default cache stays empty
        if os.environ.get("KRB5CCNAME") != "MEMORY:ad1411-default":
            os.environ["KRB5CCNAME"] = "MEMORY:ad1411-default"

    @property
    def path(self) -> Path | None:
        """The krb5.conf in use (None before any login)."""
        return self._path


PROFILE = Krb5Profile()


# --- one identity -----------------------------------------------------------------------------


def needs_new_ticket(expires_at: float | None, now: float, renew_before: float) -> bool:
    """Whether a ticket ending at `expires_at` must be replaced at `now`."""
    return expires_at is None or expires_at - now <= renew_before


@dataclass(frozen=True)
class Ticket:
    """Where the current TGT is, and until when it is good."""

    ccache: str
    principal: str
    expires_at: float


class KerberosLogin:
    """The bot's Kerberos login for one identity: a TGT in a private cache, always fresh.

    Thread-safe. `clock` is the time this login lives by (the KDC sees the same time).
    """

    def __init__(
        self,
        section: KerberosSection,
        *,
        clock: Callable[[], float] = time.time,
        profile: Krb5Profile = PROFILE,
    ) -> None:
        self.section = section
        self._profile = profile
        self.principal = section.client_principal
        self.realm = section.realm
        self._clock = clock
        self._lock = threading.Lock()
        self._ticket: Ticket | None = None
        self._retired: str | None = None
        self._serial = 0
        self.acquisitions = 0
        profile.include(section)

    def __repr__(self) -> str:
        return f"KerberosLogin({self.principal!r}, {self._source()})"

    def _source(self) -> str:
        if self.section.keytab is not None:
            return f"keytab {self.section.keytab.file}"
        assert self.section.password is not None
        return f"password from {self.section.password.describe()}"

    # -- tickets ---------------------------------------------------------------------------

    def ticket(self) -> Ticket:
        """A TGT good for more than `renew_before_seconds`, got from the KDC when needed."""
        with self._lock:
            self._profile.include(self.section)
            now = self._clock()
            current = self._ticket
            if current is not None and not needs_new_ticket(
                current.expires_at, now, self.section.renew_before_seconds
            ):
                return current
            self._ticket = self._acquire(now)
            return self._ticket

    def _acquire(self, now: float) -> Ticket:
        ctx = krb5.init_context()
        if abs(now - time.time()) > 1:
            krb5.set_real_time(ctx, int(now), int((now % 1) * 1_000_000))
        try:
            principal = krb5.parse_name_flags(ctx, self.principal.encode())
        except krb5.Krb5Error as exc:
            raise self._failure(KerberosFailure.UNKNOWN_PRINCIPAL, str(exc)) from None
        options = krb5.get_init_creds_opt_alloc(ctx)
        krb5.get_init_creds_opt_set_canonicalize(options, True)
        if self.section.ticket_lifetime_seconds:
            krb5.get_init_creds_opt_set_tkt_life(options, self.section.ticket_lifetime_seconds)
        try:
            if self.section.keytab is not None:
                creds = self._from_keytab(ctx, principal, options)
            else:
                creds = krb5.get_init_creds_password(
                    ctx, principal, options, password=self._password().encode("utf-8")
                )
        except krb5.Krb5Error as exc:
            raise self.explain_code(exc.err_code, _krb5_text(exc)) from None
        self._serial += 1
        name = f"MEMORY:ad1411-{os.getpid()}-{id(self):x}-{self._serial}"
        ccache = krb5.cc_resolve(ctx, name.encode())
        krb5.cc_initialize(ctx, ccache, creds.client)
        krb5.cc_store_cred(ctx, ccache, creds)
        # The cache before last is no longer handed out: free its tickets.
        if self._retired is not None:
            _destroy_ccache(ctx, self._retired)
        self._retired = self._ticket.ccache if self._ticket else None
        self.acquisitions += 1
        expires = float(creds.times.endtime)
        log.info(
            "Kerberos: got a ticket for %s (%s), good for %.0f s",
            self.principal,
            self._source(),
            expires - now,
        )
        return Ticket(ccache=name, principal=self.principal, expires_at=expires)

    def _from_keytab(
        self, ctx: krb5.Context, principal: krb5.Principal, options: krb5.GetInitCredsOpt
    ) -> krb5.Creds:
        assert self.section.keytab is not None and self.section.keytab.file is not None
        path = self.section.keytab.file
        try:
            with path.open("rb") as handle:
                handle.read(1)
        except OSError as exc:
            raise self._failure(
                KerberosFailure.NO_CREDENTIALS,
                f"the keytab {path} cannot be read ({exc.strerror or exc})",
            ) from None
        keytab = krb5.kt_resolve(ctx, f"FILE:{path}".encode())
        return krb5.get_init_creds_keytab(ctx, principal, options, keytab=keytab)

    def _password(self) -> str:
        assert self.section.password is not None
        try:
            return self.section.password.resolve()
        except (KeyError, OSError) as exc:
            raise self._failure(
                KerberosFailure.NO_CREDENTIALS,
                f"the password secret {self.section.password.describe()} cannot be read ({exc})",
            ) from None

    # -- what LDAP and WinRM use -----------------------------------------------------------

    def gssapi_credentials(self) -> gssapi.Credentials:
        """Fresh initiator credentials from the login's cache (ldap3 takes them over)."""
        ticket = self.ticket()
        try:
            return gssapi.Credentials(usage="initiate", store={b"ccache": ticket.ccache.encode()})
        except GSSError as exc:
            raise self.explain(exc) from None

    def spnego_credential(self) -> spnego.KerberosCCache:
        """The login's cache as a pyspnego credential (for pypsrp's Kerberos and Negotiate)."""
        return spnego.KerberosCCache(ccache=self.ticket().ccache)

    # -- failures --------------------------------------------------------------------------

    def explain(self, exc: BaseException, *, spn: str | None = None) -> KerberosFailed:
        """The failure behind a gssapi/pyspnego error raised while authenticating to `spn`."""
        code = minor_code(exc)
        if code is None and _is_missing_credentials(exc):
            return self._failure(
                KerberosFailure.NO_CREDENTIALS,
                f"no Kerberos ticket was available ({_first_line(exc)})",
            )
        return self.explain_code(code, _first_line(exc), spn=spn)

    def explain_code(
        self, code: int | None, detail: str, *, spn: str | None = None
    ) -> KerberosFailed:
        """The failure a Kerberos error code means for this login (`spn`: the service asked for)."""
        kind = _KINDS.get(code, KerberosFailure.OTHER)
        if code == KRB_AP_ERR_MODIFIED and spn is None:
            kind = KerberosFailure.CREDENTIALS_REFUSED  # from the KDC: the client's key was wrong
        return self._failure(kind, detail, spn=spn)

    def _failure(
        self, kind: KerberosFailure, detail: str, *, spn: str | None = None
    ) -> KerberosFailed:
        who = f"Kerberos for {self.principal}"
        advice = _ADVICE[kind](self, spn)
        return KerberosFailed(kind, f"{who}: {detail}. {advice}")

    def kdc_description(self) -> str:
        """The KDCs this login asks, as configured."""
        if self.section.krb5_conf is not None:
            return f"the KDCs of {self.realm} in {self.section.krb5_conf}"
        if self.section.kdcs:
            return f"{', '.join(self.section.kdcs)} (kerberos.kdcs)"
        return f"the KDCs DNS names for {self.realm} (_kerberos._tcp.{self.realm} SRV records)"


def _skew(login: KerberosLogin, spn: str | None) -> str:
    where = f"the service {spn}" if spn else f"the KDC ({login.kdc_description()})"
    return (
        f"The clocks of this worker and {where} differ by more than the realm allows "
        "(5 minutes in AD). Check the time on the worker host (timedatectl; chronyc tracking) "
        "and on the DCs (w32tm /query /status; the PDC emulator is the forest's time source); "
        "the bot's audit trail and deadlines depend on the worker's clock too."
    )


def _unknown_principal(login: KerberosLogin, spn: str | None) -> str:
    return (
        f"The KDC of {login.realm} has no account {login.principal}. Check kerberos.principal: "
        "the account's sAMAccountName (or UPN), then @ and the realm in capitals; check that "
        "the account exists in that domain (Get-ADUser) and kerberos.realm is its domain."
    )


def _refused(login: KerberosLogin, spn: str | None) -> str:
    if login.section.keytab is not None:
        return (
            f"The KDC refused the key in {login.section.keytab.file}: the account's password "
            "changed after the keytab was made, or the keytab holds other encryption types. "
            "Make a new keytab (ktpass ... /crypto AES256-SHA1, or samba-tool domain "
            "exportkeytab) with AES keys (msDS-SupportedEncryptionTypes 24) and point "
            "kerberos.keytab at it."
        )
    ref = login.section.password.describe() if login.section.password else "the secret"
    return (
        f"The KDC refused the password from {ref}: it is wrong or was rotated. Update the "
        "secret, and check that the account is not locked out."
    )


def _unusable(login: KerberosLogin, spn: str | None) -> str:
    return (
        f"The account {login.principal} may not log on: it is disabled, locked out, expired or "
        "its password has expired. Check it in AD (Get-ADUser -Properties Enabled,LockedOut,"
        "PasswordExpired) and set 'password never expires' on service accounts with a keytab."
    )


def _no_credentials(login: KerberosLogin, spn: str | None) -> str:
    if login.section.keytab is not None:
        return (
            f"Check that kerberos.keytab ({login.section.keytab.file}) exists, is readable by "
            f"the bot's user and holds keys for {login.principal} (klist -ke FILE); the bot "
            "never uses tickets from kinit."
        )
    return (
        "Check that the password secret is set for the worker's process; the bot never uses "
        "tickets from kinit."
    )


def _unreachable(login: KerberosLogin, spn: str | None) -> str:
    return (
        f"No KDC answered: asked {login.kdc_description()}. Check that those DCs are up, that "
        "TCP and UDP port 88 are open from the worker, and that kerberos.realm is right."
    )


def _wrong_spn(login: KerberosLogin, spn: str | None) -> str:
    return (
        f"The KDC of {login.realm} knows no service {spn or 'principal for that DC'}. Reach the "
        "DC by the FQDN its computer account is registered under (its dNSHostName), not an "
        "alias or an address; list the DC's SPNs with setspn -L <DC>; for WinRM, "
        "winrm.kerberos_service must be a service the DC has (host, HTTP or WSMAN)."
    )


def _other(login: KerberosLogin, spn: str | None) -> str:
    return (
        f"Check kerberos.realm ({login.realm}), kerberos.principal and {login.kdc_description()}."
    )


_ADVICE: dict[KerberosFailure, Callable[[KerberosLogin, str | None], str]] = {
    KerberosFailure.CLOCK_SKEW: _skew,
    KerberosFailure.UNKNOWN_PRINCIPAL: _unknown_principal,
    KerberosFailure.CREDENTIALS_REFUSED: _refused,
    KerberosFailure.ACCOUNT_UNUSABLE: _unusable,
    KerberosFailure.NO_CREDENTIALS: _no_credentials,
    KerberosFailure.KDC_UNREACHABLE: _unreachable,
    KerberosFailure.WRONG_SPN: _wrong_spn,
    KerberosFailure.OTHER: _other,
}

_KINDS: dict[int | None, KerberosFailure] = {
    KRB_AP_ERR_SKEW: KerberosFailure.CLOCK_SKEW,
    KDC_ERR_C_PRINCIPAL_UNKNOWN: KerberosFailure.UNKNOWN_PRINCIPAL,
    KDC_ERR_PREAUTH_FAILED: KerberosFailure.CREDENTIALS_REFUSED,
    KRB_AP_ERR_BAD_INTEGRITY: KerberosFailure.CREDENTIALS_REFUSED,
    KRB_AP_ERR_MODIFIED: KerberosFailure.WRONG_SPN,
    KDC_ERR_CLIENT_REVOKED: KerberosFailure.ACCOUNT_UNUSABLE,
    KDC_ERR_KEY_EXPIRED: KerberosFailure.ACCOUNT_UNUSABLE,
    KRB5_KT_NOTFOUND: KerberosFailure.NO_CREDENTIALS,
    KRB5_CC_NOTFOUND: KerberosFailure.NO_CREDENTIALS,
    KRB5_FCC_NOFILE: KerberosFailure.NO_CREDENTIALS,
    _ENOENT: KerberosFailure.NO_CREDENTIALS,
    _EACCES: KerberosFailure.NO_CREDENTIALS,
    KRB5_KDC_UNREACH: KerberosFailure.KDC_UNREACHABLE,
    KRB5_REALM_UNKNOWN: KerberosFailure.KDC_UNREACHABLE,
    KRB5_REALM_CANT_RESOLVE: KerberosFailure.KDC_UNREACHABLE,
    KDC_ERR_S_PRINCIPAL_UNKNOWN: KerberosFailure.WRONG_SPN,
}


# --- one login per identity and process ---------------------------------------------------------

_LOGINS: dict[str, KerberosLogin] = {}
_LOGINS_LOCK = threading.Lock()


def login_for(section: KerberosSection) -> KerberosLogin:
    """The process's login for this identity (created on first use, then shared)."""
    with _LOGINS_LOCK:
        key = section.model_dump_json()
        login = _LOGINS.get(key)
        if login is None:
            login = _LOGINS[key] = KerberosLogin(section)
        return login


# --- reading errors ---------------------------------------------------------------------------


def minor_code(exc: BaseException) -> int | None:
    """The Kerberos (minor) code behind a gssapi or pyspnego error, as a signed int."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        code = getattr(current, "min_code", None)
        if isinstance(code, int) and code:
            return _signed(code)
        current = getattr(current, "base_error", None) or current.__cause__ or current.__context__
    found = _MINOR.search(str(exc))
    return _signed(int(found.group(1))) if found else None


def _signed(code: int) -> int:
    return code - (1 << 32) if code >= (1 << 31) else code


def _is_missing_credentials(exc: BaseException) -> bool:
    return isinstance(exc, MissingCredentialsError) or ("No credentials were supplied" in str(exc))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    found = re.search(r"Minor \(\d+\): ([^,]+)", text)
    if found:
        text = found.group(1)
    return text.splitlines()[0][:240]


def _krb5_text(exc: krb5.Krb5Error) -> str:
    # Krb5Error's text ends with its code; the operator needs the words
    return re.sub(r"\s+-?\d+$", "", str(exc)).strip() or f"Kerberos error {exc.err_code}"


def _destroy_ccache(ctx: krb5.Context, name: str) -> None:
    try:
        krb5.cc_destroy(ctx, krb5.cc_resolve(ctx, name.encode()))
    except krb5.Krb5Error as exc:
        log.debug("could not destroy the old credential cache %s: %s", name, exc)
