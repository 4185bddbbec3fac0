"""Block Kit checks the way Slack makes them: slack_sdk's models plus Slack's size limits."""

from __future__ import annotations

import logging
import secrets
import string
from typing import Any

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_MESSAGE_TEXT = 40_000
SECTION_TEXT_MAX = 3000
SECTION_FIELD_MAX = 2000
SECTION_FIELDS_MAX = 10
HEADER_TEXT_MAX = 150
BUTTON_TEXT_MAX = 75
BUTTON_VALUE_MAX = 2000
ACTION_ID_MAX = 255
BLOCK_ID_MAX = 255
ACTIONS_ELEMENTS_MAX = 25
CONTEXT_ELEMENTS_MAX = 10

_TEXT_TYPES = frozenset({"plain_text", "mrkdwn"})
_ID_ALPHABET = string.ascii_letters + string.digits

# slack_sdk's models warn about every unknown key; Slack itself ignores them silently.
logging.getLogger("slack_sdk.models").setLevel(logging.ERROR)


def _too_long(limit: int, pointer: str) -> str:
    return f"must be less than {limit + 1} characters [json-pointer:{pointer}]"


def _text_errors(obj: object, pointer: str, limit: int | None) -> list[str]:
    if not isinstance(obj, dict):
        return [f"expected an object [json-pointer:{pointer}]"]
    errors: list[str] = []
    if obj.get("type") not in _TEXT_TYPES:
        errors.append(f"must be one of plain_text, mrkdwn [json-pointer:{pointer}/type]")
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        errors.append(f"must be more than 0 characters [json-pointer:{pointer}/text]")
    elif limit is not None and len(text) > limit:
        errors.append(_too_long(limit, f"{pointer}/text"))
    return errors


def _element_errors(element: object, pointer: str) -> list[str]:
    if not isinstance(element, dict):
        return [f"expected an object [json-pointer:{pointer}]"]
    errors: list[str] = []
    action_id = element.get("action_id")
    if action_id is not None and (not isinstance(action_id, str) or len(action_id) > ACTION_ID_MAX):
        errors.append(_too_long(ACTION_ID_MAX, f"{pointer}/action_id"))
    if element.get("type") == "button":
        errors += _text_errors(element.get("text"), f"{pointer}/text", BUTTON_TEXT_MAX)
        value = element.get("value")
        if value is not None and (not isinstance(value, str) or len(value) > BUTTON_VALUE_MAX):
            errors.append(_too_long(BUTTON_VALUE_MAX, f"{pointer}/value"))
    return errors


def _limit_errors(block: dict[str, Any], pointer: str) -> list[str]:
    """Slack's own limits, checked on the raw JSON so the pointer says where."""
    errors: list[str] = []
    block_id = block.get("block_id")
    if block_id is not None and (not isinstance(block_id, str) or len(block_id) > BLOCK_ID_MAX):
        errors.append(_too_long(BLOCK_ID_MAX, f"{pointer}/block_id"))
    kind = block.get("type")
    if kind == "section":
        errors += _section_errors(block, pointer)
    elif kind == "header":
        errors += _text_errors(block.get("text"), f"{pointer}/text", HEADER_TEXT_MAX)
    elif kind in ("actions", "context"):
        limit = ACTIONS_ELEMENTS_MAX if kind == "actions" else CONTEXT_ELEMENTS_MAX
        errors += _elements_errors(block.get("elements"), pointer, limit)
    return errors


def _section_errors(block: dict[str, Any], pointer: str) -> list[str]:
    errors: list[str] = []
    if "text" not in block and "fields" not in block:
        errors.append(f"must provide text or fields [json-pointer:{pointer}]")
    if "text" in block:
        errors += _text_errors(block["text"], f"{pointer}/text", SECTION_TEXT_MAX)
    fields = block.get("fields", [])
    if isinstance(fields, list):
        if len(fields) > SECTION_FIELDS_MAX:
            where = f"{pointer}/fields"
            errors.append(f"no more than {SECTION_FIELDS_MAX} items allowed [json-pointer:{where}]")
        for i, field in enumerate(fields):
            errors += _text_errors(field, f"{pointer}/fields/{i}", SECTION_FIELD_MAX)
    if "accessory" in block:
        errors += _element_errors(block["accessory"], f"{pointer}/accessory")
    return errors


def _elements_errors(elements: object, pointer: str, limit: int) -> list[str]:
    if not isinstance(elements, list) or not elements:
        return [f"must provide at least 1 item [json-pointer:{pointer}/elements]"]
    errors: list[str] = []
    if len(elements) > limit:
        errors.append(f"no more than {limit} items allowed [json-pointer:{pointer}/elements]")
    seen: set[str] = set()
    for i, element in enumerate(elements):
        errors += _element_errors(element, f"{pointer}/elements/{i}")
        action_id = element.get("action_id") if isinstance(element, dict) else None
        if isinstance(action_id, str):
            if action_id in seen:
                errors.append(
                    f"duplicate action_id [json-pointer:{pointer}/elements/{i}/action_id]"
                )
            seen.add(action_id)
    return errors


def _model_error(block: dict[str, Any]) -> str | None:
    """What slack_sdk's models say about the block (to_dict() runs every nested validator)."""
    try:
        parsed = Block.parse(block)
        if parsed is None:
            return f"unsupported type: {block.get('type')!r}"
        parsed.to_dict()
    except (SlackObjectFormationError, TypeError, ValueError, KeyError, AttributeError) as exc:
        return str(exc) or type(exc).__name__
    return None


def block_errors(blocks: object, *, max_blocks: int = MAX_MESSAGE_BLOCKS) -> list[str]:
    """Every reason Slack would refuse these blocks, as Slack words them (empty list: valid)."""
    if not isinstance(blocks, list):
        return ["expected an array [json-pointer:/blocks]"]
    errors: list[str] = []
    if len(blocks) > max_blocks:
        errors.append(f"no more than {max_blocks} items allowed [json-pointer:/blocks]")
    block_ids: set[str] = set()
    for i, block in enumerate(blocks):
        pointer = f"/blocks/{i}"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            errors.append(f"missing required field: type [json-pointer:{pointer}]")
            continue
        found = _limit_errors(block, pointer)
        block_id = block.get("block_id")
        if isinstance(block_id, str):
            if block_id in block_ids:
                errors.append(f"duplicate block_id [json-pointer:{pointer}/block_id]")
            block_ids.add(block_id)
        if not found:
            model = _model_error(block)
            if model is not None:
                found.append(f"{model} [json-pointer:{pointer}]")
        errors += found
    return errors


def view_errors(view: object) -> list[str]:
    """Reasons Slack would refuse a modal or home view."""
    if not isinstance(view, dict):
        return ["expected an object [json-pointer:/view]"]
    errors = block_errors(view.get("blocks", []), max_blocks=MAX_VIEW_BLOCKS)
    if not errors:
        try:
            View(**view).to_dict()
        except (SlackObjectFormationError, TypeError, ValueError, KeyError) as exc:
            errors.append(f"{exc} [json-pointer:/view]")
    return errors


def _short_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(5))


def with_generated_ids(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copy of valid blocks with the block_id/action_id Slack invents when they are missing."""
    out: list[dict[str, Any]] = []
    for block in blocks:
        copy = dict(block)
        copy.setdefault("block_id", _short_id())
        if copy.get("type") == "actions" and isinstance(copy.get("elements"), list):
            copy["elements"] = [_with_action_id(e) for e in copy["elements"]]
        for key in ("accessory", "element"):
            if isinstance(copy.get(key), dict):
                copy[key] = _with_action_id(copy[key])
        out.append(copy)
    return out


def _with_action_id(element: Any) -> Any:
    if isinstance(element, dict) and element.get("type") != "image":
        element = dict(element)
        element.setdefault("action_id", _short_id())
    return element
