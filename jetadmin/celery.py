"""The Celery application. Tasks carry ids ("wake-up hints"); the database holds the truth.

On the embedded default the broker is ``memory://`` and a worker thread inside the server process
consumes it (see :mod:`jetadmin.embedded`); with ``REDIS_URL`` set, ``celery -A jetadmin worker`` and
``celery -A jetadmin beat`` run as separate processes.

Database connections in workers: Celery's Django fixup closes every connection before and after each
task (and, with Django's pool under prefork, the whole pool), so each task would pay for a new
PostgreSQL connection. A prefork child runs one task at a time, so it keeps one persistent connection
instead (``JETADMIN_WORKER_CONN_MAX_AGE``), and a connection that saw an error is checked and replaced
after the task, which is how a worker recovers after a database restart. Thread-pool workers (the
embedded one) give pooled connections back after each task.
"""

import contextlib
import logging
import os
import sys
from typing import Any

import celery
from celery import Celery, signals
from django.conf import settings

from jetadmin.logs import JsonFormatter

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jetadmin.settings")

app = Celery("jetadmin")
# The CELERY_* Django settings, copied once as plain values. (``config_from_object("django.conf:settings",
# namespace="CELERY")`` reads them through Django's lazy settings object on every lookup, and Celery
# looks up a dozen settings per message: that was a third of the cost of publishing one.)
app.conf.update(
    {
        name.removeprefix("CELERY_").lower(): getattr(settings, name)
        for name in dir(settings)
        if name.startswith("CELERY_")
    }
)
# Read by Celery's Django fixup when a worker starts: close connections only every 2e9 tasks (never).
app.conf.CELERY_DB_REUSE_MAX = 10**9
app.autodiscover_tasks()


@signals.celeryd_init.connect
def _json_worker_output(sender: str, instance: Any, **_: Any) -> None:
    """Keep a worker's output one kind of line. It warns before Celery sets up its logging (a
    SecurityWarning when it runs as root): configure Django's logging now and send Python warnings
    through it. With LOG_FORMAT=json its text banner becomes one log line."""
    import django

    django.setup()
    logging.captureWarnings(True)
    if settings.LOG_FORMAT == "json":
        from celery.apps import worker as celery_worker

        # the shutdown notices Celery prints from its signal handlers
        celery_worker.safe_say = _say_json  # type: ignore[attr-defined]
        if not getattr(instance, "quiet", True):
            instance.quiet = True
            logging.getLogger("jetadmin.worker").info(
                "celery worker %s starting (celery %s)", sender, celery.__version__
            )


def _say_json(msg: str, f: Any = sys.__stderr__) -> None:
    """Celery's ``safe_say`` (one raw write, safe in a signal handler) writing one JSON log line."""
    record = logging.LogRecord("celery.worker", logging.INFO, __file__, 0, msg.strip(), None, None)
    with contextlib.suppress(OSError, ValueError, AttributeError):  # lost beats a worker that cannot stop
        os.write(f.fileno(), (JsonFormatter().format(record) + "\n").encode())


_PERSISTENT = False  # set in a prefork child: it keeps one connection across tasks


@signals.worker_process_init.connect
def _persistent_connections(**_: Any) -> None:
    """In a prefork child (one task at a time): no connection pool, one reused connection."""
    global _PERSISTENT
    from django.conf import settings

    database = settings.DATABASES["default"]
    options = database.setdefault("OPTIONS", {})
    if options.pop("pool", None) is not None:
        database["CONN_MAX_AGE"] = settings.JETADMIN_WORKER_CONN_MAX_AGE
        database["CONN_HEALTH_CHECKS"] = False  # a broken connection is found by its error instead
        if not settings.JETADMIN_WORKER_SYNCHRONOUS_COMMIT:
            # The engine's state changes need not wait for the disk: a node's claim or result lost
            # in a PostgreSQL crash only means it runs again (docs/engine.md, "Durable execution").
            options["options"] = f"{options.get('options', '')} -c synchronous_commit=off".strip()
    _PERSISTENT = True


@signals.task_postrun.connect
def _after_task(task: Any = None, **_: Any) -> None:
    """Between tasks: drop a connection that saw an error (a database restart), give pooled ones back
    (thread-pool workers), keep the rest."""
    from django.db import connections

    if task is not None and getattr(task.request, "is_eager", False):
        return  # ran inline in the caller (tests, eager mode): its connection is the caller's
    for conn in connections.all(initialized_only=True):
        if conn.in_atomic_block:
            continue
        if conn.settings_dict.get("OPTIONS", {}).get("pool") and not _PERSISTENT:
            conn.close()  # back to the pool
        elif _PERSISTENT or conn.errors_occurred:
            conn.close_if_unusable_or_obsolete()


@signals.worker_init.connect
def _metrics_start(**_: Any) -> None:
    """The worker's main process: clean the metrics directory of dead processes; serve it if asked."""
    from django.conf import settings

    from jetadmin import metrics

    metrics.prepare_directory()
    if settings.JETADMIN_METRICS_PORT:
        metrics.serve(settings.JETADMIN_METRICS_PORT)


@signals.worker_process_shutdown.connect
def _metrics_child_exit(pid: int | None = None, **_: Any) -> None:
    """A prefork child exits: its live gauges go (its counters stay in the totals)."""
    from jetadmin import metrics

    metrics.process_exited(pid)
