"""Server-side shells: WinRS cmd shells that run programs, and PSRP runspace pools for cmdlets."""

from __future__ import annotations

import asyncio
import base64
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import psrpcore
from psrpcore.types import (
    ErrorCategory,
    ErrorCategoryInfo,
    NETException,
    PSCustomObject,
    PSInvocationState,
)

from lab.dcsim import soap
from lab.dcsim.faults import FaultKind, FaultPlan
from lab.dcsim.programs import ProgramResult
from lab.dcsim.state import (
    NTDS_PARAMETERS_LONG,
    CommandRecord,
    Forest,
    RegistryValue,
    now,
)

# A Receive is answered a little before the client's OperationTimeout, as WinRM does.
_RECEIVE_MARGIN = 0.25

log = logging.getLogger(__name__)


class Drop:
    """Marker reply: close the TCP connection without answering."""


DROP = Drop()


@dataclass(frozen=True)
class Reply:
    """A SOAP reply and its HTTP status."""

    status: int
    body: bytes


@dataclass
class ShellContext:
    """What a shell needs from its DC."""

    fqdn: str
    forest: Forest
    faults: FaultPlan
    run: Callable[[str], ProgramResult]  # run a command line on the DC
    on_restart: Callable[[], None]  # the DC was told to reboot
    registry: Callable[[], list[RegistryValue]]  # NTDS Parameters values, for cmdlets


@dataclass
class RunningCommand:
    """One command started in a WinRS shell."""

    id: str
    record: CommandRecord
    task: asyncio.Task[None] | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    stdout: bytes = b""
    stderr: bytes = b""
    exit_code: int | None = None
    delivered: bool = False


class CmdShell:
    """A WinRS cmd shell: each Command runs one command line through the DC's programs."""

    def __init__(self, ctx: ShellContext, shell_id: str, user: str, codepage: int) -> None:
        self.ctx = ctx
        self.id = shell_id
        self.user = user
        self.encoding = "utf-8" if codepage == 65001 else "cp437"
        self.commands: dict[str, RunningCommand] = {}

    def command(self, request: soap.Request) -> Reply:
        """Start a command; it runs in the background until a Receive collects it."""
        cmd_line = request.body_child("rsp", "CommandLine")
        if cmd_line is None:
            return _bad(request, self.ctx.fqdn, "no rsp:CommandLine in Command")
        executable = cmd_line.findtext(f"{{{soap.NS['rsp']}}}Command") or ""
        arguments = [a.text or "" for a in cmd_line.findall(f"{{{soap.NS['rsp']}}}Arguments")]
        # WinRS hands cmd.exe the Command and Arguments joined with single spaces.
        line = " ".join([executable.strip(), *arguments]).strip()
        command_id = cmd_line.attrib.get("CommandId") or str(uuid.uuid4()).upper()
        record = self.ctx.forest.record(CommandRecord(self.ctx.fqdn, self.user, line, now()))
        running = RunningCommand(command_id, record)
        running.task = asyncio.get_running_loop().create_task(self._execute(running))
        self.commands[command_id] = running
        return Reply(200, soap.command_response(request, command_id))

    async def _execute(self, running: RunningCommand) -> None:
        line = running.record.command_line
        if self.ctx.faults.take(FaultKind.HANG, line) is not None:
            await asyncio.Event().wait()
        slow = self.ctx.faults.take(FaultKind.SLOW, line)
        if slow is not None:
            await asyncio.sleep(slow.seconds)
        forced = self.ctx.faults.take(FaultKind.EXIT_CODE, line)
        if forced is not None:
            result = ProgramResult("", forced.stderr, forced.exit_code)
        else:
            # Off the loop: a Samba-backed repadmin runs samba-tool, which takes seconds.
            try:
                result = await asyncio.to_thread(self.ctx.run, line)
            except Exception as exc:  # a broken backend must fail the command, never hang it
                log.exception("simulated command %r failed inside the simulator", line)
                result = ProgramResult("", f"simulator error: {type(exc).__name__}: {exc}\r\n", 1)
        running.stdout = result.stdout.encode(self.encoding, errors="replace")
        running.stderr = result.stderr.encode(self.encoding, errors="replace")
        running.exit_code = result.exit_code
        with self.ctx.forest.lock:
            running.record.finished_at = now()
            running.record.exit_code = result.exit_code
            running.record.outcome = "exited"
        running.done.set()
        if result.restart:
            self.ctx.on_restart()

    async def receive(self, request: soap.Request) -> Reply | Drop:
        """Wait for the command to finish, or answer OperationTimeout."""
        desired = request.body_child("rsp", "Receive")
        stream = desired.find(f"{{{soap.NS['rsp']}}}DesiredStream") if desired is not None else None
        command_id = stream.attrib.get("CommandId") if stream is not None else None
        running = self.commands.get(command_id or "")
        if running is None:
            return _bad(request, self.ctx.fqdn, f"unknown CommandId {command_id}")
        if self.ctx.faults.take(FaultKind.OPERATION_TIMEOUT) is not None:
            return Reply(500, soap.operation_timeout_fault(request, self.ctx.fqdn))
        if self.ctx.faults.take(FaultKind.DROP, running.record.command_line) is not None:
            with self.ctx.forest.lock:
                if running.record.outcome == "running":
                    running.record.outcome = "dropped"
            return DROP
        wait = max(0.1, request.operation_timeout - _RECEIVE_MARGIN)
        try:
            await asyncio.wait_for(running.done.wait(), timeout=wait)
        except TimeoutError:
            return Reply(500, soap.operation_timeout_fault(request, self.ctx.fqdn))
        streams: list[tuple[str, bytes]] = []
        if not running.delivered:
            streams = [("stdout", running.stdout), ("stderr", running.stderr)]
            running.delivered = True
        return Reply(
            200,
            soap.receive_response(
                request, running.id, streams, done=True, exit_code=running.exit_code
            ),
        )

    def signal(self, request: soap.Request) -> Reply:
        """Terminate (or acknowledge) a command."""
        signal = request.body_child("rsp", "Signal")
        command_id = signal.attrib.get("CommandId", "") if signal is not None else ""
        running = self.commands.pop(command_id, None)
        if running is not None and not running.done.is_set():
            self._terminate(running)
        return Reply(200, soap.simple_response(request, "SignalResponse", "SignalResponse"))

    def _terminate(self, running: RunningCommand) -> None:
        if running.task is not None:
            running.task.cancel()
        with self.ctx.forest.lock:
            running.record.finished_at = now()
            if running.record.outcome in ("running", "dropped"):
                running.record.outcome = "terminated"

    def close(self) -> None:
        """Delete: stop whatever still runs."""
        for running in self.commands.values():
            if not running.done.is_set():
                self._terminate(running)
        self.commands.clear()


class PsrpShell:
    """A PowerShell runspace pool (psrpcore server side) that runs a few read-only cmdlets."""

    def __init__(self, ctx: ShellContext, shell_id: str, user: str) -> None:
        self.ctx = ctx
        self.id = shell_id
        self.user = user
        self.pool = psrpcore.ServerRunspacePool()
        self.outbox: dict[uuid.UUID | None, bytearray] = {}
        self.ready = asyncio.Event()

    def open(self, creation_xml: str) -> None:
        """Feed the SessionCapability/InitRunspacePool fragments from the Create body."""
        self._feed(base64.b64decode(creation_xml), None)

    def _feed(self, data: bytes, pipeline_id: uuid.UUID | None) -> None:
        self.pool.receive_data(psrpcore.PSRPPayload(data, psrpcore.StreamType.default, pipeline_id))
        while (event := self.pool.next_event()) is not None:
            if isinstance(event, psrpcore.CreatePipelineEvent):
                self._invoke(event.pipeline_id, event.pipeline)
        while (payload := self.pool.data_to_send()) is not None:
            self.outbox.setdefault(payload.pipeline_id, bytearray()).extend(payload.data)
        self.ready.set()

    def command(self, request: soap.Request) -> Reply:
        """Create a pipeline from the CreatePipeline fragment in the Arguments."""
        cmd_line = request.body_child("rsp", "CommandLine")
        if cmd_line is None:
            return _bad(request, self.ctx.fqdn, "no rsp:CommandLine in Command")
        command_id = (cmd_line.attrib.get("CommandId") or str(uuid.uuid4())).upper()
        psrpcore.ServerPipeline(self.pool, uuid.UUID(command_id))
        fragments = cmd_line.findtext(f"{{{soap.NS['rsp']}}}Arguments") or ""
        self._feed(base64.b64decode(fragments), uuid.UUID(command_id))
        return Reply(200, soap.command_response(request, command_id))

    def send(self, request: soap.Request) -> Reply:
        """More fragments for the pool or a pipeline."""
        send = request.body_child("rsp", "Send")
        if send is not None:
            for stream in send.findall(f"{{{soap.NS['rsp']}}}Stream"):
                command_id = stream.attrib.get("CommandId")
                target = uuid.UUID(command_id) if command_id else None
                self._feed(base64.b64decode(stream.text or ""), target)
        return Reply(200, soap.simple_response(request, "SendResponse", "SendResponse"))

    async def receive(self, request: soap.Request) -> Reply:
        """Return what psrpcore queued for the pool or the pipeline, or OperationTimeout."""
        desired = request.body_child("rsp", "Receive")
        stream = desired.find(f"{{{soap.NS['rsp']}}}DesiredStream") if desired is not None else None
        command_id = stream.attrib.get("CommandId") if stream is not None else None
        target = uuid.UUID(command_id) if command_id else None
        deadline = asyncio.get_running_loop().time() + max(
            0.1, request.operation_timeout - _RECEIVE_MARGIN
        )
        while not self.outbox.get(target):
            self.ready.clear()
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return Reply(500, soap.operation_timeout_fault(request, self.ctx.fqdn))
            try:
                await asyncio.wait_for(self.ready.wait(), timeout=remaining)
            except TimeoutError:
                return Reply(500, soap.operation_timeout_fault(request, self.ctx.fqdn))
        data = bytes(self.outbox.pop(target))
        done = False
        if target is not None:
            pipeline = self.pool.pipeline_table.get(target)
            done = pipeline is None or pipeline.state != PSInvocationState.Running
        return Reply(
            200,
            soap.receive_response(
                request, command_id, [("stdout", data)], done=done, exit_code=None
            ),
        )

    def signal(self, request: soap.Request) -> Reply:
        """Terminate or Ctrl+C a pipeline: forget it."""
        signal = request.body_child("rsp", "Signal")
        command_id = signal.attrib.get("CommandId", "") if signal is not None else ""
        try:
            pipeline = self.pool.pipeline_table.get(uuid.UUID(command_id))
        except ValueError:
            pipeline = None
        if pipeline is not None:
            if pipeline.state == PSInvocationState.Running:
                pipeline.stop()
            pipeline.close()
        return Reply(200, soap.simple_response(request, "SignalResponse", "SignalResponse"))

    def close(self) -> None:
        """Delete: nothing runs in the background."""
        self.outbox.clear()

    # cmdlets -------------------------------------------------------------------------------

    def _invoke(self, pipeline_id: uuid.UUID, powershell: psrpcore.PowerShell) -> None:
        pipeline = self.pool.pipeline_table[pipeline_id]
        pipeline.start()
        command = powershell.commands[0] if powershell.commands else None
        name = command.command_text if command is not None else ""
        params = {str(k).lower(): v for k, v in (command.parameters if command else []) if k}
        line = name + "".join(f" -{k} {v!r}" for k, v in params.items())
        record = self.ctx.forest.record(CommandRecord(self.ctx.fqdn, self.user, line, now()))
        exit_code = 0
        if command is None or command.is_script:
            exit_code = 1
            self._error(pipeline, "Scripts are not accepted by this endpoint.", "ScriptRefused")
        elif name.lower() == "get-itemproperty":
            exit_code = self._get_item_property(pipeline, params)
        else:
            exit_code = 1
            self._error(
                pipeline,
                f"The term '{name}' is not recognized as the name of a cmdlet, function, script "
                "file, or operable program.",
                "CommandNotFoundException",
                ErrorCategory.ObjectNotFound,
            )
        pipeline.complete()
        with self.ctx.forest.lock:
            record.finished_at, record.exit_code, record.outcome = now(), exit_code, "exited"

    def _error(
        self,
        pipeline: psrpcore.ServerPipeline,
        message: str,
        error_id: str,
        category: ErrorCategory = ErrorCategory.InvalidOperation,
    ) -> None:
        pipeline.write_error(
            NETException(Message=message),
            ErrorCategoryInfo(Category=category, Reason=error_id),
            fully_qualified_error_id=error_id,
        )

    def _get_item_property(
        self, pipeline: psrpcore.ServerPipeline, params: dict[str, object]
    ) -> int:
        path = str(params.get("path") or params.get("literalpath") or "")
        normal = path.replace("Registry::", "").replace("HKLM:", "HKEY_LOCAL_MACHINE").rstrip("\\")
        if normal.lower() != NTDS_PARAMETERS_LONG.lower():
            self._error(
                pipeline,
                f"Cannot find path '{path}' because it does not exist.",
                "PathNotFound,Microsoft.PowerShell.Commands.GetItemPropertyCommand",
                ErrorCategory.ObjectNotFound,
            )
            return 1
        values = {v.name: v.data for v in self.ctx.registry()}
        wanted = params.get("name")
        names = (
            [str(n) for n in wanted]
            if isinstance(wanted, list)
            else ([str(wanted)] if wanted else list(values))
        )
        found: dict[str, object] = {}
        for name in names:
            match = next((k for k in values if k.lower() == name.lower()), None)
            if match is None:
                self._error(
                    pipeline,
                    f"Property {name} does not exist at path {NTDS_PARAMETERS_LONG}.",
                    "System.Management.Automation.PSArgumentException,"
                    "Microsoft.PowerShell.Commands.GetItemPropertyCommand",
                    ErrorCategory.InvalidArgument,
                )
                continue
            found[match] = values[match]
        if found:
            ps_path = f"Microsoft.PowerShell.Core\\Registry::{NTDS_PARAMETERS_LONG}"
            pipeline.write_output(PSCustomObject(**found, PSPath=ps_path, PSChildName="Parameters"))
        return 0 if len(found) == len(names) else 1


def _bad(request: soap.Request, machine: str, reason: str) -> Reply:
    return Reply(
        500,
        soap.fault(
            request.message_id, machine, soap.INVALID_SELECTORS_CODE, "InvalidSelectors", reason
        ),
    )
