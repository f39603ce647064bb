"""Request-level guards that must answer before any view runs."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from jetadmin.api.errors import error_response


class RequestSizeLimitMiddleware:
    """Refuse bodies that announce a size over the limit, before anything reads them (413)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        length = request.META.get("CONTENT_LENGTH")
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if length and limit is not None:
            try:
                too_big = int(length) > limit
            except ValueError:
                return error_response(400, "Invalid Content-Length header.")
            if too_big:
                return error_response(413, f"Request body is larger than {limit} bytes.")
        return self.get_response(request)
