"""Nodes that reach outside the run. ``dataQuery`` runs a saved (or inline) query of the run's tenant
through apps.queries; ``httpRequest`` and ``notify`` send through jetadmin/outbound.py (checked
addresses and redirects) and carry the node's idempotency key as ``Idempotency-Key``, so a retried
attempt is recognisable to the receiver."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import httpx
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework.exceptions import NotFound

from apps.datasources.connectors.http import UNSENDABLE
from jetadmin import outbound
from jetadmin.api.errors import ApplicationError

from .base import NodeContext, NodeError, NodeType, register


def _plain(value: Any) -> Any:
    """A database value as JSON keeps it: numbers stay numbers (Decimal too), times become ISO text."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):  # MySQL TIME
        return str(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


# Connector errors a retry can fix (the datasource was down or slow); the rest fail the same way again.
RETRYABLE = {"unreachable", "timeout", "auth_failed", "connector_error"}


@register
class DataQuery(NodeType):
    type = "dataQuery"
    name = "Data query"
    category = "data"
    description = "Runs a saved query (`query`) or an inline one (`datasource` + `body`) with `params`."
    inputs_schema = {
        "type": "object",
        "properties": {
            "query": {"type": "string"},
            "datasource": {"type": "string"},
            "body": {},
            "params": {"type": "object"},
        },
    }
    outputs_schema = {
        "type": "object",
        "properties": {
            "result": {"type": "array", "items": {"type": "object"}},
            "columns": {"type": "array"},
            "row_count": {"type": "integer"},
            "truncated": {"type": "boolean"},
        },
    }

    def validate_inputs(self, inputs: Any) -> list[tuple[str, str]]:
        if not inputs.get("query") and not (inputs.get("datasource") and "body" in inputs):
            return [("query", "Give `query` (a saved query id) or `datasource` + `body`.")]
        return []

    def cache_dependencies(self, inputs: Mapping[str, Any], tenant_id: str) -> Any:
        """The saved query's and its datasource's last change: an edited query is never served stale."""
        from apps.datasources.models import Datasource
        from apps.queries.models import DataQuery as SavedQuery

        found: dict[str, Any] = {}
        try:
            if inputs.get("query"):
                row = SavedQuery.objects.filter(tenant_id=tenant_id, pk=inputs["query"]).values_list(
                    "updated_at", "datasource_id"
                )
                saved = row.first()
                if saved is not None:
                    found["query"] = saved[0].isoformat()
                    found["datasource_id"] = str(saved[1])
            ds = found.get("datasource_id") or inputs.get("datasource")
            if ds:
                changed = Datasource.objects.filter(tenant_id=tenant_id, pk=ds).values_list(
                    "updated_at", flat=True
                )
                when = changed.first()
                found["datasource"] = when.isoformat() if when else None
        except (ValueError, DjangoValidationError):  # not an id: the run reports it
            pass
        return found

    def run(self, inputs: dict[str, Any], ctx: NodeContext) -> Any:
        from apps.queries import services

        try:
            result = services.run_for_node(
                tenant_id=ctx.tenant_id,
                query=inputs.get("query"),
                datasource=inputs.get("datasource"),
                body=inputs.get("body"),
                params=inputs.get("params") or {},
                idempotency_key=ctx.idempotency_key,
            )
        except NotFound:
            raise NodeError(
                "The query or datasource does not exist in this tenant.", code="not_found", retryable=False
            ) from None
        except ApplicationError as exc:
            raise NodeError(exc.message, code=exc.code, retryable=exc.code in RETRYABLE) from None
        columns = result["columns"]
        return {
            "result": [{c: _plain(v) for c, v in zip(columns, row, strict=False)} for row in result["rows"]],
            "columns": columns,
            "row_count": result["row_count"],
            "truncated": result["truncated"],
        }


def _time_left(requested: Any, ctx: NodeContext, default: float = 30.0) -> float:
    timeout = float(requested or default)
    if ctx.deadline is not None:
        timeout = min(timeout, ctx.deadline - time.monotonic())
    if timeout <= 0:
        raise NodeError("The node ran out of time before sending its request.", code="timeout")
    return timeout


HTTP_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


@register
class HTTPRequest(NodeType):
    type = "httpRequest"
    name = "HTTP request"
    category = "integration"
    description = (
        "Calls an http(s) URL. JSON answers are parsed. A status of 400 or more fails the node unless "
        "`fail_on_status` is false (429 and 5xx are retried). Sends `Idempotency-Key`."
    )
    inputs_schema = {
        "type": "object",
        "required": ["url"],
        "properties": {
            "method": {"type": "string", "enum": HTTP_METHODS, "default": "GET"},
            "url": {"type": "string", "minLength": 1, "maxLength": 4000},
            "headers": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}},
            "query": {"type": "object"},
            "body": {},
            "timeout_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 300, "default": 30},
            "fail_on_status": {"type": "boolean", "default": True},
        },
    }
    outputs_schema = {
        "type": "object",
        "properties": {"status": {"type": "integer"}, "headers": {"type": "object"}, "body": {}},
    }

    def side_effects(self, inputs: Mapping[str, Any]) -> str | None:
        method = str(inputs.get("method") or "GET").upper()
        return None if method in ("GET", "HEAD", "OPTIONS") else f"an HTTP {method} request"

    def run(self, inputs: dict[str, Any], ctx: NodeContext) -> Any:
        method = str(inputs.get("method") or "GET").upper()
        url = str(inputs["url"])
        headers = {str(k): str(v) for k, v in (inputs.get("headers") or {}).items()}
        if not any(k.lower() == "idempotency-key" for k in headers):
            headers["Idempotency-Key"] = ctx.idempotency_key
        body = inputs.get("body")
        content = body.encode() if isinstance(body, str) else None
        try:
            outbound.check_url(url)
            timeout = _time_left(inputs.get("timeout_s"), ctx)
            deadline = time.monotonic() + timeout
            with (
                outbound.client(timeout_s=timeout, deadline=deadline) as client,
                client.stream(
                    method,
                    url,
                    params=inputs.get("query") or None,
                    headers=headers,
                    json=body if content is None and body is not None else None,
                    content=content,
                ) as response,
            ):
                raw = outbound.read_capped(response, deadline=deadline)
        except outbound.Unresolvable as exc:
            raise NodeError(exc.message, code="unreachable") from None
        except outbound.OutboundRefused as exc:
            raise NodeError(exc.message, code="outbound_refused", retryable=False) from None
        except (httpx.TimeoutException, outbound.DeadlinePassed):
            raise NodeError(outbound.describe_error(httpx.ReadTimeout(""), url), code="timeout") from None
        except (outbound.ResponseTooLarge, outbound.UnsupportedEncoding) as exc:
            raise NodeError(exc.message, code="response_too_large", retryable=False) from None
        except (httpx.LocalProtocolError, httpx.InvalidURL, UnicodeEncodeError):
            # Never the exception's text: it quotes the offending header, which may be a secret.
            raise NodeError(UNSENDABLE, code="invalid_input", retryable=False) from None
        except httpx.HTTPError as exc:
            raise NodeError(outbound.describe_error(exc, url), code="unreachable") from None
        output = {
            "status": response.status_code,
            "headers": dict(response.headers),
            "body": outbound.decode_body(response, raw),
        }
        if response.status_code >= 400 and inputs.get("fail_on_status", True):
            raise NodeError(
                f"{method} {outbound.safe_url(url)} answered {response.status_code}.",
                code="http_status",
                retryable=response.status_code >= 500 or response.status_code == 429,
            )
        return output


# Which connector types serve each notify channel, and the body each expects.
NOTIFY_TYPES = {
    "email": ("smtp", "sendgrid"),
    "slack": ("slack", "webhook"),
    "webhook": ("webhook",),
    "sms": ("twilio",),
}


@register
class Notify(NodeType):
    type = "notify"
    name = "Notify"
    category = "integration"
    description = (
        "Sends a message: `email` (an SMTP or SendGrid datasource, or the server's mail settings), "
        "`slack` (a Slack datasource, or an incoming-webhook `url`), `webhook` (`url` or a webhook "
        "datasource) or `sms` (a Twilio datasource). Retries carry the same idempotency key."
    )
    inputs_schema = {
        "type": "object",
        "required": ["channel"],
        "properties": {
            "channel": {"type": "string", "enum": sorted(NOTIFY_TYPES)},
            "to": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
            "subject": {"type": "string", "maxLength": 998},
            "body": {},
            "url": {"type": "string", "maxLength": 4000},
            "datasource": {"type": "string"},
            "timeout_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 300, "default": 30},
        },
    }
    outputs_schema = {
        "type": "object",
        "properties": {"delivered": {"type": "boolean"}, "id": {"type": ["string", "null"]}},
    }

    def side_effects(self, inputs: Mapping[str, Any]) -> str | None:
        return "sending a message"

    def validate_inputs(self, inputs: Mapping[str, Any]) -> list[tuple[str, str]]:
        channel = inputs.get("channel")
        problems = []
        if channel in ("email", "sms") and not inputs.get("to"):
            problems.append(("to", f"A {channel} notification needs `to`."))
        if channel == "slack" and not inputs.get("datasource") and not inputs.get("url"):
            problems.append(("url", "Give a Slack `datasource` or an incoming-webhook `url`."))
        if channel == "slack" and inputs.get("datasource") and not inputs.get("to"):
            problems.append(("to", "A Slack datasource needs the channel in `to`."))
        if channel == "webhook" and not inputs.get("datasource") and not inputs.get("url"):
            problems.append(("url", "A webhook notification needs `url` or a webhook `datasource`."))
        if channel == "sms" and not inputs.get("datasource"):
            problems.append(("datasource", "An SMS notification needs a Twilio `datasource`."))
        return problems

    def run(self, inputs: dict[str, Any], ctx: NodeContext) -> Any:
        from apps.datasources import selectors, services
        from apps.datasources.connectors.base import ConnectorError

        channel = inputs["channel"]
        timeout = _time_left(inputs.get("timeout_s"), ctx)
        try:
            if inputs.get("datasource"):
                source = selectors.datasource_get(tenant=ctx.tenant_id, datasource_id=inputs["datasource"])
                if source.type not in NOTIFY_TYPES[channel]:
                    raise NodeError(
                        f"A {channel} notification needs a datasource of type "
                        f"{' or '.join(NOTIFY_TYPES[channel])}, not {source.type}.",
                        code="invalid_input",
                        retryable=False,
                    )
                type_name, config = source.type, services.full_config(source)
            elif channel == "email":
                return _send_django_mail(inputs, ctx)
            else:
                outbound.check_url(str(inputs["url"]))  # a refusal is the guard's, not a bad config
                type_name, config = "webhook", {"url": str(inputs["url"])}
            result = services.connector_execute(
                type_name,
                config,
                _notify_body(type_name, inputs),
                timeout_s=timeout,
                idempotency_key=ctx.idempotency_key,
            )
        except NotFound:
            raise NodeError(
                "The datasource does not exist in this tenant.", code="not_found", retryable=False
            ) from None
        except ApplicationError as exc:  # the config no longer fits its connector
            raise NodeError(exc.message, code=exc.code, retryable=False) from None
        except ConnectorError as exc:
            raise NodeError(exc.message, code=exc.code, retryable=exc.code in RETRYABLE) from None
        row = dict(zip(result.columns, result.rows[0], strict=False)) if result.rows else {}
        return {"delivered": True, "id": row.get("id") or ctx.idempotency_key}


def _text(inputs: Mapping[str, Any]) -> str:
    body = inputs.get("body")
    return body if isinstance(body, str) else json.dumps(body, default=str)


def _notify_body(type_name: str, inputs: Mapping[str, Any]) -> Any:
    subject, text = inputs.get("subject") or "", _text(inputs)
    if type_name in ("smtp", "sendgrid"):
        return {"to": inputs["to"], "subject": subject, "text": text}
    if type_name == "slack":
        return {"channel": inputs["to"], "text": f"*{subject}*\n{text}" if subject else text}
    if type_name == "twilio":
        return {"to": inputs["to"], "body": f"{subject}: {text}" if subject else text}
    if inputs["channel"] == "slack":  # a Slack incoming webhook: {"text": ...}
        return {"text": f"*{subject}*\n{text}" if subject else text}
    return {"subject": subject, "body": inputs.get("body"), "to": inputs.get("to")}


def _send_django_mail(inputs: Mapping[str, Any], ctx: NodeContext) -> dict[str, Any]:
    """Email through the server's own mail settings (EMAIL_URL / EMAIL_BACKEND)."""
    from django.conf import settings
    from django.core.mail import EmailMessage
    from django.core.mail.message import BadHeaderError

    recipients = inputs["to"] if isinstance(inputs["to"], list) else [inputs["to"]]
    message_id = f"<{ctx.idempotency_key}@jetadmin>"
    message = EmailMessage(
        subject=inputs.get("subject") or "",
        body=_text(inputs),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=recipients,
        headers={"Message-ID": message_id},
    )
    try:
        message.send()
    except (BadHeaderError, ValueError) as exc:
        raise NodeError(f"Cannot send this email: {exc}", code="invalid_input", retryable=False) from None
    except OSError as exc:
        raise NodeError(f"The mail server did not take the email: {exc}", code="unreachable") from None
    return {"delivered": True, "id": message_id}
