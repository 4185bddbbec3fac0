"""The WinRM listener of one simulated DC: HTTP/1.1 keep-alive, NTLM/Negotiate or Basic auth,
HTTP message encryption, then WS-Management dispatch to the DC's shells."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import re
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import spnego
import spnego.channel_bindings
import spnego.exceptions
from pypsrp.encryption import WinRMEncryption

from lab.dcsim import soap
from lab.dcsim.accounts import Account
from lab.dcsim.faults import FaultKind, FaultPlan
from lab.dcsim.shells import DROP, Drop, Reply

log = logging.getLogger(__name__)

_MAX_HEADER = 64 * 1024
_MAX_BODY = 4 * 1024 * 1024
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 500: "Error"}
_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.I)

Dispatch = Callable[[str, soap.Request], Awaitable[Reply | Drop]]


@dataclass
class Connection:
    """Per-TCP-connection state: NTLM authenticates the connection, not the request."""

    peer: str
    auth_context: Any = None
    user: str | None = None
    encryption: WinRMEncryption | None = None


@dataclass
class AuthPolicy:
    """How this listener authenticates."""

    # "ntlm": NTLM and Negotiate (Kerberos too with a keytab); "kerberos": Kerberos only, as a
    # DC that refuses NTLM; "basic": Basic over HTTPS
    mode: str
    accounts: list[Account] = field(default_factory=list)
    kerberos: bool = False

    @property
    def negotiates(self) -> bool:
        """Whether NTLM/Negotiate/Kerberos tokens are accepted at all."""
        return self.mode in ("ntlm", "kerberos")


class WsmanListener:
    """One port, one DC. Stop() closes the port and every open connection (a DC going down)."""

    def __init__(
        self,
        fqdn: str,
        policy: AuthPolicy,
        faults: FaultPlan,
        dispatch: Dispatch,
        *,
        tls: ssl.SSLContext | None = None,
        certificate_der: bytes | None = None,
    ) -> None:
        self.fqdn = fqdn
        self.policy = policy
        self.faults = faults
        self.dispatch = dispatch
        self.tls = tls
        self._cbt = _channel_bindings(certificate_der) if certificate_der else None
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port: int | None = None

    @property
    def scheme(self) -> str:
        """http or https."""
        return "https" if self.tls else "http"

    async def start(self, host: str, port: int) -> int:
        """Listen (again) on host:port; returns the bound port."""
        self._server = await asyncio.start_server(
            self._serve, host, port, ssl=self.tls, reuse_address=True, limit=_MAX_HEADER
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        """Close the port and drop every connection."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = writer.get_extra_info("peername")
        conn = Connection(peer=str(peer[0]) if peer else "")
        self._writers.add(writer)
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    break
                method, path, headers, body = request
                outcome = await self._handle(conn, method, path, headers, body)
                if isinstance(outcome, Drop):
                    writer.transport.abort()
                    break
                status, extra_headers, payload = outcome
                writer.write(_response_bytes(status, extra_headers, payload))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, TimeoutError):
            pass
        except asyncio.LimitOverrunError:
            writer.write(_response_bytes(400, {}, b""))
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _handle(
        self, conn: Connection, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes] | Drop:
        if method != "POST" or path.split("?", 1)[0].lower() != "/wsman":
            return 404, {}, b""
        auth_headers: dict[str, str] = {}
        refused = self._authenticate(conn, headers.get("authorization", ""), auth_headers)
        if refused is not None:
            return refused
        if not body:
            return 200, auth_headers, b""
        content_type = headers.get("content-type", "")
        encrypted = content_type.lower().startswith("multipart/encrypted")
        xml = self._message(conn, content_type, body, encrypted)
        if isinstance(xml, tuple):
            return xml[0], {**auth_headers, **xml[1]}, xml[2]
        try:
            request = soap.parse_request(xml)
        except soap.BadRequest as exc:
            reply: Reply | Drop = Reply(
                500,
                soap.fault(
                    "", self.fqdn, soap.ACTION_NOT_SUPPORTED_CODE, "InvalidMessage", str(exc)
                ),
            )
        else:
            reply = await self.dispatch(conn.user or "", request)
        if isinstance(reply, Drop):
            return DROP
        if encrypted and conn.encryption is not None:
            content, payload = conn.encryption.wrap_message(reply.body)
            protocol = conn.encryption.protocol
            auth_headers["Content-Type"] = (
                f'{content};protocol="{protocol}";boundary="Encrypted Boundary"'
            )
            return reply.status, auth_headers, payload
        auth_headers["Content-Type"] = "application/soap+xml;charset=UTF-8"
        return reply.status, auth_headers, reply.body

    def _authenticate(
        self, conn: Connection, authorization: str, auth_headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes] | None:
        """None when the request may go on; the 401 answer otherwise."""
        if self.faults.take(FaultKind.AUTH_FAILURE) is not None:
            conn.auth_context = conn.user = conn.encryption = None
            return self._challenge()
        if not authorization:
            if conn.user is None or self.policy.mode == "basic":
                return self._challenge()
            return None
        scheme, _, token = authorization.partition(" ")
        scheme = scheme.lower()
        if scheme == "basic" and self.policy.mode == "basic" and self.tls is not None:
            user = self._basic_user(token.strip())
            if user is None:
                return self._challenge()
            conn.user = user
            return None
        if scheme in ("negotiate", "ntlm", "kerberos") and self.policy.negotiates:
            step = self._negotiate_step(conn, scheme, token.strip())
            if step is None:
                return self._challenge()
            done, header = step
            if not done:
                return 401, {"WWW-Authenticate": header}, b""
            if header:
                auth_headers["WWW-Authenticate"] = header
            return None
        return self._challenge()

    def _message(
        self, conn: Connection, content_type: str, body: bytes, encrypted: bool
    ) -> bytes | tuple[int, dict[str, str], bytes]:
        """The SOAP envelope of a request (decrypted), or the answer refusing it."""
        if encrypted:
            boundary = _BOUNDARY.search(content_type)
            if conn.encryption is None or boundary is None:
                return 400, {}, b""
            try:
                return bytes(conn.encryption.unwrap_message(body, boundary.group(1)))
            except Exception:  # a wrong key or a tampered body: refuse, as WinRM does
                log.warning("could not decrypt a message from %s", conn.peer)
                return 400, {}, b""
        if self.tls is None:
            # WinRM over HTTP refuses unencrypted traffic (AllowUnencrypted=false).
            return 401, {"WWW-Authenticate": "Negotiate"}, b""
        return body

    def _challenge(self) -> tuple[int, dict[str, str], bytes]:
        if self.policy.mode == "basic":
            return 401, {"WWW-Authenticate": 'Basic realm="WSMAN"'}, b""
        return 401, {"WWW-Authenticate": "Negotiate"}, b""

    def _basic_user(self, token: str) -> str | None:
        try:
            decoded = base64.b64decode(token, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        principal, _, password = decoded.partition(":")
        for account in self.policy.accounts:
            if account.matches(principal) and account.password == password:
                return account.principal
        return None

    def _negotiate_step(self, conn: Connection, scheme: str, token: str) -> tuple[bool, str] | None:
        """One NTLM/SPNEGO leg. None: refused. (done, WWW-Authenticate value) otherwise."""
        try:
            in_token = base64.b64decode(token, validate=True)
        except binascii.Error:
            return None
        if conn.auth_context is None or conn.auth_context.complete:
            conn.user = conn.encryption = None
            conn.auth_context = spnego.server(
                hostname=self.fqdn,
                service="http",
                channel_bindings=self._cbt,
                protocol="negotiate",
                options=spnego.NegotiateOptions.wrapping_winrm,
            )
        context = conn.auth_context
        try:
            out_token = context.step(in_token)
        except spnego.exceptions.SpnegoError as exc:
            log.info("authentication refused on %s: %s", self.fqdn, exc.__class__.__name__)
            conn.auth_context = None
            return None
        title = "NTLM" if scheme == "ntlm" else "Negotiate"
        header = f"{title} {base64.b64encode(out_token).decode()}" if out_token else ""
        if not context.complete:
            return False, header
        principal = str(context.client_principal or "")
        protocol = context.negotiated_protocol
        if protocol == "kerberos" and not self.policy.kerberos:
            log.info("Kerberos refused on %s: it holds no keytab", self.fqdn)
            conn.auth_context = None
            return None
        if protocol != "kerberos" and self.policy.mode == "kerberos":
            log.info("%s refused on %s: it accepts Kerberos only", protocol, self.fqdn)
            conn.auth_context = None
            return None
        if not any(a.matches(principal) for a in self.policy.accounts):
            log.info("authenticated %r is not an account of %s", principal, self.fqdn)
            conn.auth_context = None
            return None
        conn.user = principal
        conn.encryption = WinRMEncryption(context, WinRMEncryption.SPNEGO)
        return True, header


def _channel_bindings(certificate_der: bytes) -> spnego.channel_bindings.GssChannelBindings:
    # RFC 5929 tls-server-end-point with SHA-256 (the lab's certificates are SHA-256 signed).
    digest = hashlib.sha256(certificate_der).digest()
    return spnego.channel_bindings.GssChannelBindings(
        application_data=b"tls-server-end-point:" + digest
    )


async def _read_request(
    reader: asyncio.StreamReader,
) -> tuple[str, str, dict[str, str], bytes] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or "0")
    if length < 0 or length > _MAX_BODY:
        return None
    body = await reader.readexactly(length) if length else b""
    return parts[0].upper(), parts[1], headers, body


def _response_bytes(status: int, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}"]
    merged = {"Server": "Microsoft-HTTPAPI/2.0", "Connection": "keep-alive", **headers}
    merged["Content-Length"] = str(len(body))
    lines.extend(f"{k}: {v}" for k, v in merged.items())
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
