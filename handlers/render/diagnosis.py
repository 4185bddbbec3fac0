"""The diagnosis (step 0) as the incident thread shows it."""

from __future__ import annotations

from bot.directory.model import CAUSE_TEXT, Diagnosis
from bot.windows.win32 import describe
from handlers.render.text import mrkdwn_escape

MAX_FAILING_LINKS_SHOWN = 5
MAX_MISSING_SHOWN = 10


def diagnosis_text(d: Diagnosis) -> str:
    """What is wrong, why, and what next, in mrkdwn (directory values escaped)."""
    t = d.target
    who = mrkdwn_escape(t.dns_host_name or f"DSA {t.dsa_guid}")
    lines = [f"*{d.cause.value.replace('_', ' ').upper()}*: {who} — {CAUSE_TEXT[d.cause]}."]
    if t.server_dn:
        lines.append(f"Server object: {mrkdwn_escape(t.server_dn)}")
    if t.computer_dn:
        spn = "DRS SPN present" if t.has_drs_spn else "DRS SPN MISSING"
        lines.append(f"Computer object: {mrkdwn_escape(t.computer_dn)} ({spn})")
    elif t.computer_checked:
        lines.append("Computer object: not found")
    failing = [x for x in d.links if x.link.consecutive_failures or x.link.result_last_attempt]
    shown = failing[:MAX_FAILING_LINKS_SHOWN]
    for seen in shown:
        lk = seen.link
        last = lk.last_success.isoformat() if lk.last_success else "never"
        lines.append(
            mrkdwn_escape(
                f"{seen.read_on} {seen.attribute} for {seen.partner} on {seen.naming_context}: "
                f"{lk.consecutive_failures} consecutive failure(s), last result "
                f"{describe(lk.result_last_attempt)}, last success {last}"
            )
        )
    if len(d.links) > len(shown):
        quiet = len(d.links) - len(shown)
        lines.append(f"{quiet} other repsFrom/repsTo entr(ies) between them show no failure.")
    lines.append(f"Root DC: {mrkdwn_escape(d.root_dc or 'unknown')} ({d.root_dc_reason})")
    lines.append("Next: " + mrkdwn_escape(d.recommendation()))
    if d.missing_links:
        names = ", ".join(s.fqdn for s in d.missing_links[:MAX_MISSING_SHOWN])
        more = len(d.missing_links) - MAX_MISSING_SHOWN
        lines.append(
            "DCs with no connection on the root DC (repadmin /add candidates): "
            + mrkdwn_escape(names)
            + (f" and {more} more" if more > 0 else "")
        )
    if d.dead_dcs:
        lines.append(
            f"{len(d.dead_dcs)} server object(s) have no live computer object; they are "
            "left out of repadmin /add and need metadata clean-up."
        )
    lines.extend(f"Note: {mrkdwn_escape(n)}" for n in d.notes)
    lines.append(f"({d.queries} LDAP queries, {d.dsa_count} DCs in the forest)")
    return "\n".join(lines)


def diagnosis_headline(d: Diagnosis) -> str:
    """One line: the cause and the DC (plain text, for the procedure's step 0)."""
    who = d.target.dns_host_name or f"DSA {d.target.dsa_guid}"
    return f"{d.cause.value.replace('_', ' ')}: {who}, {CAUSE_TEXT[d.cause]}"
