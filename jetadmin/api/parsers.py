"""A JSON parser that never reads more than the configured body limit into memory.

DRF hands the raw request stream to its parsers, which bypasses Django's
``DATA_UPLOAD_MAX_MEMORY_SIZE`` check on ``request.body``; this parser enforces it itself and
answers 413 in the API's error shape.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from jetadmin.api.errors import ApplicationError, PayloadTooLarge

MAX_INPUT_DEPTH = 100  # nesting levels of a JSON body (run inputs are stored and re-encoded)
MSG_NUL = "It contains a NUL character (\\u0000), which cannot be stored."
MSG_TOO_DEEP = f"It is nested more than {MAX_INPUT_DEPTH} levels deep."


def json_problem(value: Any) -> str | None:
    """Why a parsed JSON value cannot be stored as a run input, or None.

    A NUL in a string (PostgreSQL's jsonb refuses it: the same 400 on every database) or nesting
    deeper than :data:`MAX_INPUT_DEPTH` (storing it would recurse past Python's limit). Iterative,
    since the point is to survive deep values.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return MSG_NUL
        elif isinstance(item, dict | list):
            if depth > MAX_INPUT_DEPTH:
                return MSG_TOO_DEEP
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return None


class LimitedJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        if stream is None:
            return None
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read(limit + 1)
        if len(raw) > limit:
            raise PayloadTooLarge(f"Request body is larger than {limit} bytes.")
        if not raw:
            return {}
        try:
            value = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"Malformed JSON: {exc}") from exc
        except RecursionError as exc:
            raise ParseError("Malformed JSON: nested too deeply.") from exc
        problem = json_problem(value)
        if problem:
            raise ApplicationError(
                f"The request body cannot be stored. {problem}", details={"body": [problem]}
            )
        return value
