"""``manage.py serve``: the whole product in one process.

HTTP and websockets through uvicorn on the Channels ASGI app. On the embedded default (no
``REDIS_URL``) it also starts the in-process Celery worker; with ``REDIS_URL`` set it serves
HTTP/websockets only and ``celery -A jetadmin worker`` / ``beat`` run beside it.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

logger = logging.getLogger("jetadmin.serve")


class Command(BaseCommand):
    help = "Serve jetadmin (HTTP + websockets; plus the in-process worker on the embedded default)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--workers", type=int, default=1, help="uvicorn processes (distributed mode only)"
        )
        parser.add_argument(
            "--no-worker", action="store_true", help="do not start the embedded Celery worker"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        import uvicorn

        from jetadmin import embedded

        host, port = opts["host"], opts["port"]
        if settings.EMBEDDED and not opts["no_worker"]:
            embedded.start()
            mode = "embedded (SQLite, in-process worker, in-memory channel layer)"
        else:
            mode = "distributed (run `celery -A jetadmin worker` and `celery -A jetadmin beat` beside it)"
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104 - only for the printed URL
        self.say(f"jetadmin serving on http://{shown}:{port}/  [{mode}]", success=True)
        if settings.JETADMIN_ENCRYPTION_KEY_FILE:
            self.say(
                f"Secrets are encrypted with the generated key in {settings.JETADMIN_ENCRYPTION_KEY_FILE} "
                "(keep it; set JETADMIN_ENCRYPTION_KEYS to use your own)."
            )
        workers = 1 if settings.EMBEDDED else opts["workers"]
        if workers > 1 and not settings.JETADMIN_METRICS_DIR:  # /metrics must add up every web process
            import os
            import tempfile

            os.environ["JETADMIN_METRICS_DIR"] = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(
                prefix="jetadmin-metrics-"
            )
        from jetadmin import metrics
        from jetadmin.wsprotocol import WebSocketProtocol

        metrics.prepare_directory()
        try:
            uvicorn.run(
                "jetadmin.asgi:application",
                host=host,
                port=port,
                workers=workers,
                lifespan="off",
                log_level="info",
                log_config=None,  # uvicorn's lines go through the settings' LOGGING (LOG_FORMAT) too
                proxy_headers=True,
                # Run-stream messages are small JSON: compressing each one cost more CPU than sending it
                # (a third of a web process' time with 100 clients watching a run).
                ws_per_message_deflate=False,
                ws=WebSocketProtocol,  # a burst of frames leaves in one write (jetadmin/wsprotocol.py)
            )
        finally:
            if settings.EMBEDDED:
                embedded.stop()

    def say(self, text: str, success: bool = False) -> None:
        """To the terminal in text mode; a log line (JSON) when LOG_FORMAT=json."""
        if settings.LOG_FORMAT == "json":
            logger.info(text)
        else:
            self.stdout.write(self.style.SUCCESS(text) if success else text)
