"""Every write in queries, and running them. Parameters are validated against the query's JSON
Schema, then bound by the datasource's driver (never formatted into the text); every run has a
timeout and a row cap. Connector errors become 4xx/5xx answers with the connector's message."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from apps.datasources import selectors as datasources
from apps.datasources import services as datasource_services
from apps.datasources.connectors.base import ConnectorError
from apps.datasources.models import Datasource
from apps.queries.models import DataQuery
from apps.tenancy.models import Tenant
from apps.tenancy.services import Actor, audit_log_write
from jetadmin.api.errors import ApplicationError

MAX_ROW_LIMIT = 100_000
MAX_TIMEOUT_S = 300.0
# Connector error code -> HTTP status: the query's fault is 400, the datasource's is 502/504.
STATUS = {
    "bad_query": 400,
    "read_only": 400,
    "config_invalid": 400,
    "outbound_refused": 400,
    "timeout": 504,
}


def _checked(datasource: Datasource, body: Any, params_schema: Any) -> None:
    problems = datasource_services.datasource_validate_body(datasource=datasource, body=body)
    if problems:
        raise ApplicationError(problems[0], details={"body": problems})
    if params_schema is not None:
        try:
            Draft202012Validator.check_schema(params_schema)
        except SchemaError as exc:
            raise ApplicationError(
                f"params_schema is not a valid JSON Schema: {exc.message}",
                details={"params_schema": [exc.message]},
            ) from None


def query_create(
    *,
    actor: Actor,
    tenant: Tenant,
    name: str,
    datasource: Any,
    body: Any,
    params_schema: Any = None,
    row_limit: int = 1000,
    timeout_s: float = 30.0,
    pk: Any = None,
) -> DataQuery:
    source = datasources.datasource_get(tenant=tenant, datasource_id=datasource)
    _checked(source, body, params_schema)
    query = DataQuery(
        **({"id": pk} if pk else {}),
        tenant=tenant,
        datasource=source,
        name=name,
        body=body,
        params_schema=params_schema,
        row_limit=row_limit,
        timeout_s=timeout_s,
        created_by=actor.user,
    )
    try:
        with transaction.atomic():
            query.save()
            audit_log_write(
                actor=actor, tenant=tenant, action="query.create", obj=query, changes={"name": name}
            )
    except IntegrityError:
        raise ApplicationError(
            f"A query named {name!r} already exists.", details={"name": ["Already used."]}
        ) from None
    return query


def query_update(*, actor: Actor, query: DataQuery, **fields: Any) -> DataQuery:
    if "datasource" in fields:
        fields["datasource"] = datasources.datasource_get(
            tenant=query.tenant, datasource_id=fields["datasource"]
        )
    for key, value in fields.items():
        setattr(query, key, value)
    _checked(query.datasource, query.body, query.params_schema)
    try:
        with transaction.atomic():
            query.save()
            audit_log_write(
                actor=actor,
                tenant=query.tenant,
                action="query.update",
                obj=query,
                changes={"fields": sorted(fields)},
            )
    except IntegrityError:
        raise ApplicationError(
            "A query with this name already exists.", details={"name": ["Already used."]}
        ) from None
    return query


@transaction.atomic
def query_delete(*, actor: Actor, query: DataQuery) -> None:
    audit_log_write(
        actor=actor, tenant=query.tenant, action="query.delete", obj=query, changes={"name": query.name}
    )
    query.delete()


def _params(params_schema: Any, params: Any) -> dict[str, Any]:
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ApplicationError("params must be an object.", details={"params": ["Expected an object."]})
    if params_schema:
        errors: dict[str, list[str]] = {}
        for error in Draft202012Validator(params_schema).iter_errors(params):
            path = ".".join(str(p) for p in error.absolute_path)
            errors.setdefault(f"params.{path}" if path else "params", []).append(error.message)
        if errors:
            raise ApplicationError("The parameters do not fit this query.", details=errors)
    return params


def _run(
    datasource: Datasource,
    body: Any,
    params: dict[str, Any],
    timeout_s: float,
    row_limit: int,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    try:
        result = datasource_services.datasource_execute(
            datasource=datasource,
            body=body,
            params=params,
            timeout_s=timeout_s,
            row_limit=row_limit,
            idempotency_key=idempotency_key,
        )
    except ConnectorError as exc:
        raise ApplicationError(
            exc.message,
            code=exc.code,
            status_code=STATUS.get(exc.code, 502),
            details={"datasource": [exc.message]},
        ) from None
    return result.as_dict()


def query_run(*, query: DataQuery, params: Any, idempotency_key: str | None = None) -> dict[str, Any]:
    params = _params(query.params_schema, params)
    return _run(query.datasource, query.body, params, query.timeout_s, query.row_limit, idempotency_key)


def query_test(
    *,
    tenant: Tenant | str,
    datasource: Any,
    body: Any,
    params: Any,
    params_schema: Any = None,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """Run an unsaved query (the editor's "test"), with the defaults of a saved one."""
    source = datasources.datasource_get(tenant=tenant, datasource_id=datasource)
    _checked(source, body, params_schema)
    return _run(source, body, _params(params_schema, params), 30.0, 1000, idempotency_key)


def run_for_node(
    *,
    tenant_id: Any,
    query: Any = None,
    datasource: Any = None,
    body: Any = None,
    params: Any = None,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """What the ``dataQuery`` node runs: a saved query, or an inline ``datasource`` + ``body``, in the
    run's tenant. Raises ApplicationError (with the connector's code) on any failure."""
    from apps.queries import selectors

    if query:
        saved = selectors.query_get(tenant=tenant_id, query_id=query)
        return query_run(query=saved, params=params, idempotency_key=idempotency_key)
    if not datasource or body is None:
        raise ApplicationError(
            "dataQuery needs `query` (a saved query id) or `datasource` + `body`.",
            details={"query": ["Missing."]},
        )
    return query_test(
        tenant=tenant_id, datasource=datasource, body=body, params=params, idempotency_key=idempotency_key
    )
