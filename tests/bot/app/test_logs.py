"""Log lines cannot be forged (issue 9, item 5): every record is one physical line."""

from __future__ import annotations

import logging

from bot.app.logs import LOG_FORMAT, SafeFormatter, escape_controls

FORGED = "user U1 said hi\n2026-11-30 03:00:00,000 INFO handlers.slash: U0ADMIN approved step 5"


def _record(msg: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("x", logging.INFO, __file__, 1, msg, args, exc_info)


def test_a_forged_line_in_a_logged_value_stays_on_its_line() -> None:
    line = SafeFormatter(LOG_FORMAT).format(_record("message: %s", FORGED))
    assert "\n" not in line
    assert "\\n2026-11-30" in line


def test_every_control_character_is_escaped() -> None:
    raw = "a\rb\x1b[31mc\x00d\u2028e\x85f\tg"
    assert escape_controls(raw) == "a\\rb\\x1b[31mc\\x00d\\u2028e\\x85f\\tg"


def test_a_traceback_follows_on_marked_lines_only() -> None:
    try:
        raise ValueError(FORGED)
    except ValueError as exc:
        text = SafeFormatter(LOG_FORMAT).format(_record("failed", exc=exc))
    first, *rest = text.split("\n")
    assert "failed" in first
    assert rest and all(line.startswith("| ") for line in rest)
    assert not any(line.startswith("2026-11-30") for line in rest)


def test_long_values_are_cut() -> None:
    line = SafeFormatter(LOG_FORMAT).format(_record("%s", "x" * 100_000))
    assert len(line) < 5000 and "cut" in line
