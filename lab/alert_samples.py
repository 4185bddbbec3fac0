"""Realistic 1411 alerts in several monitoring formats, for the demo, tests and benchmarks."""

from __future__ import annotations

import datetime
import json
import uuid
from xml.sax.saxutils import escape, quoteattr

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
# What a Windows event forwarder sends: not in FORMATS, so the storm's mix stays as it was.
EVENT_XML = "event_xml"
_EVENT_NS = "http://schemas.microsoft.com/win/2004/08/events/event"
_ERROR_8589 = (
    "The DS cannot derive a service principal name (SPN) with which to mutually authenticate "
    "the target server because the corresponding server object in the local DS database has "
    "no serverReference attribute."
)


def dsa_guid(n: int, namespace: str = "ad1411-lab") -> str:
    """A stable DSA GUID for the n-th simulated target."""
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{namespace}-{n}"))


def event_text(computer: str, guid: str, forest: str) -> str:
    """The Event Viewer text of Event 1411, as the KB shows it."""
    return KB_TEXT.format(computer=computer, guid=guid, forest=forest)


def event_xml(
    computer: str,
    guid: str,
    forest: str,
    *,
    when: datetime.datetime | None = None,
    record_id: int = 1,
) -> str:
    """Event 1411 as `wevtutil qe /f:RenderedXml` prints it and a forwarder sends it."""
    stamp = (when or datetime.datetime.now(datetime.UTC)).astimezone(datetime.UTC)
    system_time = stamp.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"
    target = f"{guid}._msdcs.{forest}"
    message = (
        "Active Directory Domain Services failed to construct a mutual authentication service "
        "principal name (SPN) for the following directory service. \r\n\r\n"
        f"Directory service: \r\n{target} \r\n\r\n"
        "The call was denied. Communication with this directory service might be affected. "
        f"\r\n\r\nAdditional Data \r\nError value: \r\n8589 {_ERROR_8589}"
    )
    # wevtutil writes the message's line breaks as character references
    rendered = escape(message).replace("\r\n", "&#xD;&#xA;")
    return (
        f"<Event xmlns='{_EVENT_NS}'><System>"
        "<Provider Name='Microsoft-Windows-ActiveDirectory_DomainService' "
        "Guid='{0e8478c5-3605-4e8c-8497-1e730c959516}' EventSourceName='NTDS Replication'/>"
        "<EventID Qualifiers='49152'>1411</EventID><Version>0</Version><Level>2</Level>"
        "<Task>5</Task><Opcode>0</Opcode><Keywords>0x80000000000000</Keywords>"
        f"<TimeCreated SystemTime={quoteattr(system_time)}/>"
        f"<EventRecordID>{int(record_id)}</EventRecordID><Correlation/>"
        "<Execution ProcessID='672' ThreadID='2144'/><Channel>Directory Service</Channel>"
        f"<Computer>{escape(computer)}</Computer><Security UserID='S-1-5-7'/></System>"
        f"<EventData><Data>{escape(target)}</Data><Data>{escape(_ERROR_8589)}</Data>"
        "<Data>8589</Data></EventData>"
        f"<RenderingInfo Culture='en-US'><Message>{rendered}</Message>"
        "<Level>Error</Level><Task>DS RPC Client</Task><Opcode>Info</Opcode>"
        "<Channel>Directory Service</Channel>"
        "<Provider>Microsoft-Windows-ActiveDirectory_DomainService</Provider>"
        "<Keywords><Keyword>Classic</Keyword></Keywords></RenderingInfo></Event>"
    )


def alert_body(fmt: str, computer: str, guid: str, forest: str) -> tuple[bytes, str]:
    """(body, content type) of one alert in the given format (FORMATS or EVENT_XML)."""
    if fmt == EVENT_XML:
        return event_xml(computer, guid, forest).encode(), "application/xml"
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
    raise ValueError(f"unknown format {fmt!r}; expected one of {(*FORMATS, EVENT_XML)}")
