"""REPS_FROM_TO: the binary repsFrom/repsTo values on an NC head (MS-DRSR 5.167, Samba drsblobs).

Layout (little-endian, offsets from the start of the value):

    0   dwVersion (1 or 2)             4   dwReserved
    8   cb (size of the whole value)   12  cConsecutiveFailures
    16  timeLastSuccess (DSTIME)       24  timeLastAttempt (DSTIME)
    32  ulResultLastAttempt (Win32)    36  cbOtherDraOffset (from offset 0)
    40  cbOtherDra                     44  ulReplicaFlags
    48  rtSchedule (84 bytes)          132 reserved
    136 usnvec (usnHighObjUpdate, usnReserved, usnHighPropUpdate: 3 x int64)
    160 uuidDsaObj                     176 uuidInvocId
    192 uuidTransportObj               208 V2 only: a 64-bit field Samba calls unknown1

V1's other DRA is an MTX_ADDR (uint32 length incl. NUL, then ASCII); V2's is Samba's
repsFromTo2OtherInfo (size, two UTF-16 names by offset from the start of the block).
DSTIME is whole seconds since 1601-01-01 UTC; 0 means never.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pydantic import ConfigDict

from bot.errors import DirectoryError

_EPOCH_1601 = datetime(1601, 1, 1, tzinfo=UTC)
_HEADER = struct.Struct("<II")
_FIXED_V1 = struct.Struct("<IIqqIIII84sIqqq16s16s16s")
_V1_SIZE = _HEADER.size + _FIXED_V1.size  # 208
_V2_SIZE = _V1_SIZE + 8
_V2_OTHER = struct.Struct("<IIIIq")
_Bad = Callable[[str], "RepsBlobMalformed"]
_NULL_GUID = "00000000-0000-0000-0000-000000000000"
# Largest DSTIME a datetime can hold (year 9999); anything beyond is corrupt data.
_MAX_DSTIME = int((datetime(9999, 12, 31, tzinfo=UTC) - _EPOCH_1601).total_seconds())

# ulReplicaFlags bits worth showing to a person (MS-DRSR 5.41 DRS_OPTIONS).
REPLICA_FLAG_NAMES: dict[int, str] = {
    0x00000010: "WRIT_REP",
    0x00000020: "INIT_SYNC",
    0x00000040: "PER_SYNC",
    0x00000080: "MAIL_REP",
    0x00000100: "ASYNC_REP",
    0x00000800: "TWOWAY_SYNC",
    0x00001000: "NONGC_RO_REP",
    0x00200000: "NEVER_SYNCED",
    0x00400000: "SPECIAL_SECRET_PROCESSING",
    0x04000000: "DISABLE_AUTO_SYNC",
    0x08000000: "DISABLE_PERIODIC_SYNC",
    0x10000000: "USE_COMPRESSION",
    0x20000000: "NEVER_NOTIFY",
    0x40000000: "SYNC_PAS",
}


class RepsBlobMalformed(DirectoryError):
    """A repsFrom/repsTo value could not be decoded."""

    def __init__(self, reason: str, *, length: int) -> None:
        self.reason = reason
        super().__init__(
            f"a repsFrom/repsTo value ({length} bytes) is not a valid REPS_FROM_TO: {reason}; "
            "the diagnosis skips it. Compare with `repadmin /showrepl` on the reporting DC."
        )


@dataclass(frozen=True)
class RepsFromTo:
    """One decoded replication partner entry (repsFrom: inbound source, repsTo: notify target)."""

    # The schedule is binary: keep it lossless when a diagnosis is stored as JSON.
    __pydantic_config__ = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    version: int
    consecutive_failures: int
    last_success: datetime | None
    last_attempt: datetime | None
    result_last_attempt: int
    network_address: str
    replica_flags: int
    schedule: bytes = field(repr=False)
    usn_high_obj_update: int
    usn_high_prop_update: int
    dsa_guid: str
    invocation_id: str
    transport_guid: str | None
    other_address: str | None = None

    @property
    def flag_names(self) -> list[str]:
        """Names of the set ulReplicaFlags bits, unknown bits as hex."""
        names = [n for bit, n in REPLICA_FLAG_NAMES.items() if self.replica_flags & bit]
        rest = self.replica_flags & ~sum(REPLICA_FLAG_NAMES)
        if rest:
            names.append(f"0x{rest:x}")
        return names

    @property
    def address_dsa_guid(self) -> str | None:
        """The DSA GUID in a `<guid>._msdcs.<forest>` address, lower case, else None."""
        head, sep, _ = self.network_address.partition("._msdcs.")
        if not sep:
            return None
        try:
            return str(uuid.UUID(head))
        except ValueError:
            return None

    def names_dsa(self, dsa_guid: str) -> bool:
        """True when this entry is about the DSA with this GUID (by uuidDsaObj or by address)."""
        wanted = dsa_guid.lower()
        return wanted in (self.dsa_guid, self.address_dsa_guid)


def dstime(seconds: int) -> datetime | None:
    """A DSTIME (seconds since 1601 UTC) as an aware datetime; 0 is None (never)."""
    if seconds == 0:
        return None
    return _EPOCH_1601 + timedelta(seconds=seconds)


def decode_reps(value: bytes) -> RepsFromTo:
    """Decode one repsFrom/repsTo value; RepsBlobMalformed on anything inconsistent."""
    length = len(value)

    def bad(reason: str) -> RepsBlobMalformed:
        return RepsBlobMalformed(reason, length=length)

    if length < _HEADER.size:
        raise bad("shorter than the 8-byte version header")
    version, _reserved = _HEADER.unpack_from(value, 0)
    if version not in (1, 2):
        raise bad(f"version {version}, expected 1 or 2")
    fixed = _V1_SIZE if version == 1 else _V2_SIZE
    if length < fixed:
        raise bad(f"version {version} needs at least {fixed} bytes")
    (
        _cb,
        failures,
        last_success,
        last_attempt,
        result,
        other_offset,
        other_length,
        flags,
        schedule,
        _reserved2,
        usn_obj,
        _usn_reserved,
        usn_prop,
        dsa_guid,
        invocation_id,
        transport,
    ) = _FIXED_V1.unpack_from(value, _HEADER.size)
    for name, seconds in (("timeLastSuccess", last_success), ("timeLastAttempt", last_attempt)):
        if not 0 <= seconds <= _MAX_DSTIME:
            raise bad(f"{name} {seconds} is not a time")
    if other_offset < fixed or other_offset + other_length > length:
        raise bad(
            f"network address at offset {other_offset} length {other_length} "
            f"lies outside the value (fixed part {fixed} bytes)"
        )
    other = value[other_offset : other_offset + other_length]
    if version == 1:
        address, second = _mtx_addr(other, bad), None
    else:
        address, second = _v2_other(other, bad)
    transport_guid = str(uuid.UUID(bytes_le=transport))
    return RepsFromTo(
        version=version,
        consecutive_failures=failures,
        last_success=dstime(last_success),
        last_attempt=dstime(last_attempt),
        result_last_attempt=result,
        network_address=address,
        replica_flags=flags,
        schedule=schedule,
        usn_high_obj_update=usn_obj,
        usn_high_prop_update=usn_prop,
        dsa_guid=str(uuid.UUID(bytes_le=dsa_guid)),
        invocation_id=str(uuid.UUID(bytes_le=invocation_id)),
        transport_guid=None if transport_guid == _NULL_GUID else transport_guid,
        other_address=second,
    )


def _mtx_addr(block: bytes, bad: _Bad) -> str:
    if len(block) < 4:
        raise bad("MTX_ADDR shorter than its length field")
    (name_len,) = struct.unpack_from("<I", block, 0)
    if name_len == 0 or 4 + name_len > len(block):
        raise bad(f"MTX_ADDR length {name_len} does not fit in {len(block) - 4} bytes")
    raw = block[4 : 4 + name_len].rstrip(b"\x00")
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        raise bad("MTX_ADDR name is not ASCII") from None


def _v2_other(block: bytes, bad: _Bad) -> tuple[str, str | None]:
    if len(block) < _V2_OTHER.size:
        raise bad("version 2 address block shorter than its header")
    _size, off1, _unknown1, off2, _unknown2 = _V2_OTHER.unpack_from(block, 0)
    return _utf16z(block, off1, bad), (_utf16z(block, off2, bad) if off2 else None)


def _utf16z(block: bytes, offset: int, bad: _Bad) -> str:
    if not _V2_OTHER.size <= offset < len(block):
        raise bad(f"version 2 name offset {offset} outside its {len(block)}-byte block")
    end = offset
    while end + 1 < len(block) and block[end : end + 2] != b"\x00\x00":
        end += 2
    try:
        return block[offset:end].decode("utf-16-le")
    except UnicodeDecodeError:
        raise bad("version 2 name is not UTF-16") from None


def decode_all(values: list[bytes]) -> tuple[list[RepsFromTo], list[RepsBlobMalformed]]:
    """Decode every value, collecting the malformed ones instead of failing."""
    good: list[RepsFromTo] = []
    errors: list[RepsBlobMalformed] = []
    for value in values:
        try:
            good.append(decode_reps(value))
        except RepsBlobMalformed as exc:
            errors.append(exc)
    return good, errors
