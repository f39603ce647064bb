"""``ResultRenderer``: JSON for large query results (``queries/{id}/run/``, ``queries/test/``).

DRF's encoder calls back into Python for every Decimal and datetime — half the time of a 10,000-row
answer (bench/queries.py). orjson encodes datetimes, dates, times and UUIDs natively, in the same
text DRF gives them (ISO 8601, UTC as ``Z``), and calls :func:`json_value` only for the rest.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import orjson
from rest_framework.renderers import JSONRenderer

OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def json_value(value: Any) -> Any:
    """What DRF's encoder makes of the values orjson leaves to us (bytes as hex: they are binary)."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dt.timedelta):
        return str(value.total_seconds())
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, set | frozenset):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class ResultRenderer(JSONRenderer):
    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        if data is None:
            return b""
        return orjson.dumps(data, default=json_value, option=OPTIONS)
