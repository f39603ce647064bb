"""Datasource pages: the list with each one's type and health, a form built from the type's config
schema (secrets write-only: left empty on an edit, they are kept), connection tests answered inline
(htmx), and a delete that names the saved queries going with it. Permissions as in the API:
``datasource.view`` to see, ``datasource.manage`` to change or test an unsaved config."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.contrib import messages
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from apps.queries import selectors as query_selectors
from apps.tenancy.selectors import TenantAccess
from jetadmin import schema_forms
from jetadmin.api.errors import ApplicationError
from jetadmin.pages import actor, render_page, require, search_page, tenant_page

from . import connectors, selectors, services
from .models import Datasource

SECTION = "datasources"


def _type(type_name: str) -> type[connectors.Connector]:
    cls = connectors.REGISTRY.get(type_name)
    if cls is None:
        raise Http404
    return cls


@tenant_page("datasource.view")
def datasource_list(request: HttpRequest, access: TenantAccess) -> HttpResponse:
    rows = (
        selectors.datasource_list(tenant=access.tenant)
        .annotate(query_count=Count("queries"))
        .order_by("name", "id")
    )
    page, search = search_page(request, rows)
    for datasource in page:
        cls = connectors.REGISTRY.get(datasource.type)
        datasource.type_name = cls.name if cls else datasource.type
        datasource.category = cls.category if cls else ""
    return render_page(
        request, access, "datasources/list.html", {"page": page, "search": search}, section=SECTION
    )


def _form_context(
    cls: type[connectors.Connector], values: dict[str, Any], errors: dict[str, Any]
) -> dict[str, Any]:
    return {
        "connector": cls.describe(),
        "fields": schema_forms.fields(cls.config_schema, values, errors, error_prefix="config."),
        "errors": errors,
    }


@tenant_page("datasource.manage")
@require_http_methods(["GET", "POST"])
def datasource_new(request: HttpRequest, access: TenantAccess) -> HttpResponse:
    type_name = request.GET.get("type") or request.POST.get("type")
    if not type_name:
        by_category: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for cls in sorted(connectors.REGISTRY.values(), key=lambda c: c.name.lower()):
            by_category[cls.category].append(cls.describe())  # a dict: templates would call a class
        return render_page(
            request,
            access,
            "datasources/pick_type.html",
            {"categories": sorted(by_category.items())},
            section=SECTION,
        )
    cls = _type(type_name)
    name = request.POST.get("name", "").strip()
    values: dict[str, Any] = {}
    errors: dict[str, Any] = {}
    if request.method == "POST":
        values, parse_errors = schema_forms.read(cls.config_schema, request.POST)
        errors = {f"config.{k}": v for k, v in parse_errors.items()}
        if not name:
            errors["name"] = ["Give the datasource a name."]
        if not errors:
            try:
                datasource = services.datasource_create(
                    actor=actor(request),
                    tenant=access.tenant,
                    name=name,
                    type=cls.type,
                    config=values,
                )
            except ApplicationError as exc:
                errors = {**exc.details, "form": [exc.message]}
            else:
                messages.success(request, f"Datasource {datasource.name!r} created.")
                return redirect("datasource-detail", access.tenant.id, datasource.id)
    context: dict[str, Any] = {**_form_context(cls, values, errors), "name": name, "creating": True}
    return render_page(
        request, access, "datasources/form.html", context, section=SECTION, status=400 if errors else 200
    )


@tenant_page("datasource.view")
@require_http_methods(["GET", "POST"])
def datasource_detail(request: HttpRequest, access: TenantAccess, datasource_id: str) -> HttpResponse:
    datasource = selectors.datasource_get(tenant=access.tenant, datasource_id=datasource_id)
    cls = _type(datasource.type)
    name, values, errors = datasource.name, services.masked_config(datasource), {}
    if request.method == "POST":
        require(access, "datasource.manage")
        name = request.POST.get("name", "").strip()
        values, parse_errors = schema_forms.read(cls.config_schema, request.POST, editing=True)
        errors = {f"config.{k}": v for k, v in parse_errors.items()}
        if not name:
            errors["name"] = ["Give the datasource a name."]
        if not errors:
            try:
                services.datasource_update(
                    actor=actor(request),
                    datasource=datasource,
                    name=name,
                    config=values,
                )
            except ApplicationError as exc:
                errors = {**exc.details, "form": [exc.message]}
            else:
                messages.success(request, f"Datasource {datasource.name!r} saved.")
                return redirect("datasource-detail", access.tenant.id, datasource.id)
    context = {**_form_context(cls, values, errors), "name": name, "datasource": datasource}
    return render_page(
        request, access, "datasources/form.html", context, section=SECTION, status=400 if errors else 200
    )


@tenant_page("datasource.manage")
@require_POST
def datasource_test_unsaved(request: HttpRequest, access: TenantAccess) -> HttpResponse:
    cls = _type(request.POST.get("type", ""))
    config, errors = schema_forms.read(cls.config_schema, request.POST)
    if errors:
        result = {"ok": False, "message": "; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items())}
    else:
        try:
            result = services.connection_test(cls.type, config)
        except ApplicationError as exc:
            result = {"ok": False, "message": exc.message}
    return render(request, "datasources/_test_result.html", {"result": result})


@tenant_page("datasource.view")
@require_POST
def datasource_test_saved(request: HttpRequest, access: TenantAccess, datasource_id: str) -> HttpResponse:
    datasource = selectors.datasource_get(tenant=access.tenant, datasource_id=datasource_id)
    try:
        result = services.datasource_test(datasource=datasource)
    except ApplicationError as exc:
        result = {"ok": False, "message": exc.message}
    return render(request, "datasources/_test_result.html", {"result": result})


@tenant_page("datasource.manage")
@require_http_methods(["GET", "POST"])
def datasource_delete(request: HttpRequest, access: TenantAccess, datasource_id: str) -> HttpResponse:
    datasource: Datasource = selectors.datasource_get(tenant=access.tenant, datasource_id=datasource_id)
    if request.method == "POST":
        services.datasource_delete(actor=actor(request), datasource=datasource)
        messages.success(request, f"Datasource {datasource.name!r} deleted.")
        return redirect("datasource-list", access.tenant.id)
    queries = query_selectors.query_list(tenant=access.tenant).filter(datasource=datasource)
    context = {"datasource": datasource, "queries": list(queries[:100]), "query_count": queries.count()}
    return render_page(request, access, "datasources/delete.html", context, section=SECTION)
