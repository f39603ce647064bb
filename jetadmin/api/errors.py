"""One error shape for the whole API (CONTRACT "Conventions").

Every error is ``{"error": {"code", "message", "details"}}``. Domain code raises
:class:`ApplicationError` (a message and field details); DRF's own exceptions, Django's ``Http404`` /
``PermissionDenied`` and oversize bodies are mapped here too, so no client ever sees another shape.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response

logger = logging.getLogger("jetadmin.outage")


class ApplicationError(Exception):
    """A business rule said no. Mapped to a 4xx (default 400) with field details."""

    status_code: int = status.HTTP_400_BAD_REQUEST
    code: str = "validation_error"

    def __init__(
        self,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        code: str | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}
        if code:
            self.code = code
        if status_code:
            self.status_code = status_code


class Conflict(ApplicationError):
    status_code: int = status.HTTP_409_CONFLICT
    code: str = "conflict"


class ServiceUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = (
        "A service jetadmin needs (the database or the broker) is unavailable; try again shortly."
    )
    default_code = "unavailable"


def outage_types() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "a backing service is down", answered 503 (never 500)."""
    from django.db import InterfaceError, OperationalError
    from kombu.exceptions import OperationalError as BrokerError

    types: list[type[BaseException]] = [OperationalError, InterfaceError, BrokerError]
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        types += [RedisConnectionError, RedisTimeoutError]
    except ImportError:  # the embedded default may run without the redis client
        pass
    return tuple(types)


_URL_CREDENTIALS = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://)[^/@\s]*@")
_PASSWORD_PAIRS = re.compile(r"(?i)\b(password|passwd|pwd|secret|token)\s*=\s*\S+")


def outage_cause(exc: BaseException) -> str:
    """``<class>: <first line of the message>``, with URL credentials and ``password=…`` pairs removed."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    message = _PASSWORD_PAIRS.sub(r"\1=***", _URL_CREDENTIALS.sub(r"\1***@", message))
    return f"{type(exc).__module__}.{type(exc).__name__}: {message[:500]}"


def log_outage(exc: BaseException, request: Any = None) -> None:
    """The log line of a 503: which request, and what the database or broker said."""
    where = f"{request.method} {request.path}" if request is not None else "a request"
    logger.error("503 for %s: a backing service is unavailable (%s)", where, outage_cause(exc))


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body too large."
    default_code = "payload_too_large"


_CODES = {
    400: "validation_error",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "throttled",
    503: "unavailable",
}


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def error_response(status_code: int, message: str, details: dict[str, Any] | None = None) -> JsonResponse:
    """A plain Django response in the API error shape (for middleware and URL-level handlers)."""
    return JsonResponse(error_body(_CODES.get(status_code, "error"), message, details), status=status_code)


def _flatten(detail: Any) -> Any:
    """DRF's ErrorDetail trees → plain lists/dicts of strings."""
    if isinstance(detail, dict):
        return {str(k): _flatten(v) for k, v in detail.items()}
    if isinstance(detail, list):
        return [_flatten(v) for v in detail]
    return str(detail)


def _first_message(details: Any) -> str:
    if isinstance(details, dict):
        for key, value in details.items():
            inner = _first_message(value)
            return inner if key == "non_field_errors" else f"{key}: {inner}"
    if isinstance(details, list) and details:
        return _first_message(details[0])
    return str(details)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApplicationError):
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.status_code)
    if isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            detail=exc.message_dict if hasattr(exc, "error_dict") else exc.messages
        )
    if isinstance(exc, DataError):
        # The database refused a value the serializers let through (e.g. out of range): bad input.
        exc = exceptions.ValidationError({"non_field_errors": [f"Invalid value: {str(exc).splitlines()[0]}"]})
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    if isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, outage_types()):
        log_outage(exc, context.get("request"))
        exc = ServiceUnavailable()

    # Imported here: rest_framework.views imports the API settings, which import our authentication
    # classes, which import the services that raise ApplicationError (a cycle at import time).
    from rest_framework.views import exception_handler as drf_exception_handler

    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a real bug: let Django log it and answer 500

    if not isinstance(exc, exceptions.APIException):  # DRF only answers for its own exceptions
        return response
    if isinstance(exc, exceptions.ValidationError):
        details = _flatten(exc.detail)
        if not isinstance(details, dict):
            details = {"non_field_errors": details}
        message = "Invalid input. " + _first_message(details)
        code = "validation_error"
    else:
        details = {}
        message = str(exc.detail) if not isinstance(exc.detail, dict | list) else str(_flatten(exc.detail))
        code = _CODES.get(response.status_code) or str(getattr(exc, "default_code", "error"))
        wait = getattr(exc, "wait", None)
        if isinstance(exc, exceptions.Throttled) and wait is not None:
            details = {"retry_after_s": wait}
    response.data = error_body(code, message, details)
    return response
