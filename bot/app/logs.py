"""Log lines an attacker cannot forge: control characters in logged values are escaped.

A value that reaches a log record (a header, a Slack field, an exception message) may carry a
newline followed by something that looks like a log line. Every record is therefore written as
one physical line; a traceback follows on lines that start with "| ", which no record does.
"""

from __future__ import annotations

import logging
import re
import sys

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# C0 and C1 controls, DEL, and the Unicode line and paragraph separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
MAX_MESSAGE_CHARS = 4000


def escape_controls(text: str) -> str:
    """Text with every control character written as an escape (\\n, \\x1b, \\u2028)."""

    def one(m: re.Match[str]) -> str:
        ch = m.group(0)
        named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(ch)
        if named is not None:
            return named
        return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"

    return _CONTROL.sub(one, text)


class SafeFormatter(logging.Formatter):
    """One physical line per record (escaped, bounded); tracebacks on "| " lines after it."""

    def format(self, record: logging.LogRecord) -> str:
        message = escape_controls(record.getMessage())
        if len(message) > MAX_MESSAGE_CHARS:
            message = message[:MAX_MESSAGE_CHARS] + f"... ({len(message)} chars, cut)"
        # Format a copy so other handlers still see the original record.
        clean = logging.makeLogRecord(record.__dict__)
        clean.msg, clean.args = message, None
        clean.exc_info, clean.exc_text, clean.stack_info = None, None, None
        line = super().format(clean)
        extra = []
        if record.exc_info:
            extra.append(self.formatException(record.exc_info))
        if record.stack_info:
            extra.append(self.formatStack(record.stack_info))
        for block in extra:
            line += "".join("\n| " + escape_controls(part) for part in block.splitlines())
        return line


def setup_logging(level: str = "INFO") -> None:
    """Root logging to stderr through SafeFormatter."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(SafeFormatter(LOG_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level, logging.INFO))
