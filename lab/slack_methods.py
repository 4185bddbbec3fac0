"""The Web API methods the bot calls, answered from the workspace as Slack answers them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lab.slack_blocks import MAX_MESSAGE_TEXT, block_errors, view_errors, with_generated_ids
from lab.slack_workspace import ResponseUrl, SlackApiFailure, SlackWorkspace

Params = dict[str, Any]
Answer = dict[str, Any]
Method = Callable[[SlackWorkspace, Params], Answer]

# Fields Slack accepts either as JSON or, in form bodies, as a JSON string.
JSON_FIELDS = ("blocks", "attachments", "view", "metadata")


def invalid_blocks(errors: list[str], error: str = "invalid_blocks") -> SlackApiFailure:
    """Slack's answer to blocks it refuses."""
    return SlackApiFailure(
        error, errors=errors, response_metadata={"messages": [f"[ERROR] {e}" for e in errors]}
    )


def _truthy(value: object) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("1", "true"))


def message_content(params: Params, *, require_body: bool = True) -> dict[str, Any]:
    """Text, blocks and attachments of a message, checked like Slack checks them."""
    content: dict[str, Any] = {}
    text = params.get("text")
    if text is not None:
        text = str(text)
        if len(text) > MAX_MESSAGE_TEXT:
            raise SlackApiFailure("msg_too_long")
        content["text"] = text
    blocks = params.get("blocks")
    if blocks is not None and blocks != "":
        if isinstance(blocks, str):
            raise SlackApiFailure("invalid_blocks_format")
        errors = block_errors(blocks)
        if errors:
            raise invalid_blocks(errors)
        content["blocks"] = with_generated_ids(blocks)
    attachments = params.get("attachments")
    if attachments is not None and attachments != "":
        if not isinstance(attachments, list) or not all(isinstance(a, dict) for a in attachments):
            raise SlackApiFailure("invalid_attachments")
        content["attachments"] = attachments
    if require_body and not content.get("text") and not blocks and not attachments:
        raise SlackApiFailure("no_text")
    if isinstance(params.get("metadata"), dict):
        content["metadata"] = params["metadata"]
    thread_ts = params.get("thread_ts")
    if isinstance(thread_ts, str) and thread_ts:
        content["thread_ts"] = thread_ts
    return content


def _without_channel(message: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in message.items() if k != "channel"}


def _postable_channel(ws: SlackWorkspace, channel_id: object) -> str:
    # Posting to a user ID opens the DM with that user, as Slack does.
    if isinstance(channel_id, str) and channel_id[:1] in ("U", "W"):
        user = ws.user(channel_id)
        channel_id = "D" + user.id[1:]
    channel = ws.channel(channel_id)
    if channel.is_archived:
        raise SlackApiFailure("is_archived")
    return channel.id


def auth_test(ws: SlackWorkspace, params: Params) -> Answer:
    """auth.test."""
    return {
        "ok": True,
        "url": f"https://{ws.domain}.slack.com/",
        "team": ws.team_name,
        "user": ws.bot_name,
        "team_id": ws.team_id,
        "user_id": ws.bot_user_id,
        "bot_id": ws.bot_id,
        "app_id": ws.app_id,
        "is_enterprise_install": False,
    }


def chat_post_message(ws: SlackWorkspace, params: Params) -> Answer:
    """chat.postMessage."""
    channel = _postable_channel(ws, params.get("channel"))
    content = message_content(params)
    if _truthy(params.get("reply_broadcast")) and "thread_ts" in content:
        content["subtype"] = "thread_broadcast"
    message = ws.post_message(channel, content, user=ws.bot_user_id)
    return {
        "ok": True,
        "channel": channel,
        "ts": message["ts"],
        "message": _without_channel(message),
    }


def chat_update(ws: SlackWorkspace, params: Params) -> Answer:
    """chat.update."""
    channel = ws.channel(params.get("channel")).id
    content = message_content(params, require_body=False)
    content.pop("thread_ts", None)
    message = ws.update_message(channel, params.get("ts"), content)
    return {
        "ok": True,
        "channel": channel,
        "ts": message["ts"],
        "text": message.get("text", ""),
        "message": _without_channel(message),
    }


def chat_post_ephemeral(ws: SlackWorkspace, params: Params) -> Answer:
    """chat.postEphemeral."""
    channel = _postable_channel(ws, params.get("channel"))
    user = ws.user(params.get("user")).id
    message = ws.post_ephemeral(channel, user, message_content(params), source="chat.postEphemeral")
    return {"ok": True, "message_ts": message["ts"]}


def chat_get_permalink(ws: SlackWorkspace, params: Params) -> Answer:
    """chat.getPermalink."""
    channel = ws.channel(params.get("channel")).id
    ts = params.get("message_ts")
    message = ws.message(channel, ts) if isinstance(ts, str) else None
    if message is None:
        raise SlackApiFailure("message_not_found")
    link = f"https://{ws.domain}.slack.com/archives/{channel}/p{message['ts'].replace('.', '')}"
    thread_ts = message.get("thread_ts")
    if thread_ts and thread_ts != message["ts"]:
        link += f"?thread_ts={thread_ts}&cid={channel}"
    return {"ok": True, "channel": channel, "permalink": link}


def reactions_add(ws: SlackWorkspace, params: Params) -> Answer:
    """reactions.add."""
    channel = ws.channel(params.get("channel")).id
    ws.add_reaction(channel, params.get("timestamp"), params.get("name"), ws.bot_user_id)
    return {"ok": True}


def conversations_info(ws: SlackWorkspace, params: Params) -> Answer:
    """conversations.info."""
    return {"ok": True, "channel": ws.channel(params.get("channel")).to_api()}


def conversations_replies(ws: SlackWorkspace, params: Params) -> Answer:
    """conversations.replies (one page: the parent and all its replies)."""
    channel = ws.channel(params.get("channel")).id
    messages = [_without_channel(m) for m in ws.thread(channel, params.get("ts"))]
    return {
        "ok": True,
        "messages": messages,
        "has_more": False,
        "response_metadata": {"next_cursor": ""},
    }


def users_info(ws: SlackWorkspace, params: Params) -> Answer:
    """users.info."""
    return {"ok": True, "user": ws.user(params.get("user")).to_api(ws.team_id)}


def files_info(ws: SlackWorkspace, params: Params) -> Answer:
    """files.info: the file object, and the text itself for text files and snippets."""
    obj, content = ws.file(params.get("file"))
    answer: Answer = {"ok": True, "file": obj, "comments": [], "response_metadata": {}}
    if str(obj.get("mimetype", "")).startswith("text/"):
        answer.update(content=content, is_truncated=False)
    return answer


def usergroups_users_list(ws: SlackWorkspace, params: Params) -> Answer:
    """usergroups.users.list."""
    return {"ok": True, "users": ws.usergroup_members(params.get("usergroup"))}


def _view(params: Params) -> dict[str, Any]:
    view = params.get("view")
    if not isinstance(view, dict):
        raise SlackApiFailure("invalid_arguments")
    errors = view_errors(view)
    if errors:
        raise invalid_blocks(errors, "invalid_arguments")
    return {**view, "blocks": with_generated_ids(view.get("blocks", []))}


def views_open(ws: SlackWorkspace, params: Params) -> Answer:
    """views.open."""
    view = _view(params)
    user = ws.use_trigger_id(params.get("trigger_id"))
    return {"ok": True, "view": ws.open_view(view, user)}


def views_push(ws: SlackWorkspace, params: Params) -> Answer:
    """views.push: a modal on top of the one open in the same client."""
    view = _view(params)
    user = ws.use_trigger_id(params.get("trigger_id"))
    if not ws.open_views(user or ""):
        raise SlackApiFailure("not_found")  # Slack: push needs an open modal
    return {"ok": True, "view": ws.open_view(view, user, push=True)}


def views_update(ws: SlackWorkspace, params: Params) -> Answer:
    """views.update."""
    view = _view(params)
    updated = ws.update_view(
        params.get("view_id"), params.get("external_id"), view, params.get("hash")
    )
    return {"ok": True, "view": updated}


def views_publish(ws: SlackWorkspace, params: Params) -> Answer:
    """views.publish (the Home tab)."""
    view = _view(params)
    user = params.get("user_id")
    if not isinstance(user, str) or not user:
        raise SlackApiFailure("invalid_arguments")
    ws.user(user)
    return {"ok": True, "view": ws.publish_home(user, view)}


METHODS: dict[str, Method] = {
    "auth.test": auth_test,
    "chat.postMessage": chat_post_message,
    "chat.update": chat_update,
    "chat.postEphemeral": chat_post_ephemeral,
    "chat.getPermalink": chat_get_permalink,
    "reactions.add": reactions_add,
    "conversations.info": conversations_info,
    "conversations.replies": conversations_replies,
    "users.info": users_info,
    "files.info": files_info,
    "usergroups.users.list": usergroups_users_list,
    "views.open": views_open,
    "views.update": views_update,
    "views.publish": views_publish,
    "views.push": views_push,
}


def post_to_response_url(ws: SlackWorkspace, ref: ResponseUrl, params: Params) -> None:
    """What Slack does with a message posted to a response_url."""
    if _truthy(params.get("delete_original")):
        if ref.message_ts is None:
            raise SlackApiFailure("no_original_message")
        ws.delete_message(ref.channel, ref.message_ts)
        return
    content = message_content(params)
    if _truthy(params.get("replace_original")) and ref.message_ts is not None:
        content.pop("thread_ts", None)
        ws.update_message(ref.channel, ref.message_ts, content, replace=True)
    elif params.get("response_type") == "in_channel":
        ws.post_message(ref.channel, content, user=ws.bot_user_id)
    else:
        ws.post_ephemeral(ref.channel, ref.user, content, source="response_url")
