"""What the emulator's page makes of Block Kit and mrkdwn: what Slack shows, and nothing a
message could use to run script in the page."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from handlers.render.incident import incident_blocks
from lab.slack_html import RenderContext, message_html, view_html
from lab.slack_mrkdwn import mrkdwn_html
from state.incidents import Incident

NAMES = {"U0ONCALL1": "alice", "U0BOT0001": "ad1411"}
CTX = RenderContext(me="U0ONCALL1", names=NAMES, bot_user_id="U0BOT0001", channel="C0INCIDENT")


def name(user_id: str) -> str:
    return NAMES.get(user_id, user_id)


def test_mrkdwn_formatting() -> None:
    assert mrkdwn_html("*Incident*\n`abc` (open)") == "<b>Incident</b><br><code>abc</code> (open)"
    assert mrkdwn_html("_it_ ~gone~ :warning:") == "<i>it</i> <s>gone</s> ⚠️"
    assert mrkdwn_html("snake_case_name and 2*3*4") == "snake_case_name and 2*3*4"
    assert mrkdwn_html("```reg add\n/v X```") == "<pre>reg add\n/v X</pre>"
    assert mrkdwn_html("&gt; quoted\nplain") == "<blockquote>quoted</blockquote><br>plain"
    assert mrkdwn_html("*<https://kb.example/938704|KB938704>*") == (
        '<b><a href="https://kb.example/938704" rel="noopener noreferrer" target="_blank">'
        "KB938704</a></b>"
    )


def test_mentions_use_names_from_the_workspace() -> None:
    html = mrkdwn_html("asked by <@U0ONCALL1>, cc <!here> <#C0ALERTS|ad-alerts>", name)
    assert html == (
        'asked by <span class="mention">@alice</span>, cc <span class="mention">@here</span> '
        '<span class="mention">#ad-alerts</span>'
    )


def test_text_cannot_become_markup() -> None:
    # What the bot escapes arrives as Slack entities and is shown as text.
    assert mrkdwn_html("a &lt;script&gt;x&lt;/script&gt; &amp; b") == (
        "a &lt;script&gt;x&lt;/script&gt; &amp; b"
    )
    # A raw tag from a careless sender is not a Slack link either: shown as text.
    assert mrkdwn_html("<script>alert(1)</script>") == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert mrkdwn_html("<img src=x onerror=alert(1)>") == "&lt;img src=x onerror=alert(1)&gt;"
    # Only http(s) and mailto become links; quotes cannot leave the href.
    assert "href" not in mrkdwn_html("<javascript:alert(1)|click>")
    html = mrkdwn_html('<https://x" onmouseover="alert(1)|label>')
    assert 'href="https://x&quot; onmouseover=&quot;alert(1)"' in html
    assert mrkdwn_html("`<b>`") == "<code>&lt;b&gt;</code>"


TAG = re.compile(r"<(/?)([a-z]+)([^>]*)>")
ALLOWED = {"b", "i", "s", "code", "pre", "br", "blockquote", "span", "a"}


@given(st.text(alphabet=st.sampled_from(list("<>&\"'*_~`|@#!:/ abxU0\n")), max_size=80))
def test_any_text_yields_only_the_tags_mrkdwn_makes(text: str) -> None:
    html = mrkdwn_html(text, name)
    for _closing, tag, attrs in TAG.findall(html):
        assert tag in ALLOWED, html
        names = re.findall(r"([a-z-]+)=", re.sub(r'"[^"]*"', '""', attrs))
        assert not [n for n in names if n.startswith("on")], html
    assert "<script" not in html.lower()


def incident() -> Incident:
    return Incident(
        id="e8663e3f1a-1",
        forest="lab.ad1411.test",
        dsa_guid="060ae58a-c655-4466-9d18-14f8084b3362",
        error_code=8589,
        status="open",
        count=2,
        version=3,
        reporters={"dc1.lab.ad1411.test": 2},
        created_at_ms=1_700_000_000_000,
        last_seen_ms=1_700_000_060_000,
        channel="C0INCIDENT",
        ts="1700000000.000100",
    )


def test_the_real_incident_message_renders_with_its_buttons() -> None:
    message: dict[str, Any] = {
        "ts": "1700000000.000100",
        "user": "U0BOT0001",
        "bot_id": "B0BOT0001",
        "text": "fallback",
        "blocks": incident_blocks(incident()),
        "channel": "C0INCIDENT",
        "reply_count": 1,
        "edited": {"user": "U0BOT0001", "ts": "1700000001.000000"},
    }
    for i, block in enumerate(message["blocks"]):
        block.setdefault("block_id", f"b{i}")
    html = message_html(message, CTX)
    assert 'class="bk-header">AD Event 1411: replication SPN failure</div>' in html
    assert "<b>Forest</b><br><code>lab.ad1411.test</code>" in html
    assert '<span class="app-badge">APP</span>' in html and "(edited)" in html
    assert 'data-thread="1700000000.000100">1 reply</button>' in html
    diagnose = re.search(r"<button[^>]*data-action-id=\"incident_diagnose\"[^>]*>", html)
    assert diagnose is not None
    assert 'class="btn btn-primary"' in diagnose.group(0)
    assert 'data-block-id="incident_actions"' in diagnose.group(0)
    assert 'data-ts="1700000000.000100"' in diagnose.group(0)


def test_buttons_carry_their_confirm_dialog_and_style() -> None:
    blocks = [
        {
            "type": "actions",
            "block_id": "step_5",
            "elements": [
                {
                    "type": "button",
                    "action_id": "approve",
                    "text": {"type": "plain_text", "text": "Approve restart"},
                    "style": "danger",
                    "confirm": {
                        "title": {"type": "plain_text", "text": "Restart dc1?"},
                        "text": {"type": "mrkdwn", "text": "It goes <down> for minutes"},
                        "confirm": {"type": "plain_text", "text": "Restart"},
                        "deny": {"type": "plain_text", "text": "Not now"},
                        "style": "danger",
                    },
                }
            ],
        }
    ]
    html = message_html({"ts": "1.000001", "user": "U0BOT0001", "blocks": blocks}, CTX)
    assert 'class="btn btn-danger"' in html
    assert "data-confirm=" in html and "&quot;title&quot;: &quot;Restart dc1?&quot;" in html
    assert "<down>" not in html  # the confirm text is an attribute value, escaped


def test_ephemeral_messages_say_so() -> None:
    html = message_html(
        {"ts": "1.000002", "user": "U0ONCALL1", "text": "queued", "is_ephemeral": True}, CTX
    )
    assert "Only visible to you" in html and 'class="message ephemeral bot"' in html
    assert '<span class="author">ad1411</span>' in html  # from the app, as Slack shows it


def test_a_modal_shows_its_inputs_errors_and_buttons() -> None:
    view = {
        "id": "V123",
        "type": "modal",
        "title": {"type": "plain_text", "text": "Approve step 5"},
        "submit": {"type": "plain_text", "text": "Approve"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": "reason",
                "label": {"type": "plain_text", "text": "Why"},
                "element": {"type": "plain_text_input", "action_id": "text", "multiline": True},
            },
            {
                "type": "input",
                "block_id": "when",
                "optional": True,
                "label": {"type": "plain_text", "text": "When"},
                "element": {
                    "type": "static_select",
                    "action_id": "pick",
                    "options": [
                        {"text": {"type": "plain_text", "text": "Now"}, "value": "now"},
                        {"text": {"type": "plain_text", "text": "<b>Later</b>"}, "value": "later"},
                    ],
                },
            },
        ],
    }
    ctx = RenderContext(me="U0APPROV1", names=NAMES, errors={"reason": "Say why"})
    html = view_html(view, ctx)
    assert '<div class="modal-title">Approve step 5</div>' in html
    assert '<textarea class="input" data-block-id="reason" data-action-id="text"' in html
    assert "required" in html.split("<textarea", 1)[1].split(">", 1)[0]
    assert '<div class="error">Say why</div>' in html
    assert "&lt;b&gt;Later&lt;/b&gt;" in html and "(optional)" in html
    assert 'data-kind="submit" data-view-id="V123">Approve</button>' in html
    assert 'data-kind="close" data-view-id="V123">Cancel</button>' in html
