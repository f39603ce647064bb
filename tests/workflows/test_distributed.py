"""The distributed stack: PostgreSQL + Redis + two real ``celery worker`` processes.

Runs in the PostgreSQL pass of the suite (the SQLite pass is the embedded default, where one process
is the whole product). The in-process worker is stopped first so only the worker processes consume.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from apps.tenancy import services as tenancy
from apps.workflows import services
from apps.workflows.models import InstanceEvent, NodeRun, WorkflowInstance
from jetadmin import embedded
from tests.conftest import ROOT, _stop, subprocess_env
from tests.workflows import testnodes
from tests.workflows.graphs import SALES_INPUT, SALES_OUTPUT, SALES_REPORT, diamond

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql" or not settings.REDIS_URL,
        reason="worker processes need the distributed stack (DATABASE_URL=postgres..., REDIS_URL)",
    ),
]


def start_workers(
    tmp_path: Path, count: int = 2, concurrency: int = 4, **extra_env: str
) -> list[subprocess.Popen[bytes]]:
    env = subprocess_env(**{"JETADMIN_NODE_MODULES": "tests.workflows.testnodes", **extra_env})
    procs = []
    logs = []
    for i in range(count):
        log = tmp_path / f"worker{i}.log"
        cmd = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "jetadmin",
            "worker",
            "-P",
            "prefork",
            "-c",
            str(concurrency),
            "-n",
            f"w{i}-{os.getpid()}@%h",
            "--without-gossip",
            "--without-mingle",
            "-l",
            "info",
        ]
        procs.append(
            subprocess.Popen(
                cmd,
                cwd=ROOT,
                env=env,
                stdout=log.open("wb"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        logs.append(log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if all("ready." in log.read_text(errors="replace") for log in logs):
            return procs
        for proc, log in zip(procs, logs, strict=True):
            if proc.poll() is not None:
                raise AssertionError(f"worker exited:\n{log.read_text()}")
        time.sleep(0.2)
    raise AssertionError("workers did not become ready:\n" + "\n".join(log.read_text() for log in logs))


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[..., list[subprocess.Popen[bytes]]]]:
    embedded.stop()
    started: list[subprocess.Popen[bytes]] = []

    def start(**kwargs: Any) -> list[subprocess.Popen[bytes]]:
        procs = start_workers(tmp_path, **kwargs)
        started.extend(procs)
        return procs

    yield start
    for proc in started:
        _stop(proc, timeout=20)


def _wait_all(ids: list[Any], timeout: float) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        statuses = Counter(WorkflowInstance.objects.filter(pk__in=ids).values_list("status", flat=True))
        if statuses.get("queued", 0) + statuses.get("running", 0) == 0:
            return dict(statuses)
        time.sleep(0.2)
    return dict(Counter(WorkflowInstance.objects.filter(pk__in=ids).values_list("status", flat=True)))


def test_sales_report_on_two_worker_processes(workers, owner_tenant):
    workers()
    user, tenant = owner_tenant
    instance = services.workflow_test(
        actor=tenancy.Actor(user=user), tenant=tenant, graph=SALES_REPORT, input=SALES_INPUT
    )
    instance, timed_out = services.instance_wait(instance=instance, timeout_s=60)
    assert not timed_out and instance.status == "succeeded", instance.error
    assert instance.output == SALES_OUTPUT
    owners = {
        o.split(":")[1]
        for o in NodeRun.objects.filter(instance=instance).values_list("lease_owner", flat=True)
        if o
    }
    assert not owners  # leases are released on completion


def test_join_stress_every_join_runs_once(workers, owner_tenant):
    testnodes.ledger_create()
    workers(count=2, concurrency=4)
    user, tenant = owner_tenant
    actor = tenancy.Actor(user=user)
    graph = diamond(8)
    ids = [services.workflow_test(actor=actor, tenant=tenant, graph=graph).id for _ in range(200)]
    statuses = _wait_all(ids, timeout=240)
    assert statuses == {"succeeded": 200}, statuses
    joins = NodeRun.objects.filter(instance_id__in=ids, node_id="join")
    assert joins.filter(status="succeeded", attempt=1).count() == 200
    running = InstanceEvent.objects.filter(instance_id__in=ids, node_id="join", type="node.running")
    assert running.count() == 200
    ledger = testnodes.ledger_rows()
    after = [key for key, node in ledger if node == "after"]
    assert len(after) == 200 and len(set(after)) == 200  # the node behind each join ran exactly once
    branches = [key for key, node in ledger if node.startswith("b")]
    assert len(branches) == 1600 and len(set(branches)) == 1600
    for instance in WorkflowInstance.objects.filter(pk__in=ids[:5]):
        assert instance.output == {
            "n": {f"b{i}": {"key": f"{instance.id}:b{i}", "value": i} for i in range(8)}
        }
