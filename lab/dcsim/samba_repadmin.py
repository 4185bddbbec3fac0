"""repadmin against a real Samba forest: the simulator's repadmin operations take real effect.

    /kcc [DC]              samba-tool drs kcc DC
    /options DC [+|-OPT]   samba-tool drs options DC [--dsa-option=+|-OPT]
    /add NC DEST SOURCE    a repsFrom tuple written on DEST (Samba's DsReplicaAdd is
                           NOT_IMPLEMENTED; its own KCC writes repsFrom the same way), then
                           samba-tool drs replicate DEST SOURCE NC for the initial sync
    /showrepl [DC] [/csv]  samba-tool drs showrepl --json DC, as repadmin prints it
    /replsummary           showrepl --json of every DC, summarized

Every DC, NC and option is matched against the forest's own list before it reaches an argv;
nothing a client sent is passed on as it came.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import re
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bot.windows.repadmin import InboundNeighbor, ReplSummary, ShowRepl, SummaryRow
from bot.windows.win32 import as_signed, win32_message
from lab.dcsim.repadmin_backend import (
    ERROR_BAD_NAMING_CONTEXT,
    ERROR_DNS_LOOKUP_FAILURE,
    ERROR_DS_DRA_DN_EXISTS,
    ERROR_RPC_UNAVAILABLE,
    OptionsChange,
    RepadminBackend,
    RepadminError,
)
from lab.dcsim.state import Forest, now
from lab.samba import CommandResult, DcInfo, SambaForest, SambaLabError

# nTDSDSA options bits, as repadmin names them (MS-ADTS 6.1.1.2.2.1.2.1.1).
DSA_OPTION_BITS = {
    "IS_GC": 0x1,
    "DISABLE_INBOUND_REPL": 0x2,
    "DISABLE_OUTBOUND_REPL": 0x4,
    "DISABLE_NTDSCONN_XLATE": 0x8,
    "DISABLE_SPN_REGISTRATION": 0x10,
}
# The options `samba-tool drs options --dsa-option` accepts (Samba 4.17).
SAMBA_SETTABLE_OPTIONS = frozenset(
    {"IS_GC", "DISABLE_INBOUND_REPL", "DISABLE_OUTBOUND_REPL", "DISABLE_NTDSCONN_XLATE"}
)
ERROR_DS_DRA_INTERNAL_ERROR = 8442
ERROR_INVALID_PARAMETER = 87
SYSTEM_PYTHON = "/usr/bin/python3"  # the interpreter Debian's samba bindings belong to

_WERR = re.compile(r"\((?P<code>\d+), 'WERR_\w+'\)")
_FAILED_RESULT = re.compile(r"^failed, result (?P<code>-?\d+)")
_NTTIME = re.compile(
    r"^\w{3} (?P<mon>\w{3}) +(?P<day>\d{1,2}) (?P<hms>\d\d:\d\d:\d\d) (?P<year>\d{4}) (?P<tz>\S+)$"
)
_UNREACHABLE = (
    "NT_STATUS_CONNECTION_REFUSED",
    "NT_STATUS_IO_TIMEOUT",
    "NT_STATUS_HOST_UNREACHABLE",
    "NT_STATUS_OBJECT_NAME_NOT_FOUND",
    "NT_STATUS_NETWORK_UNREACHABLE",
    "Connection refused",
)
_OPTIONS_LINE = re.compile(r"^(?P<which>Current|New) DSA options: ?(?P<names>.*)$")

# Runs with Samba's own Python bindings on the destination DC's database: add one repsFrom
# tuple and make the running replication service re-read repsFrom, or (test set-up, DC
# stopped) drop one repsFrom or repsTo tuple (the last argument names the attribute).
# Exit 3: the tuple already exists (add) or is absent (drop).
_REPS_FROM_SCRIPT = """
import sys
import ldb
from samba.auth import system_session
from samba.dcerpc import drsblobs, irpc, misc
from samba.kcc.kcc_utils import RepsFromTo
from samba.ndr import ndr_pack, ndr_unpack
from samba.param import LoadParm
from samba.samdb import SamDB

action, smb_conf, nc, guid, invocation_id, dns_name, attribute = sys.argv[1:8]
lp = LoadParm()
lp.load(smb_conf)
samdb = SamDB(url=lp.samdb_url(), session_info=system_session(), lp=lp)

def reps(dn, name=attribute):
    res = samdb.search(base=dn, scope=ldb.SCOPE_BASE, attrs=[name])
    return [bytes(v) for v in res[0].get(name, [])]

def source(value):
    return str(ndr_unpack(drsblobs.repsFromToBlob, value).ctr.source_dsa_obj_guid)

values = reps(nc)
mine = [v for v in values if source(v) == guid]
if action == "drop":
    if not mine:
        sys.exit(3)
    kept = [v for v in values if source(v) != guid]
else:
    if mine:
        sys.exit(3)
    flags, schedule = 0x70, [0x11] * 84
    root = samdb.search(base="", scope=ldb.SCOPE_BASE, attrs=["namingContexts"])
    for other in [nc] + [str(n) for n in root[0]["namingContexts"]]:
        found = [ndr_unpack(drsblobs.repsFromToBlob, v).ctr for v in reps(other)]
        found.sort(key=lambda c: str(c.source_dsa_obj_guid) != guid)
        if found:
            flags, schedule = found[0].replica_flags, list(found[0].schedule)
            break
    tuple_ = RepsFromTo(nc)
    tuple_.source_dsa_obj_guid = misc.GUID(guid)
    tuple_.source_dsa_invocation_id = misc.GUID(invocation_id)
    tuple_.transport_guid = misc.GUID()
    tuple_.replica_flags = flags
    tuple_.schedule = schedule
    tuple_.dns_name1 = dns_name
    kept = values + [ndr_pack(tuple_.ndr_blob)]
msg = ldb.Message(ldb.Dn(samdb, nc))
msg[attribute] = ldb.MessageElement(kept, ldb.FLAG_MOD_REPLACE, attribute)
samdb.modify(msg)
if action == "add":
    irpc.irpc("irpc:dreplsrv", lp_ctx=lp).dreplsrv_refresh()
"""


def _status(result: CommandResult) -> int:
    """The Win32 status a failed samba-tool run reports, as repadmin would print it."""
    match = _WERR.search(result.output)
    if match is not None:
        return int(match["code"])
    if any(marker in result.output for marker in _UNREACHABLE):
        return ERROR_RPC_UNAVAILABLE
    return ERROR_DS_DRA_INTERNAL_ERROR


def _error(result: CommandResult, *, api: str, target: str) -> RepadminError:
    code = _status(result)
    return RepadminError(code, win32_message(code), api=api, target=target)


@contextlib.contextmanager
def _reported_as(api: str, target: str) -> Iterator[None]:
    """Lab trouble (timeouts, odd JSON) as a repadmin failure: the simulator must always answer."""
    try:
        yield
    except RepadminError:
        raise
    except (SambaLabError, KeyError, ValueError, TypeError) as exc:
        raise RepadminError(
            ERROR_DS_DRA_INTERNAL_ERROR, f"Samba lab: {exc}"[:500], api=api, target=target
        ) from exc


def parse_nttime(text: str) -> datetime.datetime | None:
    """samba's nttime2string ("Wed Nov 25 10:47:38 2026 UTC") as lab-local time; None for 0."""
    match = _NTTIME.match(text.strip())
    if match is None:
        return None
    stamp = datetime.datetime.strptime(
        f"{match['year']} {match['mon']} {match['day']} {match['hms']}", "%Y %b %d %H:%M:%S"
    )
    if match["tz"] in ("UTC", "GMT"):
        # The simulator prints the DC's local time (lab.dcsim.state.now()).
        return stamp.replace(tzinfo=datetime.UTC).astimezone().replace(tzinfo=None)
    return stamp


def dsa_option_names(options: int) -> frozenset[str]:
    """repadmin's names for the set bits of an nTDSDSA `options` value."""
    # bits repadmin has no name for are not printed
    return frozenset(name for name, bit in DSA_OPTION_BITS.items() if options & bit)


def _option_list(text: str) -> frozenset[str]:
    names = {n.strip().upper() for n in text.replace(",", " ").split()}
    return frozenset(names - {"", "(NONE)", "0"})


class SambaRepadmin:
    """repadmin's operations as real samba-tool commands against the Samba lab forest."""

    def __init__(self, forest: SambaForest, *, local_dc: str) -> None:
        self.forest = forest
        local = self._find(local_dc)
        if local is None:
            raise SambaLabError(
                f"simulated DC {local_dc!r} is not a DC of the Samba forest "
                f"({', '.join(d.fqdn for d in forest.dcs)}); add simulated DCs with the same "
                "FQDNs as the Samba DCs"
            )
        self.local_dc = local

    # --- names ---------------------------------------------------------------------------

    def _find(self, name: str) -> DcInfo | None:
        """A forest DC by FQDN or computer name, as repadmin resolves (no other text)."""
        key = name.lower().rstrip(".")
        for info in self.forest.dcs:
            if key in (info.fqdn.lower(), info.name.lower()):
                return info
        return None

    def _bind(self, name: str, api: str = "DsBindWithCred") -> DcInfo:
        info = self._find(name)
        if info is None:
            raise RepadminError(
                ERROR_RPC_UNAVAILABLE, win32_message(ERROR_RPC_UNAVAILABLE), api=api, target=name
            )
        return info

    def _naming_context(self, text: str, dest: str) -> str:
        wanted = text.replace(" ", "").lower()
        for nc in self.forest.naming_contexts:
            if nc.replace(" ", "").lower() == wanted:
                return nc
        raise RepadminError(
            ERROR_BAD_NAMING_CONTEXT,
            win32_message(ERROR_BAD_NAMING_CONTEXT),
            api="DsReplicaAdd",
            target=dest,
        )

    def _drs(self, *args: str) -> CommandResult:
        return self.forest.samba_tool(None, "drs", *args, check=False)

    # --- operations ----------------------------------------------------------------------

    def kcc(self, dc: str) -> str:
        """`samba-tool drs kcc DC` (DsExecuteKCC on the DC itself); the DC's site."""
        info = self._bind(dc)
        with _reported_as("DsReplicaConsistencyCheck", dc):
            result = self._drs("kcc", info.fqdn)
        if result.returncode != 0:
            raise _error(result, api="DsReplicaConsistencyCheck", target=dc)
        return info.site

    def options(self, dc: str, change: str | None) -> OptionsChange:
        """`samba-tool drs options DC [--dsa-option=+|-NAME]`, read back from its output."""
        info = self._bind(dc)
        args = ["options", info.fqdn]
        if change is not None:
            name = change[1:].upper()
            if change[:1] not in ("+", "-") or name not in SAMBA_SETTABLE_OPTIONS:
                raise RepadminError(
                    ERROR_INVALID_PARAMETER,
                    f"Samba cannot set DSA option {change!r}",
                    api="DsReplicaModify",
                    target=dc,
                )
            args.append(f"--dsa-option={change[0]}{name}")
        with _reported_as("DsBindWithCred", dc):
            result = self._drs(*args)
        if result.returncode != 0:
            raise _error(result, api="DsBindWithCred", target=dc)
        found: dict[str, frozenset[str]] = {}
        for line in result.stdout.splitlines():
            match = _OPTIONS_LINE.match(line.strip())
            if match is not None:
                found[match["which"]] = _option_list(match["names"])
        if "Current" not in found:
            raise RepadminError(
                ERROR_DS_DRA_INTERNAL_ERROR,
                f"samba-tool drs options printed no current options: {result.output[-300:]}",
                api="DsBindWithCred",
                target=dc,
            )
        if change is None:
            return OptionsChange(found["Current"], None)
        # samba prints no "New" line when the option already had the asked value
        return OptionsChange(found["Current"], found.get("New", found["Current"]))

    def add(self, naming_context: str, dest: str, source: str) -> None:
        """Write DEST's repsFrom tuple for SOURCE on the NC, then sync it once (repadmin /add)."""
        dest_info = self._bind(dest, "DsReplicaAdd")
        nc = self._naming_context(naming_context, dest)
        source_info = self._find(source)
        if source_info is None:
            raise RepadminError(
                ERROR_DNS_LOOKUP_FAILURE,
                win32_message(ERROR_DNS_LOOKUP_FAILURE),
                api="DsReplicaAdd",
                target=dest,
            )
        source_dsa = self._showrepl_json(source_info, dest)["dsa"]
        with _reported_as("DsReplicaAdd", dest):
            source_invocation_id = source_dsa["invocationId"]
            written = write_inbound_link(
                self.forest, nc, dest_info, source_info, invocation_id=str(source_invocation_id)
            )
            result = (
                self._drs("replicate", dest_info.fqdn, source_info.fqdn, nc) if written else None
            )
        if result is None:
            raise RepadminError(
                ERROR_DS_DRA_DN_EXISTS,
                win32_message(ERROR_DS_DRA_DN_EXISTS),
                api="DsReplicaAdd",
                target=dest,
            )
        if result.returncode != 0:
            raise _error(result, api="DsReplicaAdd", target=dest)

    def _showrepl_json(self, info: DcInfo, target: str) -> dict[str, Any]:
        with _reported_as("DsReplicaGetInfo", target):
            result = self._drs("showrepl", "--json", info.fqdn)
            if result.returncode != 0:
                raise _error(result, api="DsBindWithCred", target=target)
            data = json.loads(result.stdout)
            if not isinstance(data, dict) or "dsa" not in data:
                raise ValueError(f"samba-tool drs showrepl --json printed {result.stdout[:200]!r}")
            return data

    def showrepl(self, dc: str) -> ShowRepl:
        """`samba-tool drs showrepl --json DC`, in repadmin's shape (NCs in repadmin order)."""
        info = self._bind(dc)
        data = self._showrepl_json(info, dc)
        with _reported_as("DsReplicaGetInfo", dc):
            return self._report(info, data)

    def _report(self, info: DcInfo, data: dict[str, Any]) -> ShowRepl:
        order = [nc.lower() for nc in self.forest.naming_contexts]
        links = [r for r in data.get("repsFrom", []) if not r.get("is deleted")]
        links.sort(
            key=lambda r: order.index(r["NC dn"].lower()) if r["NC dn"].lower() in order else 99
        )
        dsa = data["dsa"]
        return ShowRepl(
            site=info.site,
            dc=info.name.upper(),
            dsa_options=dsa_option_names(int(dsa.get("options", 0))),
            site_options=frozenset(),
            dsa_guid=uuid.UUID(dsa["objectGUID"]),
            invocation_id=uuid.UUID(dsa["invocationId"]),
            inbound=tuple(self._neighbor(r) for r in links),
        )

    def _neighbor(self, link: dict[str, Any]) -> InboundNeighbor:
        site, _, name = str(link.get("DSA", "")).rpartition("\\")
        match = _FAILED_RESULT.match(str(link.get("last attempt message", "")))
        result = as_signed(int(match["code"])) if match else 0
        return InboundNeighbor(
            naming_context=link["NC dn"],
            source_site=site or self.local_dc.site,
            source_dc=name.upper() or str(link["DSA objectGUID"]),
            transport="RPC",
            source_dsa_guid=uuid.UUID(link["DSA objectGUID"]),
            last_attempt=parse_nttime(str(link.get("last attempt time", ""))),
            result=result,
            result_message=win32_message(result) if result else "",
            consecutive_failures=int(link.get("consecutive failures", 0)),
            last_success=parse_nttime(str(link.get("last success", ""))),
        )

    def replsummary(self) -> ReplSummary:
        """Largest delta and failures per source and destination DC, from every DC's showrepl."""
        stamp = now()
        links: list[tuple[str, InboundNeighbor]] = []
        errors: list[tuple[int, str]] = []
        names = sorted(info.name.upper() for info in self.forest.dcs)
        for info in self.forest.dcs:
            try:
                report = self.showrepl(info.fqdn)
            except RepadminError as exc:
                errors.append((exc.code, info.fqdn))
                continue
            links += [(report.dc, n) for n in report.inbound]

        def row(name: str, chosen: list[InboundNeighbor]) -> SummaryRow:
            fails = [n for n in chosen if n.result]
            successes = [n.last_success for n in chosen if n.last_success]
            total = len(chosen)
            return SummaryRow(
                dsa=name,
                largest_delta=max(stamp - min(successes), datetime.timedelta(0))
                if successes
                else None,
                fails=len(fails),
                total=total,
                percent=(len(fails) * 100 // total) if total else 0,
                error=as_signed(fails[-1].result) if fails else None,
                error_message=win32_message(fails[-1].result) if fails else "",
            )

        return ReplSummary(
            start_time=stamp,
            sources=tuple(row(n, [lk for _, lk in links if lk.source_dc == n]) for n in names),
            destinations=tuple(row(n, [lk for d, lk in links if d == n]) for n in names),
            operational_errors=tuple(errors),
        )


def _reps_from_argv(
    forest: SambaForest,
    action: str,
    nc: str,
    dest: DcInfo,
    source: DcInfo,
    *,
    invocation_id: str,
    attribute: str = "repsFrom",
) -> list[str]:
    smb_conf = _smb_conf(forest, dest)
    return [
        SYSTEM_PYTHON,
        "-I",
        "-c",
        _REPS_FROM_SCRIPT,
        action,
        str(smb_conf),
        nc,
        source.dsa_guid,
        str(uuid.UUID(invocation_id)),
        f"{source.dsa_guid}._msdcs.{forest.forest}",
        attribute,
    ]


def _smb_conf(forest: SambaForest, dc: DcInfo) -> Path:
    conf = forest.smb_conf(dc)
    if not conf.is_file():
        raise SambaLabError(f"no smb.conf for {dc.fqdn} at {conf}: is the lab provisioned?")
    return conf


def _checked(result: CommandResult, what: str) -> bool:
    if result.returncode == 3:
        return False
    if result.returncode != 0:
        raise SambaLabError(f"{what} failed (exit {result.returncode}): {result.output[-2000:]}")
    return True


def write_inbound_link(
    forest: SambaForest, nc: str, dest: DcInfo, source: DcInfo, *, invocation_id: str
) -> bool:
    """Add DEST's repsFrom tuple for SOURCE on NC (as Samba's KCC does); False if present."""
    argv = _reps_from_argv(forest, "add", nc, dest, source, invocation_id=invocation_id)
    result = forest.run_in_lab(argv, check=False)
    return _checked(result, f"adding the repsFrom of {nc} from {source.fqdn} on {dest.fqdn}")


def drop_inbound_link(forest: SambaForest, nc: str, dest: DcInfo, source: DcInfo) -> bool:
    """Test set-up: remove DEST's repsFrom tuple for SOURCE on NC, and SOURCE's repsTo tuple
    for DEST (a DC that does not replicate from SOURCE is not notified by it); False if the
    repsFrom tuple was absent.

    Samba's replication service never forgets a source it has loaded (a refresh only adds),
    and SOURCE's change notification makes DEST pull and write the tuple back, so the forest
    is stopped for the edit and started again (a few seconds). forest.reset() cannot see
    repsFrom: heal with repadmin /add or /kcc, or mark_dirty().
    """
    no_id = str(uuid.UUID(int=0))
    edits = [
        _reps_from_argv(forest, "drop", nc, dest, source, invocation_id=no_id),
        _reps_from_argv(forest, "drop", nc, source, dest, invocation_id=no_id, attribute="repsTo"),
    ]
    forest.stop()
    try:
        # the DCs are stopped: plain local ldb edits, outside the lab's namespace
        procs = [
            subprocess.run(
                argv,
                capture_output=True,
                text=True,
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
                timeout=120,
                check=False,
            )
            for argv in edits
        ]
    finally:
        forest.start()
    results = [
        CommandResult(tuple(argv[:2]), p.returncode, p.stdout, p.stderr)
        for argv, p in zip(edits, procs, strict=True)
    ]
    _checked(results[1], f"removing the repsTo of {nc} for {dest.fqdn} on {source.fqdn}")
    return _checked(results[0], f"removing the repsFrom of {nc} from {source.fqdn} on {dest.fqdn}")


def samba_repadmin(forest: SambaForest) -> Callable[[Forest, str], RepadminBackend]:
    """A `DcLab(..., repadmin=...)` factory: each simulated DC talks to the Samba DC of its name."""
    return lambda _sim_forest, fqdn: SambaRepadmin(forest, local_dc=fqdn)
