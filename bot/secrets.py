"""Secrets by reference: an environment variable name or a file path, resolved at use."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, model_validator

# Only ASCII blanks are trimmed: Unicode rules would turn U+00A0 or U+3000 into nothing.
ASCII_BLANKS = " \t"


def blank_secret(value: str) -> bool:
    """True for a secret that is empty or only whitespace (any Unicode whitespace)."""
    return not value.strip()


class SecretRef(BaseModel):
    """Where a secret lives. Its value is never stored in the config or printed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: str | None = None
    file: Path | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of 'env' (variable name) or 'file' (path)")
        return self

    def describe(self) -> str:
        """Where the secret comes from, safe to print."""
        return f"env:{self.env}" if self.env is not None else f"file:{self.file}"

    def resolve(self) -> str:
        """Read the secret now; raises KeyError/OSError with a message naming the reference."""
        if self.env is not None:
            value = os.environ.get(self.env)
            if value is None:
                raise KeyError(f"environment variable {self.env} is not set")
            return value
        assert self.file is not None
        # A file ends with a newline; nothing else is trimmed.
        return self.file.read_text(encoding="utf-8").strip(ASCII_BLANKS + "\r\n")
