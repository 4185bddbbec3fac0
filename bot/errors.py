"""Failure kinds an operator must react to; each message says what to do next."""

from __future__ import annotations


class Ad1411Error(Exception):
    """Base of every failure the bot reports to a person."""


class ConfigError(Ad1411Error):
    """The configuration (environment or TOML file) is missing or wrong."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("configuration problems:\n" + "\n".join(f"- {p}" for p in problems))


class AlertRejected(Ad1411Error):
    """An alert could not be accepted: says which field, what was found, what is expected."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)


class NotAuthorized(Ad1411Error):
    """The Slack user may not do this."""


class StepConflict(Ad1411Error):
    """The procedure is not in the state the click expected (double click, stale button)."""


class RemoteCommandFailed(Ad1411Error):
    """A command on a domain controller failed, timed out or could not be started."""


class DirectoryError(Ad1411Error):
    """LDAP could not be reached, bound or searched."""
