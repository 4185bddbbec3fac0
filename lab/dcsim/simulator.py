"""The DC simulator: simulated DCs of one forest, each a real WinRM listener on 127.0.0.1.

One port per DC (the Host header is ignored). Everything runs on one asyncio loop in a
background thread; tests and the CLI call the thread-safe methods below.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from lab.dcsim import soap
from lab.dcsim.accounts import AcceptorKeytab, Account, NtlmUserFile
from lab.dcsim.endpoint import AuthPolicy, WsmanListener
from lab.dcsim.faults import FaultPlan
from lab.dcsim.machine import DcMachine
from lab.dcsim.programs import ProgramResult, run_command_line
from lab.dcsim.repadmin_backend import InMemoryRepadmin, RepadminBackend
from lab.dcsim.shells import DROP, CmdShell, Drop, PsrpShell, Reply, ShellContext
from lab.dcsim.state import CommandRecord, DcState, Forest, RegistryValue, now
from lab.dcsim.tls import ServerTls, issue_self_signed_tls, issue_server_tls

log = logging.getLogger(__name__)
T = TypeVar("T")
LOOPBACK = "127.0.0.1"
RepadminFactory = Callable[[Forest, str], RepadminBackend]


@dataclass(frozen=True)
class RestartTiming:
    """How a simulated restart unfolds (the lab compresses Windows' minutes into seconds)."""

    grace_seconds: float = 0.3  # from `shutdown /r` to going down, whatever /t says
    downtime_seconds: float | None = 2.0  # None: never comes back
    directory_delay_seconds: float = 0.3  # the directory answers this long after WinRM


class SimulatedDc:
    """One domain controller: its state, its faults, its WinRM and directory ports."""

    def __init__(
        self,
        lab: DcLab,
        state: DcState,
        listener_auth: AuthPolicy,
        *,
        tls: ServerTls | None,
        repadmin: RepadminBackend,
        restart: RestartTiming,
        machine: DcMachine | None = None,
        host: str = LOOPBACK,
    ) -> None:
        self.lab = lab
        self.machine = machine
        self.host = host
        self.state = state
        self.faults = FaultPlan()
        self.tls = tls
        self.repadmin = repadmin
        self.restart_timing = restart
        self.accounts = listener_auth.accounts
        self.shells: dict[str, CmdShell | PsrpShell] = {}
        self.listener = WsmanListener(
            state.fqdn,
            listener_auth,
            self.faults,
            self._dispatch,
            tls=tls.server_context() if tls else None,
            certificate_der=tls.certificate_der() if tls else None,
        )
        self.port = 0
        self.directory_port = 0
        self._directory: asyncio.Server | None = None
        self._up = False
        self._pending_restart: asyncio.TimerHandle | None = None
        self._restart_scheduled = False
        self._power = asyncio.Lock()
        self._ctx = ShellContext(
            fqdn=state.fqdn,
            forest=lab.forest,
            faults=self.faults,
            run=self._run,
            on_restart=self._on_restart,
            registry=self._registry,
        )

    # --- what tests look at -----------------------------------------------------------------

    @property
    def fqdn(self) -> str:
        """The DC's DNS name."""
        return self.state.fqdn

    @property
    def scheme(self) -> str:
        """http or https."""
        return self.listener.scheme

    @property
    def ca_file(self) -> Path | None:
        """The CA a client must trust to reach this DC over HTTPS."""
        return self.tls.ca_file if self.tls else None

    @property
    def is_up(self) -> bool:
        """Whether the WinRM port is open."""
        return self._up

    @property
    def address(self) -> str:
        """The loopback address it listens on (the same as `host`)."""
        return self.host

    def commands(self) -> list[CommandRecord]:
        """The command log of this DC, oldest first."""
        return self.lab.forest.commands_on(self.fqdn)

    def registry_value(self, name: str) -> RegistryValue | None:
        """A value under NTDS Parameters, read directly (not over WinRM)."""
        with self.lab.forest.lock:
            return self.state.registry_value(name)

    def go_down(self, seconds: float | None) -> None:
        """Become unreachable now, for `seconds` (None: until come_up())."""
        self.lab.call(self._go_down(seconds))

    def come_up(self) -> None:
        """Open the ports again."""
        self.lab.call(self._come_up())

    # --- loop-side ------------------------------------------------------------------------------

    async def start(self, port: int, directory_port: int) -> None:
        """Open the WinRM and directory ports."""
        self.port = await self.listener.start(self.host, port)
        self._directory = await asyncio.start_server(
            _close_at_once, self.host, directory_port, reuse_address=True
        )
        self.directory_port = int(self._directory.sockets[0].getsockname()[1])
        self._up = True

    async def stop(self) -> None:
        """Close everything; a machine left down by a restart is started again."""
        if self._pending_restart is not None:
            self._pending_restart.cancel()
            self._pending_restart = None
        async with self._power:
            await self._close_ports()
            if self.machine is not None and not self.machine.is_running():
                await asyncio.to_thread(self.machine.boot)

    async def _close_ports(self) -> None:
        self._up = False
        with self.lab.forest.lock:
            self.state.rpc_reachable = False
        await self.listener.stop()
        if self._directory is not None:
            self._directory.close()
            self._directory = None
        for shell in self.shells.values():
            shell.close()
        self.shells.clear()

    async def _go_down(self, seconds: float | None) -> None:
        async with self._power:
            self._restart_scheduled = False
            if self.machine is not None:
                # Services stop before the network goes: while WinRM still answers, the
                # directory is already gone, as on a Windows DC shutting down.
                await asyncio.to_thread(self.machine.shut_down)
            await self._close_ports()
        if seconds is not None:
            loop = asyncio.get_running_loop()
            self._pending_restart = loop.call_later(
                seconds, lambda: loop.create_task(self._come_up())
            )

    async def _come_up(self) -> None:
        self._pending_restart = None
        async with self._power:
            if self._up:
                return
            if self.machine is not None:
                try:
                    await asyncio.to_thread(self.machine.boot)
                except Exception:  # a DC that fails to boot stays down, as a real one would
                    log.exception("the machine behind %s did not boot; it stays down", self.fqdn)
                    return
            await self.listener.start(self.host, self.port)
            self._up = True
            with self.lab.forest.lock:
                self.state.rpc_reachable = True
        await asyncio.sleep(self.restart_timing.directory_delay_seconds)
        if self._up and self._directory is None:
            self._directory = await asyncio.start_server(
                _close_at_once, self.host, self.directory_port, reuse_address=True
            )

    def _on_restart(self) -> None:
        loop = asyncio.get_running_loop()
        self._restart_scheduled = True
        with self.lab.forest.lock:
            self.state.restarts.append(now())
        timing = self.restart_timing
        loop.call_later(
            timing.grace_seconds,
            lambda: loop.create_task(self._go_down(timing.downtime_seconds)),
        )

    def _run(self, line: str) -> ProgramResult:
        return run_command_line(
            line,
            self.state,
            self.lab.forest,
            self.repadmin,
            restart_pending=self._restart_scheduled,
        )

    def _registry(self) -> list[RegistryValue]:
        with self.lab.forest.lock:
            return list(self.state.registry.values())

    async def _dispatch(self, user: str, request: soap.Request) -> Reply | Drop:
        action = request.action
        if action == soap.CREATE:
            return self._create(user, request)
        shell = self.shells.get(request.selectors.get("ShellId", "").upper())
        if shell is None:
            return Reply(
                500,
                soap.fault(
                    request.message_id,
                    self.fqdn,
                    soap.INVALID_SELECTORS_CODE,
                    "InvalidSelectors",
                    "The request for the Windows Remote Shell failed because the shell was "
                    "not found on the server.",
                ),
            )
        if action == soap.COMMAND:
            return shell.command(request)
        if action == soap.RECEIVE:
            reply = await shell.receive(request)
            return DROP if isinstance(reply, Drop) else reply
        if action == soap.SEND:
            if isinstance(shell, PsrpShell):
                return shell.send(request)
            return Reply(200, soap.simple_response(request, "SendResponse", "SendResponse"))
        if action == soap.SIGNAL:
            return shell.signal(request)
        if action == soap.DELETE:
            shell.close()
            self.shells.pop(shell.id, None)
            return Reply(200, soap.simple_response(request, "DeleteResponse", None))
        return Reply(
            500,
            soap.fault(
                request.message_id,
                self.fqdn,
                soap.ACTION_NOT_SUPPORTED_CODE,
                "ActionNotSupported",
                f"The action {action} is not supported by this simulator.",
            ),
        )

    def _create(self, user: str, request: soap.Request) -> Reply:
        endpoint = f"{self.scheme}://{self.fqdn}:{self.port}/wsman"
        shell_el = request.body_child("rsp", "Shell")
        if request.resource_uri.startswith(soap.PWSH_RESOURCE_PREFIX):
            shell_id = (shell_el.attrib.get("ShellId") if shell_el is not None else None) or str(
                uuid.uuid4()
            ).upper()
            creation_tag = f"{{{soap.NS['pwsh']}}}creationXml"
            creation = shell_el.findtext(creation_tag) if shell_el is not None else None
            pool = PsrpShell(self._ctx, shell_id.upper(), user)
            if creation:
                pool.open(creation)
            shell: CmdShell | PsrpShell = pool
        elif request.resource_uri == soap.CMD_RESOURCE:
            shell_id = str(uuid.uuid4()).upper()
            codepage = int(request.options.get("WINRS_CODEPAGE", "437") or "437")
            shell = CmdShell(self._ctx, shell_id, user, codepage)
        else:
            return Reply(
                500,
                soap.fault(
                    request.message_id,
                    self.fqdn,
                    soap.ACTION_NOT_SUPPORTED_CODE,
                    "DestinationUnreachable",
                    f"The WS-Management service cannot process the request: no shell for "
                    f"{request.resource_uri}.",
                ),
            )
        self.shells[shell.id] = shell
        return Reply(200, soap.create_response(request, endpoint, shell.id, user, "127.0.0.1"))


async def _close_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


class DcLab:
    """Simulated DCs of one forest on a private event-loop thread. Use as a context manager."""

    def __init__(
        self,
        forest: str,
        work_dir: Path,
        *,
        repadmin: RepadminFactory | None = None,
        tls_dir: Path | None = None,
    ) -> None:
        self.forest = Forest(forest)
        self.work_dir = work_dir
        self.tls_dir = tls_dir or work_dir / "tls"
        self._repadmin = repadmin or (lambda f, dc: InMemoryRepadmin(f, local_dc=dc))
        self.dcs: dict[str, SimulatedDc] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="dcsim", daemon=True)
        self._thread.start()

    def __enter__(self) -> DcLab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run a coroutine on the lab's loop and wait for it."""
        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout)

    def add_dc(
        self,
        fqdn: str,
        *,
        auth: Literal["ntlm", "basic", "kerberos"] = "ntlm",
        user: str = "CORP\\svc-ad1411",
        password: str = "",
        https: bool = False,
        self_signed: bool = False,
        port: int = 0,
        site: str | None = None,
        restart: RestartTiming | None = None,
        keytab: Path | None = None,
        realm: str = "",
        host: str = LOOPBACK,
        machine: DcMachine | None = None,
    ) -> SimulatedDc:
        """Add a DC that accepts `user`/`password`, listening on `host`:`port` (0: any).

        `host` is a loopback address (a Samba DC's own, so LDAP and WinRM share it);
        `machine` is what a restart really stops and starts (see lab.dcsim.machine).
        With `keytab` (keys of host/<fqdn>, exported from a real KDC) it accepts Kerberos
        tickets for `user` in `realm` too; auth="kerberos" accepts nothing else.
        """
        if not host.startswith("127."):
            raise ValueError(f"the simulator listens on loopback only, not {host!r}")
        if not password and auth != "kerberos":
            raise ValueError("a simulated DC needs a password for its account")
        if auth == "basic" and not https:
            raise ValueError("Basic auth is only served over HTTPS")
        if auth == "kerberos" and (keytab is None or not realm):
            raise ValueError("a Kerberos-only simulated DC needs a keytab and a realm")
        account = Account.parse(user, password)
        if realm:
            account = Account(account.domain, account.user, account.password, realm.upper())
        if keytab is not None:
            AcceptorKeytab.use(keytab)
        if auth == "ntlm":
            NtlmUserFile.add(account)
        state = self.forest.add_dc(fqdn, **({"site": site} if site else {}))
        tls: ServerTls | None = None
        if https:
            names = list(dict.fromkeys([state.fqdn, "localhost", LOOPBACK, host]))
            tls = (
                issue_self_signed_tls(self.tls_dir, names)
                if self_signed
                else issue_server_tls(self.tls_dir, names)
            )
        dc = SimulatedDc(
            self,
            state,
            AuthPolicy(auth, [account], kerberos=keytab is not None),
            tls=tls,
            repadmin=self._repadmin(self.forest, state.fqdn),
            restart=restart or RestartTiming(),
            machine=machine,
            host=host,
        )
        self.call(dc.start(port, 0))
        self.dcs[state.fqdn] = dc
        return dc

    def dc(self, fqdn: str) -> SimulatedDc:
        """A DC by FQDN."""
        return self.dcs[fqdn.lower()]

    def stop(self) -> None:
        """Close every port and stop the loop thread."""
        if not self._loop.is_running():
            return
        for dc in self.dcs.values():
            self.call(dc.stop(), timeout=120)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
