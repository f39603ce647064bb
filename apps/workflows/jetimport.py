"""Import Jet Admin's workflow JSON: convert its node shorthands into jetadmin's node types, explicitly.

Jet Admin's documented example (``{"name", "nodes", "edges"}`` with ``from``/``to`` edges) uses:

- ``dataQuery`` with ``queryId`` — a saved query, found by id *or by name* in the tenant → ``query``;
- ``transform`` with ``filter: "lastNdays"`` (e.g. ``last30days``) — rows whose date (the first of
  ``date``, ``created_at``, ``ordered_at``, ``createdAt`` they have) is within the last N days; read as
  ``{{node.filtered}}`` → a ``javascript`` node that returns ``{filtered: [...]}``;
- ``aggregate`` with ``field`` — the sum of that field over the rows; read as ``{{node.aggregated}}`` →
  a ``javascript`` node that returns ``{aggregated: <sum>, count: <rows>}``;
- ``generateChart`` with ``data`` and ``type`` — jetadmin draws charts in widgets, not in runs → a
  ``javascript`` node that shapes the data as Chart.js ``{labels, datasets}`` (output ``chart``), plus a
  chart widget definition bound to the workflow, created with it.

Anything else is kept as it is (and validated as usual). What cannot be converted — an unknown saved
query, an unknown filter — is a per-node error. :func:`convert` returns the graph, the messages saying
what was converted, the widgets to create and the errors.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from apps.queries.models import DataQuery
from apps.tenancy.models import Tenant

LAST_DAYS = re.compile(r"^last(\d{1,4})days$")
DATE_FIELDS = ("date", "created_at", "ordered_at", "createdAt")
CHART_TYPES = {"bar", "line", "pie", "doughnut", "radar"}


@dataclass
class Conversion:
    graph: dict[str, Any]
    converted: list[str] = field(default_factory=list)
    widgets: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


def _inputs(node: dict[str, Any]) -> dict[str, Any]:
    inputs = node.get("inputs")
    return inputs if isinstance(inputs, dict) else {}


def looks_like_jet_admin(graph: Any) -> bool:
    """True for a graph that uses Jet Admin's shorthands (and so needs converting)."""
    if not isinstance(graph, dict) or not isinstance(graph.get("nodes"), list):
        return False
    for node in graph["nodes"]:
        if not isinstance(node, dict):
            continue
        inputs = _inputs(node)
        if node.get("type") == "generateChart" or (node.get("type") == "dataQuery" and "queryId" in inputs):
            return True
        if node.get("type") == "transform" and isinstance(inputs.get("filter"), str):
            return True
        if node.get("type") == "aggregate" and "field" in inputs and "metrics" not in inputs:
            return True
    return False


def _query_id(tenant: Tenant, ref: Any) -> str | None:
    queries = DataQuery.objects.filter(tenant=tenant)
    ref = str(ref)
    found = queries.filter(name=ref).values_list("id", flat=True).first()
    if found is None and re.fullmatch(r"[0-9a-fA-F-]{32,36}", ref):
        found = queries.filter(pk=ref).values_list("id", flat=True).first()
    return str(found) if found is not None else None


def _source(template: Any) -> str:
    """A JavaScript expression reading the value a ``{{node.path}}`` template points at."""
    match = re.fullmatch(r"\s*\{\{\s*([A-Za-z_][\w-]*)((?:\.[\w-]+)*)\s*\}\}\s*", str(template or ""))
    if not match:
        return json.dumps(template)
    root, path = match.group(1), match.group(2)
    return f"ctx[{json.dumps(root)}]" + "".join(f"?.[{json.dumps(p)}]" for p in path.split(".")[1:])


def _filter_code(data: Any, days: int) -> str:
    return (
        f"const rows = {_source(data)} || [];\n"
        f"const since = new Date(Date.now() - {days} * 86400000).toISOString().slice(0, 10);\n"
        f"const day = (r) => String(r.{DATE_FIELDS[0]} ?? r.{DATE_FIELDS[1]} ?? r.{DATE_FIELDS[2]} "
        f"?? r.{DATE_FIELDS[3]} ?? '').slice(0, 10);\n"
        "return {filtered: rows.filter((r) => day(r) >= since)};"
    )


def _aggregate_code(data: Any, field_name: str) -> str:
    return (
        f"const rows = {_source(data)} || [];\n"
        f"const total = rows.reduce((sum, r) => sum + (Number(r[{json.dumps(field_name)}]) || 0), 0);\n"
        "return {aggregated: Math.round(total * 100) / 100, count: rows.length};"
    )


def _chart_code(data: Any, kind: str) -> str:
    return (
        f"const value = {_source(data)};\n"
        "const rows = Array.isArray(value) ? value : (value && typeof value === 'object' ? [value] : "
        "[{value: value}]);\n"
        "const first = rows[0] || {};\n"
        "const label = Object.keys(first).find((k) => typeof first[k] === 'string');\n"
        "const numbers = Object.keys(first).filter((k) => typeof first[k] === 'number');\n"
        f"return {{chart: {{type: {json.dumps(kind)}, labels: rows.map((r, i) => label ? r[label] : "
        "String(i + 1)), datasets: numbers.map((k) => ({label: k, data: rows.map((r) => r[k])}))}};"
    )


def convert(raw: dict[str, Any], tenant: Tenant) -> Conversion:
    graph = json.loads(json.dumps(raw))  # a copy
    out = Conversion(graph={"nodes": graph.get("nodes", []), "edges": graph.get("edges", [])})
    for node in out.graph["nodes"]:
        if not isinstance(node, dict):
            continue
        node_id, kind = node.get("id"), node.get("type")
        inputs = _inputs(node)
        if kind == "dataQuery" and "queryId" in inputs:
            found = _query_id(tenant, inputs["queryId"])
            if found is None:
                out.errors.append(
                    {
                        "node_id": node_id,
                        "field": "inputs.queryId",
                        "message": f"No saved query {inputs['queryId']!r} (by name or id) in this tenant.",
                    }
                )
                continue
            node["inputs"] = {"query": found, **{k: v for k, v in inputs.items() if k != "queryId"}}
            out.converted.append(f"{node_id}: queryId {inputs['queryId']!r} → saved query {found}")
        elif kind == "transform" and isinstance(inputs.get("filter"), str):
            match = LAST_DAYS.fullmatch(inputs["filter"])
            if match is None:
                out.errors.append(
                    {
                        "node_id": node_id,
                        "field": "inputs.filter",
                        "message": f"Unknown filter {inputs['filter']!r}: only lastNdays (e.g. last30days).",
                    }
                )
                continue
            days = int(match.group(1))
            node.update(type="javascript", inputs={"code": _filter_code(inputs.get("data"), days)})
            out.converted.append(
                f"{node_id}: transform filter {inputs['filter']!r} → javascript keeping rows of the last "
                f"{days} days (by {', '.join(DATE_FIELDS)}), output .filtered"
            )
        elif kind == "aggregate" and "field" in inputs and "metrics" not in inputs:
            node.update(
                type="javascript", inputs={"code": _aggregate_code(inputs.get("data"), str(inputs["field"]))}
            )
            out.converted.append(
                f"{node_id}: aggregate field {inputs['field']!r} → javascript sum, output .aggregated"
            )
        elif kind == "generateChart":
            chart = str(inputs.get("type") or "bar")
            node.update(type="javascript", inputs={"code": _chart_code(inputs.get("data"), chart)})
            widget_type = chart if chart in CHART_TYPES else "bar"
            out.widgets.append(
                {
                    "name": f"{node.get('label') or node_id}",
                    "type": widget_type,
                    "config": {
                        "labels": f"{{{{ctx.{node_id}.chart.labels}}}}",
                        "datasets": f"{{{{ctx.{node_id}.chart.datasets}}}}",
                    },
                }
            )
            out.converted.append(
                f"{node_id}: generateChart ({chart}) → javascript shaping Chart.js data (output .chart) "
                f"and a {widget_type} widget drawing it"
            )
    return out
