"""Diagnose from Slack end to end: serve and worker processes, emulator, real Samba forest."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from lab.alert_samples import alert_body
from lab.samba import SambaForest
from lab.slack_driver import SlackDriver
from lab.slack_emulator import SlackEmulator
from tests.procs import BotProcess, http_env, serve

pytestmark = [pytest.mark.samba, pytest.mark.slack, pytest.mark.e2e, pytest.mark.slow]
TOKEN = "diag-token"


def _ldap_settings(forest: SambaForest, auth: str) -> str:
    if auth == "kerberos":
        # the bot's own login from the keytab the forest exported; nobody runs kinit
        kdcs = ", ".join(f'"{dc.address}"' for dc in forest.dcs)
        return (
            'auth = "kerberos"\n[forests.kerberos]\n'
            f'realm = "{forest.realm}"\nprincipal = "{forest.service_principal}"\n'
            f'keytab = {{ file = "{forest.service_keytab}" }}\nkdcs = [{kdcs}]'
        )
    return f'user = "{forest.admin_dn}"\npassword = {{ env = "LAB_LDAP_PASSWORD" }}'


def _config(path: Path, forest: SambaForest, auth: str = "simple") -> Path:
    dcs = "\n".join(
        f'[[forests.dcs]]\nfqdn = "{dc.fqdn}"\naddress = "{dc.address}"\n'
        f"ldap_port = {dc.ldaps_port}"
        for dc in forest.dcs
    )
    path.write_text(
        f"""
[slack]
channel = "C0INCIDENT"
responders = ["S0RESPOND"]
[alerts]
coalesce_seconds = 0.5
[[forests]]
name = "{forest.forest}"
ldap_hosts = ["{forest.dcs[0].fqdn}"]
[forests.ldap]
tls = "ldaps"
ca_file = "{forest.ca_file}"
{_ldap_settings(forest, auth)}
{dcs}
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def worker(tmp_path: Path, env: dict[str, str]) -> Iterator[BotProcess]:
    proc = BotProcess(["worker"], env, tmp_path / "worker.log")
    proc.wait_for_line(re.compile("worker .* ready"))
    yield proc
    proc.stop()


@pytest.fixture
def ldap_auth() -> str:
    """How the worker binds to LDAP (tests parametrize it)."""
    return "simple"


@pytest.fixture
def env(
    tmp_path: Path,
    redis_url: str,
    slack_env: dict[str, str],
    healthy_forest: SambaForest,
    ldap_auth: str,
) -> dict[str, str]:
    return http_env(
        slack_env,
        REDIS_URL=redis_url,
        AD1411_CONFIG=str(_config(tmp_path / "c.toml", healthy_forest, ldap_auth)),
        ALERT_WEBHOOK_TOKEN=TOKEN,
        LAB_LDAP_PASSWORD=healthy_forest.admin_password,
        # a ticket cache that does not exist: a worker leaning on kinit would fail
        KRB5CCNAME=f"FILE:{tmp_path / 'no-kinit-ccache'}",
    )


def _thread(emulator: SlackEmulator, ts: str, words: str) -> list[dict[str, Any]]:
    return [
        m
        for m in emulator.messages("C0INCIDENT")
        if m.get("thread_ts") == ts and m["ts"] != ts and words in str(m.get("text", ""))
    ]


@pytest.mark.parametrize("ldap_auth", ["simple", "kerberos"])
async def test_diagnose_button_posts_the_real_cause_in_the_thread(
    tmp_path: Path,
    *,
    env: dict[str, str],
    worker: BotProcess,
    healthy_forest: SambaForest,
    slack_emulator: SlackEmulator,
    ldap_auth: str,
) -> None:
    forest = healthy_forest
    dc1, dc2 = forest.dcs[0], forest.dcs[1]
    forest.remove_server_reference(dc2)
    forest.try_replicate(dc2, dc1, forest.configuration_dn)

    with serve(env, tmp_path) as (serve_proc, url):
        body, ctype = alert_body("event_text", dc1.fqdn, dc2.dsa_guid, forest.forest)
        async with (
            aiohttp.ClientSession() as s,
            s.post(
                url + "/alerts",
                data=body,
                headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": ctype},
            ) as r,
        ):
            assert r.status == 202, await r.text()
            iid = json.loads(await r.text())["incidents"][0]["incident_id"]
        msg = await slack_emulator.wait_for_async(
            lambda: next(
                (
                    m
                    for m in slack_emulator.messages("C0INCIDENT")
                    if "blocks" in m and m.get("thread_ts") in (None, m["ts"])
                ),
                None,
            ),
            timeout=30,
        )
        assert msg is not None
        driver = SlackDriver(
            slack_emulator,
            signing_secret=env["SLACK_SIGNING_SECRET"],
            bot_url=url + "/slack/events",
        )
        # U0ONCALL1 is a responder through the S0RESPOND user group.
        click = await driver.click(msg, action_id="incident_diagnose", user_id="U0ONCALL1")
        assert click.status == 200
        found = await slack_emulator.wait_for_async(
            lambda: _thread(slack_emulator, msg["ts"], "Diagnosis of"), timeout=120
        )
        text = found[0]["text"]
        assert "SERVER REFERENCE MISSING" in text
        assert dc2.fqdn in text or dc2.dsa_guid in text
        assert dc1.fqdn in text  # the root DC

        # Healed: the same request through the slash command now finds nothing wrong.
        forest.restore_server_reference(dc2)
        reply = await driver.slash_command("/ad1411", f"diagnose {iid}")
        assert "queued" in reply.body
        healed = await slack_emulator.wait_for_async(
            lambda: _thread(slack_emulator, msg["ts"], "NOT REPRODUCED"), timeout=120
        )
        assert healed
        logs = serve_proc.stderr() + worker.stderr()
        everything = logs + json.dumps([c.params for c in slack_emulator.calls()])
        assert forest.admin_password not in everything
        if ldap_auth == "kerberos":
            # one ticket from the keytab served both diagnoses (renewed only when due)
            got = f"Kerberos: got a ticket for {forest.service_principal} (keytab"
            assert worker.stderr().count(got) == 1
            assert not (tmp_path / "no-kinit-ccache").exists()


async def test_unreachable_directory_is_reported_with_what_to_do(
    tmp_path: Path, env: dict[str, str], healthy_forest: SambaForest, slack_emulator: SlackEmulator
) -> None:
    env = {**env, "LAB_LDAP_PASSWORD": "wrong-password-for-test"}
    worker = BotProcess(["worker"], env, tmp_path / "worker.log")
    try:
        worker.wait_for_line(re.compile("ready"))
        with serve(env, tmp_path) as (_, url):
            dc1, dc2 = healthy_forest.dcs[0], healthy_forest.dcs[1]
            body, _ctype = alert_body("generic_json", dc1.fqdn, dc2.dsa_guid, healthy_forest.forest)
            async with (
                aiohttp.ClientSession() as s,
                s.post(
                    url + "/alerts", data=body, headers={"Authorization": f"Bearer {TOKEN}"}
                ) as r,
            ):
                iid = json.loads(await r.text())["incidents"][0]["incident_id"]
            msg = await slack_emulator.wait_for_async(
                lambda: next(
                    (m for m in slack_emulator.messages("C0INCIDENT") if "blocks" in m), None
                ),
                timeout=30,
            )
            assert msg is not None
            driver = SlackDriver(
                slack_emulator,
                signing_secret=env["SLACK_SIGNING_SECRET"],
                bot_url=url + "/slack/events",
            )
            await driver.slash_command("/ad1411", f"diagnose {iid}", user_id="U0ONCALL1")
            failed = await slack_emulator.wait_for_async(
                lambda: _thread(slack_emulator, msg["ts"], "failed"), timeout=60
            )
            text = failed[0]["text"]
            assert "Nothing was changed" in text and "Diagnose" in text
            assert "wrong-password-for-test" not in text + worker.stderr()
    finally:
        worker.stop()
