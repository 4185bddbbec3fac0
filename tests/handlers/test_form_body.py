"""Form bodies decode exactly as urllib's parse_qsl decodes them, whatever they hold."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, unquote_plus, urlencode

from hypothesis import given
from hypothesis import strategies as st

from handlers.form_body import parse_form, unquote_plus_fast

# Characters a form value may hold raw or escaped, malformed escapes and whitespace included.
_RAW = st.text(alphabet=st.sampled_from(list("%+=&;aZ09-_.~*'()!:/? \t\r\nEfé€")), max_size=40)


@given(st.text(max_size=200))
def test_any_text_encoded_as_slack_does_comes_back(text: str) -> None:
    body = urlencode({"payload": text})
    assert parse_form(body) == parse_qsl(body, keep_blank_values=True) == [("payload", text)]


@given(_RAW)
def test_any_value_decodes_as_unquote_plus(value: str) -> None:
    assert unquote_plus_fast(value) == unquote_plus(value)


@given(st.lists(st.tuples(_RAW, _RAW), max_size=6))
def test_any_body_parses_as_parse_qsl(pairs: list[tuple[str, str]]) -> None:
    body = "&".join(f"{k}={v}" if i % 2 else f"{k}" for i, (k, v) in enumerate(pairs))
    assert parse_form(body) == parse_qsl(body, keep_blank_values=True)


def test_a_click_payload_keeps_escaped_plus_ampersand_and_equals() -> None:
    payload = {"value": "a+b c%2B&d=e;f", "text": 'ünï € "q" <@U1>', "trailing": "x  "}
    body = urlencode({"payload": json.dumps(payload)}) + "&click=3"
    assert json.loads(dict(parse_form(body))["payload"]) == payload
    assert dict(parse_form(body))["click"] == "3"
