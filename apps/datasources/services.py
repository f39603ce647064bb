"""Every write in datasources, and testing a connection. Secrets are split off the config by the
connector schema's ``writeOnly`` fields and stored encrypted; audit rows carry names and types only.
"""

from __future__ import annotations

import json
import time
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.datasources import connectors
from apps.datasources.connectors.base import ConfigInvalid, ConnectorError, rewrite_params
from apps.datasources.models import Datasource
from apps.tenancy.models import Tenant
from apps.tenancy.services import Actor, audit_log_write
from jetadmin import crypto
from jetadmin.api.errors import ApplicationError

MASK = "********"
# Config fields that say where a datasource connects (and as whom); changing one drops stored secrets.
DESTINATION_FIELDS = (
    "host",
    "port",
    "base_url",
    "url",
    "endpoint_url",
    "database",
    "user",
    "username",
    "health_path",
)
MSG_DUPLICATE = "A datasource named {name!r} already exists in this tenant."


def connector_class(type_name: str) -> type[connectors.Connector]:
    try:
        return connectors.get(type_name)
    except ConfigInvalid as exc:
        raise ApplicationError(exc.message, details={"type": [exc.message]}) from None


def checked_config(cls: type[connectors.Connector], config: Any) -> dict[str, Any]:
    """The config validated by the connector's schema; 400 naming ``config.<field>`` otherwise."""
    if not isinstance(config, dict):
        raise ApplicationError("config must be an object.", details={"config": ["Expected an object."]})
    try:
        return cls.check_config(config)
    except ConfigInvalid as exc:
        details = {f"config.{k}" if k != "config" else "config": v for k, v in exc.errors.items()}
        raise ApplicationError(exc.message, details=details) from None


def full_config(datasource: Datasource) -> dict[str, Any]:
    """Config plus decrypted secrets: what the connector gets. Never serialize this."""
    secrets = json.loads(crypto.decrypt(datasource.secrets_encrypted)) if datasource.secrets_encrypted else {}
    return {**datasource.config, **secrets}


def masked_config(datasource: Datasource) -> dict[str, Any]:
    cls = connectors.REGISTRY.get(datasource.type)
    secret_names = cls.secret_fields() if cls else []
    stored = (
        set(json.loads(crypto.decrypt(datasource.secrets_encrypted)))
        if datasource.secrets_encrypted
        else set()
    )
    return {**datasource.config, **{name: MASK for name in secret_names if name in stored}}


def _store(datasource: Datasource, cls: type[connectors.Connector], config: dict[str, Any]) -> None:
    secret_names = set(cls.secret_fields())
    secrets = {k: v for k, v in config.items() if k in secret_names and v not in ("", None)}
    datasource.config = {k: v for k, v in config.items() if k not in secret_names}
    datasource.secrets_encrypted = crypto.encrypt(json.dumps(secrets)) if secrets else ""


def datasource_create(
    *, actor: Actor, tenant: Tenant, name: str, type: str, config: Any, pk: Any = None
) -> Datasource:
    """``pk``: a given id (definitions synced from files keep theirs)."""
    cls = connector_class(type)
    checked = checked_config(cls, config)
    datasource = Datasource(
        **({"id": pk} if pk else {}), tenant=tenant, name=name, type=type, created_by=actor.user
    )
    _store(datasource, cls, checked)
    try:
        with transaction.atomic():
            datasource.save()
            audit_log_write(
                actor=actor,
                tenant=tenant,
                action="datasource.create",
                obj=datasource,
                changes={"name": name, "type": type},
            )
    except IntegrityError:
        raise ApplicationError(MSG_DUPLICATE.format(name=name), details={"name": ["Already used."]}) from None
    return datasource


def _destination(cls: type[connectors.Connector], config: dict[str, Any]) -> dict[str, str]:
    """Where a config connects, as comparable text: schema defaults filled in, "" as the default,
    host names case-insensitive (resending an unchanged value is not a move)."""
    props = cls.config_schema.get("properties", {})
    out = {}
    for name in DESTINATION_FIELDS:
        if name in props:
            value = config.get(name)
            if value in (None, ""):
                value = props[name].get(
                    "default", getattr(cls, "default_base_url", "") if name == "base_url" else ""
                )
            out[name] = (
                str(value).strip().lower()
                if name in ("host", "base_url", "url", "endpoint_url")
                else str(value)
            )
    return out


def datasource_update(
    *, actor: Actor, datasource: Datasource, name: str | None = None, config: Any = None
) -> Datasource:
    """PATCH: ``config`` is merged over the current one; a secret sent as ``"********"`` (or left out)
    keeps its stored value, an empty string clears it. When the destination changes (host, URL,
    user ...), stored secrets are dropped unless sent again: a kept secret would otherwise be
    delivered to a server of the editor's choosing by the next connection test."""
    cls = connector_class(datasource.type)
    changes: dict[str, Any] = {}
    if config is not None:
        if not isinstance(config, dict):
            raise ApplicationError("config must be an object.", details={"config": ["Expected an object."]})
        current = full_config(datasource)
        secrets = set(cls.secret_fields())
        merged = {**current, **{k: v for k, v in config.items() if v != MASK}}
        moved = _destination(cls, merged) != _destination(cls, current)
        resent = {k for k in secrets if k in config and config[k] != MASK}
        merged = {
            k: v for k, v in merged.items() if not (k in secrets and (v == "" or (moved and k not in resent)))
        }
        _store(datasource, cls, checked_config(cls, merged))
        changes["config"] = sorted(config)
        datasource.health_ok, datasource.health_message, datasource.health_checked_at = None, "", None
    if name is not None and name != datasource.name:
        changes["name"] = [datasource.name, name]
        datasource.name = name
    try:
        with transaction.atomic():
            datasource.save()
            audit_log_write(
                actor=actor,
                tenant=datasource.tenant,
                action="datasource.update",
                obj=datasource,
                changes=changes,
            )
    except IntegrityError:
        raise ApplicationError(MSG_DUPLICATE.format(name=name), details={"name": ["Already used."]}) from None
    return datasource


@transaction.atomic
def datasource_delete(*, actor: Actor, datasource: Datasource) -> None:
    audit_log_write(
        actor=actor,
        tenant=datasource.tenant,
        action="datasource.delete",
        obj=datasource,
        changes={"name": datasource.name},
    )
    datasource.delete()


def connection_test(type_name: str, config: dict[str, Any]) -> dict[str, Any]:
    """``{ok, message, latency_ms}``: connect and run the connector's health check."""
    cls = connector_class(type_name)
    started = time.monotonic()
    try:
        cls(checked_config(cls, config)).health_check()
    except ConnectorError as exc:
        ok, message = False, exc.message
    else:
        ok, message = True, "Connected."
    return {"ok": ok, "message": message, "latency_ms": round((time.monotonic() - started) * 1000, 1)}


def datasource_test(*, datasource: Datasource) -> dict[str, Any]:
    """Test the saved config and keep the outcome as the datasource's health."""
    result = connection_test(datasource.type, full_config(datasource))
    Datasource.objects.filter(pk=datasource.pk).update(
        health_ok=result["ok"], health_message=result["message"][:500], health_checked_at=timezone.now()
    )
    return result


def datasource_schema(*, datasource: Datasource) -> list[dict[str, Any]] | None:
    """The tables and columns a SQL datasource has (``[{name, columns: [{name, type}]}]``), read
    through its own connector; None for a connector without tables. Raises ApplicationError when
    the database cannot be read."""
    cls = connector_class(datasource.type)
    if cls.introspection_sql is None:
        return None
    try:
        result = datasource_execute(
            datasource=datasource, body=cls.introspection_sql, params={}, timeout_s=10, row_limit=5000
        )
    except ConnectorError as exc:
        raise ApplicationError(exc.message, code=exc.code, details={"datasource": [exc.message]}) from None
    tables: dict[str, list[dict[str, str]]] = {}
    for table, column, data_type in result.rows:
        tables.setdefault(str(table), []).append({"name": str(column), "type": str(data_type or "")})
    return [{"name": name, "columns": columns} for name, columns in tables.items()]


def body_param_names(type_name: str, body: Any) -> list[str]:
    """The ``:name`` / ``%(name)s`` parameters a SQL body uses, in order, once each (the query
    editor offers an input for each); [] for other connectors and bodies."""
    cls = connectors.REGISTRY.get(type_name)
    if cls is None or cls.body_language != "sql" or not isinstance(body, str):
        return []
    names = rewrite_params(body, lambda _: "?", mysql=type_name == "mysql")[1]
    return list(dict.fromkeys(names))


def datasource_validate_body(*, datasource: Datasource, body: Any) -> list[str]:
    """Problems with a query body for this datasource's connector (empty when it looks runnable)."""
    return connector_class(datasource.type)(datasource.config).validate(body)


def datasource_execute(
    *,
    datasource: Datasource,
    body: Any,
    params: dict[str, Any],
    timeout_s: float,
    row_limit: int,
    idempotency_key: str | None = None,
) -> connectors.Result:
    """Run one query body (parameters bound by the driver); raises a typed ConnectorError.
    ``idempotency_key`` (a workflow node's) is sent by connectors that can (``Idempotency-Key``)."""
    return connector_execute(
        datasource.type,
        full_config(datasource),
        body,
        params=params,
        timeout_s=timeout_s,
        row_limit=row_limit,
        idempotency_key=idempotency_key,
    )


def connector_execute(
    type_name: str,
    config: dict[str, Any],
    body: Any,
    *,
    params: dict[str, Any] | None = None,
    timeout_s: float = 30,
    row_limit: int = 0,
    idempotency_key: str | None = None,
) -> connectors.Result:
    """One body on a connector built from ``config`` (a saved datasource's, or a node's own URL)."""
    cls = connector_class(type_name)
    connector = cls(checked_config(cls, config))
    connector.idempotency_key = idempotency_key
    with connector.session():
        return connector.execute(body, params or {}, timeout_s=timeout_s, row_limit=row_limit)
