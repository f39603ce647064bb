"""Health probes, metrics and error pages.

``/healthz`` says the process is alive. ``/readyz`` checks what a request needs: the database, the
Celery broker and the channel layer, and answers 503 naming what is down; on PostgreSQL it also shows
this process's connection pool (size, idle, waiting requests, total wait). ``/metrics`` serves
Prometheus' text format (jetadmin/metrics.py). The error handlers answer in the API's JSON error
shape under ``/api/`` and with HTML pages elsewhere.
"""

from __future__ import annotations

import logging
import secrets
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from drf_spectacular.views import SpectacularAPIView

from jetadmin.api.errors import error_response, log_outage, outage_types
from jetadmin.celery import app as celery_app
from jetadmin.db.base import pool_stats

logger = logging.getLogger(__name__)


class SchemaView(SpectacularAPIView):
    """``/api/schema/``: the OpenAPI document. A browser gets the YAML as text to read in place (it
    would download ``application/vnd.oai.openapi``); ``?format=json`` and API clients are unchanged."""

    schema = None  # not an operation of the API it describes

    def get(self, request: Any, *args: Any, **kwargs: Any) -> HttpResponse:
        response = super().get(request, *args, **kwargs)
        if "format" not in request.GET and "text/html" in request.headers.get("Accept", ""):
            response.add_post_render_callback(_as_text)
        return response


def _as_text(response: HttpResponse) -> None:
    response["Content-Type"] = "text/plain; charset=utf-8"
    response["Content-Disposition"] = "inline"


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _check_broker() -> None:
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
        if conn.transport_cls not in ("memory",):
            conn.default_channel  # noqa: B018 - opening the channel is the check


def _check_channel_layer() -> None:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer configured")

    async def roundtrip() -> None:
        channel = await layer.new_channel("readyz.")
        token = uuid.uuid4().hex
        await layer.send(channel, {"type": "readyz.ping", "token": token})
        message = await layer.receive(channel)
        if message.get("token") != token:
            raise RuntimeError("channel layer returned a foreign message")

    async_to_sync(roundtrip)()


CHECKS: dict[str, Callable[[], None]] = {
    "database": _check_database,
    "broker": _check_broker,
    "channel_layer": _check_channel_layer,
}


def readyz(request: HttpRequest) -> JsonResponse:
    results: dict[str, Any] = {}
    ok = True
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            check()
        except Exception as exc:  # any failure means "not ready"; the reason goes to the body and the log
            ok = False
            logger.warning("readyz: %s check failed: %s", name, exc)
            results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
        else:
            results[name] = {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1)}
    body: dict[str, Any] = {"status": "ok" if ok else "unavailable", "checks": results}
    stats = pool_stats(connection)
    if stats is not None:  # this process's PostgreSQL pool: how often requests waited for a connection
        body["database_pool"] = stats
    return JsonResponse(body, status=200 if ok else 503)


def metrics_view(request: HttpRequest) -> HttpResponse:
    """``/metrics``: every process' metrics in Prometheus' text format (jetadmin/metrics.py), for a
    scraper with ``Authorization: Bearer <JETADMIN_METRICS_TOKEN>`` or a signed-in staff member."""
    from django.conf import settings

    from apps.workflows.observe import scrape_gauges
    from jetadmin import metrics

    token = settings.JETADMIN_METRICS_TOKEN
    given = request.headers.get("Authorization", "")
    bearer_ok = bool(token) and secrets.compare_digest(given.encode(), f"Bearer {token}".encode())
    user = getattr(request, "user", None)
    if not bearer_ok and not (user is not None and user.is_authenticated and user.is_staff):
        response = HttpResponse("Metrics need a bearer token or a staff session.\n", status=401)
        response["Content-Type"] = "text/plain; charset=utf-8"
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    body, content_type = metrics.exposition(scrape_gauges)
    return HttpResponse(body, content_type=content_type)


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def _page(request: HttpRequest, status: int, title: str, message: str) -> HttpResponse:
    if _is_api(request):
        return error_response(status, message)
    return render(request, "error.html", {"title": title, "message": message}, status=status)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _page(request, 400, "Bad request", "The request could not be understood.")


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _page(request, 403, "Forbidden", "You do not have permission to do this.")


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _page(request, 404, "Not found", "There is nothing here, or you cannot see it.")


def server_error(request: HttpRequest) -> HttpResponse:
    raised = sys.exc_info()[1]
    if raised is not None and isinstance(raised, outage_types()):  # not a bug: a service is down
        log_outage(raised, request)
        message = "A service jetadmin needs is unavailable; try again shortly."
        response: HttpResponse = (
            error_response(503, message)
            if _is_api(request)
            else HttpResponse(f"<h1>Unavailable</h1><p>{message}</p>", status=503)  # no template: no DB
        )
        response["Retry-After"] = "5"
        return response
    if _is_api(request):
        return JsonResponse(
            {"error": {"code": "server_error", "message": "Internal server error.", "details": {}}},
            status=500,
        )
    return render(request, "error.html", {"title": "Server error", "message": "Something broke."}, status=500)
