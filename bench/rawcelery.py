"""The baseline for bench/engine.py: a bare Celery app with a no-op task on the same broker."""

import os

from celery import Celery

broker = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/10")
app = Celery("rawbench", broker=broker, backend=broker, set_as_current=False)
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_default_queue="rawbench",
    result_expires=600,
)


@app.task(name="rawbench.noop")
def noop(*args, **kwargs):
    return None
