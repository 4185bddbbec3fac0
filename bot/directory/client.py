"""The forest's directory over LDAP (ldap3): bound connections per DC, paged searches, counted."""

from __future__ import annotations

import contextlib
import logging
import math
import re
import ssl
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import ldap3
from gssapi.raw.misc import GSSError
from ldap3.core import exceptions as ldap_exc
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.log import set_library_log_hide_sensitive_data

from bot.config import DcOverride, ForestSection, LdapSection
from bot.errors import ConfigError, DirectoryError
from bot.kerberos import KerberosFailed, KerberosFailure, KerberosLogin, login_for

log = logging.getLogger(__name__)

# ldap3 strips bind credentials from its own log lines only when told to.
set_library_log_hide_sensitive_data(True)

Scope = Literal["base", "one", "subtree"]
_SCOPES: dict[str, Any] = {"base": ldap3.BASE, "one": ldap3.LEVEL, "subtree": ldap3.SUBTREE}


@dataclass(frozen=True)
class Search:
    """One search request (for `DirectoryClient.search_together`)."""

    base: str
    filter: str
    attributes: Sequence[str]
    scope: Scope = "subtree"


_PAGED_RESULTS_OID = "1.2.840.113556.1.4.319"
_NO_SUCH_OBJECT = 32
_NO_SUCH_ATTRIBUTE = 16
_DROPPED = (
    ldap_exc.LDAPSocketReceiveError,
    ldap_exc.LDAPSocketSendError,
    ldap_exc.LDAPSessionTerminatedByServerError,
    ldap_exc.LDAPSocketOpenError,
)


class DirectoryUnreachable(DirectoryError):
    """No LDAP answer from a DC (refused, timed out, name not resolvable)."""


class DirectoryTlsFailed(DirectoryError):
    """The DC's certificate was not trusted or does not name the DC."""


class DirectoryBindRefused(DirectoryError):
    """The DC refused the credentials or the authentication method."""


class DirectorySearchFailed(DirectoryError):
    """A search was refused or failed part-way."""


class DirectoryKerberosFailed(DirectoryError):
    """No Kerberos ticket for the DC's LDAP service could be had; `kind` says why."""

    def __init__(self, where: str, failure: KerberosFailed) -> None:
        self.kind: KerberosFailure = failure.kind
        super().__init__(f"Kerberos bind to {where} failed. {failure}")


@dataclass(frozen=True)
class DirectoryEntry:
    """One object as returned by a search: its DN and raw values by lower-case attribute name."""

    dn: str
    attributes: Mapping[str, list[bytes]] = field(repr=False)

    def values(self, name: str) -> list[bytes]:
        """Raw values of an attribute ([] when absent)."""
        return list(self.attributes.get(name.lower(), []))

    def texts(self, name: str) -> list[str]:
        """Values decoded as UTF-8."""
        return [v.decode("utf-8", "replace") for v in self.values(name)]

    def text(self, name: str) -> str | None:
        """The first value as text, or None."""
        values = self.texts(name)
        return values[0] if values else None

    def integer(self, name: str) -> int | None:
        """The first value as an integer, or None when absent or not a number."""
        value = self.text(name)
        try:
            return int(value) if value is not None else None
        except ValueError:
            return None

    def guid(self, name: str = "objectGUID") -> str | None:
        """A GUID attribute (stored little-endian) as a lower-case canonical UUID."""
        values = self.values(name)
        if not values or len(values[0]) != 16:
            return None
        return str(uuid.UUID(bytes_le=values[0]))


@dataclass(frozen=True)
class DcEndpoint:
    """Where one DC's LDAP service is reached; the certificate must still name `fqdn`."""

    fqdn: str
    address: str
    port: int


def guid_filter_value(guid: str) -> str:
    """An objectGUID assertion value: the GUID's bytes_le, each byte escaped as \\xx."""
    return "".join(f"\\{b:02x}" for b in uuid.UUID(guid).bytes_le)


def escape(value: str) -> str:
    """A string made safe for an LDAP filter (RFC 4515)."""
    return str(escape_filter_chars(value))


def or_filter(attribute: str, values: Iterable[str], *, raw: bool = False) -> str:
    """(|(a=v1)(a=v2)...) with escaped values; `raw` when the values are already escaped."""
    terms = [f"({attribute}={v if raw else escape(v)})" for v in values]
    if not terms:
        raise ValueError("or_filter needs at least one value")
    return terms[0] if len(terms) == 1 else "(|" + "".join(terms) + ")"


class _FqdnTls(ldap3.Tls):  # type: ignore[misc]
    """TLS that verifies the certificate against the DC's FQDN, whatever address we dialled."""

    def __init__(self, fqdn: str, context: ssl.SSLContext) -> None:
        super().__init__(validate=context.verify_mode, valid_names=[fqdn], sni=fqdn)
        self._fqdn = fqdn
        self._context = context

    def wrap_socket(self, connection: Any, do_handshake: bool = False) -> None:
        connection.socket = self._context.wrap_socket(
            connection.socket,
            server_side=False,
            do_handshake_on_connect=do_handshake,
            server_hostname=self._fqdn,
        )


class _Password:
    """Holds the bind password; its repr never shows it."""

    __slots__ = ("_value",)

    def __init__(self, value: str | None) -> None:
        self._value = value

    def reveal(self) -> str | None:
        return self._value

    def __repr__(self) -> str:
        return "<password hidden>" if self._value else "<no password>"


class _RedactSecrets(logging.Filter):
    """Last line of defence: replace the password in any ldap3 log record."""

    def __init__(self, password: _Password) -> None:
        super().__init__()
        self._password = password

    def filter(self, record: logging.LogRecord) -> bool:
        secret = self._password.reveal()
        if secret and secret in record.getMessage():
            record.msg = record.getMessage().replace(secret, "<password hidden>")
            record.args = None
        return True


class DirectoryClient:
    """LDAP access to one forest: one bound connection per DC, reused, re-bound when dropped.

    `queries` counts logical searches (a paged search is one query); `round_trips` counts
    LDAP search requests (one per page).
    """

    def __init__(
        self,
        *,
        forest: str,
        hosts: Sequence[str],
        ldap: LdapSection,
        password: str | None,
        overrides: Sequence[DcOverride] = (),
        page_size: int = 1000,
        kerberos: KerberosLogin | None = None,
    ) -> None:
        if not hosts:
            raise ConfigError([f"forest {forest}: ldap_hosts is empty; list at least one DC FQDN"])
        self.forest = forest.lower()
        self.hosts = [h.lower() for h in hosts]
        self.ldap = ldap
        self.page_size = page_size
        self._password = _Password(password)
        self._kerberos = kerberos
        self._overrides = {o.fqdn: o for o in overrides}
        self._connections: dict[str, Any] = {}
        # A second connection per DC, used only by search_together (under _lock).
        self._side: dict[str, Any] = {}
        self._default_dc: str | None = None
        self._lock = threading.RLock()
        self.queries = 0
        self.round_trips = 0
        self._check_auth_options()
        self._context = self._tls_context() if ldap.tls != "none" else None
        self._redactor = _RedactSecrets(self._password)
        logging.getLogger("ldap3").addFilter(self._redactor)

    @classmethod
    def for_forest(cls, forest: ForestSection, *, page_size: int = 1000) -> DirectoryClient:
        """A client for a configured forest, resolving its password reference now."""
        password: str | None = None
        if forest.ldap.password is not None:
            try:
                password = forest.ldap.password.resolve()
            except (KeyError, OSError) as exc:
                raise ConfigError(
                    [
                        f"forests[{forest.name}].ldap.password: secret "
                        f"{forest.ldap.password.describe()} cannot be read: {exc}"
                    ]
                ) from None
        return cls(
            forest=forest.name,
            hosts=forest.ldap_hosts,
            ldap=forest.ldap,
            password=password,
            overrides=forest.dcs,
            page_size=page_size,
            kerberos=(
                login_for(forest.kerberos)
                if forest.kerberos is not None and forest.ldap.auth == "kerberos"
                else None
            ),
        )

    def __repr__(self) -> str:
        return (
            f"DirectoryClient(forest={self.forest!r}, hosts={self.hosts!r}, "
            f"tls={self.ldap.tls!r}, auth={self.ldap.auth!r}, user={self.identity!r})"
        )

    @property
    def identity(self) -> str | None:
        """Who binds: the Kerberos principal, the configured user, or None (anonymous)."""
        if self.ldap.auth == "kerberos" and self._kerberos is not None:
            return self._kerberos.principal
        return self.ldap.user

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Unbind every open connection."""
        with self._lock:
            for conn in [*self._connections.values(), *self._side.values()]:
                _quiet_unbind(conn)
            self._connections.clear()
            self._side.clear()
            logging.getLogger("ldap3").removeFilter(self._redactor)

    # -- endpoints and connections ---------------------------------------------------------

    def endpoint(self, fqdn: str) -> DcEndpoint:
        """Address and port for a DC, with its configured override applied."""
        fqdn = fqdn.lower().rstrip(".")
        default_port = self.ldap.port or (636 if self.ldap.tls == "ldaps" else 389)
        override = self._overrides.get(fqdn)
        address = override.address if override and override.address else fqdn
        port = override.ldap_port if override and override.ldap_port else default_port
        return DcEndpoint(fqdn=fqdn, address=address, port=port)

    @property
    def default_dc(self) -> str:
        """The DC answering general queries: the first reachable of `hosts`."""
        with self._lock:
            if self._default_dc is None:
                problems: list[DirectoryError] = []
                for host in self.hosts:
                    try:
                        self._connection(host)
                    except (DirectoryUnreachable, DirectoryTlsFailed) as exc:
                        problems.append(exc)
                        continue
                    self._default_dc = host
                    break
                else:
                    if len(problems) == 1:
                        raise problems[0]
                    raise DirectoryUnreachable(
                        f"no DC of forest {self.forest} answered LDAP:\n"
                        + "\n".join(f"- {p}" for p in problems)
                    )
            return self._default_dc

    def _connection(self, fqdn: str, pool: dict[str, Any] | None = None) -> Any:
        pool = self._connections if pool is None else pool
        conn = pool.get(fqdn)
        if conn is not None and not conn.closed and conn.bound:
            return conn
        if conn is not None:
            _quiet_unbind(conn)
            del pool[fqdn]
        conn = self._open(self.endpoint(fqdn))
        pool[fqdn] = conn
        return conn

    def _open(self, ep: DcEndpoint) -> Any:
        timeout = self.ldap.timeout_seconds
        tls = _FqdnTls(ep.fqdn, self._context) if self._context is not None else None
        server = ldap3.Server(
            ep.address,
            port=ep.port,
            use_ssl=self.ldap.tls == "ldaps",
            tls=tls,
            get_info=ldap3.NONE,
            connect_timeout=timeout,
        )
        kerberos = self.ldap.auth == "kerberos"
        conn = ldap3.Connection(
            server,
            user=None if kerberos else self.ldap.user,
            password=None,
            authentication=self._authentication(),
            sasl_mechanism=ldap3.KERBEROS if kerberos else None,
            # the SPN is ldap/<fqdn> whatever address we dial; credentials come at bind time
            sasl_credentials=(ep.fqdn, None, None) if kerberos else None,
            # ldap3 packs the receive timeout as an integer of seconds.
            receive_timeout=max(1, math.ceil(timeout)),
            auto_referrals=False,
            read_only=False,
            raise_exceptions=False,
            auto_bind=ldap3.AUTO_BIND_NONE,
        )
        where = f"{ep.fqdn} ({ep.address}:{ep.port}, {self.ldap.tls})"
        try:
            conn.open()
            if self.ldap.tls == "starttls" and not conn.start_tls():
                raise DirectoryTlsFailed(
                    f"{where} refused StartTLS ({conn.result.get('description')}); "
                    'use tls = "ldaps" or enable StartTLS on the DC'
                )
            self._bind(conn, where, ep.fqdn)
        except DirectoryError:
            _quiet_unbind(conn)
            raise
        except (ldap_exc.LDAPException, OSError) as exc:
            _quiet_unbind(conn)
            raise self._transport_error(exc, where) from None
        log.debug("LDAP bound to %s as %s (%s)", where, self.identity, self.ldap.auth)
        return conn

    def _bind(self, conn: Any, where: str, fqdn: str) -> None:
        if self.ldap.tls == "none" and self.ldap.auth == "simple" and self.ldap.user:
            log.warning("LDAP simple bind to %s without TLS: the password crosses in clear", where)
        who = self.identity or "anonymous"
        if self._kerberos is not None and self.ldap.auth == "kerberos":
            try:
                conn.sasl_credentials = (fqdn, None, self._kerberos.gssapi_credentials())
            except KerberosFailed as exc:
                raise DirectoryKerberosFailed(where, exc) from None
        conn.password = self._password.reveal()
        try:
            ok = conn.bind()
        except GSSError as exc:
            assert self._kerberos is not None
            failure = self._kerberos.explain(exc, spn=f"ldap/{fqdn}")
            raise DirectoryKerberosFailed(where, failure) from None
        except (ldap_exc.LDAPException, OSError) as exc:
            # A DC that drops the session mid-bind is refusing the method, not unreachable.
            raise DirectoryBindRefused(
                f"{where} ended the {self.ldap.auth} bind as {who}: "
                f"{_describe(exc)}. {_bind_hint('', self.ldap.auth)}"
            ) from None
        finally:
            # Keep the password and the credentials out of ldap3's object (its repr prints it).
            conn.password = None
            if conn.sasl_credentials:
                conn.sasl_credentials = (fqdn, None, None)
        if not ok:
            result = conn.result or {}
            description = result.get("description") or conn.last_error or "no answer"
            message = (result.get("message") or "").strip()
            hint = _bind_hint(str(description), self.ldap.auth)
            raise DirectoryBindRefused(
                f"{where} refused the {self.ldap.auth} bind as {who}: "
                f"{description}{f' ({message})' if message else ''}. {hint}"
            )

    def _transport_error(self, exc: BaseException, where: str) -> DirectoryError:
        text = _describe(exc)
        lowered = text.lower()
        if "certificate verify failed" in lowered or "hostname mismatch" in lowered:
            ca = self.ldap.ca_file or "the system CA store"
            return DirectoryTlsFailed(
                f"TLS certificate of {where} could not be verified against {ca}: {text}. "
                f"Check that ldap.ca_file names the CA that issued the DC's certificate and "
                f"that the certificate is valid for {where.split(' ', maxsplit=1)[0]}."
            )
        if isinstance(exc, ldap_exc.LDAPStartTLSError) or "ssl" in lowered or "tls" in lowered:
            return DirectoryTlsFailed(f"TLS with {where} failed: {text}")
        return DirectoryUnreachable(
            f"cannot reach LDAP on {where}: {text}. Check the DC is up and listening, "
            "the firewall, and the address/ldap_port override in forests.dcs."
        )

    def _authentication(self) -> Any:
        if self.ldap.auth == "ntlm":
            return ldap3.NTLM
        if self.ldap.auth == "kerberos":
            return ldap3.SASL
        return ldap3.SIMPLE if self.ldap.user else ldap3.ANONYMOUS

    def _check_auth_options(self) -> None:
        problems = []
        if self.ldap.auth == "ntlm" and (not self.ldap.user or "\\" not in self.ldap.user):
            problems.append("ldap.user: NTLM needs DOMAIN\\name (e.g. CORP\\svc-ad1411)")
        if self.ldap.auth in ("ntlm", "simple") and self.ldap.user and not self._password.reveal():
            problems.append(f"ldap.password: {self.ldap.auth} bind as {self.ldap.user} needs one")
        if self.ldap.auth == "kerberos" and self._kerberos is None:
            problems.append(
                "ldap.auth = kerberos needs a [forests.kerberos] section: realm, principal, and "
                "keytab = { file = ... } or password (the bot gets its own tickets, never kinit's)"
            )
        if self.ldap.tls == "none" and self.ldap.auth == "simple" and self.ldap.user:
            log.warning("forest %s: LDAP simple bind configured without TLS", self.forest)
        if problems:
            raise ConfigError([f"forest {self.forest}: {p}" for p in problems])

    def _tls_context(self) -> ssl.SSLContext:
        ca_file: Path | None = self.ldap.ca_file
        if ca_file is not None and not ca_file.is_file():
            raise ConfigError([f"ldap.ca_file: {ca_file} does not exist or is not a file"])
        try:
            context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        except ssl.SSLError as exc:
            raise ConfigError(
                [f"ldap.ca_file: {ca_file} is not a PEM CA certificate: {exc}"]
            ) from None
        if not self.ldap.validate_certificates:
            log.warning("forest %s: LDAP certificate validation is OFF", self.forest)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    # -- queries ---------------------------------------------------------------------------

    def root_dse(self, *, dc: str | None = None) -> DirectoryEntry:
        """The rootDSE of a DC (the default DC when none is named)."""
        entries = self.search(
            "",
            "(objectClass=*)",
            [
                "configurationNamingContext",
                "rootDomainNamingContext",
                "defaultNamingContext",
                "schemaNamingContext",
                "namingContexts",
                "dsServiceName",
                "dnsHostName",
                "serverName",
            ],
            scope="base",
            dc=dc,
        )
        if not entries:
            raise DirectorySearchFailed(f"{dc or self.default_dc} returned no rootDSE")
        return entries[0]

    def read(self, dn: str, attributes: Sequence[str], *, dc: str | None = None) -> DirectoryEntry:
        """One object by DN; DirectorySearchFailed when it does not exist."""
        entries = self.search(dn, "(objectClass=*)", attributes, scope="base", dc=dc)
        if not entries:
            raise DirectorySearchFailed(f"{dn} does not exist on {dc or self.default_dc}")
        return entries[0]

    def replace_attribute(
        self, dn: str, attribute: str, value: str | None, *, dc: str | None = None
    ) -> None:
        """Replace one attribute's value (None deletes it); DirectorySearchFailed if refused."""
        with self._lock:
            target = dc.lower() if dc else self.default_dc
            conn = self._connection(target)
            change = (
                (ldap3.MODIFY_REPLACE, [value]) if value is not None else (ldap3.MODIFY_DELETE, [])
            )
            self.round_trips += 1
            ok = conn.modify(dn, {attribute: [change]})
            if not ok:
                result = conn.result or {}
                # Deleting what is already absent leaves the wanted state: not a failure.
                if value is None and result.get("result") == _NO_SUCH_ATTRIBUTE:
                    return
                raise DirectorySearchFailed(
                    f"modify of {attribute} on {dn} at {target} was refused: "
                    f"{result.get('description')} {result.get('message') or ''}".rstrip()
                    + ". Check that the bot's account may write this attribute."
                )

    def search(
        self,
        base: str,
        search_filter: str,
        attributes: Sequence[str],
        *,
        scope: Scope = "subtree",
        dc: str | None = None,
    ) -> list[DirectoryEntry]:
        """All entries matching; paged (simple paged results) unless scope is base.

        A base that does not exist gives []. Counts as one query however many pages.
        """
        with self._lock:
            target = dc.lower() if dc else self.default_dc
            self.queries += 1
            entries, pages = self._retried(
                self._connections, target, Search(base, search_filter, attributes, scope)
            )
            self.round_trips += pages
            return entries

    def search_together(
        self, first: Search, second: Search, *, dc: str | None = None
    ) -> tuple[list[DirectoryEntry], list[DirectoryEntry]]:
        """Two searches of one DC at once, on two connections: the DC prepares one while this
        process decodes the other (on 2,000 servers, 0.76x the time of one after the other).
        Each counts as one query."""
        with self._lock:
            target = dc.lower() if dc else self.default_dc
            self.queries += 2
            side: dict[str, Any] = {}

            def run_second() -> None:
                try:
                    side["result"] = self._retried(self._side, target, second)
                except BaseException as exc:  # handed to the caller's thread below
                    side["error"] = exc

            worker = threading.Thread(target=run_second, name="ldap-search", daemon=True)
            worker.start()
            try:
                entries, pages = self._retried(self._connections, target, first)
            finally:
                # The second search ends on its own (every LDAP read has a receive timeout).
                worker.join()
            if "error" in side:
                raise side["error"]
            other, other_pages = side["result"]
            self.round_trips += pages + other_pages
            return entries, other

    def _retried(
        self, pool: dict[str, Any], dc: str, search: Search
    ) -> tuple[list[DirectoryEntry], int]:
        """A paged search on the pool's connection to dc, re-bound once if it was dropped."""
        try:
            return self._paged(self._connection(dc, pool), dc, search)
        except _DROPPED as exc:
            log.info("LDAP connection to %s dropped (%s); re-binding once", dc, exc)
            stale = pool.pop(dc, None)
            if stale is not None:
                _quiet_unbind(stale)
            return self._paged(self._connection(dc, pool), dc, search)

    def _paged(self, conn: Any, dc: str, search: Search) -> tuple[list[DirectoryEntry], int]:
        """Every entry of a search, page by page; and how many requests it took."""
        entries: list[DirectoryEntry] = []
        cookie: bytes | None = None
        pages = 0
        while True:
            pages += 1
            try:
                conn.search(
                    search.base,
                    search.filter,
                    search_scope=_SCOPES[search.scope],
                    attributes=list(search.attributes),
                    paged_size=None if search.scope == "base" else self.page_size,
                    paged_cookie=cookie,
                )
            except (ldap_exc.LDAPInvalidDnError, ldap_exc.LDAPInvalidFilterError) as exc:
                # ldap3 checks some bases and filters itself, before the DC sees them: the
                # caller gets the same error either way.
                raise DirectorySearchFailed(
                    f"search of {search.base or 'rootDSE'} for {search.filter} on {dc} failed: "
                    f"{exc}"
                ) from None
            result = conn.result or {}
            code = result.get("result")
            if code == _NO_SUCH_OBJECT:
                return [], pages
            if code != 0:
                if not conn.bound or conn.closed:
                    raise ldap_exc.LDAPSessionTerminatedByServerError(str(result))
                raise DirectorySearchFailed(
                    f"search of {search.base or 'rootDSE'} for {search.filter} on {dc} failed: "
                    f"{result.get('description')} {result.get('message') or ''}".rstrip()
                )
            for item in conn.response or []:
                if item.get("type") == "searchResEntry":
                    raw = item.get("raw_attributes") or {}
                    entries.append(
                        DirectoryEntry(
                            dn=item["dn"],
                            attributes={k.lower(): list(v) for k, v in raw.items()},
                        )
                    )
            control = (result.get("controls") or {}).get(_PAGED_RESULTS_OID)
            cookie = control["value"]["cookie"] if control else None
            if not cookie:
                return entries, pages


def _bind_hint(description: str, auth: str) -> str:
    if auth == "kerberos":
        if description == "strongerAuthRequired":
            return (
                "ldap3 cannot sign or seal a Kerberos bind, and this DC (as hardened DCs do) "
                'takes unsigned binds only over TLS: set ldap.tls = "ldaps" (or "starttls").'
            )
        return (
            "The DC did not accept the Kerberos ticket: check that the DC's clock is within 5 "
            "minutes of the KDC's, that ldap/<dc fqdn> is an SPN of this DC's computer account "
            "only (setspn -Q), and that the account is enabled."
        )
    if description == "invalidCredentials":
        return "Check ldap.user and the password secret (rotated? expired? account locked?)."
    if description == "strongerAuthRequired":
        return 'The DC requires TLS or signing for this bind: set ldap.tls = "ldaps".'
    if auth == "ntlm":
        return "Check the DC accepts NTLM binds (Samba does not accept ldap3's) or use LDAPS."
    return "Check ldap.auth, ldap.user and the account's rights."


def _describe(exc: BaseException) -> str:
    """ldap3 nests the cause as reprs inside its args; keep the one readable sentence."""
    text = " ".join(str(a) for a in (*exc.args, exc.__cause__ or "")) or str(exc)
    patterns = (r"certificate verify failed: .+?(?= \(_ssl|\\|$)", r"\[Errno -?\d+\][^'\")\\]+")
    for pattern in patterns:
        found = re.search(pattern, text)
        if found:
            return found.group(0).strip().rstrip(".").replace("\\'", "'")
    return str(exc)


def _quiet_unbind(conn: Any) -> None:
    # The socket may already be gone; nothing left to release then.
    with contextlib.suppress(ldap_exc.LDAPException, OSError):
        conn.unbind()
