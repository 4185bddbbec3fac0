"""Slack mrkdwn to safe HTML, for the emulator's web page.

Every character of the input ends up HTML-escaped unless it is one of the few constructs
rendered here: *bold*, _italic_, ~strike~, `code`, ```preformatted```, > quotes, links
(`<https://…|label>`; only http, https and mailto become links), mentions (`<@U…>`, `<#C…>`,
`<!here>`, `<!subteam^S…>`) and a few emoji shortcodes. Slack escapes &, < and > in text
(&amp; &lt; &gt;); they are unescaped once, then escaped again for HTML.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable

UserName = Callable[[str], str]

_TOKEN = re.compile(r"<([^<>\n]{1,2000})>")
_FENCE = re.compile(r"```(.+?)```", re.S)
_CODE = re.compile(r"`([^`\n]+)`")
_BOLD = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")
_ITALIC = re.compile(r"(?<![\w_])_(?=\S)([^_\n]+?)(?<=\S)_(?![\w_])")
_STRIKE = re.compile(r"(?<![\w~])~(?=\S)([^~\n]+?)(?<=\S)~(?![\w~])")
_EMOJI_CODE = re.compile(r":([a-z0-9_+-]{1,40}):")
_HOLE = re.compile("\ue000(\\d+)\ue001")
_SAFE_SCHEMES = ("http://", "https://", "mailto:")
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,20}$")

EMOJI = {
    "warning": "⚠️",
    "white_check_mark": "✅",
    "heavy_check_mark": "✔️",
    "x": "❌",
    "no_entry": "⛔",
    "hourglass": "⌛",
    "hourglass_flowing_sand": "⏳",
    "stopwatch": "⏱️",
    "rotating_light": "🚨",
    "lock": "🔒",
    "unlock": "🔓",
    "bell": "🔔",
    "memo": "📝",
    "wrench": "🔧",
    "mag": "🔍",
    "information_source": "ℹ️",
    "red_circle": "🔴",
    "large_green_circle": "🟢",
    "large_yellow_circle": "🟡",
    "arrows_counterclockwise": "🔄",
    "leftwards_arrow_with_hook": "↩️",
    "repeat": "🔁",
    "construction": "🚧",
    "eyes": "👀",
    "thumbsup": "👍",
    "+1": "👍",
    "tada": "🎉",
    "fire": "🔥",
    "skull": "💀",
    "link": "🔗",
    "clipboard": "📋",
    "raising_hand": "🙋",
    "stop_sign": "🛑",
    "arrow_right": "➡️",
    "white_circle": "⚪",
    "gear": "⚙️",
    "ballot_box_with_check": "☑️",
    "fast_forward": "⏩",
    "octagonal_sign": "🛑",
}


def _unescape_slack(text: str) -> str:
    """Slack's own three escapes, nothing else (no HTML entity decoding)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _esc(text: str) -> str:
    return html.escape(_unescape_slack(text), quote=True)


class _Holes:
    """HTML fragments kept out of the formatting passes behind private-use placeholders."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def keep(self, fragment: str) -> str:
        self.parts.append(fragment)
        return f"\ue000{len(self.parts) - 1}\ue001"

    def fill(self, text: str) -> str:
        # a kept fragment may hold placeholders of its own (a link inside code)
        for _ in range(4):
            if "\ue000" not in text:
                break
            text = _HOLE.sub(lambda m: self.parts[int(m.group(1))], text)
        return text


def _token_html(inner: str, user_name: UserName) -> str:
    """One <…> construct of Slack's markup."""
    target, _, label = inner.partition("|")
    if target.startswith("@"):
        user = target[1:]
        name = label or (user_name(user) if _USER_ID.match(user) else user)
        return f'<span class="mention">@{_esc(name)}</span>'
    if target.startswith("#"):
        return f'<span class="mention">#{_esc(label or target[1:])}</span>'
    if target.startswith("!"):
        special = target[1:]
        if special.startswith("subteam^"):
            return f'<span class="mention">{_esc(label or "@" + special[8:])}</span>'
        if special.startswith("date^"):
            return _esc(label or special)
        return f'<span class="mention">@{_esc(label or special)}</span>'
    url = _unescape_slack(target)
    if url.lower().startswith(_SAFE_SCHEMES):
        href = html.escape(url, quote=True)
        text = _esc(label) if label else html.escape(url, quote=True)
        return f'<a href="{href}" rel="noopener noreferrer" target="_blank">{text}</a>'
    return _esc("<" + inner + ">")


def _emoji(match: re.Match[str]) -> str:
    return EMOJI.get(match.group(1), match.group(0))


def _quotes(text: str) -> str:
    out: list[str] = []
    quote: list[str] = []
    for line in text.split("\n"):
        if line.startswith("&gt;"):
            quote.append(line[4:].lstrip(" "))
            continue
        if quote:
            out.append("<blockquote>" + "\n".join(quote) + "</blockquote>")
            quote = []
        out.append(line)
    if quote:
        out.append("<blockquote>" + "\n".join(quote) + "</blockquote>")
    return "\n".join(out)


def mrkdwn_html(text: str, user_name: UserName = lambda user_id: user_id) -> str:
    """Safe HTML for one mrkdwn string (see the module docstring)."""
    holes = _Holes()
    text = _TOKEN.sub(lambda m: holes.keep(_token_html(m.group(1), user_name)), text)
    text = _FENCE.sub(lambda m: holes.keep(f"<pre>{_esc(m.group(1).strip(chr(10)))}</pre>"), text)
    text = _CODE.sub(lambda m: holes.keep(f"<code>{_esc(m.group(1))}</code>"), text)
    text = _esc(text)
    text = _BOLD.sub(r"<b>\1</b>", text)
    text = _ITALIC.sub(r"<i>\1</i>", text)
    text = _STRIKE.sub(r"<s>\1</s>", text)
    text = _EMOJI_CODE.sub(_emoji, text)
    text = _quotes(text)
    text = text.replace("\n", "<br>")
    return holes.fill(text)


def plain_html(text: str) -> str:
    """plain_text objects: escaped, emoji shortcodes shown, line breaks kept."""
    return _EMOJI_CODE.sub(_emoji, html.escape(text, quote=True)).replace("\n", "<br>")
