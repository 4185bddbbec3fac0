"""deploy/alerting: each way of getting Event 1411 from the DCs to POST /alerts, with the exact
payload the bot receives (deploy/alerting/payloads/), posted the way that sender posts it into
the real serve app; the incident opens. The sender configurations are checked against it."""

from __future__ import annotations

import configparser
import json
from collections.abc import AsyncIterator
from pathlib import Path
from xml.etree import ElementTree

import aiohttp
import pytest
import yaml

from lab.slack_emulator import SlackEmulator
from state.keys import OPEN_INCIDENTS
from tests.handlers.serve_config import write_config
from tests.inprocess import InProcessBot, running_bot, settings_for

pytestmark = [pytest.mark.slack]
ROOT = Path(__file__).resolve().parents[2]
ALERTING = ROOT / "deploy" / "alerting"
PAYLOADS = ALERTING / "payloads"
TOKEN = "alert-token-for-recipes"
TARGET = "5471be24-1fdf-4fed-9074-ec3f1cd2f0fc"
# recipe: (payload file, how the sender authenticates, the DC the event came from)
RECIPES = {
    "wef-winlogbeat-logstash": ("winlogbeat-via-logstash.json", "header", "dc02.corp.example.com"),
    "splunk-webhook": ("splunk-webhook.json", "url", "dc03.corp.example.com"),
    "azure-monitor-action-group": (
        "azure-monitor-common-schema.json",
        "url",
        "dc04.corp.example.com",
    ),
}


@pytest.fixture(params=[True, False], ids=["token_in_url", "header_only"])
async def bot(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    redis_url: str,
    slack_emulator: SlackEmulator,
    slack_signing_secret: str,
) -> AsyncIterator[InProcessBot]:
    extra = f"token_in_url = {'true' if request.param else 'false'}"
    cfg = write_config(tmp_path / "c.toml", extra=extra, coalesce_seconds=0.5)
    settings = settings_for(
        slack_emulator, slack_signing_secret, redis_url, cfg, ALERT_WEBHOOK_TOKEN=TOKEN
    )
    async with running_bot(settings, slack_emulator, slack_signing_secret) as running:
        running.extra["token_in_url"] = request.param
        yield running


async def _send(bot: InProcessBot, body: bytes, auth: str) -> tuple[int, dict[str, object]]:
    """POST as the sender does: Logstash sets a header; Splunk and Azure only have the URL."""
    url = bot.url + "/alerts"
    headers = {"Content-Type": "application/json"}
    if auth == "header":
        headers["Authorization"] = f"Bearer {TOKEN}"
    else:
        url += f"?token={TOKEN}"
    async with aiohttp.ClientSession() as s, s.post(url, data=body, headers=headers) as r:
        return r.status, json.loads(await r.text())


@pytest.mark.parametrize("recipe", sorted(RECIPES))
async def test_each_recipe_payload_opens_the_incident(bot: InProcessBot, recipe: str) -> None:
    payload, auth, dc = RECIPES[recipe]
    body = (PAYLOADS / payload).read_bytes()
    status, reply = await _send(bot, body, auth)
    if auth == "url" and not bot.extra["token_in_url"]:
        # A token in the URL is refused unless the operator turned it on, and says how.
        assert status == 401 and "alerts.token_in_url" in str(reply["error"])
        assert bot.redis.zcard(OPEN_INCIDENTS) == 0
        return
    assert status == 202, reply
    iid = reply["incidents"][0]["incident_id"]  # type: ignore[index]
    msg = (await bot.emulator.wait_for_async(bot.incident_messages, timeout=20))[0]
    shown = json.dumps(msg["blocks"])
    assert iid in shown and TARGET in shown and dc in shown


@pytest.mark.parametrize("bot", [True], ids=["token_in_url"], indirect=True)
async def test_all_three_pipes_report_one_problem_as_one_incident(bot: InProcessBot) -> None:
    ids = set()
    for payload, auth, _dc in RECIPES.values():
        status, reply = await _send(bot, (PAYLOADS / payload).read_bytes(), auth)
        assert status == 202, reply
        ids.add(reply["incidents"][0]["incident_id"])  # type: ignore[index]
    assert len(ids) == 1
    listing = await bot.driver.slash_command("/ad1411", f"status {ids.pop()}")
    for _payload, _auth, dc in RECIPES.values():
        assert dc in listing.body


def test_logstash_posts_each_event_with_the_bearer_token_and_retries_503() -> None:
    conf = (ALERTING / "logstash" / "ad1411.conf").read_text()
    assert 'url => "https://ad1411.corp.example.com/alerts"' in conf
    assert 'format => "json"' in conf  # one event per request: the payload file's shape
    assert '"Authorization" => "Bearer ${AD1411_ALERT_TOKEN}"' in conf
    assert "503" in conf.split("retryable_codes")[1].split("]")[0]


def test_winlogbeat_ships_forwarded_1411_events_to_logstash() -> None:
    doc = yaml.safe_load((ALERTING / "winlogbeat" / "winlogbeat.yml").read_text())
    (log,) = doc["winlogbeat.event_logs"]
    assert (log["name"], log["event_id"], log["forwarded"]) == ("ForwardedEvents", 1411, True)
    assert "output.logstash" in doc


def test_wef_subscription_collects_1411_from_domain_controllers_only() -> None:
    ns = {"s": "http://schemas.microsoft.com/2006/03/windows/events/subscription"}
    root = ElementTree.parse(ALERTING / "windows-event-forwarding" / "ad1411-subscription.xml")
    query = root.findtext("s:Query", namespaces=ns) or ""
    select = ElementTree.fromstring(query.strip()).find("Query/Select")
    assert select is not None and select.get("Path") == "Directory Service"
    assert select.text == "*[System[(EventID=1411)]]"
    assert root.findtext("s:LogFile", namespaces=ns) == "ForwardedEvents"
    sddl = root.findtext("s:AllowedSourceDomainComputers", namespaces=ns) or ""
    assert "(A;;GA;;;DD)" in sddl  # Domain Controllers, not every domain computer (DC)


def test_splunk_alert_sends_one_webhook_per_event() -> None:
    conf = configparser.ConfigParser(interpolation=None)
    conf.read(ALERTING / "splunk" / "savedsearches.conf")
    (stanza,) = conf.sections()
    search = conf[stanza]
    assert search["alert.digest_mode"] == "0"  # the webhook carries only the first result row
    assert search["action.webhook"] == "1"
    assert search["action.webhook.param.url"].startswith("https://")
    assert "/alerts?token=" in search["action.webhook.param.url"]
    assert "EventCode=1411" in search["search"]
    assert json.loads((PAYLOADS / "splunk-webhook.json").read_text())["search_name"] == stanza


def test_azure_action_group_uses_the_common_alert_schema() -> None:
    template = json.loads((ALERTING / "azure-monitor" / "action-group.json").read_text())
    (receiver,) = template["resources"][0]["properties"]["webhookReceivers"]
    assert receiver["useCommonAlertSchema"] is True
    payload = json.loads((PAYLOADS / "azure-monitor-common-schema.json").read_text())
    dims = {
        d["name"] for d in payload["data"]["alertContext"]["condition"]["allOf"][0]["dimensions"]
    }
    kql = (ALERTING / "azure-monitor" / "ad1411-alert.kql").read_text()
    assert all(name in kql.split("summarize")[1] for name in dims)
