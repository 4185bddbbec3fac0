"""Realistic 1411 alerts in several monitoring formats, for the demo, tests and benchmarks."""

from __future__ import annotations

import json
import uuid

KB_TEXT = """Event Type: Error
Event Source: NTDS Replication
Event Category: DS RPC Client
Event ID: 1411
Date: 11/24/2026
Time: 11:52:07 PM
User: NT AUTHORITY\\ANONYMOUS LOGON
Computer: {computer}
Description:
Active Directory failed to construct a mutual authentication service principal name (SPN) \
for the following domain controller.

Domain controller:
{guid}._msdcs.{forest}

The call was denied. Communication with this domain controller might be affected.

Additional Data

Error value:
8589 The DS cannot derive a service principal name (SPN) with which to mutually \
authenticate the target server because the corresponding server object in the local DS \
database has no serverReference attribute.
"""

FORMATS = ("generic_json", "event_text", "alertmanager")


def dsa_guid(n: int, namespace: str = "ad1411-lab") -> str:
    """A stable DSA GUID for the n-th simulated target."""
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{namespace}-{n}"))


def event_text(computer: str, guid: str, forest: str) -> str:
    """The Event Viewer text of Event 1411, as the KB shows it."""
    return KB_TEXT.format(computer=computer, guid=guid, forest=forest)


def alert_body(fmt: str, computer: str, guid: str, forest: str) -> tuple[bytes, str]:
    """(body, content type) of one alert in the given format."""
    if fmt == "generic_json":
        doc = {
            "event_id": 1411,
            "computer": computer,
            "message": event_text(computer, guid, forest),
        }
        return json.dumps(doc).encode(), "application/json"
    if fmt == "event_text":
        return event_text(computer, guid, forest).encode(), "text/plain"
    if fmt == "alertmanager":
        doc = {
            "version": "4",
            "status": "firing",
            "receiver": "ad1411",
            "groupKey": '{}:{alertname="ADReplicationSPNFailure"}',
            "alerts": [
                {
                    "status": "firing",
                    "labels": {
                        "alertname": "ADReplicationSPNFailure",
                        "event_id": "1411",
                        "instance": f"{computer}:9182",
                    },
                    "annotations": {
                        "description": f"Directory service: {guid}._msdcs.{forest} "
                        "Error value: 8589"
                    },
                    "startsAt": "2026-11-25T03:12:44Z",
                }
            ],
        }
        return json.dumps(doc).encode(), "application/json"
    raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")
