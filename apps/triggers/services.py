"""Every write in triggers: schedules and webhooks, firing due schedules, and firing a webhook.

Runs are started through :func:`apps.workflows.services.workflow_execute` with the trigger recorded on
the instance. Audit rows never carry a webhook token or secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from rest_framework.exceptions import NotFound, Throttled

from apps.tenancy.services import SYSTEM, Actor, audit_log_write
from apps.triggers import cron
from apps.triggers.models import Overlap, Schedule, Webhook
from apps.workflows.models import InstanceStatus, Trigger, Workflow, WorkflowInstance
from apps.workflows.services import workflow_execute
from jetadmin import crypto
from jetadmin.api.errors import ApplicationError
from jetadmin.api.parsers import json_problem

logger = logging.getLogger(__name__)


MSG_INPUT_NOT_OBJECT = "The run input must be a JSON object."
MSG_BAD_SIGNATURE = "Missing or invalid X-Jetadmin-Signature (expected sha256=<hex HMAC-SHA256 of the body>)."
MSG_BODY_NOT_OBJECT = "The webhook body must be a JSON object (or empty)."
MSG_BODY_NOT_JSON = "The webhook body is not valid JSON: {error}."
MSG_START_FAILED = "The run could not be started (an internal error; see the server log)."
MSG_RATE_LIMITED = "Too many calls of this webhook; retry in {wait} s."

SIGNATURE_HEADER = "X-Jetadmin-Signature"
SIGNATURE_PREFIX = "sha256="
DEFAULT_WEBHOOK_RATE = "60/min"
FIRE_BATCH = 100
OPEN_STATUSES = (InstanceStatus.QUEUED, InstanceStatus.RUNNING, InstanceStatus.WAITING)
_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _cron_checked(expr: str, tz: str) -> str:
    try:
        return cron.validate(expr, tz)
    except cron.CronInvalid as exc:
        raise ApplicationError(exc.message, details={exc.field: [exc.message]}) from None


def _next_run(expr: str, tz: str, after: datetime) -> datetime:
    try:
        return cron.next_after(expr, tz, after)
    except cron.CronInvalid as exc:
        raise ApplicationError(exc.message, details={exc.field: [exc.message]}) from None


def _input_checked(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ApplicationError(MSG_INPUT_NOT_OBJECT, details={"input": [MSG_INPUT_NOT_OBJECT]})
    problem = json_problem(value)
    if problem:
        raise ApplicationError(f"The run input is invalid. {problem}", details={"input": [problem]})
    return value


# --- schedules ----------------------------------------------------------------------------------------
@transaction.atomic
def schedule_create(
    *,
    actor: Actor,
    workflow: Workflow,
    cron_expr: str,
    timezone_name: str = "UTC",
    input: Any = None,
    enabled: bool = True,
    overlap: str = Overlap.SKIP,
    now: datetime | None = None,
) -> Schedule:
    """A schedule of ``workflow``; its first tick is the first cron time after ``now``."""
    expr = _cron_checked(cron_expr, timezone_name)
    schedule = Schedule.objects.create(
        tenant=workflow.tenant,
        workflow=workflow,
        cron=expr,
        timezone=timezone_name,
        input=_input_checked({} if input is None else input),
        enabled=enabled,
        overlap=overlap,
        next_run_at=_next_run(expr, timezone_name, now or timezone.now()) if enabled else None,
        created_by=actor.user,
    )
    audit_log_write(
        actor=actor,
        tenant=workflow.tenant,
        action="schedule.create",
        obj=schedule,
        changes={
            "workflow": str(workflow.id),
            "cron": expr,
            "timezone": timezone_name,
            "enabled": enabled,
            "overlap": overlap,
        },
    )
    return schedule


@transaction.atomic
def schedule_update(
    *,
    actor: Actor,
    schedule: Schedule,
    cron_expr: str | None = None,
    timezone_name: str | None = None,
    input: Any = None,
    enabled: bool | None = None,
    overlap: str | None = None,
    now: datetime | None = None,
) -> Schedule:
    """Change a schedule. A changed cron, timezone or re-enabling counts the next tick from ``now``."""
    schedule = Schedule.objects.select_for_update().get(pk=schedule.pk)
    changes: dict[str, Any] = {}
    expr = schedule.cron if cron_expr is None else cron_expr
    tz = schedule.timezone if timezone_name is None else timezone_name
    if cron_expr is not None or timezone_name is not None:
        expr = _cron_checked(expr, tz)
    for field, new in (("cron", expr), ("timezone", tz), ("enabled", enabled), ("overlap", overlap)):
        old = getattr(schedule, field)
        if new is not None and new != old:
            changes[field] = [old, new]
            setattr(schedule, field, new)
    if input is not None:
        schedule.input = _input_checked(input)
        changes["input"] = "changed"
    if not schedule.enabled:
        schedule.next_run_at = None
    elif {"cron", "timezone", "enabled"} & set(changes) or schedule.next_run_at is None:
        schedule.next_run_at = _next_run(schedule.cron, schedule.timezone, now or timezone.now())
    schedule.save()
    audit_log_write(
        actor=actor, tenant=schedule.tenant, action="schedule.update", obj=schedule, changes=changes
    )
    return schedule


@transaction.atomic
def schedule_delete(*, actor: Actor, schedule: Schedule) -> None:
    audit_log_write(
        actor=actor,
        tenant=schedule.tenant,
        action="schedule.delete",
        obj=schedule,
        changes={"workflow": str(schedule.workflow_id), "cron": schedule.cron},
    )
    schedule.delete()


def _due_locked(now: datetime) -> list[Schedule]:
    """Due schedules, locked; rows another ticker holds are skipped, so no tick fires twice."""
    return list(
        Schedule.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(enabled=True, next_run_at__lte=now)
        .select_related("workflow", "workflow__tenant", "workflow__current_version")
        .order_by("next_run_at", "pk")[:FIRE_BATCH]
    )


def _previous_run_open(schedule: Schedule) -> bool:
    if schedule.last_instance_id is None:
        return False
    return WorkflowInstance.objects.filter(pk=schedule.last_instance_id, status__in=OPEN_STATUSES).exists()


def _schedule_fire(schedule: Schedule, now: datetime) -> bool:
    """Fire one due tick (or skip it); always moves ``next_run_at`` past ``now``. True if a run started."""
    started = False
    fields = ["next_run_at", "updated_at"]
    if schedule.overlap == Overlap.SKIP and _previous_run_open(schedule):
        schedule.skipped_count += 1
        schedule.last_skipped_at = now
        fields += ["skipped_count", "last_skipped_at"]
        logger.info("schedule %s: previous run still open, tick skipped", schedule.pk)
    else:
        try:
            with transaction.atomic():
                instance = workflow_execute(
                    actor=SYSTEM, workflow=schedule.workflow, input=schedule.input, trigger=Trigger.SCHEDULE
                )
        except ApplicationError as exc:  # e.g. the workflow has no graph yet
            schedule.last_error = exc.message
            logger.warning("schedule %s could not start a run: %s", schedule.pk, exc.message)
        except Exception:
            # One broken schedule must not block the others: log, record, and move to its next tick.
            # (The details go to the server log only; last_error is shown to the tenant.)
            schedule.last_error = MSG_START_FAILED
            logger.exception("schedule %s failed to start a run", schedule.pk)
        else:
            schedule.last_instance = instance
            schedule.last_error = ""
            started = True
        schedule.last_run_at = now
        fields += ["last_instance", "last_error", "last_run_at"]
    try:
        # Strictly after now, not after the missed tick: a downtime of N ticks fires once, not N times.
        schedule.next_run_at = cron.next_after(schedule.cron, schedule.timezone, now)
    except cron.CronInvalid as exc:
        schedule.enabled, schedule.next_run_at, schedule.last_error = False, None, exc.message
        fields += ["enabled", "last_error"]
    schedule.save(update_fields=sorted(set(fields)))
    return started


def schedules_fire_due(now: datetime | None = None) -> int:
    """Fire every enabled schedule whose tick is due at ``now`` (default: the current time).

    Returns the number of runs started. Safe to call from several tickers at once.
    """
    now = now or timezone.now()
    # Most ticks find nothing: answer from a plain read, without opening a write transaction (on
    # SQLite every transaction takes the database's write lock).
    if not Schedule.objects.filter(enabled=True, next_run_at__lte=now).exists():
        return 0
    started = 0
    while True:
        with transaction.atomic():
            batch = _due_locked(now)
            for schedule in batch:
                started += _schedule_fire(schedule, now)
        if len(batch) < FIRE_BATCH:
            return started


# --- webhooks -----------------------------------------------------------------------------------------
@transaction.atomic
def webhook_create(
    *, actor: Actor, workflow: Workflow, name: str = "", secret: str = ""
) -> tuple[Webhook, str]:
    """A webhook of ``workflow``; the raw token is returned once and only its hash is stored."""
    raw = f"jwh_{secrets.token_urlsafe(32)}"
    webhook = Webhook.objects.create(
        tenant=workflow.tenant,
        workflow=workflow,
        name=name,
        token_hash=_hash(raw),
        prefix=raw[:12],
        secret_encrypted=crypto.encrypt(secret) if secret else "",
        created_by=actor.user,
    )
    audit_log_write(
        actor=actor,
        tenant=workflow.tenant,
        action="webhook.create",
        obj=webhook,
        changes={"workflow": str(workflow.id), "name": name, "signed": bool(secret)},
    )
    return webhook, raw


@transaction.atomic
def webhook_revoke(*, actor: Actor, webhook: Webhook) -> Webhook:
    if webhook.revoked_at is None:
        webhook.revoked_at = timezone.now()
        webhook.save(update_fields=["revoked_at"])
    audit_log_write(
        actor=actor,
        tenant=webhook.tenant,
        action="webhook.revoke",
        obj=webhook,
        changes={"workflow": str(webhook.workflow_id), "name": webhook.name},
    )
    return webhook


def _parse_rate(rate: str) -> tuple[int, int]:
    """``"60/min"`` → (60, 60): calls allowed per window of seconds."""
    count, _, period = rate.partition("/")
    return int(count), _PERIODS[period.strip()[:1].lower()]


def _now_s() -> float:
    """The rate limiter's clock (a seam for tests)."""
    return time.time()


def _rate_limit(webhook: Webhook) -> None:
    """A fixed-window counter per webhook in the shared cache; over the limit → 429 + Retry-After."""
    limit, window = _parse_rate(getattr(settings, "JETADMIN_WEBHOOK_RATE", DEFAULT_WEBHOOK_RATE))
    now = _now_s()
    bucket = int(now // window)
    key = f"jetadmin:webhook-rate:{webhook.pk}:{bucket}"
    cache.add(key, 0, timeout=window + 1)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=window + 1)
        count = 1
    if count > limit:
        wait = max(1, int((bucket + 1) * window - now + 0.999))
        raise Throttled(wait=wait, detail=MSG_RATE_LIMITED.format(wait=wait))


def _signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    if not header or not header.startswith(SIGNATURE_PREFIX):
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest().encode()
    given = header[len(SIGNATURE_PREFIX) :].strip().lower().encode("utf-8", "replace")
    return hmac.compare_digest(expected, given)  # bytes: a non-ASCII header is just a mismatch


def _body_object(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        value = json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        message = MSG_BODY_NOT_JSON.format(error=str(exc).splitlines()[0] if str(exc) else "too deep")
        raise ApplicationError(message, details={"body": [message]}) from None
    if not isinstance(value, dict):
        raise ApplicationError(MSG_BODY_NOT_OBJECT, details={"body": [MSG_BODY_NOT_OBJECT]})
    problem = json_problem(value)
    if problem:
        raise ApplicationError(f"The webhook body is invalid. {problem}", details={"body": [problem]})
    return value


def webhook_fire(
    *, token: str, body: bytes, signature: str | None, ip: str | None = None
) -> WorkflowInstance:
    """Start a run of the webhook's workflow with the JSON body as input (trigger "webhook").

    Unknown or revoked token → 404; with a secret, a missing or wrong signature → 401; a body that
    is not a JSON object → 400; over the rate → 429. Nothing is started in any of those cases.
    """
    webhook = (
        Webhook.objects.select_related("workflow", "workflow__tenant", "workflow__current_version")
        .filter(token_hash=_hash(token), revoked_at__isnull=True)
        .first()
    )
    if webhook is None:
        raise NotFound()
    if webhook.secret_encrypted and not _signature_ok(
        crypto.decrypt(webhook.secret_encrypted), body, signature
    ):
        raise ApplicationError(MSG_BAD_SIGNATURE, code="not_authenticated", status_code=401)
    payload = _body_object(body)
    _rate_limit(webhook)
    instance = workflow_execute(
        actor=Actor(ip=ip), workflow=webhook.workflow, input=payload, trigger=Trigger.WEBHOOK
    )
    Webhook.objects.filter(pk=webhook.pk).update(last_used_at=timezone.now())
    return instance
