"""Accounts a simulated DC accepts: the NTLM_USER_FILE pyspnego's NTLM acceptor reads them from,
and the keytab (KRB5_KTNAME) its Kerberos acceptor decrypts tickets with."""

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
    """A DOMAIN\\user and its password (never printed); `realm` is its Kerberos realm."""

    domain: str
    user: str
    password: str
    realm: str = ""

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
        domains = {self.domain.lower(), self.realm.lower()} - {""}
        return same_user and (not other.domain or other.domain.lower() in domains)

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


class AcceptorKeytab:
    """The keytab Kerberos acceptors in this process use (KRB5_KTNAME is process-wide).

    A simulated DC that accepts Kerberos holds the keys of its host/<fqdn> principal, as a
    Windows DC's WinRM service decrypts tickets with its computer account's key.
    """

    _lock = threading.Lock()

    @classmethod
    def use(cls, keytab: Path) -> None:
        """Make Kerberos acceptors in this process decrypt tickets with `keytab`'s keys."""
        if not keytab.is_file():
            raise ValueError(f"keytab {keytab} does not exist")
        with cls._lock:
            os.environ["KRB5_KTNAME"] = f"FILE:{keytab}"
