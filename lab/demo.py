"""`ad1411 demo`: the bot's main job on embedded defaults, narrated for a person watching.

Embedded Redis (AOF), the Slack emulator, serve and worker in this process, and, when this
machine can run it (root, Samba installed), a real two-DC Samba forest with DC2's
serverReference removed so the diagnosis finds a real Event 1411 cause.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import SecretStr

from bot.app.serve import ServeRuntime
from bot.app.slack import slack_client
from bot.app.worker import Worker
from bot.config import EnvSettings, FileConfig, Settings
from lab.alert_samples import alert_body
from lab.slack_driver import SlackDriver
from lab.slack_emulator import LAB_BOT_TOKEN, SlackEmulator
from state.connection import async_client, resolve_redis_url, stop_embedded

DEMO_FOREST = "lab.ad1411.test"
DEMO_GUID = "6f1c2a7e-0d3b-4c2a-9a51-3e5b8d7c1f20"


def _say(text: str) -> None:
    print(text, flush=True)


def _message_text(message: dict[str, Any]) -> str:
    parts = [str(message.get("text", ""))]
    for block in message.get("blocks") or []:
        text = block.get("text")
        if isinstance(text, dict):
            parts.append(str(text.get("text", "")))
        for f in block.get("fields") or []:
            parts.append(str(f.get("text", "")).replace("\n", " "))
    return "\n".join(p for p in parts[1:] or parts if p)


def _file_config(forest: dict[str, Any] | None) -> FileConfig:
    raw: dict[str, Any] = {
        "slack": {
            "channel": "C0INCIDENT",
            "alert_channels": ["C0ALERTS"],
            "responders": ["U0ONCALL1", "S0RESPOND"],
            "approvers": ["U0APPROV1", "U0APPROV2"],
        },
        "alerts": {"coalesce_seconds": 2},
        "forests": [forest or {"name": DEMO_FOREST, "ldap_hosts": [f"dc1.{DEMO_FOREST}"]}],
    }
    return FileConfig.model_validate(raw)


def _samba_available() -> bool:
    return os.geteuid() == 0 and shutil.which("samba-tool") is not None


async def _start_samba(data_dir: Path) -> tuple[Any, dict[str, Any], str] | None:
    """A broken two-DC forest: (lab, forest config, DC2's DSA GUID), or None when impossible."""
    try:
        from lab.samba import SambaForest  # noqa: PLC0415
    except ImportError:
        return None
    lab = SambaForest(data_dir / "samba")
    await asyncio.to_thread(lab.start)
    dc1, dc2 = lab.dcs[0], lab.dcs[1]
    await asyncio.to_thread(lab.remove_server_reference, dc2)
    # DC2 then fails to pull from DC1 with 8453, as production DCs do after Event 1411.
    await asyncio.to_thread(lab.try_replicate, dc2, dc1, lab.configuration_dn)
    os.environ["AD1411_DEMO_LDAP_PASSWORD"] = lab.admin_password
    forest = {
        "name": lab.forest,
        "ldap_hosts": [dc1.fqdn],
        "ldap": {
            "tls": "ldaps",
            "ca_file": str(lab.ca_file),
            "user": lab.admin_dn,
            "password": {"env": "AD1411_DEMO_LDAP_PASSWORD"},
        },
        "dcs": [
            {"fqdn": dc.fqdn, "address": dc.address, "ldap_port": dc.ldaps_port}
            for dc in (dc1, dc2)
        ],
    }
    return lab, forest, dc2.dsa_guid


async def run_demo(*, once: bool, data_dir: Path) -> int:
    """Run the scripted scenario; then keep serving until Ctrl-C unless once."""
    _say(f"== AD 1411 Responder demo (data in {data_dir})")
    emulator = SlackEmulator().start()
    _say(f"Slack emulator: {emulator.api_url}")
    samba = None
    if _samba_available():
        _say("Samba AD forest: provisioning two real DCs (about a minute the first time)...")
        try:
            samba = await _start_samba(data_dir)
        except Exception as exc:  # the demo goes on without a forest, and says so
            _say(f"Samba AD forest could not start ({exc}); continuing without LDAP.")
    else:
        _say("Samba AD forest: skipped (needs root and samba-tool); diagnosis will say why.")
    forest_cfg, target_guid = (samba[1], samba[2]) if samba else (None, DEMO_GUID)
    forest_name = forest_cfg["name"] if forest_cfg else DEMO_FOREST
    signing = secrets.token_hex(16)
    webhook_token = secrets.token_hex(16)
    redis_url = resolve_redis_url(None, data_dir)
    settings = Settings(
        env=EnvSettings(
            SLACK_BOT_TOKEN=SecretStr(LAB_BOT_TOKEN),
            SLACK_SIGNING_SECRET=SecretStr(signing),
            SLACK_API_URL=emulator.api_url,
            REDIS_URL=redis_url,
            ALERT_WEBHOOK_TOKEN=SecretStr(webhook_token),
            PORT=0,
            AD1411_DATA_DIR=data_dir,
        ),
        file=_file_config(forest_cfg),
    )
    _say(f"Embedded Redis: {redis_url}")
    serve = await ServeRuntime(settings).start()
    _say(f"serve: {serve.url} (POST /alerts, /slack/events, /healthz, /readyz, /metrics)")
    worker_redis = async_client(redis_url)
    worker = Worker(settings, worker_redis, slack_client(settings))
    stop = asyncio.Event()
    worker_task = asyncio.create_task(worker.run(stop))
    driver = SlackDriver(emulator, signing_secret=signing, bot_url=serve.url + "/slack/events")
    try:
        await _scenario(
            url=serve.url,
            token=webhook_token,
            emulator=emulator,
            driver=driver,
            forest=forest_name,
            guid=target_guid,
        )
        if not once:
            _say("\nThe bot keeps running; send alerts with:")
            _say(
                f"  curl -H 'Authorization: Bearer {webhook_token}' --data-binary @alert.txt "
                f"{serve.url}/alerts"
            )
            _say("Press Ctrl-C to stop.")
            await asyncio.Event().wait()
    finally:
        stop.set()
        await worker_task
        await worker_redis.aclose()
        await serve.stop()
        emulator.stop()
        if samba is not None:
            await asyncio.to_thread(samba[0].clean)
        stop_embedded()
    return 0


async def _scenario(
    *,
    url: str,
    token: str,
    emulator: SlackEmulator,
    driver: SlackDriver,
    forest: str,
    guid: str,
) -> None:
    _say("\n1. Monitoring posts Event 1411 from DC1, as event text and from Alertmanager:")
    async with aiohttp.ClientSession() as session:
        for fmt, dc in (("event_text", f"dc1.{forest}"), ("alertmanager", f"dc1.{forest}")):
            body, ctype = alert_body(fmt, dc, guid, forest)
            async with session.post(
                url + "/alerts",
                data=body,
                headers={"Authorization": f"Bearer {token}", "Content-Type": ctype},
            ) as r:
                _say(f"   POST /alerts ({fmt}) -> {r.status} {await r.text()}")

    def incident() -> dict[str, Any] | None:
        # A parent carries thread_ts (its own ts) once its thread has replies, as in Slack.
        return next(
            (m for m in emulator.messages("C0INCIDENT") if m.get("thread_ts", m["ts"]) == m["ts"]),
            None,
        )

    msg = await emulator.wait_for_async(incident, timeout=30)
    assert msg is not None  # wait_for_async returns only a truthy value
    _say("\n2. The incident message in #incidents:")
    _say("   " + _message_text(msg).replace("\n", "\n   "))
    _say("   buttons: " + ", ".join(b["text"]["text"] for b in SlackDriver.buttons(msg)))

    listing = await driver.slash_command("/ad1411", "list")
    _say("\n3. /ad1411 list ->\n   " + listing.body.replace("\n", "\n   "))

    _say("\n4. The on-call engineer clicks Diagnose; the worker reads the forest over LDAP:")
    await driver.click(msg, action_id="incident_diagnose", user_id="U0ONCALL1")

    def diagnosis() -> dict[str, Any] | None:
        return next(
            (
                m
                for m in emulator.messages("C0INCIDENT")
                if m.get("thread_ts") == msg["ts"] and "Diagnos" in str(m.get("text", ""))
            ),
            None,
        )

    found = await emulator.wait_for_async(diagnosis, timeout=120)
    assert found is not None
    _say("   " + str(found.get("text", "")).replace("\n", "\n   "))
    calls = [c.method for c in emulator.calls()]
    summary = {m: calls.count(m) for m in sorted(set(calls))}
    _say("\n5. Slack Web API calls the bot made: " + json.dumps(summary))
