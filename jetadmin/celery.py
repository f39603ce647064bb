"""The Celery application. Tasks carry ids ("wake-up hints"); the database holds the truth.

On the embedded default the broker is ``memory://`` and a worker thread inside the server process
consumes it (see :mod:`jetadmin.embedded`); with ``REDIS_URL`` set, ``celery -A jetadmin worker`` and
``celery -A jetadmin beat`` run as separate processes.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jetadmin.settings")

app = Celery("jetadmin")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
