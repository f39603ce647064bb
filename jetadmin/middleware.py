"""Request-level guards that must answer before any view runs."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from jetadmin.api.errors import error_response


class RequestGuardMiddleware:
    """Refuse, before any view runs: bodies announcing a size over the limit (413), and NUL bytes
    in the query string (400) — PostgreSQL text cannot hold them, so they would fail deep inside."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "\x00" in request.GET.urlencode() or any("\x00" in v for vs in request.GET.lists() for v in vs[1]):
            return error_response(
                400, "The query string contains a NUL byte.", {"query": ["NUL bytes are not allowed."]}
            )
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
