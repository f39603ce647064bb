"""Definitions as files: a tenant's datasources, saved queries, workflows, widgets and dashboards as
readable JSON files a team keeps in Git (``manage.py export_tenant DIR`` / ``sync_tenant DIR``).

Layout: ``DIR/jetadmin.json`` (the format), then one file per object under ``datasources/``,
``queries/``, ``workflows/``, ``widgets/`` and ``dashboards/``, named ``<name>.<id prefix>.json``, keys
sorted, two-space indented: stable ids (references between objects are ids), so a diff shows what
changed. Secrets are never written: a datasource file names the environment variable each secret is
read from at sync (``"secrets": {"password": "${JETADMIN_SECRET_SHOP_DB_PASSWORD}"}``).

Each file also carries ``_base``, the hash of the object as it was exported. A sync compares three
things per object — the file, the database, and that base — and plans ``create``, ``update``,
``delete`` (objects of the tenant that have no file) or ``conflict`` (the object changed in the
database since the export, and the file does not say the same): a plan with a conflict is shown and
nothing is applied (``--force`` lets the files win). The plan is applied through the apps' own
services (the same validation as the API), in one transaction. This module lives above the apps (it
uses their services; no app imports it), like the demo.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import transaction

from apps.dashboards import services as dashboards
from apps.dashboards.models import Dashboard
from apps.datasources import services as datasources
from apps.datasources.models import Datasource
from apps.queries import services as queries
from apps.queries.models import DataQuery
from apps.tenancy.models import Tenant
from apps.tenancy.services import Actor
from apps.widgets import services as widgets
from apps.widgets.models import Widget
from apps.workflows import services as workflows
from apps.workflows.models import Workflow
from jetadmin.api.errors import ApplicationError

FORMAT = 1
BASE = "_base"
_VAR = re.compile(r"^\$\{([A-Z_][A-Z0-9_]*)\}$")


class DefinitionsError(Exception):
    """A directory that cannot be read as definitions (the message names the file)."""


# --- what each kind writes ---------------------------------------------------------------------------
def _secret_var(name: str, field_name: str) -> str:
    slug = re.sub(r"[^A-Z0-9]+", "_", name.upper()).strip("_") or "DATASOURCE"
    return f"JETADMIN_SECRET_{slug}_{field_name.upper()}"


def _dump_datasource(ds: Datasource) -> dict[str, Any]:
    stored = datasources.full_config(ds)
    secret_fields = datasources.connector_class(ds.type).secret_fields()
    return {
        "id": str(ds.id),
        "name": ds.name,
        "type": ds.type,
        "config": ds.config,
        "secrets": {f: "${" + _secret_var(ds.name, f) + "}" for f in secret_fields if stored.get(f)},
    }


def _dump_query(q: DataQuery) -> dict[str, Any]:
    return {
        "id": str(q.id),
        "name": q.name,
        "datasource": str(q.datasource_id),
        "body": q.body,
        "params_schema": q.params_schema,
        "row_limit": q.row_limit,
        "timeout_s": q.timeout_s,
    }


def _dump_workflow(w: Workflow) -> dict[str, Any]:
    return {
        "id": str(w.id),
        "name": w.name,
        "description": w.description,
        "on_failure": w.on_failure,
        "graph": w.current_version.graph if w.current_version else {"nodes": [], "edges": []},
    }


def _dump_widget(w: Widget) -> dict[str, Any]:
    return {
        "id": str(w.id),
        "name": w.name,
        "type": w.type,
        "config": w.config,
        "workflow": str(w.workflow_id) if w.workflow_id else None,
        "workflow_config": w.workflow_config,
    }


def _dump_dashboard(d: Dashboard) -> dict[str, Any]:
    return {
        "id": str(d.id),
        "name": d.name,
        "description": d.description,
        "layout": d.layout,
        "refresh_s": d.refresh_s,
        "filters": d.filters,
    }


# --- how each kind is written back (through the services) -------------------------------------------
def _secrets(data: dict[str, Any], *, required: bool) -> dict[str, Any]:
    """The secret values the file's variables hold; a missing variable keeps the stored value on an
    update (``********``) and is an error on a create."""
    values = {}
    for name, ref in (data.get("secrets") or {}).items():
        match = _VAR.match(str(ref))
        if not match:
            raise ApplicationError(f"secrets.{name} must be written ${{VARIABLE}}, not a value.")
        value = os.environ.get(match.group(1))
        if value is None and required:
            raise ApplicationError(f"Set the environment variable {match.group(1)} (secret {name!r}).")
        values[name] = datasources.MASK if value is None else value
    return values


def _create_datasource(actor: Actor, tenant: Tenant, d: dict[str, Any]) -> None:
    config = {**d["config"], **_secrets(d, required=True)}
    datasources.datasource_create(
        actor=actor, tenant=tenant, name=d["name"], type=d["type"], config=config, pk=d["id"]
    )


def _update_datasource(actor: Actor, obj: Datasource, d: dict[str, Any]) -> None:
    if d["type"] != obj.type:
        raise ApplicationError(f"A datasource's type cannot change ({obj.type} → {d['type']}).")
    config = {**d["config"], **_secrets(d, required=False)}
    datasources.datasource_update(actor=actor, datasource=obj, name=d["name"], config=config)


def _query_fields(d: dict[str, Any]) -> dict[str, Any]:
    keys = ("name", "datasource", "body", "params_schema", "row_limit", "timeout_s")
    return {k: d[k] for k in keys}


def _widget_fields(d: dict[str, Any]) -> dict[str, Any]:
    return {k: d[k] for k in ("name", "type", "config", "workflow", "workflow_config")}


def _dashboard_fields(d: dict[str, Any]) -> dict[str, Any]:
    return {k: d[k] for k in ("name", "description", "layout", "refresh_s", "filters")}


def _create_workflow(actor: Actor, tenant: Tenant, d: dict[str, Any]) -> None:
    created = workflows.workflow_create(
        actor=actor, tenant=tenant, name=d["name"], description=d["description"], graph=d["graph"], pk=d["id"]
    )
    if d.get("on_failure"):
        workflows.workflow_update(actor=actor, workflow=created, on_failure=d["on_failure"])


def _update_workflow(actor: Actor, obj: Workflow, d: dict[str, Any]) -> None:
    workflows.workflow_update(
        actor=actor,
        workflow=obj,
        name=d["name"],
        description=d["description"],
        graph=d["graph"],
        on_failure=d.get("on_failure"),
    )


@dataclass(frozen=True)
class Kind:
    name: str  # the directory
    model: Any
    dump: Callable[[Any], dict[str, Any]]
    create: Callable[[Actor, Tenant, dict[str, Any]], object]
    update: Callable[[Actor, Any, dict[str, Any]], object]
    delete: Callable[[Actor, Any], None]
    related: tuple[str, ...] = ()


# In dependency order: creates and updates go down this list, deletes up it.
KINDS = (
    Kind(
        "datasources",
        Datasource,
        _dump_datasource,
        _create_datasource,
        _update_datasource,
        lambda actor, obj: datasources.datasource_delete(actor=actor, datasource=obj),
    ),
    Kind(
        "queries",
        DataQuery,
        _dump_query,
        lambda actor, tenant, d: queries.query_create(
            actor=actor, tenant=tenant, pk=d["id"], **_query_fields(d)
        ),
        lambda actor, obj, d: queries.query_update(actor=actor, query=obj, **_query_fields(d)),
        lambda actor, obj: queries.query_delete(actor=actor, query=obj),
    ),
    Kind(
        "workflows",
        Workflow,
        _dump_workflow,
        _create_workflow,
        _update_workflow,
        lambda actor, obj: workflows.workflow_delete(actor=actor, workflow=obj),
        related=("current_version",),
    ),
    Kind(
        "widgets",
        Widget,
        _dump_widget,
        lambda actor, tenant, d: widgets.widget_create(
            actor=actor, tenant=tenant, pk=d["id"], **_widget_fields(d)
        ),
        lambda actor, obj, d: widgets.widget_update(actor=actor, widget=obj, **_widget_fields(d)),
        lambda actor, obj: widgets.widget_delete(actor=actor, widget=obj),
    ),
    Kind(
        "dashboards",
        Dashboard,
        _dump_dashboard,
        lambda actor, tenant, d: dashboards.dashboard_create(
            actor=actor, tenant=tenant, pk=d["id"], **_dashboard_fields(d)
        ),
        lambda actor, obj, d: dashboards.dashboard_update(actor=actor, dashboard=obj, **_dashboard_fields(d)),
        lambda actor, obj: dashboards.dashboard_delete(actor=actor, dashboard=obj),
    ),
)


# --- files ---------------------------------------------------------------------------------------------
def content_hash(content: dict[str, Any]) -> str:
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def render(content: dict[str, Any]) -> str:
    """A file's text: the content with its base hash, keys sorted, two-space indent, a final newline."""
    return (
        json.dumps({BASE: content_hash(content), **content}, sort_keys=True, indent=2, ensure_ascii=False)
        + "\n"
    )


def file_name(content: dict[str, Any]) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", content["name"].lower()).strip("-")[:60] or "unnamed"
    return f"{slug}.{content['id'][:8]}.json"


def _objects(kind: Kind, tenant: Tenant) -> list[Any]:
    return list(kind.model.objects.filter(tenant=tenant).select_related(*kind.related).order_by("id"))


def export(tenant: Tenant, directory: Path) -> dict[str, int]:
    """Write every definition of ``tenant`` under ``directory`` (files of deleted objects go)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "jetadmin.json").write_text(json.dumps({"format": FORMAT}, indent=2) + "\n")
    counts = {}
    for kind in KINDS:
        folder = directory / kind.name
        folder.mkdir(exist_ok=True)
        written = set()
        for obj in _objects(kind, tenant):
            content = kind.dump(obj)
            name = file_name(content)
            (folder / name).write_text(render(content))
            written.add(name)
        for stale in folder.glob("*.json"):
            if stale.name not in written:
                stale.unlink()
        counts[kind.name] = len(written)
    return counts


def read(directory: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """``{kind: {id: file content (with its _base)}}``; DefinitionsError names an unreadable file."""
    marker = directory / "jetadmin.json"
    if not marker.exists():
        raise DefinitionsError(f"{directory} has no jetadmin.json: not an export_tenant directory.")
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for kind in KINDS:
        found[kind.name] = {}
        for path in sorted((directory / kind.name).glob("*.json")):
            try:
                data = json.loads(path.read_text())
            except (ValueError, OSError) as exc:
                raise DefinitionsError(f"{path}: not valid JSON ({exc}).") from None
            if not isinstance(data, dict) or not isinstance(data.get("id"), str) or "name" not in data:
                raise DefinitionsError(f"{path}: expected an object with an id and a name.")
            if data["id"] in found[kind.name]:
                raise DefinitionsError(f"{path}: id {data['id']} is in two files.")
            found[kind.name][data["id"]] = data
    return found


# --- the plan ------------------------------------------------------------------------------------------
@dataclass
class Step:
    action: str  # create | update | delete | conflict
    kind: str
    id: str
    name: str
    why: str = ""


@dataclass
class Plan:
    steps: list[Step] = field(default_factory=list)

    @property
    def conflicts(self) -> list[Step]:
        return [s for s in self.steps if s.action == "conflict"]

    def lines(self) -> list[str]:
        marks = {"create": "+", "update": "~", "delete": "-", "conflict": "!"}
        lines = []
        for s in self.steps:
            why = f": {s.why}" if s.why else ""
            lines.append(f"{marks[s.action]} {s.action:<8} {s.kind[:-1]:<10} {s.name} ({s.id}){why}")
        return lines


def plan(tenant: Tenant, files: dict[str, dict[str, dict[str, Any]]], *, force: bool = False) -> Plan:
    result = Plan()
    for kind in KINDS:
        current = {str(obj.id): obj for obj in _objects(kind, tenant)}
        wanted = files.get(kind.name, {})
        for oid, data in sorted(wanted.items(), key=lambda item: item[1]["name"]):
            content = {k: v for k, v in data.items() if k != BASE}
            obj = current.get(oid)
            if obj is None:
                result.steps.append(Step("create", kind.name, oid, content["name"]))
                continue
            in_db = kind.dump(obj)
            if in_db == content:
                continue
            base = data.get(BASE)
            if base != content_hash(in_db) and not force:  # changed in the database since the export
                result.steps.append(
                    Step("conflict", kind.name, oid, content["name"], "changed in jetadmin since the export")
                )
            else:
                result.steps.append(Step("update", kind.name, oid, content["name"]))
        for oid, obj in sorted(current.items(), key=lambda item: item[1].name):
            if oid not in wanted:  # no file (any more): the files are the truth
                result.steps.append(Step("delete", kind.name, oid, obj.name))
    return result


def apply(
    tenant: Tenant, files: dict[str, dict[str, dict[str, Any]]], the_plan: Plan, *, actor: Actor
) -> None:
    """Carry the plan out in one transaction (nothing changes if a step is refused)."""
    if the_plan.conflicts:
        raise DefinitionsError("The plan has conflicts; nothing was applied.")
    by_kind = {k.name: k for k in KINDS}
    with transaction.atomic():
        for kind in reversed(KINDS):
            for step in the_plan.steps:
                if step.kind == kind.name and step.action == "delete":
                    kind.delete(actor, kind.model.objects.get(tenant=tenant, pk=step.id))
        for kind in KINDS:
            for step in the_plan.steps:
                if step.kind != kind.name or step.action not in ("create", "update"):
                    continue
                data = {k: v for k, v in files[kind.name][step.id].items() if k != BASE}
                try:
                    if step.action == "create":
                        by_kind[kind.name].create(actor, tenant, data)
                    else:
                        kind.update(actor, kind.model.objects.get(tenant=tenant, pk=step.id), data)
                except ApplicationError as exc:
                    details = f" {exc.details}" if exc.details else ""
                    raise DefinitionsError(
                        f"{kind.name}/{file_name(data)}: {exc.message}{details} (nothing was applied)"
                    ) from None
                except KeyError as exc:
                    raise DefinitionsError(
                        f"{kind.name}/{file_name(data)}: the field {exc} is missing (nothing was applied)"
                    ) from None
