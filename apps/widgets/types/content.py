"""Content widgets: ``text`` (plain text), ``markdown`` and ``html``. Markdown is rendered with
markdown-it (raw HTML in it is not passed through) and every HTML result is sanitized with nh3 (the
maintained Rust ``ammonia`` binding): only formatting tags survive, no script or style, no event
handler attributes, and links only to http(s), mailto and relative URLs, with ``rel="noopener
noreferrer"``. The processed data is the safe HTML; the page inserts it as it is."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import nh3
from markdown_it import MarkdownIt

from apps.widgets.types.base import WidgetDataError, WidgetType, register, required

MAX_CHARS = 200_000
TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "del", "div", "em", "h1", "h2", "h3", "h4", "h5", "h6",
    "hr", "i", "img", "li", "ol", "p", "pre", "s", "small", "span", "strong", "sub", "sup", "table",
    "tbody", "td", "th", "thead", "tr", "u", "ul",
}  # fmt: skip
ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"colspan", "rowspan", "align"},
    "th": {"colspan", "rowspan", "align"},
    "*": {"class"},
}
SCHEMES = {"http", "https", "mailto"}
_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def sanitized(html: str) -> str:
    return nh3.clean(
        html, tags=TAGS, attributes=ATTRIBUTES, url_schemes=SCHEMES, link_rel="noopener noreferrer"
    )


def _text(config: Mapping[str, Any], field: str) -> str:
    value = config.get(field)
    if value is None:
        return ""
    if isinstance(value, dict | list):
        raise WidgetDataError(f"{field} must be text, not {type(value).__name__}.")
    text = str(value)
    if len(text) > MAX_CHARS:
        raise WidgetDataError(f"{field} is {len(text):,} characters long; at most {MAX_CHARS:,} are shown.")
    return text


@register
class Text(WidgetType):
    type = "text"
    name = "Text"
    category = "content"
    config_schema = {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}}

    def validate_config(self, config: Mapping[str, Any]) -> dict[str, list[str]]:
        return required(config, "text")

    def process(self, config: Mapping[str, Any], context: Mapping[str, Any]) -> Any:
        return {"text": _text(config, "text")}


@register
class Markdown(WidgetType):
    type = "markdown"
    name = "Markdown"
    category = "content"
    config_schema = {
        "type": "object",
        "required": ["text"],
        "properties": {
            "text": {"type": "string", "description": "CommonMark with tables; raw HTML is not allowed"}
        },
    }

    def validate_config(self, config: Mapping[str, Any]) -> dict[str, list[str]]:
        return required(config, "text")

    def process(self, config: Mapping[str, Any], context: Mapping[str, Any]) -> Any:
        return {"html": sanitized(_markdown.render(_text(config, "text")))}


@register
class Html(WidgetType):
    type = "html"
    name = "HTML"
    category = "content"
    config_schema = {
        "type": "object",
        "required": ["html"],
        "properties": {
            "html": {"type": "string", "description": "sanitized: no script, handlers or javascript: URLs"}
        },
    }

    def validate_config(self, config: Mapping[str, Any]) -> dict[str, list[str]]:
        return required(config, "html")

    def process(self, config: Mapping[str, Any], context: Mapping[str, Any]) -> Any:
        return {"html": sanitized(_text(config, "html"))}


@register
class VegaLite(WidgetType):
    """A Vega-Lite spec drawn by vega-embed in the browser. ``spec.data.values`` may be a template (a
    single ``{{…}}`` keeps its type, so a query's rows arrive as a list). Only inline data is allowed:
    a spec may not make the viewer's browser fetch URLs (``data.url`` and the like are refused)."""

    type = "vega-lite"
    name = "Vega-Lite chart"
    category = "chart"
    config_schema = {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "spec": {"type": "object", "description": "a Vega-Lite spec; data.values may be a template"}
        },
    }

    def validate_config(self, config: Mapping[str, Any]) -> dict[str, list[str]]:
        errors = required(config, "spec")
        if not errors and not isinstance(config["spec"], dict | str):
            errors["spec"] = ["A Vega-Lite spec (an object)."]
        return errors

    def process(self, config: Mapping[str, Any], context: Mapping[str, Any]) -> Any:
        spec = config.get("spec")
        if not isinstance(spec, dict):
            raise WidgetDataError(f"spec must be an object, not {type(spec).__name__}.")
        if _fetches(spec):
            raise WidgetDataError("spec may only use inline data (data.values), not URLs.")
        values = (spec.get("data") or {}).get("values") if isinstance(spec.get("data"), dict) else None
        if values is not None and not isinstance(values, list | dict):
            raise WidgetDataError(f"spec.data.values must be a list of rows, not {type(values).__name__}.")
        return {"spec": spec}


def _fetches(node: Any) -> bool:
    """Whether a spec anywhere names a URL to load (data, images or a remote schema of marks)."""
    if isinstance(node, dict):
        return any(key == "url" or _fetches(value) for key, value in node.items())
    if isinstance(node, list):
        return any(_fetches(item) for item in node)
    return False
