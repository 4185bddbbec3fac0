"""repadmin output an engineer pasted into an incident thread: what it says about replication.

Pure: text in (a Slack message or a text snippet), a `PastedReading` out, or `NotRecognized`
with a reason that quotes nothing of the text (the reason is posted in Slack, and pasted text
may hold anything). Reads `/showrepl` (one DC or several, as `/showrepl *` prints them),
`/showrepl /csv` and `/replsummary` through the same parsers the procedure uses, and marks
which failing links involve the incident's target DC.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from bot.errors import Ad1411Error
from bot.windows.output import (
    CommandOutput,
    UnrecognizedOutput,
    WindowsCommandError,
    lines_of,
    non_english_script,
)
from bot.windows.repadmin import (
    parse_replsummary,
    parse_showrepl,
    parse_showrepl_csv,
)
from bot.windows.win32 import words

MAX_PASTED_CHARS = 400_000
SHOWREPL = "repadmin /showrepl"
SHOWREPL_CSV = "repadmin /showrepl /csv"
REPLSUMMARY = "repadmin /replsummary"

_SLACK_ENTITIES = (("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&"))
_FENCE = re.compile(r"```(.*?)(?:```|\Z)", re.DOTALL)
# A prompt line pasted with the output: "C:\>repadmin /showrepl", "PS C:\Users\x> repadmin ...".
_PROMPT = re.compile(r"^\s*(?:PS )?[A-Za-z]:\\[^>]*>\s*\S.*$")
_BANNER = re.compile(r"^Repadmin: running command /showrepl against (?:full|read-only) DC ")
_NOT_ENGLISH = (
    "it is not in English ({script} letters); the bot reads repadmin's English output only"
)


class NotRecognized(Ad1411Error):
    """Pasted text the bot cannot read; `reason` is safe to post (it quotes nothing pasted)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class IncidentTarget:
    """The DC an incident is about: its DSA GUID, and its computer name once diagnosed."""

    dsa_guid: str
    hostname: str | None = None

    def is_named(self, name: str | None) -> bool:
        """`name` (DC, DC.domain or Site\\DC as repadmin prints it) is the target DC."""
        if name is None or self.hostname is None:
            return False
        short = name.rsplit("\\", 1)[-1].split(".", 1)[0]
        return short.upper() == self.hostname.split(".", 1)[0].upper()


@dataclass(frozen=True)
class FailingLink:
    """One failing inbound link (or one failing DC row of /replsummary) and what it means."""

    destination: str | None
    source: str | None
    naming_context: str | None
    code: int | None
    words: str
    failures: int | None
    last_success: datetime | None
    involves_target: bool


@dataclass(frozen=True)
class PastedReading:
    """What a pasted output says: which command, how much it covers, what fails."""

    command: str
    dcs: tuple[str, ...]
    links: int
    failing: tuple[FailingLink, ...]
    unreachable: tuple[tuple[int, str], ...] = ()
    reached_no_dc: bool = False

    @property
    def target_failing(self) -> tuple[FailingLink, ...]:
        """The failing links that involve the incident's target DC."""
        return tuple(f for f in self.failing if f.involves_target)


def pasted_text(message: str) -> str:
    """The output inside a Slack message: entities undone, code fences and prompt lines off."""
    for entity, char in _SLACK_ENTITIES:
        message = message.replace(entity, char)
    blocks = _FENCE.findall(message)
    text = "\n".join(blocks) if blocks else message
    lines = [line for line in lines_of(text) if not _PROMPT.match(line)]
    return "\n".join(lines).strip("\n") + "\n"


def kind_of(text: str) -> str | None:
    """Which repadmin listing the text looks like, or None when it looks like none."""
    lines = [line.strip() for line in lines_of(text)]
    if any(line.startswith("showrepl_COLUMNS,") for line in lines):
        return SHOWREPL_CSV
    if any(
        line.startswith("Replication Summary Start Time:")
        or " ".join(line.split()).startswith("Source DSA largest delta")
        for line in lines
    ):
        return REPLSUMMARY
    if any(
        line.startswith(("DSA invocationID:", "==== INBOUND NEIGHBORS")) or _BANNER.match(line)
        for line in lines
    ):
        return SHOWREPL
    return None


def read_pasted(message: str, target: IncidentTarget) -> PastedReading:
    """The reading of one pasted output; NotRecognized with a postable reason otherwise."""
    if len(message) > MAX_PASTED_CHARS:
        raise NotRecognized(
            f"it is longer than {MAX_PASTED_CHARS} characters; paste the output of one command"
        )
    text = pasted_text(message)
    kind = kind_of(text)
    script = non_english_script(CommandOutput(text, "", 0))
    if kind is None and script is not None:
        raise NotRecognized(_NOT_ENGLISH.format(script=script))
    if kind is None:
        raise NotRecognized(
            "it is not the output of `repadmin /showrepl`, `/showrepl /csv` or `/replsummary` "
            "(paste one of those, as text or as a text snippet)"
        )
    text = _from_start(text, kind)
    try:
        if kind == SHOWREPL:
            return _showrepl(text, target)
        if kind == SHOWREPL_CSV:
            return _csv(text, target)
        return _replsummary(text, target)
    except UnrecognizedOutput as exc:
        raise NotRecognized(_why(kind, exc)) from None
    except WindowsCommandError as exc:
        raise NotRecognized(
            f"`{kind}` printed a failure instead of its listing: status {exc.code} "
            f"({words(exc.code)})"
        ) from None


def _from_start(text: str, kind: str) -> str:
    """The text from the listing's first line on (a line of chat before it is not output)."""
    lines = lines_of(text)
    start = 0
    if kind == SHOWREPL_CSV:
        start = next(i for i, line in enumerate(lines) if line.startswith("showrepl_COLUMNS,"))
    elif kind == REPLSUMMARY:
        start = next(
            (i for i, line in enumerate(lines) if line.startswith("Replication Summary Start")),
            0,
        )
    else:
        banner = next((i for i, line in enumerate(lines) if _BANNER.match(line)), None)
        options = next((i for i, line in enumerate(lines) if line.startswith("DSA Options:")), 0)
        start = banner if banner is not None and banner < options else max(options - 1, 0)
    return "\n".join(lines[start:])


def _why(kind: str, exc: UnrecognizedOutput) -> str:
    """Why the text was not read, from what the parser expected (never from the text)."""
    if exc.script is not None:
        return _NOT_ENGLISH.format(script=exc.script)
    where = f"line {exc.line} of the output" if exc.line is not None else "its end"
    expected = exc.expected or "a shape it knows"
    return f"it looks like `{kind}` output but at {where} it expected {expected}"


def _showrepl(text: str, target: IncidentTarget) -> PastedReading:
    # `repadmin /showrepl *` prints one block per DC, each opened by the banner.
    blocks: list[list[str]] = [[]]
    for line in lines_of(text):
        if _BANNER.match(line) and any(x.strip() for x in blocks[-1]):
            blocks.append([])
        blocks[-1].append(line)
    dcs: list[str] = []
    links = 0
    failing: list[FailingLink] = []
    guid = _uuid(target.dsa_guid)
    for block in blocks:
        report = parse_showrepl(CommandOutput("\r\n".join(block), "", 0))
        dcs.append(report.dc)
        links += len(report.inbound)
        destination_is_target = report.dsa_guid == guid or target.is_named(report.dc)
        failing += [
            FailingLink(
                destination=report.dc,
                source=f"{n.source_site}\\{n.source_dc}",
                naming_context=n.naming_context,
                code=n.result,
                words=words(n.result),
                failures=n.consecutive_failures,
                last_success=n.last_success,
                involves_target=destination_is_target
                or n.source_dsa_guid == guid
                or target.is_named(n.source_dc),
            )
            for n in report.inbound
            if not n.ok
        ]
    return PastedReading(SHOWREPL, tuple(dcs), links, tuple(failing))


def _csv(text: str, target: IncidentTarget) -> PastedReading:
    rows = parse_showrepl_csv(CommandOutput(text, "", 0))
    failing = tuple(
        FailingLink(
            destination=r.destination_dc,
            source=f"{r.source_site}\\{r.source_dc}",
            naming_context=r.naming_context,
            code=r.last_failure_status,
            words=words(r.last_failure_status),
            failures=r.failures,
            last_success=r.last_success,
            involves_target=target.is_named(r.destination_dc) or target.is_named(r.source_dc),
        )
        for r in rows
        if r.failures or r.last_failure_status
    )
    dcs = tuple(dict.fromkeys(r.destination_dc for r in rows))
    return PastedReading(SHOWREPL_CSV, dcs, len(rows), failing)


def _replsummary(text: str, target: IncidentTarget) -> PastedReading:
    summary = parse_replsummary(CommandOutput(text, "", 0))
    failing: list[FailingLink] = []
    for rows, as_source in ((summary.sources, True), (summary.destinations, False)):
        failing += [
            FailingLink(
                destination=None if as_source else r.dsa,
                source=r.dsa if as_source else None,
                naming_context=None,
                code=r.error,
                words=words(r.error) if r.error is not None else "failing links",
                failures=r.fails,
                last_success=None,
                involves_target=target.is_named(r.dsa),
            )
            for r in rows
            if r.fails or r.error is not None
        ]
    dcs = tuple(dict.fromkeys(r.dsa for r in summary.sources + summary.destinations))
    total = sum(r.total for r in summary.destinations)
    return PastedReading(
        REPLSUMMARY,
        dcs,
        total,
        tuple(failing),
        unreachable=summary.operational_errors,
        reached_no_dc=summary.reached_no_dc,
    )


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None
