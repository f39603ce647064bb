"""A test-only endpoint that holds a database connection for a while: ``GET /test/hold-connection/?s=0.2``
answers the PostgreSQL backend pid that served it. Loaded into a test server process with
``JETADMIN_NODE_MODULES=tests.poolhold`` (tests/test_db_pool.py); the product never loads it."""

from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.urls import path

from jetadmin import urls


def hold(request: HttpRequest) -> JsonResponse:
    seconds = min(float(request.GET.get("s", "0.2")), 5.0)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(%s), pg_backend_pid()", [seconds])
        row = cursor.fetchone()
    return JsonResponse({"pid": int(row[1])})


urls.urlpatterns.insert(0, path("test/hold-connection/", hold))
