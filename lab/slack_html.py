"""Block Kit to HTML for the emulator's web page: messages, threads and modals as Slack shows
them, built only from what the bot really posted. Text goes through lab.slack_mrkdwn; every
attribute value is escaped; images are shown by their alt text (the page loads nothing from
outside)."""

from __future__ import annotations

import datetime
import html
import json
from dataclasses import dataclass, field
from typing import Any

from lab.slack_mrkdwn import mrkdwn_html, plain_html

Block = dict[str, Any]


def _attr(value: object) -> str:
    return html.escape(str(value), quote=True)


@dataclass
class RenderContext:
    """Who is looking, and what a clickable element must carry back to the page's server."""

    me: str
    names: dict[str, str] = field(default_factory=dict)  # user ID -> display name
    bot_user_id: str = ""
    channel: str = ""
    ts: str = ""  # the message the blocks belong to
    ephemeral: bool = False
    view_id: str = ""  # set inside a modal
    errors: dict[str, str] = field(default_factory=dict)  # modal errors per block_id

    def name(self, user_id: str) -> str:
        return self.names.get(user_id, user_id)

    def text(self, obj: object) -> str:
        """A text object (mrkdwn or plain_text) as HTML."""
        if not isinstance(obj, dict):
            return ""
        value = str(obj.get("text", ""))
        if obj.get("type") == "mrkdwn":
            return mrkdwn_html(value, self.name)
        return plain_html(value)


def _confirm_attr(confirm: object) -> str:
    if not isinstance(confirm, dict):
        return ""
    shown = {
        "title": str((confirm.get("title") or {}).get("text", "Are you sure?")),
        "text": str((confirm.get("text") or {}).get("text", "")),
        "confirm": str((confirm.get("confirm") or {}).get("text", "Yes")),
        "deny": str((confirm.get("deny") or {}).get("text", "Cancel")),
        "style": str(confirm.get("style", "")),
    }
    return f' data-confirm="{_attr(json.dumps(shown))}"'


def button_html(element: Block, block_id: str, ctx: RenderContext) -> str:
    """A button that the page turns into a signed block_actions request."""
    style = element.get("style")
    classes = "btn" + (f" btn-{style}" if style in ("primary", "danger") else "")
    data = {
        "kind": "button",
        "channel": ctx.channel,
        "ts": ctx.ts,
        "block-id": block_id,
        "action-id": element.get("action_id", ""),
        "ephemeral": "1" if ctx.ephemeral else "",
        "view-id": ctx.view_id,
    }
    attrs = "".join(f' data-{k}="{_attr(v)}"' for k, v in data.items() if v)
    url = element.get("url")
    title = f' title="{_attr(url)}"' if isinstance(url, str) else ""
    return (
        f'<button type="button" class="{classes}"{attrs}{title}'
        f"{_confirm_attr(element.get('confirm'))}>{ctx.text(element.get('text'))}</button>"
    )


def _unsupported(kind: object) -> str:
    return f'<span class="unsupported">[{_attr(kind)}: not shown in the lab page]</span>'


def _element_html(element: object, block_id: str, ctx: RenderContext) -> str:
    if not isinstance(element, dict):
        return ""
    kind = element.get("type")
    if kind == "button":
        return button_html(element, block_id, ctx)
    if kind == "image":
        return f'<span class="img-alt">[image: {_attr(element.get("alt_text", ""))}]</span>'
    if kind in ("mrkdwn", "plain_text"):
        return f'<span class="ctx-text">{ctx.text(element)}</span>'
    return _unsupported(kind)


def _section(block: Block, ctx: RenderContext) -> str:
    block_id = str(block.get("block_id", ""))
    parts = []
    if block.get("text"):
        parts.append(f'<div class="section-text">{ctx.text(block["text"])}</div>')
    fields = block.get("fields") or []
    if fields:
        cells = "".join(f'<div class="field">{ctx.text(f)}</div>' for f in fields)
        parts.append(f'<div class="fields">{cells}</div>')
    body = f'<div class="section-body">{"".join(parts)}</div>'
    accessory = block.get("accessory")
    side = (
        f'<div class="accessory">{_element_html(accessory, block_id, ctx)}</div>'
        if accessory
        else ""
    )
    return f'<div class="bk-section">{body}{side}</div>'


def _rich_text_run(element: object, ctx: RenderContext) -> str:
    if not isinstance(element, dict):
        return ""
    kind = element.get("type")
    if kind == "text":
        out = plain_html(str(element.get("text", "")))
        style = element.get("style") or {}
        for flag, tag in (("code", "code"), ("bold", "b"), ("italic", "i"), ("strike", "s")):
            if style.get(flag):
                out = f"<{tag}>{out}</{tag}>"
        return out
    if kind == "link":
        return mrkdwn_html(f"<{element.get('url', '')}|{element.get('text') or ''}>", ctx.name)
    if kind == "user":
        return f'<span class="mention">@{_attr(ctx.name(str(element.get("user_id", ""))))}</span>'
    if kind == "emoji":
        return mrkdwn_html(f":{element.get('name', '')}:")
    return "".join(_rich_text_run(e, ctx) for e in element.get("elements") or [])


def _rich_text(block: Block, ctx: RenderContext) -> str:
    out = []
    for part in block.get("elements") or []:
        if not isinstance(part, dict):
            continue
        inner = "".join(_rich_text_run(e, ctx) for e in part.get("elements") or [])
        kind = part.get("type")
        if kind == "rich_text_preformatted":
            out.append(f"<pre>{inner}</pre>")
        elif kind == "rich_text_quote":
            out.append(f"<blockquote>{inner}</blockquote>")
        elif kind == "rich_text_list":
            items = "".join(
                f"<li>{_rich_text_run(item, ctx)}</li>" for item in part.get("elements") or []
            )
            tag = "ol" if part.get("style") == "ordered" else "ul"
            out.append(f"<{tag}>{items}</{tag}>")
        else:
            out.append(f"<div>{inner}</div>")
    return f'<div class="bk-rich">{"".join(out)}</div>'


def _option_text(option: object) -> str:
    return str((option or {}).get("text", {}).get("text", "")) if isinstance(option, dict) else ""


def _input(block: Block, ctx: RenderContext) -> str:
    block_id = str(block.get("block_id", ""))
    element = block.get("element") or {}
    action_id = str(element.get("action_id", ""))
    kind = element.get("type")
    data = f' data-block-id="{_attr(block_id)}" data-action-id="{_attr(action_id)}"'
    data += f' data-type="{_attr(kind)}"'
    if not block.get("optional"):
        data += " required"
    placeholder = _attr((element.get("placeholder") or {}).get("text", ""))
    initial = element.get("initial_value")
    if kind == "plain_text_input":
        value = _attr(initial or "")
        if element.get("multiline"):
            control = (
                f'<textarea class="input"{data} placeholder="{placeholder}" rows="4">'
                f"{value}</textarea>"
            )
        else:
            control = f'<input class="input"{data} placeholder="{placeholder}" value="{value}">'
    elif kind == "number_input":
        control = (
            f'<input class="input" type="number"{data} placeholder="{placeholder}" '
            f'value="{_attr(initial or "")}">'
        )
    elif kind == "static_select":
        chosen = (element.get("initial_option") or {}).get("value")
        options = "".join(
            f'<option value="{_attr(o.get("value", ""))}"'
            f"{' selected' if o.get('value') == chosen else ''}>{_attr(_option_text(o))}</option>"
            for o in element.get("options") or []
            if isinstance(o, dict)
        )
        control = (
            f'<select class="input"{data}><option value="">{placeholder}</option>{options}</select>'
        )
    elif kind in ("radio_buttons", "checkboxes"):
        input_type = "radio" if kind == "radio_buttons" else "checkbox"
        initial_values = {
            o.get("value")
            for o in (
                [element.get("initial_option")]
                if kind == "radio_buttons"
                else element.get("initial_options") or []
            )
            if isinstance(o, dict)
        }
        items = "".join(
            f'<label class="choice"><input type="{input_type}" name="{_attr(block_id)}" '
            f'value="{_attr(o.get("value", ""))}"'
            f"{' checked' if o.get('value') in initial_values else ''}> "
            f"{ctx.text(o.get('text'))}</label>"
            for o in element.get("options") or []
            if isinstance(o, dict)
        )
        control = f'<div class="choices"{data}>{items}</div>'
    else:
        control = _unsupported(kind)
    optional = ' <span class="optional">(optional)</span>' if block.get("optional") else ""
    hint = block.get("hint")
    hint_html = f'<div class="hint">{ctx.text(hint)}</div>' if hint else ""
    error = ctx.errors.get(block_id)
    error_html = f'<div class="error">{plain_html(error)}</div>' if error else ""
    return (
        f'<div class="bk-input"><label class="label">{ctx.text(block.get("label"))}{optional}'
        f"</label>{control}{hint_html}{error_html}</div>"
    )


def block_html(block: object, ctx: RenderContext) -> str:
    """One block."""
    if not isinstance(block, dict):
        return ""
    kind = block.get("type")
    block_id = str(block.get("block_id", ""))
    if kind == "header":
        return f'<div class="bk-header">{ctx.text(block.get("text"))}</div>'
    if kind == "section":
        return _section(block, ctx)
    if kind == "context":
        items = "".join(_element_html(e, block_id, ctx) for e in block.get("elements") or [])
        return f'<div class="bk-context">{items}</div>'
    if kind == "actions":
        items = "".join(_element_html(e, block_id, ctx) for e in block.get("elements") or [])
        return f'<div class="bk-actions">{items}</div>'
    if kind == "divider":
        return '<hr class="bk-divider">'
    if kind == "image":
        title = ctx.text(block.get("title")) if block.get("title") else ""
        return f'<div class="img-alt">[image: {_attr(block.get("alt_text", ""))}] {title}</div>'
    if kind == "rich_text":
        return _rich_text(block, ctx)
    if kind == "input":
        return _input(block, ctx)
    return f'<div class="bk-unknown">{_unsupported(kind)}</div>'


def blocks_html(blocks: object, ctx: RenderContext) -> str:
    """A list of blocks."""
    if not isinstance(blocks, list):
        return ""
    return "".join(block_html(b, ctx) for b in blocks)


def _attachment_html(attachment: object, ctx: RenderContext) -> str:
    if not isinstance(attachment, dict):
        return ""
    color = str(attachment.get("color", ""))
    safe_color = color if color.startswith("#") and len(color) <= 7 else ""
    style_class = {"good": "good", "warning": "warning", "danger": "danger"}.get(color, "")
    parts = [blocks_html(attachment.get("blocks"), ctx)]
    if attachment.get("text"):
        parts.append(mrkdwn_html(str(attachment["text"]), ctx.name))
    for f in attachment.get("fields") or []:
        if isinstance(f, dict):
            parts.append(
                f'<div class="field"><b>{_attr(f.get("title", ""))}</b><br>'
                f"{mrkdwn_html(str(f.get('value', '')), ctx.name)}</div>"
            )
    color_attr = f' data-color="{_attr(safe_color)}"' if safe_color else ""
    return f'<div class="attachment {style_class}"{color_attr}>{"".join(parts)}</div>'


def _time(ts: str) -> str:
    try:
        seconds = float(ts)
    except ValueError:
        return ""
    return datetime.datetime.fromtimestamp(seconds).strftime("%H:%M:%S")


def message_html(message: dict[str, Any], ctx: RenderContext, *, in_thread: bool = False) -> str:
    """One message: author, time, blocks (or text), attachments, reactions, thread link."""
    ts = str(message.get("ts", ""))
    channel = str(message.get("channel", ctx.channel))
    ephemeral = bool(message.get("is_ephemeral"))
    mctx = RenderContext(
        me=ctx.me,
        names=ctx.names,
        bot_user_id=ctx.bot_user_id,
        channel=channel,
        ts=ts,
        ephemeral=ephemeral,
    )
    # An ephemeral reply carries its reader as "user"; Slack shows it from the app.
    author = ctx.bot_user_id if ephemeral else str(message.get("user", ""))
    is_bot = author == ctx.bot_user_id or "bot_id" in message
    name = ctx.name(author) if author else "unknown"
    badge = ' <span class="app-badge">APP</span>' if is_bot else ""
    blocks = message.get("blocks")
    text = mrkdwn_html(str(message.get("text", "")), ctx.name)
    body = blocks_html(blocks, mctx) if blocks else f'<div class="section-text">{text}</div>'
    body += "".join(_attachment_html(a, mctx) for a in message.get("attachments") or [])
    notes = []
    if message.get("edited"):
        notes.append('<span class="edited">(edited)</span>')
    if ephemeral:
        notes.append('<span class="only-you">Only visible to you</span>')
    reactions = "".join(
        f'<span class="reaction">{mrkdwn_html(":" + str(r.get("name", "")) + ":")} '
        f"{int(r.get('count', 0))}</span>"
        for r in message.get("reactions") or []
        if isinstance(r, dict)
    )
    replies = int(message.get("reply_count", 0) or 0)
    thread_link = (
        f'<button type="button" class="thread-link" data-thread="{_attr(ts)}">'
        f"{replies} repl{'y' if replies == 1 else 'ies'}</button>"
        if replies and not in_thread
        else ""
    )
    classes = "message" + (" ephemeral" if ephemeral else "") + (" bot" if is_bot else "")
    return (
        f'<div class="{classes}" data-ts="{_attr(ts)}">'
        f'<div class="meta"><span class="author">{_attr(name)}</span>{badge} '
        f'<span class="time">{_time(ts)}</span> {" ".join(notes)}</div>'
        f'<div class="body">{body}</div>'
        f"{f'<div class=reactions>{reactions}</div>' if reactions else ''}{thread_link}</div>"
    )


def view_html(view: dict[str, Any], ctx: RenderContext) -> str:
    """A modal: title, blocks (with inputs), close and submit."""
    view_id = str(view.get("id", ""))
    vctx = RenderContext(
        me=ctx.me,
        names=ctx.names,
        bot_user_id=ctx.bot_user_id,
        view_id=view_id,
        errors=ctx.errors,
    )
    title = ctx.text(view.get("title"))
    close = ctx.text(view.get("close")) or "Cancel"
    submit = view.get("submit")
    general = ctx.errors.get("")
    general_html = f'<div class="error">{plain_html(general)}</div>' if general else ""
    submit_html = (
        f'<button type="button" class="btn btn-primary" data-kind="submit" '
        f'data-view-id="{_attr(view_id)}">{ctx.text(submit)}</button>'
        if submit
        else ""
    )
    return (
        f'<div class="modal" role="dialog" aria-modal="true" data-view-id="{_attr(view_id)}">'
        f'<div class="modal-title">{title}</div>'
        f'<div class="modal-body">{blocks_html(view.get("blocks"), vctx)}{general_html}</div>'
        f'<div class="modal-footer"><button type="button" class="btn" data-kind="close" '
        f'data-view-id="{_attr(view_id)}">{close}</button>{submit_html}</div></div>'
    )
