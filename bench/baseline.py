"""The baseline of bench/load.py: the least an API-started run needs, served by the same server.

``POST /bench/baseline/`` authenticates the caller (DRF token, as the API does), inserts one row and
publishes one Celery message; a worker acknowledges it with one UPDATE. Loaded into the server and
the workers with ``JETADMIN_NODE_MODULES=bench.baseline`` (the bench sets it; the product never does),
which also adds the URL. The table is created by the bench (``CREATE_SQL``).
"""

from __future__ import annotations

from typing import Any

from django.db import connection, transaction
from django.urls import path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jetadmin import urls
from jetadmin.celery import app

CREATE_SQL = "CREATE TABLE bench_baseline (id bigserial PRIMARY KEY, done boolean NOT NULL DEFAULT false)"
DONE_SQL = "SELECT COUNT(*) FROM bench_baseline WHERE done"


@app.task(name="bench.ack", ignore_result=True)
def ack(row_id: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("UPDATE bench_baseline SET done = true WHERE id = %s", [row_id])


class Baseline(APIView):
    def post(self, request: Request) -> Response:
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO bench_baseline DEFAULT VALUES RETURNING id")
            row_id = int(cursor.fetchone()[0])
        transaction.on_commit(lambda: ack.delay(row_id))
        return Response({"id": row_id}, status=202)

    def get(self, request: Request) -> Response:  # the unloaded probe of an authenticated request
        return Response({"ok": True})


def _install(**_: Any) -> None:
    urls.urlpatterns.insert(0, path("bench/baseline/", Baseline.as_view()))


_install()
