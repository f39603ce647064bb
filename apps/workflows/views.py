"""Server-rendered workflow pages. The run page renders the run's nodes as they are, then follows
the run live over ``/ws/`` (static/js/realtime.js); the page enforces what the API does: a non-member
gets 404, a member without ``workflow.view`` 403."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from rest_framework.exceptions import NotFound

from apps.tenancy.selectors import tenant_access

from . import selectors
from .models import NodeRun


@login_required
def run_page(request: HttpRequest, tenant_id: str, instance_id: str) -> HttpResponse:
    try:
        access = tenant_access(user=request.user, api_key=None, tenant_id=tenant_id)  # type: ignore[arg-type]
        if not access.can("workflow.view"):
            raise PermissionDenied("Missing permission workflow.view.")
        instance = selectors.instance_get(tenant=access.tenant, instance_id=instance_id)
    except NotFound as exc:
        raise Http404 from exc
    nodes = (
        NodeRun.objects.filter(instance=instance, iteration="")
        .order_by("id")
        .values("node_id", "node_type", "status", "attempt")
    )
    context = {"tenant": access.tenant, "instance": instance, "nodes": list(nodes)}
    return render(request, "workflows/run.html", context)
