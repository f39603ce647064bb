"""The query editor: a saved query's body in a code editor (SQL or JSON), a parameters form (from
the query's params schema, plus an input for every ``:name`` the SQL uses), Run (button or
Ctrl/Cmd+Enter) answered inline with a results grid, save and save-as, and a schema browser of the
datasource's tables. Permissions as in the API: ``query.view`` to open, ``query.run`` to run,
``query.manage`` to save; running never saves, so a viewer with ``query.run`` can try things."""

from __future__ import annotations

import contextlib
import json
import uuid
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.datasources import connectors
from apps.datasources import selectors as datasource_selectors
from apps.datasources import services as datasource_services
from apps.tenancy.selectors import TenantAccess
from jetadmin import schema_forms
from jetadmin.api.errors import ApplicationError
from jetadmin.pages import actor, render_page, require, search_page, tenant_page

from . import selectors, services
from .models import DataQuery

SECTION = "queries"
RESULT_PAGE = 50  # rows per page of the results grid (paged in the browser: a run is never repeated)


@tenant_page("query.view")
def query_list(request: HttpRequest, access: TenantAccess) -> HttpResponse:
    rows = selectors.query_list(tenant=access.tenant).select_related("datasource")
    page, search = search_page(request, rows)
    return render_page(
        request, access, "queries/list.html", {"page": page, "search": search}, section=SECTION
    )


class Draft:
    """What the editor's form says: name, datasource, body, params schema and parameter values."""

    def __init__(self, access: TenantAccess, data: QueryDict, query: DataQuery | None = None) -> None:
        self.errors: dict[str, list[str]] = {}
        self.name = data.get("name", query.name if query else "").strip()
        self.datasource_id = data.get("datasource", str(query.datasource_id) if query else "")
        self.datasource = None
        if self.datasource_id:
            source_id = _uuid(self.datasource_id)
            sources = datasource_selectors.datasource_list(tenant=access.tenant)
            self.datasource = sources.filter(pk=source_id).first() if source_id is not None else None
            if self.datasource is None:
                self.errors["datasource"] = ["Choose a datasource of this tenant."]
        cls = connectors.REGISTRY.get(self.datasource.type) if self.datasource else None
        self.language = cls.body_language if cls else "sql"
        self.body_text = data.get("body", _body_text(query.body) if query else "")
        self.schema_text = data.get(
            "params_schema",
            json.dumps(query.params_schema, indent=2) if query and query.params_schema else "",
        ).strip()
        self.params_schema: dict[str, Any] | None = None
        if self.schema_text:
            try:
                self.params_schema = json.loads(self.schema_text)
            except ValueError as exc:
                self.errors["params_schema"] = [f"Enter valid JSON ({exc})."]
        self.body: Any = self.body_text
        if self.language == "json":
            try:
                self.body = json.loads(self.body_text) if self.body_text.strip() else None
            except ValueError as exc:
                self.errors["body"] = [f"Enter the request as JSON ({exc})."]
        self.data = data

    def param_schema(self) -> dict[str, Any]:
        """The params schema, plus a text property for every ``:name`` in the SQL it does not declare."""
        schema = dict(self.params_schema or {})
        props = dict(schema.get("properties") or {})
        kind = self.datasource.type if self.datasource else ""
        for name in datasource_services.body_param_names(kind, self.body):
            props.setdefault(
                name, {"type": "string", "description": "Read as JSON when it parses (1, true, null)."}
            )
        return {**schema, "properties": props}

    def param_fields(self) -> list[schema_forms.Field]:
        """An input per property of :meth:`param_schema`."""
        schema = self.param_schema()
        values, _ = schema_forms.read(schema, self.data) if self.data else ({}, {})
        return schema_forms.fields(schema, values)

    def params(self) -> dict[str, Any]:
        declared = set(((self.params_schema or {}).get("properties") or {}).keys())
        values, errors = schema_forms.read({**self.param_schema(), "required": []}, self.data)
        for key, messages_ in errors.items():
            self.errors[f"params.{key}"] = messages_
        for key, value in list(values.items()):
            if key not in declared and isinstance(value, str):  # an undeclared :name: 1, true, null, "x"
                with contextlib.suppress(ValueError):
                    values[key] = json.loads(value)
        return values


def _uuid(value: str) -> str | None:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return None


def _body_text(body: Any) -> str:
    return body if isinstance(body, str) else json.dumps(body, indent=2)


def _editor(
    request: HttpRequest, access: TenantAccess, draft: Draft, query: DataQuery | None, status: int = 200
) -> HttpResponse:
    sources = list(datasource_selectors.datasource_list(tenant=access.tenant).only("id", "name", "type"))
    languages = {
        str(d.id): getattr(connectors.REGISTRY.get(d.type), "body_language", "json") for d in sources
    }
    context = {
        "query": query,
        "draft": draft,
        "datasources": sources,
        "languages": languages,
        "param_fields": draft.param_fields(),
        "errors": draft.errors,
    }
    return render_page(request, access, "queries/editor.html", context, section=SECTION, status=status)


@tenant_page("query.manage")
@require_http_methods(["GET", "POST"])
def query_new(request: HttpRequest, access: TenantAccess) -> HttpResponse:
    data = request.POST if request.method == "POST" else QueryDict(mutable=True)
    if request.method == "GET" and request.GET.get("datasource"):
        data = QueryDict(mutable=True)
        data["datasource"] = request.GET["datasource"]
    draft = Draft(access, data)
    if request.method == "POST":
        saved = _save(request, access, draft, None)
        if saved is not None:
            return saved
    return _editor(request, access, draft, None, status=400 if draft.errors else 200)


@tenant_page("query.view")
@require_http_methods(["GET", "POST"])
def query_detail(request: HttpRequest, access: TenantAccess, query_id: str) -> HttpResponse:
    query = selectors.query_get(tenant=access.tenant, query_id=query_id)
    draft = Draft(access, request.POST if request.method == "POST" else QueryDict(), query)
    if request.method == "POST":
        require(access, "query.manage")
        saved = _save(request, access, draft, query)
        if saved is not None:
            return saved
    return _editor(request, access, draft, query, status=400 if draft.errors else 200)


def _save(
    request: HttpRequest, access: TenantAccess, draft: Draft, query: DataQuery | None
) -> HttpResponse | None:
    """Save (or save as a new query); a redirect on success, None with ``draft.errors`` set."""
    save_as = request.POST.get("action") == "save_as"
    name = request.POST.get("save_as_name", "").strip() if save_as else draft.name
    if not name:
        draft.errors["save_as_name" if save_as else "name"] = ["Give the query a name."]
    if draft.datasource is None and "datasource" not in draft.errors:
        draft.errors["datasource"] = ["Choose a datasource."]
    if draft.errors:
        return None
    by = actor(request)
    fields = {"datasource": draft.datasource.id, "body": draft.body, "params_schema": draft.params_schema}  # type: ignore[union-attr]
    try:
        if query is None or save_as:
            query = services.query_create(actor=by, tenant=access.tenant, name=name, **fields)
        else:
            query = services.query_update(actor=by, query=query, name=name, **fields)
    except ApplicationError as exc:
        draft.errors.update(exc.details or {})
        draft.errors.setdefault("form", [exc.message])
        return None
    messages.success(request, f"Query {query.name!r} saved.")
    return redirect("query-detail", access.tenant.id, query.id)


@tenant_page("query.run")
@require_POST
def query_run(request: HttpRequest, access: TenantAccess) -> HttpResponse:
    """Run what the editor holds (saved or not) and answer the results fragment."""
    draft = Draft(access, request.POST)
    params = draft.params()
    if draft.datasource is None and not draft.errors:
        draft.errors["datasource"] = ["Choose a datasource."]
    result = None
    if not draft.errors:
        try:
            result = services.query_test(
                tenant=access.tenant,
                datasource=draft.datasource.id,  # type: ignore[union-attr]
                body=draft.body,
                params=params,
                params_schema=draft.params_schema,
            )
        except ApplicationError as exc:
            draft.errors.update(exc.details or {})
            draft.errors["form"] = [exc.message]
    rows = _rows(result)
    context = {
        "result": result,
        "errors": draft.errors,
        "rows": rows,
        "export": {"columns": (result or {}).get("columns") or [], "rows": rows},
        "page_size": RESULT_PAGE,
    }
    return render(request, "queries/_results.html", context, status=200)


def _rows(result: dict[str, Any] | None) -> list[list[Any]]:
    """The result's rows as lists of JSON-safe values (dates and decimals as text), column order."""
    if not result:
        return []
    columns = result.get("columns") or []
    rows = [
        [row.get(c) for c in columns] if isinstance(row, dict) else row for row in result.get("rows") or []
    ]
    return json.loads(json.dumps(rows, default=str))


@tenant_page("query.view")
@require_POST
def query_params(request: HttpRequest, access: TenantAccess) -> HttpResponse:
    """The parameters form again, after the body or the params schema changed in the editor."""
    return render(
        request, "queries/_params.html", {"param_fields": Draft(access, request.POST).param_fields()}
    )


@tenant_page("query.view")
@require_GET
def datasource_schema(request: HttpRequest, access: TenantAccess) -> HttpResponse:
    """The schema browser's tree for the datasource chosen in the editor."""
    tables, error = None, ""
    source_id = _uuid(request.GET.get("datasource", ""))
    source = (
        datasource_selectors.datasource_list(tenant=access.tenant).filter(pk=source_id).first()
        if source_id
        else None
    )
    if source is not None:
        try:
            tables = datasource_services.datasource_schema(datasource=source)
        except ApplicationError as exc:
            error = exc.message
    return render(request, "queries/_schema.html", {"tables": tables, "error": error, "source": source})


@tenant_page("query.manage")
@require_POST
def query_delete(request: HttpRequest, access: TenantAccess, query_id: str) -> HttpResponse:
    query = selectors.query_get(tenant=access.tenant, query_id=query_id)
    services.query_delete(actor=actor(request), query=query)
    messages.success(request, f"Query {query.name!r} deleted.")
    return redirect("query-list", access.tenant.id)
