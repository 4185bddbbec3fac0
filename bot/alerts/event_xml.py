"""Event 1411 as Windows event XML (`wevtutil qe /f:xml`, Get-WinEvent `ToXml()`, forwarded
events): one `<Event>`, several concatenated `<Event>` roots, or an `<Events>` wrapper.

Parsed with defusedxml: no DTDs, no entity expansion, no external references.
"""

from __future__ import annotations

import re
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from bot.alerts.model import shown
from bot.alerts.raw import RawAlert
from bot.errors import AlertRejected

EVENT_NAMESPACE = "http://schemas.microsoft.com/win/2004/08/events/event"
_DECLARATION = re.compile(r"<\?xml[^>]{0,200}\?>")
_DTD = re.compile(r"<!(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_WRAPPER = "ad1411-events"


def _local(element: Element) -> str:
    tag = element.tag
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _child(element: Element | None, name: str) -> Element | None:
    if element is None:
        return None
    return next((c for c in element if _local(c) == name), None)


def _text(element: Element | None) -> str | None:
    if element is None or element.text is None:
        return None
    return element.text.strip()


def parse_xml_tree(text: str) -> Element:
    """The document under a synthetic root, so concatenated `<Event>` roots parse as one."""
    if _DTD.search(text):
        raise AlertRejected(
            "xml: the document declares a DTD or entities; expected plain event XML "
            "(DTDs and entity expansion are refused)",
            field="xml",
        )
    body = _DECLARATION.sub("", text)
    try:
        return fromstring(f"<{_WRAPPER}>\n{body}\n</{_WRAPPER}>", forbid_dtd=True)
    except ParseError as exc:
        # The wrapper sits on a line of its own: one line up, expat's columns count from 0.
        line, column = exc.position
        reason = str(exc).split(":", 1)[0]
        raise AlertRejected(
            f"xml: the event XML does not parse ({reason} at line {max(line - 1, 1)}, column "
            f"{column + 1}); expected well-formed <Event> elements as wevtutil qe /f:xml "
            "prints them",
            field="xml",
        ) from exc
    except DefusedXmlException as exc:
        raise AlertRejected(
            "xml: the document uses DTDs, entities or external references; expected plain "
            "event XML",
            field="xml",
        ) from exc


def event_elements(root: Element) -> list[Element]:
    """The `<Event>` elements at the top, or inside one `<Events>` wrapper."""
    events: list[Element] = []
    for child in root:
        name = _local(child)
        if name == "Event":
            events.append(child)
        elif name == "Events":
            events.extend(e for e in child if _local(e) == "Event")
        else:
            raise AlertRejected(
                f"xml: found element {shown(name)} at the top; expected <Event> or <Events>",
                field="xml",
            )
    if not events:
        raise AlertRejected(
            "xml: no <Event> element found; expected Windows event XML", field="xml"
        )
    return events


def raw_from_event(event: Element, source_format: str = "event_xml") -> RawAlert:
    """The values of one `<Event>` element, unvalidated."""
    system = _child(event, "System")
    if system is None:
        raise AlertRejected(
            "xml: <Event> has no <System> element; expected Windows event XML", field="xml"
        )
    provider_element = _child(system, "Provider")
    provider = None
    if provider_element is not None:
        # Server 2008+ names the provider and keeps the classic source as EventSourceName.
        provider = provider_element.get("EventSourceName") or provider_element.get("Name")
    time_element = _child(system, "TimeCreated")
    event_data = _child(event, "EventData")
    data = (
        [_text(d) or "" for d in event_data if _local(d) == "Data"]
        if event_data is not None
        else []
    )
    rendering = _child(event, "RenderingInfo")
    return RawAlert(
        source_format=source_format,
        event_id=_text(_child(system, "EventID")),
        computer=_text(_child(system, "Computer")),
        provider=provider,
        message=_text(_child(rendering, "Message")),
        observed_at=time_element.get("SystemTime") if time_element is not None else None,
        data=data,
    )


def parse_event_xml(text: str, source_format: str = "event_xml") -> list[tuple[str, RawAlert]]:
    """Every `<Event>` in the document, with its position label when there are several."""
    events = event_elements(parse_xml_tree(text))
    many = len(events) > 1
    return [
        (f"Event {i}" if many else "", raw_from_event(e, source_format))
        for i, e in enumerate(events)
    ]
