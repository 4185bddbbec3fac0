"""Config files for serve processes under test."""

from __future__ import annotations

from pathlib import Path

FOREST = "corp.example.com"


def write_config(
    path: Path,
    *,
    coalesce_seconds: float = 1.0,
    forests: tuple[str, ...] = (FOREST,),
    responders: tuple[str, ...] = ("U0ONCALL1", "S0RESPOND"),
    extra: str = "",
    sections: str = "",
) -> Path:
    """A minimal valid config for the lab workspace (`extra` goes in [alerts]; `sections` are
    whole TOML sections such as "[serve]\nbody_read_seconds = 1")."""
    lines = [
        "[slack]",
        'channel = "C0INCIDENT"',
        'alert_channels = ["C0ALERTS"]',
        "responders = [" + ", ".join(f'"{r}"' for r in responders) + "]",
        'approvers = ["U0APPROV1", "U0APPROV2"]',
        "[alerts]",
        f"coalesce_seconds = {coalesce_seconds}",
        extra,
        sections,
    ]
    for forest in forests:
        lines += ["[[forests]]", f'name = "{forest}"', f'ldap_hosts = ["dc1.{forest}"]']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
