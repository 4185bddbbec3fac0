"""Hostile inputs against the running serve app (hypothesis; several thousand requests in all).

Every request, however malformed: never a 500; a refused request changes nothing in Redis
(security records of seen signatures aside); every refusal says what was wrong. Inputs:
/alerts bodies and headers, Slack form bodies, slash-command text, block_actions and
view_submission payloads, and alert-channel events. The bot runs on its own loop thread
(tests/threaded.py) so hypothesis can drive it example by example.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import redis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from bot.config import EnvSettings, Settings, load_file_config
from handlers.webhook import sign_body
from lab.alert_samples import FORMATS, alert_body, dsa_guid, event_text
from lab.slack_driver import SlackDriver, slack_signature
from lab.slack_emulator import LAB_BOT_TOKEN, SlackEmulator
from state.keys import OUTBOX, PREFIX
from state.redis_server import RedisServer
from tests.inprocess import LogCapture
from tests.threaded import Answer, ThreadedServe

pytestmark = [pytest.mark.slack]
TOKEN = "hostile-webhook-token"
HMAC_KEY = "hostile-hmac-key"
SIGNING = "hostile-signing-secret"
FOREST = "corp.example.com"
CORPUS = Path(__file__).parents[1] / "bot" / "alerts" / "corpus"
HOSTILE = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    database=None,
)
USERS = ["U0ONCALL1", "U0APPROV1", "U0VISITOR"]
SEEN = f"{PREFIX}:seen:".encode()
COUNTERS = f"{PREFIX}:new-incidents:".encode()


def budget(examples: int) -> settings:
    """This many examples, whatever the profile (the suite's size is part of its contract)."""
    return settings(HOSTILE, max_examples=examples)


class Hostile:
    """The bot under attack, its Slack, its Redis, and what it logged."""

    def __init__(self, serve: ThreadedServe, emulator: SlackEmulator, client: redis.Redis) -> None:
        self.serve = serve
        self.emulator = emulator
        self.redis = client
        self.driver = SlackDriver(
            emulator, signing_secret=SIGNING, bot_url=f"http://127.0.0.1:{serve.runtime.port}/"
        )
        self.requests = 0
        self.message: dict[str, Any] = {}

    def snapshot(self) -> dict[bytes, bytes]:
        """A digest of every key, once the seen-signature records are dropped.

        Those records are the one write a verified request makes before it may be refused
        (replay protection); dropping them also lets hypothesis replay an example exactly.
        The per-minute opening counters are left out: they expire on the clock.
        """
        keys, seen = [], []
        for key in self.redis.scan_iter(count=10_000):
            if key.startswith(SEEN):
                seen.append(key)
            elif not key.startswith(COUNTERS):
                keys.append(key)
        if seen:
            self.redis.delete(*seen)
        if not keys:
            return {}
        # DUMP, not DEBUG DIGEST-VALUE: Redis 7 (Debian's, on Python 3.13) refuses DEBUG.
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.dump(key)
        return dict(zip(keys, pipe.execute(), strict=True))

    def quiet(self) -> None:
        """Wait until serve has delivered what it owes Slack (its writes would look like ours).
        A delivery holds its lease only while its member is in the outbox."""
        deadline = time.monotonic() + 20
        while self.redis.zcard(OUTBOX):
            if time.monotonic() > deadline:
                raise TimeoutError("serve did not finish its Slack deliveries")
            time.sleep(0.01)  # polling a condition of another thread

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> Answer:
        self.requests += 1
        return self.serve.request("POST", path, body, headers)

    def slack(self, body: bytes, content_type: str, *, sign: bool = True) -> Answer:
        ts = str(int(time.time()))
        headers = {"Content-Type": content_type}
        if sign:
            headers["X-Slack-Request-Timestamp"] = ts
            headers["X-Slack-Signature"] = slack_signature(SIGNING, ts, body)
        return self.post("/slack/events", body, headers)


@pytest.fixture(scope="module")
def hostile(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Hostile]:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    cfg = tmp_path_factory.mktemp("hostile") / "c.toml"
    cfg.write_text(
        '[slack]\nchannel = "C0INCIDENT"\nalert_channels = ["C0ALERTS"]\n'
        'responders = ["U0ONCALL1", "S0RESPOND"]\napprovers = ["U0APPROV1"]\n'
        '[alerts]\ncoalesce_seconds = 0.05\nhmac_secret = { env = "HOSTILE_HMAC" }\n'
        "max_new_incidents_per_request = 5\nmax_new_incidents_per_minute = 40\n"
        "[serve]\nbody_read_seconds = 5\n"
        f'[[forests]]\nname = "{FOREST}"\nldap_hosts = ["dc1.{FOREST}"]\n'
        '[[forests]]\nname = "ad.fabrikam.test"\nldap_hosts = ["dc1.ad.fabrikam.test"]\n'
    )
    mp = pytest.MonkeyPatch()
    mp.setenv("HOSTILE_HMAC", HMAC_KEY)
    emulator = SlackEmulator().start()
    settings_ = Settings(
        env=EnvSettings(
            SLACK_API_URL=emulator.api_url,
            SLACK_BOT_TOKEN=SecretStr(LAB_BOT_TOKEN),
            SLACK_SIGNING_SECRET=SecretStr(SIGNING),
            REDIS_URL=redis_server.url,
            AD1411_CONFIG=cfg,
            ALERT_WEBHOOK_TOKEN=SecretStr(TOKEN),
            PORT=0,
        ),
        file=load_file_config(cfg),
    )
    logs = LogCapture()
    import logging

    logging.getLogger().addHandler(logs)
    serve = ThreadedServe(settings_).start()
    bot = Hostile(serve, emulator, client)
    bot.message = _first_incident_message(bot)
    try:
        yield bot
    finally:
        serve.stop()
        emulator.stop()
        logging.getLogger().removeHandler(logs)
        mp.undo()
        client.close()
        errors = [line for line in logs.lines if line.startswith(("ERROR", "CRITICAL"))]
        assert errors == [], errors[:5]
        assert "Traceback" not in logs.text()


def _first_incident_message(bot: Hostile) -> dict[str, Any]:
    """An incident and its message, made before any hostile input (whose clicks target it)."""
    body = alert_body("generic_json", f"dc1.{FOREST}", dsa_guid(77), FOREST)[0]
    answer = bot.post("/alerts", body, {"Authorization": f"Bearer {TOKEN}"})
    assert answer.status == 202, answer
    iid = json.loads(answer.body)["incidents"][0]["incident_id"]
    msg: dict[str, Any] = bot.emulator.wait_for(
        lambda: next(
            (m for m in bot.emulator.messages("C0INCIDENT") if iid in json.dumps(m.get("blocks"))),
            None,
        ),
        timeout=20,
    )
    return msg


def _clear_error(answer: Answer) -> None:
    """A refusal names what was wrong: a JSON object with a readable `error` (or, for a request
    the HTTP layer itself cannot parse, aiohttp's plain-text reason)."""
    assert answer.status != 500, answer
    if answer.status < 400:
        return
    if answer.headers.get("content-type", "").startswith("application/json"):
        doc = json.loads(answer.body)
        assert isinstance(doc.get("error"), str) and len(doc["error"]) >= 10, answer
    else:
        assert answer.status == 400 and len(answer.body.strip()) >= 10, answer


def _refused_changes_nothing(bot: Hostile, send: Any) -> Answer:
    """Send; a non-2xx answer must leave Redis exactly as it was."""
    bot.quiet()
    before = bot.snapshot()
    answer: Answer = send()
    _clear_error(answer)
    if answer.status >= 300:
        assert bot.snapshot() == before, answer
    return answer


# -- strategies ------------------------------------------------------------------------------

SAMPLES = [
    p.read_bytes()
    for p in sorted((CORPUS / "good").iterdir()) + sorted((CORPUS / "bad").iterdir())
    if not p.name.endswith(".expected.json")
] + [alert_body(f, f"dc{i}.{FOREST}", dsa_guid(i), FOREST)[0] for i, f in enumerate(FORMATS)]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=15), inner, max_size=4)
    ),
    max_leaves=25,
)


@st.composite
def mutated(draw: st.DrawFn, samples: list[bytes]) -> bytes:
    """A real sample with a few bytes cut, replaced or inserted."""
    body = draw(st.sampled_from(samples))
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(body)))
        cut = draw(st.integers(0, 40))
        body = body[:at] + draw(st.binary(max_size=24)) + body[at + cut :]
    return body


@st.composite
def alert_like(draw: st.DrawFn) -> bytes:
    """JSON with the keys alerts use, the values sometimes right, often hostile."""
    nasty = st.sampled_from(["", "&calc", "dc1;rm -rf /", "\u0430dmin", "../../etc", "x" * 300])
    computer = draw(
        st.sampled_from([f"dc1.{FOREST}", f"DC2.{FOREST.upper()}"]) | nasty | st.text(max_size=30)
    )
    guid = draw(st.sampled_from([dsa_guid(draw(st.integers(0, 50)))]) | nasty | st.uuids().map(str))
    forest = draw(st.sampled_from([FOREST, "other.example.org"]) | nasty)
    doc = {
        "event_id": draw(st.sampled_from([1411, "1411", 4625, None, -1, 1e309])),
        "computer": computer,
        "message": draw(
            st.sampled_from([event_text(computer, guid, forest)]) | st.text(max_size=80)
        ),
    }
    extra = draw(st.dictionaries(st.text(max_size=10), json_values, max_size=3))
    return json.dumps({**doc, **extra}, default=str).encode()


alert_bodies = st.one_of(
    st.binary(max_size=2000),
    st.text(max_size=1000).map(lambda t: t.encode("utf-8", "surrogatepass")),
    json_values.map(lambda v: json.dumps(v).encode()),
    mutated(SAMPLES),
    alert_like(),
)
header_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f"),
    max_size=60,
)


# -- /alerts ---------------------------------------------------------------------------------


@budget(700)
@given(
    body=alert_bodies,
    content_type=st.sampled_from(["application/json", "text/plain", "application/xml", "x/y"]),
)
def test_alert_bodies(hostile: Hostile, body: bytes, content_type: str) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": content_type}
    answer = _refused_changes_nothing(hostile, lambda: hostile.post("/alerts", body, headers))
    assert answer.status in (202, 400, 413), answer
    if answer.status == 202:
        doc = json.loads(answer.body)
        assert doc["accepted"] >= 0 and isinstance(doc["incidents"], list)


@st.composite
def alert_headers(draw: st.DrawFn, body: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    auth = draw(
        st.none()
        | st.sampled_from(
            [f"Bearer {TOKEN}", f"bearer {TOKEN}", "Bearer", "Bearer ", f"Basic {TOKEN}"]
        )
        | st.builds(lambda junk: f"Bearer {TOKEN}{junk}", header_text)
        | header_text
    )
    if auth is not None:
        headers["Authorization"] = auth
    now = int(time.time())
    ts = draw(
        st.none()
        | st.sampled_from([str(now), str(now - 400), str(now + 400), "0", "9" * 40, "²"])
        | header_text
    )
    if ts is not None:
        headers["X-AD1411-Timestamp"] = ts
    sig = draw(
        st.none()
        | st.just("valid")
        | st.sampled_from(["v1=", "v1=" + "0" * 64, "v1=" + "G" * 64, "sha256=" + "0" * 64])
        | header_text
    )
    if sig == "valid":
        sig = sign_body(HMAC_KEY.encode(), ts or "", body)
    if sig is not None:
        headers["X-AD1411-Signature"] = sig
    encoding = draw(st.none() | st.sampled_from(["gzip", "deflate", "br", "identity", "x-junk"]))
    if encoding is not None:
        headers["Content-Encoding"] = encoding
    headers["Content-Type"] = draw(header_text)
    return headers


@budget(700)
@given(data=st.data(), body=st.one_of(mutated(SAMPLES), st.binary(max_size=300)))
def test_alert_headers(hostile: Hostile, data: st.DataObject, body: bytes) -> None:
    headers = data.draw(alert_headers(body))
    answer = _refused_changes_nothing(hostile, lambda: hostile.post("/alerts", body, headers))
    assert answer.status in (202, 400, 401, 409, 413, 415), answer


# -- /slack/events ---------------------------------------------------------------------------

FORM_KEYS = [
    "command", "text", "user_id", "team_id", "channel_id", "response_url", "trigger_id",
    "payload", "token", "type", "api_app_id", "enterprise_id", "user_name",
]  # fmt: skip


@budget(500)
@given(
    fields=st.dictionaries(
        st.sampled_from(FORM_KEYS),
        st.one_of(
            st.sampled_from(
                ["/ad1411", "list", "U0VISITOR", "T0LAB0001", "C0INCIDENT", "{}", "[]"]
            ),
            json_values.map(json.dumps),
            st.text(max_size=60),
        ),
        max_size=8,
    ),
    signed=st.booleans(),
)
def test_slack_form_bodies(hostile: Hostile, fields: dict[str, str], signed: bool) -> None:
    # Never a responder here (the user is a visitor or junk): nothing may change at all.
    fields = {**fields, "user_id": "U0VISITOR"} if "user_id" in fields else fields
    body = urlencode(fields).encode()
    hostile.quiet()
    before = hostile.snapshot()
    answer = hostile.slack(body, "application/x-www-form-urlencoded", sign=signed)
    _clear_error(answer)
    assert answer.status in (200, 400, 401, 403, 404), answer
    assert hostile.snapshot() == before


@budget(800)
@given(
    text=st.text(max_size=200)
    | st.sampled_from(["list", "status ", "diagnose x", "help"]).flatmap(
        lambda verb: st.text(max_size=60).map(lambda t: verb + t)
    ),
    user=st.sampled_from(USERS),
)
# Bolt's own parse_body takes any form body with the word "payload" in it for an interaction.
@example(text="payload", user="U0ONCALL1")
@example(text="status payload={}", user="U0ONCALL1")
def test_slash_command_text(hostile: Hostile, text: str, user: str) -> None:
    fields = hostile.driver.slash_command_fields(
        "/ad1411", text, user_id=user, channel_id="C0INCIDENT"
    )
    hostile.quiet()
    before = hostile.snapshot()
    answer = hostile.slack(urlencode(fields).encode(), "application/x-www-form-urlencoded")
    assert answer.status == 200, answer
    shown = (
        json.loads(answer.body)["text"] if answer.body.startswith(b"{") else answer.body.decode()
    )
    assert shown.strip(), answer
    if user == "U0VISITOR" or not text.strip().lower().startswith("diagnose"):
        assert hostile.snapshot() == before, (text, answer)


@budget(600)
@given(
    user=st.sampled_from(USERS),
    action=st.sampled_from(["incident_diagnose", "incident_start"]) | st.text(max_size=20),
    value=st.none() | st.text(max_size=60) | st.sampled_from(["3f9a0c1b2e-1", "x; rm -rf /"]),
    drop=st.lists(
        st.sampled_from(
            ["user", "actions", "team", "response_url", "container", "type", "message"]
        ),
        max_size=2,
    ),
    extra=st.dictionaries(
        st.sampled_from(
            ["user", "actions", "team", "channel", "enterprise", "view", "state", "event"]
        ),
        json_values,
        max_size=2,
    ),
)
def test_block_actions_payloads(
    hostile: Hostile,
    *,
    user: str,
    action: str,
    value: str | None,
    drop: list[str],
    extra: dict[str, Any],
) -> None:
    button = SlackDriver.find_button(hostile.message, action_id="incident_diagnose")
    payload = hostile.driver.block_actions_payload(
        hostile.message, button, user_id=user, value=value
    )
    payload["actions"][0]["action_id"] = action
    for key in drop:
        payload.pop(key, None)
    payload.update(extra)
    body = urlencode({"payload": json.dumps(payload)}).encode()
    hostile.quiet()
    before = hostile.snapshot()
    answer = hostile.slack(body, "application/x-www-form-urlencoded")
    _clear_error(answer)
    assert answer.status in (200, 400, 403, 404), answer
    if answer.status != 200 or user == "U0VISITOR" or action != "incident_diagnose":
        assert hostile.snapshot() == before, (payload, answer)


@budget(400)
@given(
    view=st.dictionaries(
        st.sampled_from(
            ["id", "callback_id", "type", "state", "private_metadata", "team_id", "blocks"]
        ),
        json_values,
        max_size=6,
    ),
    user=st.sampled_from([{"id": "U0ONCALL1"}, {"id": "U0VISITOR"}, "U0ONCALL1", None, {}]),
    kind=st.sampled_from(["view_submission", "view_closed", "shortcut", "message_action", "x"]),
)
def test_view_submission_payloads(
    hostile: Hostile, view: dict[str, Any], user: Any, kind: str
) -> None:
    payload = {
        "type": kind,
        "team": {"id": "T0LAB0001"},
        "user": user,
        "api_app_id": "A0APP0001",
        "view": view,
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()
    answer = _refused_changes_nothing(
        hostile, lambda: hostile.slack(body, "application/x-www-form-urlencoded")
    )
    assert answer.status in (200, 400, 404), answer


@budget(300)
@given(
    text=mutated([event_text(f"dc3.{FOREST}", dsa_guid(n), FOREST).encode() for n in range(3)])
    | st.binary(max_size=300)
)
def test_alert_channel_events(hostile: Hostile, text: bytes) -> None:
    event = {
        "type": "message",
        "channel": "C0ALERTS",
        "user": "U0ONCALL1",
        "text": text.decode("utf-8", "replace"),
        "ts": f"{time.time():.6f}",
    }
    envelope = hostile.driver.event_envelope(event)
    answer = _refused_changes_nothing(
        hostile, lambda: hostile.slack(json.dumps(envelope).encode(), "application/json")
    )
    assert answer.status == 200, answer


def test_the_suite_sent_several_thousand_requests(hostile: Hostile) -> None:
    # Runs last in this module (pytest keeps file order): the budget above was really spent.
    assert hostile.requests >= 3000, hostile.requests
