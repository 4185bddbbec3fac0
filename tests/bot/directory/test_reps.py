"""REPS_FROM_TO decoding: hand-built values, Samba's own NDR encoder, and real lab blobs."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.directory.reps import RepsBlobMalformed, decode_all, decode_reps, dstime

DSA = "5f0a2b33-9c1d-4e6f-8a7b-0c1d2e3f4a5b"
INVOCATION = "0a1b2c3d-4e5f-4061-8273-8495a6b7c8d9"
ADDRESS = f"{DSA}._msdcs.corp.example.com"


def v1_blob(
    *,
    failures: int = 0,
    last_success: int = 0,
    last_attempt: int = 0,
    result: int = 0,
    flags: int = 0x70,
    address: str = ADDRESS,
    dsa: str = DSA,
) -> bytes:
    """A REPS_FROM_TO V1 laid out as MS-DRSR 5.167 says (independent of bot.directory.reps)."""
    name = address.encode("ascii") + b"\x00"
    other = struct.pack("<I", len(name)) + name
    fixed = struct.pack(
        "<IIIIqqIIII84sIqqq16s16s16s",
        1,
        0,
        208 + len(other),
        failures,
        last_success,
        last_attempt,
        result,
        208,
        len(other),
        flags,
        b"\x11" * 84,
        0,
        10,
        0,
        12,
        uuid.UUID(dsa).bytes_le,
        uuid.UUID(INVOCATION).bytes_le,
        b"\x00" * 16,
    )
    return fixed + other


def test_v1_fields_decode() -> None:
    # 13_300_000_000 s after 1601 is 2022-06-18T04:26:40Z.
    link = decode_reps(
        v1_blob(failures=4, last_success=13_300_000_000, last_attempt=13_300_000_060, result=8589)
    )
    assert link.version == 1
    assert link.consecutive_failures == 4
    assert link.last_success == datetime(2022, 6, 18, 4, 26, 40, tzinfo=UTC)
    assert (link.last_attempt - link.last_success).total_seconds() == 60  # type: ignore[operator]
    assert link.result_last_attempt == 8589
    assert link.network_address == ADDRESS
    assert link.dsa_guid == DSA
    assert link.address_dsa_guid == DSA
    assert link.invocation_id == INVOCATION
    assert link.transport_guid is None
    assert link.usn_high_obj_update == 10
    assert link.usn_high_prop_update == 12
    assert link.flag_names == ["WRIT_REP", "INIT_SYNC", "PER_SYNC"]
    assert link.names_dsa(DSA.upper())


def test_never_is_none_and_unknown_flags_shown() -> None:
    link = decode_reps(v1_blob(flags=0x10 | 0x1))
    assert link.last_success is None and link.last_attempt is None
    assert link.flag_names == ["WRIT_REP", "0x1"]
    assert dstime(0) is None


def test_entry_found_by_address_when_dsa_guid_differs() -> None:
    link = decode_reps(v1_blob(dsa="00000000-0000-0000-0000-000000000001"))
    assert link.names_dsa(DSA)
    assert not link.names_dsa("00000000-0000-0000-0000-000000000002")


@pytest.mark.parametrize(
    ("blob", "reason"),
    [
        (b"", "shorter than the 8-byte version header"),
        (struct.pack("<II", 3, 0) + b"\x00" * 300, "version 3"),
        (v1_blob()[:150], "needs at least 208 bytes"),
        (v1_blob()[:-5], "lies outside the value"),
        (v1_blob(address=""), "MTX_ADDR"),
    ],
)
def test_malformed_values_raise_clear_error(blob: bytes, reason: str) -> None:
    if reason == "MTX_ADDR":
        # An MTX_ADDR whose length field claims more than the block holds.
        blob = blob[:208] + struct.pack("<I", 99) + blob[212:]
    with pytest.raises(RepsBlobMalformed) as caught:
        decode_reps(blob)
    assert reason in str(caught.value)
    assert "repadmin /showrepl" in str(caught.value)


def test_absurd_time_is_malformed() -> None:
    with pytest.raises(RepsBlobMalformed, match="timeLastSuccess"):
        decode_reps(v1_blob(last_success=2**62))


def test_decode_all_keeps_good_values_and_reports_bad_ones() -> None:
    good, bad = decode_all([v1_blob(failures=1), b"\x01\x00", v1_blob(failures=2)])
    assert [g.consecutive_failures for g in good] == [1, 2]
    assert len(bad) == 1 and "8-byte" in str(bad[0])


@given(st.binary(max_size=400))
def test_random_bytes_never_crash(data: bytes) -> None:
    try:
        link = decode_reps(data)
    except RepsBlobMalformed as exc:
        assert "not a valid REPS_FROM_TO" in str(exc)
    else:
        assert len(link.network_address) < len(data)


@given(st.binary(min_size=208, max_size=300))
def test_random_v1_bodies_never_crash(body: bytes) -> None:
    try:
        link = decode_reps(struct.pack("<II", 1, 0) + body)
    except RepsBlobMalformed as exc:
        assert exc.reason
    else:
        # Whatever was accepted came from inside the value.
        assert len(link.network_address) < len(body)


SAMBA_ENCODER = r"""
import json, sys
from samba.dcerpc import drsblobs, misc
from samba.ndr import ndr_pack
spec = json.loads(sys.argv[1])
blob = drsblobs.repsFromToBlob()
blob.version = spec["version"]
ctr = drsblobs.repsFromTo1() if spec["version"] == 1 else drsblobs.repsFromTo2()
ctr.consecutive_sync_failures = spec["failures"]
ctr.last_success = spec["last_success"] * 10**7
ctr.last_attempt = spec["last_attempt"] * 10**7
ctr.result_last_attempt = spec["result"]
ctr.replica_flags = spec["flags"]
ctr.source_dsa_obj_guid = misc.GUID(spec["dsa"])
ctr.source_dsa_invocation_id = misc.GUID(spec["invocation"])
ctr.highwatermark.highest_usn = 77
if spec["version"] == 1:
    other = drsblobs.repsFromTo1OtherInfo()
    other.dns_name = spec["address"]
else:
    other = drsblobs.repsFromTo2OtherInfo()
    other.dns_name1 = spec["address"]
    other.dns_name2 = spec["second"]
ctr.other_info = other
blob.ctr = ctr
sys.stdout.write(ndr_pack(blob).hex())
"""


def samba_encode(spec: dict[str, object]) -> bytes:
    """Encode with Samba's generated NDR code (the system python3 has samba bindings)."""
    python = shutil.which("python3", path="/usr/bin")
    probe = subprocess.run(
        [python or "/usr/bin/python3", "-c", "import samba.dcerpc.drsblobs"],
        capture_output=True,
        check=False,
    )
    if python is None or probe.returncode != 0:
        pytest.fail("system python3 with samba bindings (python3-samba) is required")
    out = subprocess.run(
        [python, "-c", SAMBA_ENCODER, json.dumps(spec)], capture_output=True, check=True, text=True
    )
    return bytes.fromhex(out.stdout)


@pytest.mark.samba
@pytest.mark.parametrize("version", [1, 2])
def test_values_encoded_by_samba_decode(version: int) -> None:
    spec: dict[str, object] = {
        "version": version,
        "failures": 6,
        "last_success": 13_300_000_000,
        "last_attempt": 13_300_000_900,
        "result": 8453,
        "flags": 0x20000070,
        "dsa": DSA,
        "invocation": INVOCATION,
        "address": ADDRESS,
        "second": "dc2.corp.example.com",
    }
    link = decode_reps(samba_encode(spec))
    assert link.version == version
    assert link.consecutive_failures == 6
    assert link.last_success == datetime(2022, 6, 18, 4, 26, 40, tzinfo=UTC)
    assert link.last_attempt == datetime(2022, 6, 18, 4, 41, 40, tzinfo=UTC)
    assert link.result_last_attempt == 8453
    assert link.dsa_guid == DSA
    assert link.invocation_id == INVOCATION
    assert link.network_address == ADDRESS
    assert link.usn_high_prop_update == 77
    assert "NEVER_NOTIFY" in link.flag_names
    assert link.other_address == (None if version == 1 else "dc2.corp.example.com")
