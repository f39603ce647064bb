"""Failure alerts: when a scheduled, webhook, API or manual run fails, its workflow's ``on_failure``
setting (else its tenant's) starts a run that tells someone.

- ``{"workflow": "<id>"}`` runs that workflow (an *error workflow*, as n8n has) with the input
  ``{"failed_run": {id, url, workflow: {id, name}, trigger, error, started_at, ended_at}}``;
- ``{"notify": {channel, to?, url?, datasource?}}`` sends a message through the ``notify`` node (the
  same channels and datasources), as a one-node run.

Either way the alert is itself a run, with trigger ``error``: durable and retried like any other, and
visible on the runs page. A run with trigger ``error`` never alerts, so a failing error workflow (even
one that names itself) cannot loop; test, widget and sub-workflow runs do not alert either (a failing
sub-workflow fails its parent, which does). The engine sends ``workflows.alert_failure`` after the
failing transaction commits; ``alerted_at`` on the failed run, set in the transaction that starts the
alert, makes a redelivered message a no-op, so each failure alerts once.
"""

from __future__ import annotations

import logging
from typing import Any

import jsonschema
from django.db import transaction
from django.utils import timezone

from apps.tenancy.models import Tenant
from apps.tenancy.services import SYSTEM
from apps.workflows.models import InstanceStatus, Trigger, Workflow, WorkflowInstance
from jetadmin.api.errors import ApplicationError

logger = logging.getLogger(__name__)

ALERTING_TRIGGERS = (Trigger.SCHEDULE, Trigger.WEBHOOK, Trigger.API, Trigger.MANUAL)
MSG_BAD = 'on_failure must be null, {"workflow": id} or {"notify": {...}}.'


def check(tenant: Tenant, value: Any) -> dict[str, Any] | None:
    """The setting as stored, or a 400 naming what is wrong (``on_failure.<field>``)."""
    if value in (None, {}):
        return None
    if not isinstance(value, dict) or len(value) != 1 or not ({"workflow", "notify"} & set(value)):
        raise ApplicationError(MSG_BAD, details={"on_failure": [MSG_BAD]})
    if "workflow" in value:
        target = str(value["workflow"])
        try:
            exists = Workflow.objects.filter(tenant=tenant, pk=target).exists()
        except (ValueError, TypeError, Exception):  # not a UUID
            exists = False
        if not exists:
            raise ApplicationError(
                "on_failure names a workflow that is not in this tenant.",
                details={"on_failure.workflow": ["No such workflow in this tenant."]},
            )
        return {"workflow": target}
    return {"notify": _check_notify(value["notify"])}


def _check_notify(inputs: Any) -> dict[str, Any]:
    from apps.workflows import nodes

    notify = nodes.get("notify")
    allowed = {"channel", "to", "url", "datasource", "subject"}
    if not isinstance(inputs, dict):
        raise ApplicationError(MSG_BAD, details={"on_failure.notify": ["Must be an object."]})
    extra = sorted(set(inputs) - allowed)
    if extra:
        raise ApplicationError(
            "on_failure.notify has fields it does not take.",
            details={f"on_failure.notify.{k}": ["Not a field of a failure notification."] for k in extra},
        )
    problems: dict[str, list[str]] = {}
    try:
        jsonschema.validate(inputs, notify.inputs_schema)
    except jsonschema.ValidationError as exc:
        field = ".".join(str(p) for p in exc.absolute_path) or "channel"
        problems.setdefault(f"on_failure.notify.{field}", []).append(exc.message)
    if not problems:
        for field, message in notify.validate_inputs(inputs):
            problems.setdefault(f"on_failure.notify.{field}", []).append(message)
    if problems:
        raise ApplicationError("The failure notification is incomplete.", details=problems)
    return dict(inputs)


def setting_for(instance: WorkflowInstance) -> dict[str, Any] | None:
    workflow = instance.workflow
    if workflow is not None and workflow.on_failure:
        return workflow.on_failure
    return instance.tenant.on_failure or None


def failed_run_summary(instance: WorkflowInstance) -> dict[str, Any]:
    workflow = instance.workflow
    return {
        "id": str(instance.id),
        "url": f"/t/{instance.tenant_id}/runs/{instance.id}/",
        "workflow": {"id": str(workflow.id), "name": workflow.name} if workflow else None,
        "trigger": instance.trigger,
        "error": instance.error,
        "started_at": instance.started_at.isoformat() if instance.started_at else None,
        "ended_at": instance.ended_at.isoformat() if instance.ended_at else None,
    }


def alert_failure(instance_id: str) -> str | None:
    """Start the failed run's alert if it has one and it was not sent; the alert run's id, else None."""
    from apps.workflows import services

    with transaction.atomic():
        instance = (
            WorkflowInstance.objects.select_related("workflow", "tenant")
            .filter(pk=instance_id, status=InstanceStatus.FAILED, alerted_at=None, parent=None)
            .filter(trigger__in=ALERTING_TRIGGERS, is_test=False)
            .first()
        )
        if instance is None:
            return None
        setting = setting_for(instance)
        if not setting:
            return None
        if not WorkflowInstance.objects.filter(pk=instance.pk, alerted_at=None).update(
            alerted_at=timezone.now()
        ):
            return None  # another delivery of this message got there first
        summary = {"failed_run": failed_run_summary(instance)}
        if "workflow" in setting:
            target = Workflow.objects.filter(tenant=instance.tenant, pk=setting["workflow"]).first()
            if target is None or target.current_version_id is None:
                logger.warning(
                    "failure alert of run %s: its error workflow %s is gone or empty",
                    instance.id,
                    setting["workflow"],
                )
                return None
            alert = services.workflow_execute(
                actor=SYSTEM, workflow=target, input=summary, trigger=Trigger.ERROR
            )
        else:
            alert = services.alert_run(
                tenant=instance.tenant, graph=notify_graph(setting["notify"]), input=summary
            )
    logger.info("failure alert of run %s: run %s", instance.id, alert.id)
    return str(alert.id)


def notify_graph(inputs: dict[str, Any]) -> dict[str, Any]:
    """start → notify: the message names the workflow, the error and the failed run's page."""
    notify_inputs = {
        **inputs,
        "subject": inputs.get("subject") or "jetadmin: a run of {{input.failed_run.workflow.name}} failed",
        "body": "Run {{input.failed_run.id}} ({{input.failed_run.trigger}}) failed: "
        "{{input.failed_run.error.message}}\n{{input.failed_run.url}}",
    }
    return {
        "nodes": [
            {"id": "start", "type": "start"},
            {"id": "notify", "type": "notify", "inputs": notify_inputs, "retry": {"max_attempts": 3}},
        ],
        "edges": [{"source": "start", "target": "notify"}],
    }
