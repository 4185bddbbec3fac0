"""Accounts a simulated DC accepts, and the NTLM_USER_FILE pyspnego's acceptor reads them from."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Account:
    """A DOMAIN\\user and its password (never printed)."""

    domain: str
    user: str
    password: str

    @classmethod
    def parse(cls, principal: str, password: str) -> Account:
        """'CORP\\alice' or 'alice@corp' plus a password."""
        if "\\" in principal:
            domain, user = principal.split("\\", 1)
        elif "@" in principal:
            user, domain = principal.split("@", 1)
        else:
            domain, user = "", principal
        if not user or ":" in principal or "\n" in principal or "\n" in password:
            raise ValueError("account must be DOMAIN\\user without ':' or line breaks")
        return cls(domain.upper(), user, password)

    @property
    def principal(self) -> str:
        """DOMAIN\\user."""
        return f"{self.domain}\\{self.user}" if self.domain else self.user

    def matches(self, principal: str) -> bool:
        """Same account, whichever way the client spelled it (case-insensitive)."""
        try:
            other = Account.parse(principal, "")
        except ValueError:
            return False
        same_user = other.user.lower() == self.user.lower()
        return same_user and (not other.domain or other.domain.lower() == self.domain.lower())

    def __repr__(self) -> str:
        return f"Account({self.principal!r}, password=***)"


class NtlmUserFile:
    """One process-wide credential file (pyspnego reads NTLM_USER_FILE from the environment).

    Every simulated DC in this process adds its accounts here; each DC still checks that the
    authenticated principal is one of its own.
    """

    _lock = threading.Lock()
    _path: Path | None = None
    _lines: list[str] = []  # noqa: RUF012 -- process-wide on purpose

    @classmethod
    def add(cls, account: Account) -> Path:
        """Make `account` acceptable to NTLM acceptors in this process."""
        with cls._lock:
            if cls._path is None:
                directory = Path(tempfile.mkdtemp(prefix="ad1411-ntlm-"))
                # The credential file holds lab passwords: remove it when the process ends.
                atexit.register(shutil.rmtree, directory, ignore_errors=True)
                cls._path = directory / "ntlm-users"
            line = f"{account.domain}:{account.user}:{account.password}"
            if line not in cls._lines:
                cls._lines.append(line)
                fd = os.open(cls._path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write("\n".join(cls._lines) + "\n")
            os.environ["NTLM_USER_FILE"] = str(cls._path)
            return cls._path
