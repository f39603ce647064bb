"""Parsing request bodies: every API view validates its input the same way."""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request

from jetadmin.api.errors import ApplicationError

MSG_NOT_AN_OBJECT = "Expected a JSON object."


def parse_input(serializer_class: Any, request: Request, **kwargs: Any) -> dict[str, Any]:
    """The validated body, or a 400 naming the fields (a body that is not an object is a 400 too)."""
    if not isinstance(request.data, dict):
        raise ApplicationError(MSG_NOT_AN_OBJECT, details={"non_field_errors": [MSG_NOT_AN_OBJECT]})
    serializer = serializer_class(data=request.data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
