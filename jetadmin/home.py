"""The tenant home page: recent runs, recent activity, shortcuts. It reads several apps (through
their selectors), so it lives above them; no app imports it."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from apps.tenancy import selectors
from apps.tenancy.models import PERMISSIONS
from apps.tenancy.selectors import TenantAccess
from apps.workflows import selectors as workflow_selectors
from jetadmin.pages import render_page, tenant_page


@tenant_page()
def tenant_home(request: HttpRequest, access: TenantAccess) -> HttpResponse:
    tenant = access.tenant
    context = {
        "role": access.role,
        "permissions": [(code, PERMISSIONS[code]) for code in access.role.permissions],
        "recent_runs": list(
            workflow_selectors.instance_list(tenant=tenant)
            .select_related("workflow")
            .order_by("-created_at")[:10]
        )
        if access.can("workflow.view")
        else None,
        "recent_audit": list(selectors.audit_log_list(tenant=tenant).order_by("-created_at")[:10])
        if access.can("audit.view")
        else None,
    }
    return render_page(request, access, "tenancy/tenant_home.html", context, section="home")
