"""Posting the post-incident report when a procedure ends (serve or worker, whoever ends it)."""

from __future__ import annotations

import json

from bot.procedure.model import Procedure
from bot.procedure.report import build_report
from handlers.render.report import report_blocks
from handlers.thread import IncidentThread
from state.audit import AuditLog, incident_stream
from state.incidents import IncidentStore


async def post_report(
    thread: IncidentThread, incidents: IncidentStore, audit: AuditLog, proc: Procedure
) -> bool:
    """Build the report from the procedure and its audit, and post it in the thread."""
    inc = await incidents.get(proc.incident_id)
    if inc is None or inc.channel is None or inc.ts is None:
        return False
    entries = [
        json.loads(line)
        async for line in audit.export(incident_stream(proc.incident_id), incident=proc.incident_id)
    ]
    report = build_report(proc, entries)
    text = f"Post-incident report of procedure {proc.id} ({proc.status.value})"
    return await thread.post(inc.channel, inc.ts, text, report_blocks(report))
