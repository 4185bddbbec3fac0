"""The one parser of LDAP distinguished names (RFC 4514) the directory and command code share."""

from __future__ import annotations


def split_dn(dn: str) -> list[str]:
    """RDNs of a DN exactly as written between unescaped commas ([] for the empty DN).

    Nothing is stripped or dropped, so a validator can refuse what is odd ("CN=x, DC=y",
    a trailing comma); `rdns` is the forgiving view for DNs read from a directory.
    """
    if "\\" not in dn:
        # No escapes: every comma separates (the common case; a forest read is 4,000 DNs).
        return dn.split(",") if dn else []
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for ch in dn:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            current.append(ch)
            escaped = True
        elif ch == ",":
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if current or parts:
        parts.append("".join(current))
    return parts


def rdns(dn: str) -> list[str]:
    """RDNs of a directory DN, surrounding spaces removed and empty parts dropped."""
    return [part.strip() for part in split_dn(dn) if part.strip()]


def parent_dn(dn: str) -> str:
    """The DN one level up ('' above a single RDN)."""
    return ",".join(rdns(dn)[1:])


def rdn_value(dn: str) -> str:
    """The value of the first RDN (`CN=DC2,CN=Servers,...` -> `DC2`)."""
    parts = rdns(dn)
    return parts[0].partition("=")[2] if parts else ""


def domain_of(dn: str | None) -> str | None:
    """The DC=... suffix of a DN (its domain naming context), or None."""
    if not dn:
        return None
    parts = rdns(dn)
    idx = next((i for i, r in enumerate(parts) if r.lower().startswith("dc=")), None)
    return ",".join(parts[idx:]) if idx is not None else None


def nc_of_host(fqdn: str | None) -> str | None:
    """The domain NC a host name lives in: dc1.corp.example.com -> DC=corp,DC=example,DC=com."""
    if not fqdn or "." not in fqdn:
        return None
    return ",".join(f"DC={label}" for label in fqdn.split(".")[1:])


def dns_of_nc(nc: str) -> str:
    """The DNS name of a domain NC: DC=corp,DC=example,DC=com -> corp.example.com."""
    return ".".join(r[3:] for r in rdns(nc) if r.lower().startswith("dc=")).lower()
