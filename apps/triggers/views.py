"""Schedule and webhook management on a workflow's page: add a schedule (cron, time zone, input,
overlap), pause/resume or delete it; add a webhook (its URL is shown once, on the next view of the
page), revoke one. ``workflow.manage`` as in the API; every answer goes back to the workflow page."""

from __future__ import annotations

import json

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from apps.tenancy.selectors import TenantAccess
from apps.workflows import selectors as workflow_selectors
from jetadmin.api.errors import ApplicationError
from jetadmin.pages import actor, error_text, tenant_page

from . import selectors, services
from .models import Overlap

NEW_WEBHOOK = "jetadmin.new_webhook_url"  # session key: the URL shown once on the workflow page


def _back(access: TenantAccess, workflow_id: str) -> HttpResponse:
    return redirect(reverse("workflow-detail", args=[access.tenant.id, workflow_id]) + "#triggers")


def _error(request: HttpRequest, exc: ApplicationError) -> None:
    messages.error(request, error_text(exc))


@tenant_page("workflow.manage")
@require_POST
def schedule_add(request: HttpRequest, access: TenantAccess, workflow_id: str) -> HttpResponse:
    workflow = workflow_selectors.workflow_get(tenant=access.tenant, workflow_id=workflow_id)
    raw = request.POST.get("input", "").strip()
    try:
        try:
            run_input = json.loads(raw) if raw else {}
        except ValueError as exc:
            raise ApplicationError("The input must be JSON.", details={"input": [str(exc)]}) from None
        overlap = request.POST.get("overlap") or Overlap.SKIP
        if overlap not in Overlap.values:
            raise ApplicationError("Choose skip or allow.", details={"overlap": ["Unknown value."]})
        schedule = services.schedule_create(
            actor=actor(request),
            workflow=workflow,
            cron_expr=request.POST.get("cron", "").strip(),
            timezone_name=request.POST.get("timezone", "").strip() or "UTC",
            input=run_input,
            overlap=overlap,
        )
    except ApplicationError as exc:
        _error(request, exc)
    else:
        messages.success(
            request, f"Schedule {schedule.cron!r} added; next run {schedule.next_run_at:%Y-%m-%d %H:%M} UTC."
        )
    return _back(access, workflow_id)


@tenant_page("workflow.manage")
@require_POST
def schedule_change(
    request: HttpRequest, access: TenantAccess, workflow_id: str, schedule_id: str
) -> HttpResponse:
    """``action=delete``, else pause or resume (``enabled`` = 0/1)."""
    workflow = workflow_selectors.workflow_get(tenant=access.tenant, workflow_id=workflow_id)
    schedule = selectors.schedule_get(workflow=workflow, schedule_id=schedule_id)
    try:
        if request.POST.get("action") == "delete":
            services.schedule_delete(actor=actor(request), schedule=schedule)
            messages.success(request, f"Schedule {schedule.cron!r} deleted.")
        else:
            enabled = request.POST.get("enabled") == "1"
            services.schedule_update(actor=actor(request), schedule=schedule, enabled=enabled)
            messages.success(request, f"Schedule {schedule.cron!r} {'resumed' if enabled else 'paused'}.")
    except ApplicationError as exc:
        _error(request, exc)
    return _back(access, workflow_id)


@tenant_page("workflow.manage")
@require_POST
def webhook_add(request: HttpRequest, access: TenantAccess, workflow_id: str) -> HttpResponse:
    workflow = workflow_selectors.workflow_get(tenant=access.tenant, workflow_id=workflow_id)
    try:
        _, raw = services.webhook_create(
            actor=actor(request),
            workflow=workflow,
            name=request.POST.get("name", "").strip(),
            secret=request.POST.get("secret", ""),
        )
    except ApplicationError as exc:
        _error(request, exc)
    else:
        url = settings.JETADMIN_PUBLIC_URL.rstrip("/") + reverse("api-hook", args=[raw])
        request.session[NEW_WEBHOOK] = url  # shown once, by the next view of the workflow page
    return _back(access, workflow_id)


@tenant_page("workflow.manage")
@require_POST
def webhook_revoke(
    request: HttpRequest, access: TenantAccess, workflow_id: str, webhook_id: str
) -> HttpResponse:
    workflow = workflow_selectors.workflow_get(tenant=access.tenant, workflow_id=workflow_id)
    webhook = selectors.webhook_get(workflow=workflow, webhook_id=webhook_id)
    services.webhook_revoke(actor=actor(request), webhook=webhook)
    messages.success(request, f"Webhook {webhook.name or webhook.prefix!r} revoked.")
    return _back(access, workflow_id)
