"""A real Samba AD forest (Debian Samba 4.17) on loopback, for tests and the demo.

Public API (all operations are real: samba-tool, ldb tools, LDAP):

    forest = SambaForest(base_dir, first_address="127.0.0.2", dc_count=2)
        # replication_interval_seconds=300: each DC's scheduled pull (dreplsrv), set at start
    forest.start()        # provisions on first use (about 20 s), else starts the DCs
    forest.stop()         # stops the samba processes this object started (by PID)
    forest.clean()        # stop, then delete base_dir
    with SambaForest(base_dir) as forest: ...   # start() / clean()
    forest.stop_dc(dc); forest.start_dc(dc); forest.is_running(dc); forest.pid(dc)   one DC

    forest.forest            "lab.ad1411.test"      (DNS name; realm = forest.realm)
    forest.netbios_domain    "LAB"
    forest.base_dn           "DC=lab,DC=ad1411,DC=test"
    forest.configuration_dn  "CN=Configuration,DC=lab,DC=ad1411,DC=test"
    forest.admin_dn          "CN=Administrator,CN=Users,DC=lab,DC=ad1411,DC=test"
    forest.admin_user        "Administrator";  forest.admin_password (random per lab, never logged)
    forest.ca_file           Path of the lab CA (PEM) that signs every DC's LDAPS certificate
    forest.dcs               [DcInfo(DC1), DcInfo(DC2)];  forest.dc("dc2") / forest.dc(1) / fqdn
    forest.root_dc           forest.dcs[0]

    DcInfo: name ("DC1"), fqdn ("dc1.lab.ad1411.test"), address ("127.0.0.2"), ldap_port (389),
            ldaps_port (636), dsa_guid (objectGUID of its nTDSDSA, lower-case canonical),
            server_dn, ntds_settings_dn, computer_dn, site ("Default-First-Site-Name")

    forest.connect(dc, *, ldaps=True) -> ldap3.Connection   simple bind as Administrator,
        LDAPS validated against ca_file (certificates carry the FQDN and the address);
        ldaps=False is refused (strongerAuthRequired): the DCs are hardened, see below
    forest.service_principal "svc-ad1411@LAB.AD1411.TEST", the bot's service account (AES keys,
        password never expires); forest.service_password; forest.service_account_dn
    forest.service_keytab    Path of its keytab (exported from the forest, 0600)
    forest.dc_keytab         Path of the host/<fqdn> keys of every DC (for simulated DCs that
        accept Kerberos as the real DC's computer account would)
    forest.add_user(name, password, *, enabled=True) -> dn;  forest.set_user_password(name, pw)
    forest.delete_user(name);  forest.export_keytab(principal, path) -> path (appends)
    forest.remove_server_reference(dc)    break: MODIFY_DELETE serverReference on every DC
    forest.restore_server_reference(dc)   heal: put back the computer DN on every DC
    forest.server_reference(dc, on=None) -> str | None   the value as one DC sees it
    forest.add_phantom_server(name) -> PhantomServer     server + nTDSDSA in the site
    forest.add_phantom_servers(n, prefix="PHANTOM") -> list[PhantomServer]   one ldbadd on
        the root DC's sam.ldb (relax control); 2,000 take ~10-15 s. Phantoms have dNSHostName,
        msDS-hasMasterNCs, invocationId, no serverReference; they reach DC2 only by replication
    forest.phantom_count() -> int
    forest.remove_phantoms()              restores the healthy snapshot (phantoms are gone;
        deleting 2,000 objects through Samba takes minutes, a restore ~5 s)
    forest.healthy() -> bool;  forest.mark_dirty()  (next reset() restores the snapshot)
    forest.log_file(dc) -> Path           the DC's samba log
    forest.reset()                        back to the healthy baseline (cheap when healthy)
    forest.replicate(destination, source, nc=None) -> str   `samba-tool drs replicate`
    forest.try_replicate(destination, source, nc=None) -> CommandResult  (no raise)
    forest.showrepl(dc) -> str;  forest.showrepl_json(dc) -> dict
    forest.kcc(dc) -> str
    forest.samba_tool(dc_or_None, *args, check=True) -> CommandResult   (adds -U, -H as needed)
    forest.run_in_lab(argv, *, check=True, credentials=False) -> CommandResult
        runs inside the lab's mount namespace (its own /etc/hosts and /etc/resolv.conf)

Hardened: `ldap server require strong auth = allow_sasl_over_tls`, as a DC that refuses
unsigned binds: simple binds and ldap3's GSSAPI (which cannot sign or seal) only over LDAPS
or StartTLS; anonymous rootDSE reads still work in clear. Kerberos: the KDC is each DC's
address, realm `forest.realm`.

Network: the DCs run in the host network namespace, bound only to their loopback addresses
(127.0.0.2, 127.0.0.3: `interfaces = 127.0.0.x/8`, `bind interfaces only = yes`), so the
test process reaches 389/636 directly and nothing listens on 127.0.0.1. Only a private mount
namespace (`unshare --mount`, held by a `sleep` process) carries the lab's /etc/hosts and
/etc/resolv.conf; the host's files are untouched. Periodic KCC runs are off (topology
changes only on `drs kcc`). `--adminpass` is on samba-tool's argv during provisioning only;
later commands get the password from the PASSWD environment variable.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import ldap3

from lab.certificates import LabCertificateAuthority

SAMBA_TOOL = "/usr/bin/samba-tool"
DEFAULT_FOREST = "lab.ad1411.test"
DEFAULT_NETBIOS = "LAB"
DEFAULT_SITE = "Default-First-Site-Name"
SERVICE_ACCOUNT = "svc-ad1411"
_START_TIMEOUT = 90.0
_STOP_TIMEOUT = 20.0
_COMMAND_TIMEOUT = 180.0
_REPLICATION_INTERVAL = "dreplsrv:periodic_interval"


class SambaLabError(RuntimeError):
    """The Samba lab could not be provisioned, started or changed; the message says why."""


@dataclass(frozen=True)
class CommandResult:
    """What a lab command printed and returned."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        """stdout and stderr together, as an operator would read them."""
        return self.stdout + self.stderr


@dataclass(frozen=True)
class DcInfo:
    """One domain controller of the lab forest."""

    name: str
    fqdn: str
    address: str
    ldap_port: int
    ldaps_port: int
    dsa_guid: str
    server_dn: str
    ntds_settings_dn: str
    computer_dn: str
    site: str


@dataclass(frozen=True)
class PhantomServer:
    """A server object with an nTDSDSA child and no DC behind it."""

    name: str
    fqdn: str
    server_dn: str
    ntds_settings_dn: str
    dsa_guid: str


@dataclass
class _DcPaths:
    root: Path

    @property
    def smb_conf(self) -> Path:
        return self.root / "etc" / "smb.conf"

    @property
    def private(self) -> Path:
        return self.root / "private"

    @property
    def sam_ldb(self) -> Path:
        return self.private / "sam.ldb"

    @property
    def log(self) -> Path:
        return self.root / "log" / "samba.log"


def _dn_of(domain: str) -> str:
    return ",".join(f"DC={part}" for part in domain.split("."))


def _address_plus(address: str, offset: int) -> str:
    parts = address.split(".")
    return ".".join([*parts[:3], str(int(parts[3]) + offset)])


@dataclass
class SambaForest:
    """A Samba AD forest of one or two DCs under `base_dir` (see the module docstring)."""

    base_dir: Path
    first_address: str = "127.0.0.2"
    dc_count: int = 2
    forest: str = DEFAULT_FOREST
    netbios_domain: str = DEFAULT_NETBIOS
    site: str = DEFAULT_SITE
    admin_user: str = "Administrator"
    admin_password: str = field(default="", repr=False)
    service_password: str = field(default="", repr=False)
    dcs: list[DcInfo] = field(default_factory=list)
    _holder: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _samba: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)
    # Samba's scheduled pull from each partner (dreplsrv:periodic_interval; Samba's default)
    replication_interval_seconds: int = 300
    _dirty: bool = field(default=False, repr=False)
    _restore_needed: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        self.base_dir = Path(self.base_dir).resolve()
        if self.dc_count not in (1, 2):
            raise SambaLabError(f"dc_count must be 1 or 2, not {self.dc_count}")

    # ---- names -------------------------------------------------------------------------
    @property
    def realm(self) -> str:
        return self.forest.upper()

    @property
    def base_dn(self) -> str:
        return _dn_of(self.forest)

    @property
    def configuration_dn(self) -> str:
        return f"CN=Configuration,{self.base_dn}"

    @property
    def schema_dn(self) -> str:
        return f"CN=Schema,{self.configuration_dn}"

    @property
    def naming_contexts(self) -> list[str]:
        """Every NC each lab DC holds a writable replica of."""
        return [
            self.base_dn,
            self.configuration_dn,
            self.schema_dn,
            f"DC=DomainDnsZones,{self.base_dn}",
            f"DC=ForestDnsZones,{self.base_dn}",
        ]

    @property
    def admin_dn(self) -> str:
        return f"CN={self.admin_user},CN=Users,{self.base_dn}"

    @property
    def servers_dn(self) -> str:
        return f"CN=Servers,CN={self.site},CN=Sites,{self.configuration_dn}"

    @property
    def ca_file(self) -> Path:
        return self.base_dir / "ca" / "ca.pem"

    @property
    def root_dc(self) -> DcInfo:
        return self.dcs[0]

    def _planned(self) -> list[tuple[str, str, str]]:
        """(NAME, fqdn, address) of each DC, known before provisioning."""
        out = []
        for i in range(self.dc_count):
            name = f"DC{i + 1}"
            out.append(
                (name, f"{name.lower()}.{self.forest}", _address_plus(self.first_address, i))
            )
        return out

    def _paths(self, name: str) -> _DcPaths:
        return _DcPaths(self.base_dir / name.lower())

    def smb_conf(self, dc: int | str | DcInfo) -> Path:
        """The smb.conf of one DC (for tools that open its database directly)."""
        return self._paths(self.dc(dc).name).smb_conf

    def dc(self, which: int | str | DcInfo) -> DcInfo:
        """A DC by 1-based index, name ("dc2"), FQDN, address or DcInfo."""
        if isinstance(which, DcInfo):
            return which
        if isinstance(which, int):
            return self.dcs[which - 1]
        key = which.lower()
        for info in self.dcs:
            if key in (info.name.lower(), info.fqdn, info.address):
                return info
        raise SambaLabError(f"no DC {which!r} in the lab forest {self.forest}")

    # ---- processes ---------------------------------------------------------------------
    def _env(self, credentials: bool) -> dict[str, str]:
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
            "KRB5_CONFIG": str(self.base_dir / "etc" / "krb5.conf"),
            "KRB5CCNAME": f"FILE:{self.base_dir / 'etc' / 'krb5cc'}",
        }
        if credentials:
            # samba's credential code reads the password from PASSWD: it never shows in argv
            env["PASSWD"] = self.admin_password
        return env

    def _redact(self, text: str) -> str:
        for secret in (self.admin_password, self.service_password):
            text = text.replace(secret, "***") if secret else text
        return text

    def run_in_lab(
        self,
        argv: list[str],
        *,
        check: bool = True,
        credentials: bool = False,
        timeout: float = _COMMAND_TIMEOUT,
        stdin: str | None = None,
    ) -> CommandResult:
        """Run argv inside the lab's mount namespace (host network namespace)."""
        holder = self._holder
        if holder is None or holder.poll() is not None:
            raise SambaLabError("the lab namespace is not running: call start() first")
        full = ["nsenter", "-t", str(holder.pid), "-m", "--", *argv]
        try:
            proc = subprocess.run(
                full,
                input=stdin,
                capture_output=True,
                text=True,
                env=self._env(credentials),
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise SambaLabError(
                f"lab command timed out after {timeout:.0f} s: {self._redact(' '.join(argv))}"
            ) from exc
        result = CommandResult(
            tuple(self._redact(a) for a in argv),
            proc.returncode,
            self._redact(proc.stdout),
            self._redact(proc.stderr),
        )
        if check and proc.returncode != 0:
            raise SambaLabError(
                f"lab command failed (exit {proc.returncode}): {' '.join(result.argv)}\n"
                f"{result.output[-3000:]}"
            )
        return result

    def samba_tool(
        self, dc: int | str | DcInfo | None, *args: str, check: bool = True
    ) -> CommandResult:
        """`samba-tool ARGS` as Administrator; with a DC, `--server`-less commands get -H."""
        argv = [SAMBA_TOOL, *args, "-U", self.admin_user]
        if dc is not None and args and args[0] not in ("drs", "dns"):
            argv += ["-H", f"ldap://{self.dc(dc).address}"]
        return self.run_in_lab(argv, check=check, credentials=True)

    def _start_holder(self) -> None:
        etc = self.base_dir / "etc"
        ready = etc / "namespace.ready"
        ready.unlink(missing_ok=True)
        script = (
            f"mount --bind {etc / 'hosts'} /etc/hosts && "
            f"mount --bind {etc / 'resolv.conf'} /etc/resolv.conf && "
            f"touch {ready} && exec sleep infinity"
        )
        self._holder = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", script],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while not ready.exists():
            if self._holder.poll() is not None or time.monotonic() > deadline:
                raise SambaLabError(
                    "could not create the lab mount namespace (unshare --mount); "
                    "the lab needs root (CAP_SYS_ADMIN)"
                )
            time.sleep(0.02)

    def _write_etc(self) -> None:
        etc = self.base_dir / "etc"
        etc.mkdir(parents=True, exist_ok=True)
        hosts = ["127.0.0.1 localhost"]
        hosts += [f"{addr} {fqdn} {fqdn.split('.')[0]}" for _, fqdn, addr in self._planned()]
        (etc / "hosts").write_text("\n".join(hosts) + "\n")
        (etc / "resolv.conf").write_text(f"nameserver {self.first_address}\n")
        kdcs = "\n".join(f"        kdc = {addr}" for _, _, addr in self._planned())
        (etc / "krb5.conf").write_text(
            "[libdefaults]\n"
            f"    default_realm = {self.realm}\n"
            "    dns_lookup_realm = false\n"
            "    dns_lookup_kdc = true\n"
            "[realms]\n"
            f"    {self.realm} = {{\n{kdcs}\n    }}\n"
            "[domain_realm]\n"
            f"    .{self.forest} = {self.realm}\n"
        )

    def _write_smb_conf(self, name: str, address: str) -> None:
        paths = self._paths(name)
        fqdn = f"{name.lower()}.{self.forest}"
        root = paths.root
        for sub in ("etc", "cache", "lock", "run", "log", "tls"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        ca = LabCertificateAuthority(
            self.base_dir / "ca", self.forest, key_kind="rsa", organization="AD1411 Samba lab"
        )
        cert = ca.issue([fqdn, name.lower(), address], root / "tls", "ldaps")
        paths.smb_conf.write_text(
            "[global]\n"
            f"\tnetbios name = {name}\n"
            f"\trealm = {self.realm}\n"
            f"\tworkgroup = {self.netbios_domain}\n"
            "\tserver role = active directory domain controller\n"
            f"\tinterfaces = {address}/8\n"
            "\tbind interfaces only = yes\n"
            "\tdisable netbios = yes\n"
            # as a hardened DC: simple binds and unsigned SASL (ldap3's GSSAPI) only over TLS
            "\tldap server require strong auth = allow_sasl_over_tls\n"
            f"\tprivate dir = {root / 'private'}\n"
            f"\tstate directory = {root / 'state'}\n"
            f"\tcache directory = {root / 'cache'}\n"
            f"\tlock directory = {root / 'lock'}\n"
            f"\tpid directory = {root / 'run'}\n"
            f"\tncalrpc dir = {root / 'run' / 'ncalrpc'}\n"
            f"\tbinddns dir = {root / 'bind-dns'}\n"
            f"\twinbindd socket directory = {root / 'run' / 'winbindd'}\n"
            f"\tntp signd socket directory = {root / 'run' / 'ntp_signd'}\n"
            f"\tlog file = {paths.log}\n"
            "\tlogging = file\n"
            "\tlog level = 1\n"
            "\ttls enabled = yes\n"
            f"\ttls keyfile = {cert.key_file}\n"
            f"\ttls certfile = {cert.cert_file}\n"
            f"\ttls cafile = {cert.ca_file}\n"
            # the lab adds its own DNS records (Samba skips loopback addresses)
            "\tdns update command = /bin/true\n"
            # topology changes only when a test or a step runs `drs kcc`
            "\tkccsrv:periodic_startup_interval = 86400\n"
            "\tkccsrv:periodic_interval = 86400\n"
            f"\t{_REPLICATION_INTERVAL} = {self.replication_interval_seconds}\n"
            "\tprefork children = 2\n"
            "\n[sysvol]\n"
            f"\tpath = {root / 'state' / 'sysvol'}\n"
            "\tread only = No\n"
            "\n[netlogon]\n"
            f"\tpath = {root / 'state' / 'sysvol' / self.forest / 'scripts'}\n"
            "\tread only = No\n"
        )

    def _set_replication_interval(self, smb_conf: Path) -> None:
        """The scheduled pull interval this object asks for, in a cached DC's smb.conf."""
        lines = [
            line
            for line in smb_conf.read_text().splitlines(keepends=True)
            if not line.strip().startswith(_REPLICATION_INTERVAL)
        ]
        at = lines.index("[global]\n") + 1
        lines.insert(at, f"\t{_REPLICATION_INTERVAL} = {self.replication_interval_seconds}\n")
        smb_conf.write_text("".join(lines))

    def _start_dc(self, name: str, address: str) -> None:
        paths = self._paths(name)
        holder = self._holder
        assert holder is not None
        for stale in ("samba.pid", "smbd.pid", "winbindd.pid"):
            (paths.root / "run" / stale).unlink(missing_ok=True)
        log = open(paths.root / "log" / "samba.stdout", "ab")  # noqa: SIM115
        with log:
            proc = subprocess.Popen(
                [
                    "nsenter",
                    "-t",
                    str(holder.pid),
                    "-m",
                    "--",
                    "samba",
                    "--foreground",
                    "--no-process-group",
                    "-s",
                    str(paths.smb_conf),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._env(False),
                start_new_session=True,
            )
        self._samba[name] = proc
        deadline = time.monotonic() + _START_TIMEOUT
        while True:
            if proc.poll() is not None:
                raise SambaLabError(
                    f"samba for {name} exited with {proc.returncode} while starting; "
                    f"see {paths.log}"
                )
            if all(_port_open(address, port) for port in (389, 636, 135)):
                with contextlib.suppress(ldap3.core.exceptions.LDAPException):
                    conn = ldap3.Connection(
                        ldap3.Server(address, port=389, get_info=ldap3.NONE, connect_timeout=5),
                        auto_bind=True,
                        receive_timeout=10,
                    )
                    ok = conn.search(
                        "", "(objectClass=*)", ldap3.BASE, attributes=["dsServiceName"]
                    )
                    conn.unbind()
                    if ok:
                        return
            if time.monotonic() > deadline:
                raise SambaLabError(
                    f"samba for {name} did not answer LDAP on {address}:389 within "
                    f"{_START_TIMEOUT:.0f} s; see {paths.log}"
                )
            time.sleep(0.2)

    def _stop_dc(self, name: str) -> None:
        proc = self._samba.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(_STOP_TIMEOUT)
        # samba's own children (smbd, winbindd, prefork workers) share its process group
        deadline = time.monotonic() + _STOP_TIMEOUT
        while _group_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)

    # ---- lifecycle ---------------------------------------------------------------------
    def __enter__(self) -> SambaForest:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.clean()

    @property
    def _state_file(self) -> Path:
        return self.base_dir / "lab-state.json"

    @property
    def _snapshot_dir(self) -> Path:
        return self.base_dir / "snapshot"

    def start(self) -> SambaForest:
        """Start the forest, provisioning it first when base_dir holds none."""
        if self._samba:
            return self
        if not self._state_file.exists():
            self._provision()
            return self
        self._load_state()
        self._write_etc()
        for name, _, _ in self._planned():
            self._set_replication_interval(self._paths(name).smb_conf)
        if self._holder is None or self._holder.poll() is not None:
            self._start_holder()
        for name, _, address in self._planned():
            self._start_dc(name, address)
        return self

    def stop(self) -> None:
        """Stop the samba processes and the namespace holder this object started."""
        for name in list(self._samba):
            self._stop_dc(name)
        holder, self._holder = self._holder, None
        if holder is not None and holder.poll() is None:
            holder.terminate()
            try:
                holder.wait(5)
            except subprocess.TimeoutExpired:
                holder.kill()
                holder.wait(5)

    def clean(self) -> None:
        """Stop everything and delete base_dir."""
        self.stop()
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def _load_state(self) -> None:
        state = json.loads(self._state_file.read_text())
        self.admin_password = (self.base_dir / "etc" / "admin.password").read_text().strip()
        self.service_password = self._service_password_file.read_text().strip()
        self.dcs = [DcInfo(**d) for d in state["dcs"]]

    def _save_state(self) -> None:
        secret = self.base_dir / "etc" / "admin.password"
        fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(self.admin_password)
        fd = os.open(self._service_password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(self.service_password)
        state = {"forest": self.forest, "dcs": [d.__dict__ for d in self.dcs]}
        self._state_file.write_text(json.dumps(state, indent=1))

    def _provision(self) -> None:
        if self.base_dir.exists():
            shutil.rmtree(self.base_dir)
        self.base_dir.mkdir(parents=True)
        # complexity rules want upper, lower, digit and symbol
        self.admin_password = f"Lab-{secrets.token_hex(10)}-X9"
        self._write_etc()
        self._start_holder()
        planned = self._planned()
        name, _, address = planned[0]
        paths = self._paths(name)
        paths.root.mkdir(parents=True)
        self.run_in_lab(
            [
                SAMBA_TOOL,
                "domain",
                "provision",
                "-s",
                "/dev/null",
                f"--targetdir={paths.root}",
                f"--realm={self.realm}",
                f"--domain={self.netbios_domain}",
                "--server-role=dc",
                "--dns-backend=SAMBA_INTERNAL",
                f"--host-name={name.lower()}",
                # else provision guesses the host's NIC address; the lab stays on loopback
                f"--host-ip={address}",
                "--host-ip6=::1",
                f"--site={self.site}",
                f"--adminpass={self.admin_password}",
            ],
        )
        self._write_smb_conf(name, address)
        self._start_dc(name, address)
        self._update_spns(paths)
        for name, _, address in planned[1:]:
            paths = self._paths(name)
            paths.root.mkdir(parents=True)
            self.run_in_lab(
                [
                    SAMBA_TOOL,
                    "domain",
                    "join",
                    self.forest,
                    "DC",
                    "-U",
                    self.admin_user,
                    f"--server={planned[0][1]}",
                    f"--targetdir={paths.root}",
                    "-s",
                    "/dev/null",
                    "--dns-backend=SAMBA_INTERNAL",
                    f"--site={self.site}",
                    f"--option=netbios name = {name}",
                    f"--option=interfaces = {address}/8",
                    "--option=bind interfaces only = yes",
                ],
                credentials=True,
            )
            self._write_smb_conf(name, address)
            self._start_dc(name, address)
            self._update_spns(paths)
        self.dcs = [self._read_dc(n) for n, _, _ in planned]
        for info in self.dcs[1:]:
            zone = self.forest
            self.samba_tool(
                None, "dns", "add", self.root_dc.address, zone, info.name.lower(), "A", info.address
            )
            self.samba_tool(
                None,
                "dns",
                "add",
                self.root_dc.address,
                f"_msdcs.{zone}",
                info.dsa_guid,
                "CNAME",
                info.fqdn,
            )
        for info in self.dcs:
            self.kcc(info)
        self._converge()
        self._provision_kerberos()
        self._save_state()
        self._take_snapshot()

    def _update_spns(self, paths: _DcPaths) -> None:
        """Register the DRS SPN now; samba's own start-up run may race us, so retry once."""
        argv = ["samba_spnupdate", "-s", str(paths.smb_conf)]
        if self.run_in_lab(argv, check=False).returncode != 0:
            time.sleep(2)
            self.run_in_lab(argv)

    def _converge(self) -> None:
        """Replicate every NC both ways so both DCs start from the same state."""
        for dest in self.dcs[1:]:
            for nc in self.naming_contexts:
                self.replicate(dest, self.root_dc, nc)
                self.replicate(self.root_dc, dest, nc)

    def _read_dc(self, name: str) -> DcInfo:
        fqdn = f"{name.lower()}.{self.forest}"
        address = next(a for n, _, a in self._planned() if n == name)
        server_dn = f"CN={name},{self.servers_dn}"
        ntds = f"CN=NTDS Settings,{server_dn}"
        conn = self._admin(address, ldaps=True, fqdn=fqdn)
        try:
            conn.search(ntds, "(objectClass=nTDSDSA)", ldap3.BASE, attributes=["objectGUID"])
            guid = str(uuid.UUID(bytes_le=conn.entries[0].objectGUID.raw_values[0]))
            conn.search(
                server_dn, "(objectClass=server)", ldap3.BASE, attributes=["serverReference"]
            )
            computer = str(conn.entries[0].serverReference.value)
        finally:
            conn.unbind()
        return DcInfo(
            name=name,
            fqdn=fqdn,
            address=address,
            ldap_port=389,
            ldaps_port=636,
            dsa_guid=guid,
            server_dn=server_dn,
            ntds_settings_dn=ntds,
            computer_dn=computer,
            site=self.site,
        )

    # ---- Kerberos ----------------------------------------------------------------------
    @property
    def service_principal(self) -> str:
        """The bot's service account as a Kerberos principal (svc-ad1411@REALM)."""
        return f"{SERVICE_ACCOUNT}@{self.realm}"

    @property
    def service_account_dn(self) -> str:
        return f"CN={SERVICE_ACCOUNT},CN=Users,{self.base_dn}"

    @property
    def service_keytab(self) -> Path:
        """The service account's keys (AES), exported from the forest: a keytab for the bot."""
        return self.base_dir / "etc" / f"{SERVICE_ACCOUNT}.keytab"

    @property
    def dc_keytab(self) -> Path:
        """host/<fqdn> keys of every DC: what a DC's WinRM service decrypts tickets with."""
        return self.base_dir / "etc" / "dc-services.keytab"

    @property
    def _service_password_file(self) -> Path:
        return self.base_dir / "etc" / f"{SERVICE_ACCOUNT}.password"

    def _provision_kerberos(self) -> None:
        """The bot's service account (AES keys) and the keytabs the lab hands out."""
        self.service_password = f"Svc-{secrets.token_hex(10)}-K7"
        self.add_user(SERVICE_ACCOUNT, self.service_password)
        self.export_keytab(self.service_principal, self.service_keytab)
        self.dc_keytab.unlink(missing_ok=True)
        for info in self.dcs:
            self.export_keytab(f"host/{info.fqdn}@{self.realm}", self.dc_keytab)

    def add_user(self, name: str, password: str, *, enabled: bool = True) -> str:
        """A user with AES keys (msDS-SupportedEncryptionTypes 24), added over LDAPS; its DN."""
        if not re.fullmatch(r"[A-Za-z0-9-]{1,20}", name):
            raise SambaLabError(f"user name {name!r} is not a plain sAMAccountName")
        dn = f"CN={name},CN=Users,{self.base_dn}"
        # NORMAL_ACCOUNT | DONT_EXPIRE_PASSWORD, plus ACCOUNTDISABLE when asked
        control = 0x10200 | (0 if enabled else 0x2)
        conn = self.connect(self.root_dc)
        try:
            ok = conn.add(
                dn,
                ["top", "person", "organizationalPerson", "user"],
                {
                    "sAMAccountName": name,
                    "userPrincipalName": f"{name}@{self.forest}",
                    "unicodePwd": f'"{password}"'.encode("utf-16-le"),
                    "userAccountControl": str(control),
                    "msDS-SupportedEncryptionTypes": "24",
                },
            )
            if not ok:
                raise SambaLabError(
                    f"could not add user {name}: {conn.result.get('description')} "
                    f"{conn.result.get('message')}"
                )
        finally:
            conn.unbind()
        return dn

    def set_user_password(self, name: str, password: str) -> None:
        """Replace a user's password over LDAPS (its keys change; old keytabs go stale)."""
        self._modify(
            self.root_dc,
            f"CN={name},CN=Users,{self.base_dn}",
            {"unicodePwd": [(ldap3.MODIFY_REPLACE, [f'"{password}"'.encode("utf-16-le")])]},
        )

    def delete_user(self, name: str) -> None:
        """Remove a user added by add_user (no error when it is already gone)."""
        conn = self.connect(self.root_dc)
        try:
            conn.delete(f"CN={name},CN=Users,{self.base_dn}")
        finally:
            conn.unbind()

    def export_keytab(self, principal: str, path: Path) -> Path:
        """`samba-tool domain exportkeytab` of one principal, appended to `path` (mode 0600)."""
        self.run_in_lab(
            [
                SAMBA_TOOL,
                "domain",
                "exportkeytab",
                str(path),
                f"--principal={principal}",
                "-s",
                str(self.smb_conf(self.root_dc)),
            ]
        )
        path.chmod(0o600)
        return path

    # ---- snapshot ----------------------------------------------------------------------
    def _take_snapshot(self) -> None:
        """Copy every DC's databases while stopped: the healthy baseline reset() restores."""
        for name, _, _ in self._planned():
            self._stop_dc(name)
        shutil.rmtree(self._snapshot_dir, ignore_errors=True)
        for name, _, address in self._planned():
            shutil.copytree(
                self._paths(name).private,
                self._snapshot_dir / name.lower(),
                ignore=shutil.ignore_patterns("ldapi"),  # sockets: samba makes new ones
            )
            self._start_dc(name, address)
        self._dirty = False
        self._restore_needed = False

    def restore_snapshot(self) -> None:
        """Stop the DCs, put back the baseline databases of every DC, start again."""
        for name, _, _ in self._planned():
            self._stop_dc(name)
        for name, _, _ in self._planned():
            private = self._paths(name).private
            shutil.rmtree(private)
            shutil.copytree(self._snapshot_dir / name.lower(), private)
        for name, _, address in self._planned():
            self._start_dc(name, address)
        self._dirty = False
        self._restore_needed = False

    # ---- LDAP --------------------------------------------------------------------------
    def tls(self, *, ca_file: Path | None = None, fqdn: str | None = None) -> ldap3.Tls:
        """An ldap3 Tls that validates a DC's certificate against the lab CA (and its FQDN:
        on Python 3.12+ ldap3's own hostname check no longer accepts the IP we dial)."""
        return ldap3.Tls(
            validate=ssl.CERT_REQUIRED,
            ca_certs_file=str(ca_file or self.ca_file),
            version=ssl.PROTOCOL_TLS_CLIENT,
            valid_names=[fqdn] if fqdn else None,
        )

    def _admin(self, address: str, *, ldaps: bool, fqdn: str | None = None) -> ldap3.Connection:
        if ldaps:
            server = ldap3.Server(
                address,
                port=636,
                use_ssl=True,
                tls=self.tls(fqdn=fqdn),
                get_info=ldap3.NONE,
                connect_timeout=10,
            )
        else:
            server = ldap3.Server(address, port=389, get_info=ldap3.NONE, connect_timeout=10)
        return ldap3.Connection(
            server,
            user=self.admin_dn,
            password=self.admin_password,
            auto_bind=True,
            receive_timeout=60,
            raise_exceptions=False,
        )

    def connect(self, dc: int | str | DcInfo, *, ldaps: bool = True) -> ldap3.Connection:
        """A bound ldap3 connection to `dc` as Administrator (LDAPS validated by default)."""
        info = self.dc(dc)
        return self._admin(info.address, ldaps=ldaps, fqdn=info.fqdn)

    def server_reference(
        self, dc: int | str | DcInfo, *, on: int | str | DcInfo | None = None
    ) -> str | None:
        """serverReference of `dc`'s server object as DC `on` (default: the root DC) sees it."""
        target = self.dc(dc)
        conn = self.connect(on if on is not None else self.root_dc)
        try:
            conn.search(
                target.server_dn, "(objectClass=server)", ldap3.BASE, attributes=["serverReference"]
            )
            value = conn.entries[0].serverReference.value if conn.entries else None
        finally:
            conn.unbind()
        return str(value) if value else None

    def _modify(self, dc: DcInfo, dn: str, changes: dict[str, Any]) -> None:
        conn = self.connect(dc)
        try:
            if not conn.modify(dn, changes):
                raise SambaLabError(
                    f"LDAP modify of {dn} on {dc.fqdn} failed: {conn.result.get('description')} "
                    f"{conn.result.get('message')}"
                )
        finally:
            conn.unbind()

    def remove_server_reference(self, dc: int | str | DcInfo) -> None:
        """Delete serverReference from `dc`'s server object on every DC (the 1411 cause)."""
        target = self.dc(dc)
        self._dirty = True
        for holder in self.dcs:
            if self.server_reference(target, on=holder) is not None:
                self._modify(
                    holder, target.server_dn, {"serverReference": [(ldap3.MODIFY_DELETE, [])]}
                )

    def restore_server_reference(self, dc: int | str | DcInfo) -> None:
        """Put back serverReference = the DC's computer DN wherever it is missing or wrong."""
        target = self.dc(dc)
        for holder in self.dcs:
            if self.server_reference(target, on=holder) != target.computer_dn:
                self._modify(
                    holder,
                    target.server_dn,
                    {"serverReference": [(ldap3.MODIFY_REPLACE, [target.computer_dn])]},
                )

    # ---- phantoms ----------------------------------------------------------------------
    def _phantom_ldif(self, name: str) -> str:
        server_dn = f"CN={name},{self.servers_dn}"
        ncs = [self.configuration_dn, self.schema_dn, self.base_dn]
        # msDS-hasMasterNCs only (the KCC needs NCs): each DN value costs ~1.5 ms per add
        masters = "".join(f"msDS-hasMasterNCs: {nc}\n" for nc in ncs)
        return (
            f"dn: {server_dn}\nobjectClass: server\n"
            f"dNSHostName: {name.lower()}.{self.forest}\n\n"
            f"dn: CN=NTDS Settings,{server_dn}\nobjectClass: nTDSDSA\noptions: 0\n"
            f"invocationId: {uuid.uuid4()}\n{masters}"
            f"dMDLocation: {self.schema_dn}\nmsDS-Behavior-Version: 7\n\n"
        )

    def make_read_only(self, phantom: PhantomServer) -> None:
        """Make a phantom's NTDS Settings an RODC's (objectCategory NTDS-DSA-RO, relax)."""
        ldif = self.base_dir / "read-only.ldif"
        ldif.write_text(
            f"dn: {phantom.ntds_settings_dn}\nchangetype: modify\nreplace: objectCategory\n"
            f"objectCategory: CN=NTDS-DSA-RO,{self.schema_dn}\n"
        )
        self._restore_needed = True
        sam = str(self._paths(self.root_dc.name).sam_ldb)
        self.run_in_lab(["ldbmodify", "-H", sam, "--controls=relax:0", str(ldif)])
        ldif.unlink()

    def add_live_phantom_dc(self, name: str) -> PhantomServer:
        """A phantom whose DC computer account exists (serverReference set): the directory
        sees a live DC that simply has no connection object on the root DC, the KB's
        "missing from NTDS Settings" case. No samba process runs for it."""
        phantom = self.add_phantom_servers(1, names=[name])[0]
        computer_dn = f"CN={name},OU=Domain Controllers,{self.base_dn}"
        ldif = self.base_dir / "phantom-computer.ldif"
        ldif.write_text(
            f"dn: {computer_dn}\nobjectClass: computer\nsAMAccountName: {name}$\n"
            f"userAccountControl: 532480\ndNSHostName: {phantom.fqdn}\n"
            f"servicePrincipalName: E3514235-4B06-11D1-AB04-00C04FC2DCD2/{phantom.dsa_guid}/"
            f"{self.forest}\n\n"
            f"dn: {phantom.server_dn}\nchangetype: modify\nreplace: serverReference\n"
            f"serverReference: {computer_dn}\n"
        )
        self._restore_needed = True
        sam = str(self._paths(self.root_dc.name).sam_ldb)
        head, _, tail = ldif.read_text().partition("\n\n")
        ldif.write_text(head + "\n")
        self.run_in_lab(["ldbadd", "-H", sam, "--controls=relax:0", str(ldif)])
        ldif.write_text(tail)
        self.run_in_lab(["ldbmodify", "-H", sam, "--controls=relax:0", str(ldif)])
        ldif.unlink()
        return phantom

    def add_phantom_server(self, name: str) -> PhantomServer:
        """One server object + nTDSDSA with no DC behind it (nTDSDSA is system-only)."""
        return self.add_phantom_servers(1, names=[name])[0]

    def add_phantom_servers(
        self, n: int, *, prefix: str = "PHANTOM", names: list[str] | None = None
    ) -> list[PhantomServer]:
        """Add n phantom servers to the root DC's sam.ldb with one ldbadd (relax control)."""
        wanted = names if names is not None else [f"{prefix}{i:05d}" for i in range(1, n + 1)]
        for name in wanted:
            if not re.fullmatch(r"[A-Za-z0-9-]{1,63}", name):
                raise SambaLabError(f"phantom server name {name!r} is not a plain host name")
        ldif = self.base_dir / "phantoms.ldif"
        ldif.write_text("".join(self._phantom_ldif(name) for name in wanted))
        self._restore_needed = True
        self.run_in_lab(
            [
                "ldbadd",
                "-H",
                str(self._paths(self.root_dc.name).sam_ldb),
                "--controls=relax:0",
                str(ldif),
            ],
        )
        ldif.unlink()
        guids = self._phantom_guids()
        return [
            PhantomServer(
                name=name,
                fqdn=f"{name.lower()}.{self.forest}",
                server_dn=f"CN={name},{self.servers_dn}",
                ntds_settings_dn=f"CN=NTDS Settings,CN={name},{self.servers_dn}",
                dsa_guid=guids[name.lower()],
            )
            for name in wanted
        ]

    def _phantom_guids(self) -> dict[str, str]:
        """lower-case server name -> DSA GUID, for every nTDSDSA in the site."""
        out = self.run_in_lab(
            [
                "ldbsearch",
                "-H",
                str(self._paths(self.root_dc.name).sam_ldb),
                "-b",
                self.servers_dn,
                "(objectClass=nTDSDSA)",
                "objectGUID",
            ],
        ).stdout
        found: dict[str, str] = {}
        for block in out.replace("\n ", "").split("\n\n"):
            dn = re.search(r"^dn: CN=NTDS Settings,CN=([^,]+),", block, re.M)
            guid = re.search(r"^objectGUID: ([0-9a-f-]{36})", block, re.M)
            if dn and guid:
                found[dn.group(1).lower()] = guid.group(1)
        return found

    def phantom_count(self) -> int:
        """How many nTDSDSA objects in the site belong to no lab DC (root DC's view)."""
        real = {d.name.lower() for d in self.dcs}
        return sum(1 for name in self._phantom_guids() if name not in real)

    def remove_phantoms(self) -> None:
        """Remove every phantom server by restoring the healthy snapshot of all DCs."""
        self.restore_snapshot()

    # ---- replication -------------------------------------------------------------------
    def replicate(
        self, destination: int | str | DcInfo, source: int | str | DcInfo, nc: str | None = None
    ) -> str:
        """`samba-tool drs replicate DEST SOURCE NC`; raises SambaLabError on failure."""
        return self.try_replicate(destination, source, nc, check=True).output

    def try_replicate(
        self,
        destination: int | str | DcInfo,
        source: int | str | DcInfo,
        nc: str | None = None,
        *,
        check: bool = False,
    ) -> CommandResult:
        """Like replicate() but returns the result (exit code, output) instead of raising."""
        dest, src = self.dc(destination), self.dc(source)
        return self.samba_tool(
            None, "drs", "replicate", dest.fqdn, src.fqdn, nc or self.base_dn, check=check
        )

    def log_file(self, dc: int | str | DcInfo) -> Path:
        """The samba log of `dc` (where "Failed to find account dn" shows up)."""
        return self._paths(self.dc(dc).name).log

    def showrepl(self, dc: int | str | DcInfo) -> str:
        """`samba-tool drs showrepl` text, as repadmin /showrepl would be read."""
        return self.samba_tool(None, "drs", "showrepl", self.dc(dc).fqdn).stdout

    def showrepl_json(self, dc: int | str | DcInfo) -> dict[str, Any]:
        """`samba-tool drs showrepl --json`, parsed."""
        out = self.samba_tool(None, "drs", "showrepl", "--json", self.dc(dc).fqdn).stdout
        data: dict[str, Any] = json.loads(out)
        return data

    def settle_replication(self, timeout: float = 180.0) -> None:
        """Until every inbound link of every DC has replicated with no failure since (Samba's
        own periodic replication can fail on a loaded machine and count a failure a test of
        a healthy forest would read): replicate each failing link again. A hang guard only."""
        names = {dc.name.upper(): dc for dc in self.dcs}
        deadline = time.monotonic() + timeout
        while True:
            failing = []
            for dc in self.dcs:
                for link in self.showrepl_json(dc).get("repsFrom", []):
                    source = names.get(str(link.get("DSA", "")).rpartition("\\")[2].upper())
                    # nttime2string prints a date with its year, or NTTIME(0) for never.
                    never = not re.search(r"\b\d{4}\b", str(link.get("last success", "")))
                    bad = int(link.get("consecutive failures", 0)) > 0 or never
                    if source is not None and not link.get("is deleted") and bad:
                        failing.append((dc, source, str(link["NC dn"])))
            if not failing:
                return
            if time.monotonic() > deadline:
                raise SambaLabError(f"replication still failing after {timeout:g} s: {failing}")
            for dest, source, nc in failing:
                self.try_replicate(dest, source, nc)

    def kcc(self, dc: int | str | DcInfo) -> str:
        """`samba-tool drs kcc` on `dc`."""
        return self.samba_tool(None, "drs", "kcc", self.dc(dc).fqdn).output

    # ---- one DC's power (a DC restart in the DC simulator) ---------------------------------
    def is_running(self, dc: int | str | DcInfo) -> bool:
        """Whether this object's samba process for `dc` runs."""
        proc = self._samba.get(self.dc(dc).name)
        return proc is not None and proc.poll() is None

    def pid(self, dc: int | str | DcInfo) -> int | None:
        """PID of the running samba process of `dc` (a new one after each start)."""
        return self._samba[self.dc(dc).name].pid if self.is_running(dc) else None

    def stop_dc(self, dc: int | str | DcInfo) -> None:
        """Stop one DC's samba (SIGTERM, then its whole process group); its data stays."""
        self._stop_dc(self.dc(dc).name)

    def start_dc(self, dc: int | str | DcInfo) -> None:
        """Start one stopped DC and wait until it answers LDAP (no-op when it runs)."""
        info = self.dc(dc)
        if not self.is_running(info):
            self._start_dc(info.name, info.address)

    def start_stopped_dcs(self) -> None:
        """Start the whole lab if nothing runs, else every DC that is stopped."""
        holder = self._holder
        if not self._samba or holder is None or holder.poll() is not None:
            self.stop()
            self.start()
            return
        for info in self.dcs:
            self.start_dc(info)

    # ---- reset -------------------------------------------------------------------------
    def _dsa_options(self, dc: DcInfo) -> str:
        conn = self.connect(dc)
        try:
            conn.search(
                dc.ntds_settings_dn, "(objectClass=nTDSDSA)", ldap3.BASE, attributes=["options"]
            )
            return str(conn.entries[0].options.value) if conn.entries else "?"
        finally:
            conn.unbind()

    def healthy(self) -> bool:
        """Every serverReference in place on every DC, no phantoms, DSA options unchanged."""
        for target in self.dcs:
            for holder in self.dcs:
                if self.server_reference(target, on=holder) != target.computer_dn:
                    return False
        return self.phantom_count() == 0 and all(self._dsa_options(d) == "1" for d in self.dcs)

    def reset(self) -> None:
        """Back to the healthy baseline: heal over LDAP when that suffices, else the snapshot."""
        self.start_stopped_dcs()
        if self._restore_needed:
            self.restore_snapshot()
            return
        if not self._dirty and self.healthy():
            return
        if self.phantom_count() == 0:
            for target in self.dcs:
                self.restore_server_reference(target)
            if self.healthy() and self._replicates():
                self._dirty = False
                return
        self.restore_snapshot()

    def mark_dirty(self) -> None:
        """Tell reset() the test changed something it cannot see: restore the snapshot."""
        self._restore_needed = True

    def _replicates(self) -> bool:
        for dest in self.dcs[1:]:
            for a, b in ((dest, self.root_dc), (self.root_dc, dest)):
                for nc in (self.base_dn, self.configuration_dn):
                    if self.try_replicate(a, b, nc).returncode != 0:
                        return False
        return True


def _port_open(address: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((address, port)) == 0


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
