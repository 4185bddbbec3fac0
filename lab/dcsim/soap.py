"""WS-Management SOAP envelopes as [MS-WSMV] shapes them: parse requests, build replies."""

from __future__ import annotations

import base64
import re
import uuid
import xml.etree.ElementTree as ET  # building only; parsing goes through defusedxml
from dataclasses import dataclass, field

import defusedxml.ElementTree as SafeET

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "wsa": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "wsman": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "wsmv": "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd",
    "wst": "http://schemas.xmlsoap.org/ws/2004/09/transfer",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
    "wsmanfault": "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault",
    "pwsh": "http://schemas.microsoft.com/powershell",
    "xml": "http://www.w3.org/XML/1998/namespace",
}
for _prefix, _uri in NS.items():
    if _prefix != "xml":
        ET.register_namespace(_prefix, _uri)

ACTION_BASE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/"
SHELL_BASE = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/"
CREATE = ACTION_BASE + "Create"
DELETE = ACTION_BASE + "Delete"
COMMAND = SHELL_BASE + "Command"
RECEIVE = SHELL_BASE + "Receive"
SEND = SHELL_BASE + "Send"
SIGNAL = SHELL_BASE + "Signal"
CMD_RESOURCE = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd"
PWSH_RESOURCE_PREFIX = "http://schemas.microsoft.com/powershell/"
COMMAND_STATE_DONE = SHELL_BASE + "CommandState/Done"
COMMAND_STATE_RUNNING = SHELL_BASE + "CommandState/Running"
SIGNAL_TERMINATE = SHELL_BASE + "signal/Terminate"
FAULT_ACTION = "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault"
ANONYMOUS = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"

# [MS-WSMV] fault codes clients react to.
OPERATION_TIMEOUT_CODE = 2150858793
INVALID_SELECTORS_CODE = 2150858843
ACTION_NOT_SUPPORTED_CODE = 2150858866

_DURATION = re.compile(r"^PT(?:(\d+)M)?(\d+(?:\.\d+)?)S$")


def _q(prefix: str, name: str) -> str:
    return f"{{{NS[prefix]}}}{name}"


class BadRequest(Exception):
    """The request is not a WS-Management envelope the simulator understands."""


@dataclass
class Request:
    """The parts of a WS-Man request a shell needs."""

    action: str
    message_id: str
    resource_uri: str
    operation_timeout: float
    selectors: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    body: ET.Element | None = None

    def body_child(self, prefix: str, name: str) -> ET.Element | None:
        """The named element directly in the body."""
        if self.body is None:
            return None
        return self.body.find(_q(prefix, name))


def parse_duration(text: str | None, default: float) -> float:
    """An xs:duration such as PT20S or PT1M5.5S, in seconds."""
    if not text:
        return default
    match = _DURATION.match(text.strip())
    if not match:
        return default
    return int(match.group(1) or 0) * 60 + float(match.group(2))


def parse_request(payload: bytes) -> Request:
    """Parse a SOAP envelope (entities and DTDs refused)."""
    try:
        root = SafeET.fromstring(payload)
    except (ET.ParseError, ValueError) as exc:
        raise BadRequest(f"not XML: {exc}") from None
    header = root.find(_q("s", "Header"))
    if header is None:
        raise BadRequest("no SOAP header")

    def text(prefix: str, name: str) -> str:
        el = header.find(_q(prefix, name))
        return (el.text or "").strip() if el is not None else ""

    selectors: dict[str, str] = {}
    sel_set = header.find(_q("wsman", "SelectorSet"))
    if sel_set is not None:
        for sel in sel_set:
            selectors[sel.attrib.get("Name", "")] = (sel.text or "").strip()
    options: dict[str, str] = {}
    opt_set = header.find(_q("wsman", "OptionSet"))
    if opt_set is not None:
        for opt in opt_set:
            options[opt.attrib.get("Name", "")] = (opt.text or "").strip()
    return Request(
        action=text("wsa", "Action"),
        message_id=text("wsa", "MessageID"),
        resource_uri=text("wsman", "ResourceURI"),
        operation_timeout=parse_duration(text("wsman", "OperationTimeout"), 60.0),
        selectors=selectors,
        options=options,
        body=root.find(_q("s", "Body")),
    )


def envelope(action: str, relates_to: str, body_children: list[ET.Element]) -> bytes:
    """A reply envelope whose RelatesTo is the request's MessageID (pypsrp checks it)."""
    env = ET.Element(_q("s", "Envelope"))
    header = ET.SubElement(env, _q("s", "Header"))
    ET.SubElement(header, _q("wsa", "Action")).text = action
    ET.SubElement(header, _q("wsa", "MessageID")).text = f"uuid:{str(uuid.uuid4()).upper()}"
    ET.SubElement(header, _q("wsa", "To")).text = ANONYMOUS
    ET.SubElement(header, _q("wsa", "RelatesTo")).text = relates_to
    body = ET.SubElement(env, _q("s", "Body"))
    body.extend(body_children)
    return bytes(ET.tostring(env, encoding="utf-8", xml_declaration=False))


def create_response(
    request: Request, endpoint: str, shell_id: str, owner: str, client_ip: str
) -> bytes:
    """CreateResponse: the new shell's ShellId selector in ResourceCreated, and its Shell."""
    created = ET.Element(_q("wst", "ResourceCreated"))
    ET.SubElement(created, _q("wsa", "Address")).text = endpoint
    ref = ET.SubElement(created, _q("wsa", "ReferenceParameters"))
    ET.SubElement(ref, _q("wsman", "ResourceURI")).text = request.resource_uri
    sel_set = ET.SubElement(ref, _q("wsman", "SelectorSet"))
    ET.SubElement(sel_set, _q("wsman", "Selector"), Name="ShellId").text = shell_id
    shell = ET.Element(_q("rsp", "Shell"))
    asked = request.body_child("rsp", "Shell")
    for name, value in (
        ("ShellId", shell_id),
        ("ResourceUri", request.resource_uri),
        ("Owner", owner),
        ("ClientIP", client_ip),
        ("IdleTimeOut", "PT7200.000S"),
        ("InputStreams", _asked(asked, "InputStreams", "stdin")),
        ("OutputStreams", _asked(asked, "OutputStreams", "stdout stderr")),
        ("ShellRunTime", "P0DT0H0M0S"),
        ("ShellInactivity", "P0DT0H0M0S"),
    ):
        ET.SubElement(shell, _q("rsp", name)).text = value
    return envelope(ACTION_BASE + "CreateResponse", request.message_id, [created, shell])


def _asked(shell: ET.Element | None, name: str, default: str) -> str:
    if shell is None:
        return default
    el = shell.find(_q("rsp", name))
    return (el.text or default) if el is not None else default


def command_response(request: Request, command_id: str) -> bytes:
    """CommandResponse with the command's id."""
    resp = ET.Element(_q("rsp", "CommandResponse"))
    ET.SubElement(resp, _q("rsp", "CommandId")).text = command_id
    return envelope(SHELL_BASE + "CommandResponse", request.message_id, [resp])


def receive_response(
    request: Request,
    command_id: str | None,
    streams: list[tuple[str, bytes]],
    *,
    done: bool,
    exit_code: int | None,
) -> bytes:
    """ReceiveResponse: base64 stream chunks, then the CommandState (Done carries ExitCode)."""
    resp = ET.Element(_q("rsp", "ReceiveResponse"))
    attrib = {"CommandId": command_id} if command_id else {}
    for name, data in streams:
        ET.SubElement(resp, _q("rsp", "Stream"), {"Name": name, **attrib}).text = _b64(data)
    if command_id is not None:
        if done:
            for name in ("stdout", "stderr"):
                ET.SubElement(resp, _q("rsp", "Stream"), {"Name": name, "End": "true", **attrib})
        state = ET.SubElement(
            resp,
            _q("rsp", "CommandState"),
            CommandId=command_id,
            State=COMMAND_STATE_DONE if done else COMMAND_STATE_RUNNING,
        )
        if done and exit_code is not None:
            ET.SubElement(state, _q("rsp", "ExitCode")).text = str(exit_code)
    return envelope(SHELL_BASE + "ReceiveResponse", request.message_id, [resp])


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def simple_response(request: Request, action_suffix: str, element: str | None) -> bytes:
    """An acknowledgement such as SignalResponse, SendResponse or DeleteResponse."""
    children = [ET.Element(_q("rsp", element))] if element else []
    base = ACTION_BASE if action_suffix == "DeleteResponse" else SHELL_BASE
    return envelope(base + action_suffix, request.message_id, children)


def fault(relates_to: str, machine: str, code: int, subcode: str, reason: str) -> bytes:
    """A wsman fault (HTTP 500) in the shape pypsrp's _parse_wsman_fault reads."""
    flt = ET.Element(_q("s", "Fault"))
    code_el = ET.SubElement(flt, _q("s", "Code"))
    ET.SubElement(code_el, _q("s", "Value")).text = "s:Receiver"
    sub = ET.SubElement(code_el, _q("s", "Subcode"))
    ET.SubElement(sub, _q("s", "Value")).text = f"w:{subcode}"
    reason_el = ET.SubElement(flt, _q("s", "Reason"))
    ET.SubElement(reason_el, _q("s", "Text"), {_q("xml", "lang"): "en-US"}).text = reason
    detail = ET.SubElement(flt, _q("s", "Detail"))
    wsf = ET.SubElement(detail, _q("wsmanfault", "WSManFault"), Code=str(code), Machine=machine)
    ET.SubElement(wsf, _q("wsmanfault", "Message")).text = reason
    return envelope(FAULT_ACTION, relates_to, [flt])


def operation_timeout_fault(request: Request, machine: str) -> bytes:
    """The fault WinRM sends when a Receive had nothing to return within OperationTimeout."""
    return fault(
        request.message_id,
        machine,
        OPERATION_TIMEOUT_CODE,
        "TimedOut",
        "The WS-Management service cannot complete the operation within the time specified "
        "in OperationTimeout.",
    )
