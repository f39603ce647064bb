"""HTTP connectors: generic REST and GraphQL, and service presets (Slack, SendGrid, Twilio, Stripe, a
signed generic webhook) that are REST with the service's base URL, auth and request shape built in.

Every request goes through ``jetadmin.outbound`` (checked URL, checked addresses, checked redirects).
Parameters never become text of a URL: a value that is exactly ``:name`` / ``%(name)s`` takes the
parameter (with its type), and ``{name}`` in a path takes it URL-quoted as one path segment.
``self.idempotency_key`` (set by the caller, e.g. a workflow node) is sent as ``Idempotency-Key``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

import httpx

from jetadmin import outbound

from .base import (
    AuthFailed,
    BadQuery,
    ConfigInvalid,
    Connector,
    DestinationRefused,
    QueryTimeout,
    Result,
    Unreachable,
    register,
    row_limit_for,
)

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
_WHOLE_PARAM = re.compile(r"^(?::([A-Za-z_]\w*)|%\(([A-Za-z_]\w*)\)s)$")
_PATH_PARAM = re.compile(r"\{([A-Za-z_]\w*)\}")
_SHORT = 300


def fill(value: Any, params: Mapping[str, Any]) -> Any:
    """``value`` with whole-value parameter markers replaced (recursively through lists and objects)."""
    if isinstance(value, str):
        match = _WHOLE_PARAM.match(value)
        if match:
            name = match.group(1) or match.group(2)
            if name not in params:
                raise BadQuery(f"Missing query parameter: {name}.")
            return params[name]
        return value
    if isinstance(value, list):
        return [fill(v, params) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, params) for k, v in value.items()}
    return value


def fill_path(path: str, params: Mapping[str, Any]) -> str:
    def swap(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in params:
            raise BadQuery(f"Missing query parameter: {name}.")
        segment = quote(str(params[name]), safe="")
        # "." and ".." survive quoting and URL normalisation would climb with them.
        return segment.replace(".", "%2E") if segment in (".", "..") else segment

    return _PATH_PARAM.sub(swap, path)


def tabular(data: Any, rows_key: str | None = None) -> tuple[list[str], list[list[Any]]]:
    """A JSON answer as columns and rows: a list of objects is a table; an object is one row."""
    if rows_key and isinstance(data, dict) and isinstance(data.get(rows_key), list):
        data = data[rows_key]
    if isinstance(data, list):
        if data and all(isinstance(item, dict) for item in data):
            columns = list(dict.fromkeys(key for item in data for key in item))
            return columns, [[item.get(c) for c in columns] for item in data]
        return ["value"], [[item] for item in data]
    if isinstance(data, dict):
        return list(data), [list(data.values())]
    return ["body"], [[data]]


def _auth_properties() -> dict[str, Any]:
    return {
        "auth_type": {"type": "string", "enum": ["none", "basic", "bearer", "api_key"], "default": "none"},
        "username": {"type": "string", "maxLength": 200},
        "password": {"type": "string", "maxLength": 2000, "writeOnly": True},
        "token": {"type": "string", "maxLength": 4000, "writeOnly": True},
        "api_key_header": {"type": "string", "maxLength": 100, "default": "X-API-Key"},
        "api_key": {"type": "string", "maxLength": 4000, "writeOnly": True},
    }


class HTTPConnector(Connector):
    """What every HTTP connector shares: the guarded client, auth, error mapping, JSON answers."""

    category = "api"
    default_base_url: ClassVar[str] = ""
    rows_key: ClassVar[str | None] = None

    # --- subclass hooks --------------------------------------------------------------------------
    def request_for(self, body: Any, params: Mapping[str, Any]) -> dict[str, Any]:
        """``{method, path, query?, headers?, json? | data? | content?}`` for one query body."""
        raise NotImplementedError

    def check_answer(self, response: httpx.Response, data: Any) -> None:
        """Raise for an answer that is an error although its status is 2xx (Slack's ``ok: false``)."""

    def result_for(self, response: httpx.Response, data: Any, limit: int, started: float) -> Result:
        columns, rows = tabular(data, self.rows_key)
        return Result(
            columns,
            rows[:limit],
            min(len(rows), limit),
            len(rows) > limit,
            (time.monotonic() - started) * 1000,
            {"status": response.status_code},
        )

    def health_request(self) -> dict[str, Any] | None:
        path = str(self.config.get("health_path") or "")
        return {"method": "GET", "path": path if not path or path.startswith("/") else "/" + path}

    # --- shared ----------------------------------------------------------------------------------
    @classmethod
    def check_config(cls, config: Any) -> dict[str, Any]:
        checked = super().check_config(config)
        field = "url" if "url" in cls.config_schema["properties"] else "base_url"
        try:
            outbound.check_url(str(checked.get(field) or cls.default_base_url))
        except outbound.OutboundRefused as exc:
            raise ConfigInvalid(exc.message, {field: [exc.message]}) from None
        return checked

    def base_url(self) -> str:
        return str(self.config.get("base_url") or self.default_base_url).rstrip("/")

    def auth(self) -> tuple[dict[str, str], httpx.BasicAuth | None]:
        c = self.config
        kind = c.get("auth_type", "none")
        if kind == "basic":
            return {}, httpx.BasicAuth(c.get("username", ""), c.get("password", ""))
        if kind == "bearer":
            return {"Authorization": f"Bearer {c.get('token', '')}"}, None
        if kind == "api_key":
            return {c.get("api_key_header") or "X-API-Key": c.get("api_key", "")}, None
        return {}, None

    def label(self) -> str:
        try:
            return str(
                httpx.URL(self.base_url()).copy_with(path="/", query=None, username=None, password=None)
            )
        except (httpx.InvalidURL, ValueError):
            return self.name

    def send(self, request: dict[str, Any], timeout_s: float) -> tuple[httpx.Response, Any]:
        url = self.base_url() + str(request.get("path") or "")
        auth_headers, basic = self.auth()
        headers = {**dict(self.config.get("headers") or {}), **auth_headers, **request.get("headers", {})}
        if self.idempotency_key and request["method"] not in ("GET", "HEAD"):
            headers.setdefault("Idempotency-Key", self.idempotency_key)
        deadline = time.monotonic() + timeout_s
        try:
            outbound.check_url(url)
            _same_origin(url, self.base_url())
            with (
                outbound.client(timeout_s=timeout_s, auth=basic, deadline=deadline) as client,
                client.stream(
                    request["method"],
                    url,
                    params=request.get("query") or None,
                    headers=headers,
                    json=request.get("json"),
                    data=request.get("data"),
                    content=request.get("content"),
                ) as response,
            ):
                raw = outbound.read_capped(response, deadline=deadline)
        except outbound.Unresolvable as exc:
            raise Unreachable(exc.message) from None
        except outbound.OutboundRefused as exc:
            raise DestinationRefused(exc.message) from None
        except (httpx.TimeoutException, outbound.DeadlinePassed):
            raise QueryTimeout(f"{self.label()} did not answer within {timeout_s:g} s.") from None
        except (outbound.ResponseTooLarge, outbound.UnsupportedEncoding) as exc:
            raise BadQuery(f"{self.label()}: {exc.message}") from None
        except (httpx.LocalProtocolError, httpx.InvalidURL, UnicodeEncodeError):
            # Never the exception's text: it quotes the offending header, which may be a secret.
            raise BadQuery(UNSENDABLE) from None
        except httpx.HTTPError as exc:
            raise Unreachable(outbound.describe_error(exc, url)) from None
        data = outbound.decode_body(response, raw)
        if response.status_code in (401, 403):
            raise AuthFailed(
                f"{self.label()} answered {response.status_code}: check the credentials of this datasource."
            )
        if response.status_code >= 500 or response.status_code == 429:
            raise Unreachable(f"{self.label()} answered {response.status_code}: {_excerpt(data)}")
        if response.status_code >= 400:
            raise BadQuery(f"{self.label()} answered {response.status_code}: {_excerpt(data)}")
        self.check_answer(response, data)
        return response, data

    def execute(
        self, body: Any, params: Mapping[str, Any] | None = None, *, timeout_s: float = 30, row_limit: int = 0
    ) -> Result:
        self.require_valid(body)
        started = time.monotonic()
        response, data = self.send(self.request_for(body, dict(params or {})), timeout_s)
        return self.result_for(response, data, row_limit_for(self, row_limit), started)

    def health_check(self) -> None:
        request = self.health_request()
        if request is None:
            return
        self.send(request, float(self.config.get("timeout_s", 10)))


def _same_origin(url: str, base: str) -> None:
    """A path glued to the base URL must not change its host (``".evil.example/"``, ``"@host/"``,
    ``":8080/"``): credentials go to the datasource's origin only."""
    try:
        target, origin = httpx.URL(url), httpx.URL(base)
    except (httpx.InvalidURL, ValueError):
        raise BadQuery("The request path does not make a valid URL with the base URL.") from None
    if (target.scheme, target.host, target.port, target.userinfo) != (
        origin.scheme,
        origin.host,
        origin.port,
        origin.userinfo,
    ):
        raise BadQuery("The request path must stay on the datasource's base URL (same host and port).")


UNSENDABLE = (
    "The request cannot be sent: a header value (a credential, a default header or a parameter) "
    "contains a line break, a control character or non-ASCII text."
)


def _excerpt(data: Any) -> str:
    text = data if isinstance(data, str) else json.dumps(data, default=str)
    return text[:_SHORT] + ("…" if len(text) > _SHORT else "")


@register
class RESTConnector(HTTPConnector):
    type = "rest"
    name = "REST API"
    config_schema = {
        "type": "object",
        "required": ["base_url"],
        "additionalProperties": False,
        "properties": {
            "base_url": {"type": "string", "minLength": 1, "maxLength": 2000, "format": "uri"},
            **_auth_properties(),
            # Default headers often carry keys: write-only like the other secrets.
            "headers": {"type": "object", "additionalProperties": {"type": "string"}, "writeOnly": True},
            "health_path": {"type": "string", "maxLength": 500, "default": ""},
            "timeout_s": {"type": "number", "minimum": 1, "maximum": 300, "default": 10},
        },
    }

    def validate(self, body: Any) -> list[str]:
        if not isinstance(body, dict):
            return ["A REST query is an object: {method, path, query?, headers?, body?}."]
        problems = []
        if str(body.get("method", "GET")).upper() not in METHODS:
            problems.append(f"method must be one of {', '.join(METHODS)}.")
        if not isinstance(body.get("path", ""), str):
            problems.append("path must be text, relative to the datasource's base URL.")
        for key in ("query", "headers"):
            if not isinstance(body.get(key, {}), dict):
                problems.append(f"{key} must be an object.")
        return problems

    def request_for(self, body: Any, params: Mapping[str, Any]) -> dict[str, Any]:
        path = fill_path(str(body.get("path", "")), params)
        if path and not path.startswith("/"):
            path = "/" + path
        request: dict[str, Any] = {
            "method": str(body.get("method", "GET")).upper(),
            "path": path,
            "query": {k: v for k, v in fill(body.get("query") or {}, params).items() if v is not None},
            "headers": {k: str(v) for k, v in fill(body.get("headers") or {}, params).items()},
        }
        if "body" in body:
            request["json"] = fill(body["body"], params)
        return request


@register
class GraphQLConnector(HTTPConnector):
    type = "graphql"
    name = "GraphQL API"
    config_schema = RESTConnector.config_schema

    def validate(self, body: Any) -> list[str]:
        text = body.get("query") if isinstance(body, dict) else body
        if not isinstance(text, str) or not text.strip():
            return ["A GraphQL query is its text, or {query, variables?, operation_name?}."]
        return []

    def request_for(self, body: Any, params: Mapping[str, Any]) -> dict[str, Any]:
        spec = body if isinstance(body, dict) else {"query": body}
        payload: dict[str, Any] = {
            "query": spec["query"],
            "variables": {**fill(spec.get("variables") or {}, params), **params},
        }
        if spec.get("operation_name"):
            payload["operationName"] = spec["operation_name"]
        return {"method": "POST", "path": "", "json": payload}

    def check_answer(self, response: httpx.Response, data: Any) -> None:
        if isinstance(data, dict) and data.get("errors"):
            errors = data["errors"]
            first = errors[0] if isinstance(errors, list) else errors
            message = first.get("message") if isinstance(first, dict) else first
            raise BadQuery(f"GraphQL error: {_excerpt(message)}")
        if not isinstance(data, dict) or "data" not in data:
            raise BadQuery(f"{self.label()} did not answer with GraphQL JSON: {_excerpt(data)}")

    def result_for(self, response: httpx.Response, data: Any, limit: int, started: float) -> Result:
        payload = data["data"] or {}
        # One top-level field (the usual query) is the table; several are one row of fields.
        inner = next(iter(payload.values())) if isinstance(payload, dict) and len(payload) == 1 else payload
        result = super().result_for(response, inner, limit, started)
        result.extra["data"] = payload if len(json.dumps(payload, default=str)) <= 100_000 else None
        return result

    def health_request(self) -> dict[str, Any]:
        return {"method": "POST", "path": "", "json": {"query": "{ __typename }"}}


# --- service presets ------------------------------------------------------------------------------
def _preset_schema(required: list[str], base_url: str, **properties: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "required": required,
        "additionalProperties": False,
        "properties": {
            **properties,
            "base_url": {"type": "string", "maxLength": 2000, "default": base_url},
            "timeout_s": {"type": "number", "minimum": 1, "maximum": 300, "default": 10},
        },
    }


def _need(body: Any, *keys: str) -> list[str]:
    if not isinstance(body, dict):
        return [f"The body is an object with {', '.join(keys)}."]
    return [f"{key} is required." for key in keys if body.get(key) in (None, "")]


@register
class SlackConnector(HTTPConnector):
    """Slack's Web API with a bot token: ``{channel, text, blocks?}`` → ``chat.postMessage``."""

    type = "slack"
    name = "Slack"
    category = "messaging"
    default_base_url = "https://slack.com/api"
    config_schema = _preset_schema(
        ["token"],
        default_base_url,
        token={"type": "string", "minLength": 1, "maxLength": 500, "writeOnly": True},
    )

    def auth(self) -> tuple[dict[str, str], httpx.BasicAuth | None]:
        return {"Authorization": f"Bearer {self.config['token']}"}, None

    def validate(self, body: Any) -> list[str]:
        return _need(body, "channel", "text")

    def request_for(self, body: Any, params: Mapping[str, Any]) -> dict[str, Any]:
        message = {
            k: v for k, v in fill(body, params).items() if k in ("channel", "text", "blocks", "thread_ts")
        }
        return {"method": "POST", "path": "/chat.postMessage", "json": message}

    def check_answer(self, response: httpx.Response, data: Any) -> None:
        if not isinstance(data, dict):
            raise BadQuery(f"Slack did not answer with a JSON object: {_excerpt(data)}")
        if data.get("ok") is False:
            error = data.get("error", "unknown_error")
            if error in ("invalid_auth", "not_authed", "account_inactive", "token_revoked"):
                raise AuthFailed(f"Slack refused the token ({error}): check the bot token.")
            raise BadQuery(f"Slack refused the message: {error}.")

    def result_for(self, response: httpx.Response, data: Any, limit: int, started: float) -> Result:
        row = [True, data.get("ts"), data.get("channel")]
        return Result(["delivered", "id", "channel"], [row], 1, False, (time.monotonic() - started) * 1000)

    def health_request(self) -> dict[str, Any]:
        return {"method": "POST", "path": "/auth.test"}


@register
class SendGridConnector(HTTPConnector):
    """SendGrid's v3 mail API: ``{to, subject, text, html?}`` → ``POST /v3/mail/send``."""

    type = "sendgrid"
    name = "SendGrid"
    category = "messaging"
    default_base_url = "https://api.sendgrid.com"
    config_schema = _preset_schema(
        ["api_key", "from_email"],
        default_base_url,
        api_key={"type": "string", "minLength": 1, "maxLength": 500, "writeOnly": True},
        from_email={"type": "string", "format": "email", "minLength": 3, "maxLength": 254},
    )

    def auth(self) -> tuple[dict[str, str], httpx.BasicAuth | None]:
        return {"Authorization": f"Bearer {self.config['api_key']}"}, None

    def validate(self, body: Any) -> list[str]:
        return _need(body, "to", "subject", "text")

    def request_for(self, body: Any, params: Mapping[str, Any]) -> dict[str, Any]:
        mail = fill(body, params)
        recipients = mail["to"] if isinstance(mail["to"], list) else [mail["to"]]
        content = [{"type": "text/plain", "value": str(mail["text"])}]
        if mail.get("html"):
            content.append({"type": "text/html", "value": str(mail["html"])})
        payload = {
            "personalizations": [{"to": [{"email": str(r)} for r in recipients]}],
            "from": {"email": self.config["from_email"]},
            "subject": str(mail["subject"]),
            "content": content,
        }
        return {"method": "POST", "path": "/v3/mail/send", "json": payload}

    def result_for(self, response: httpx.Response, data: Any, limit: int, started: float) -> Result:
        row = [True, response.headers.get("x-message-id")]
        return Result(["delivered", "id"], [row], 1, False, (time.monotonic() - started) * 1000)

    def health_request(self) -> dict[str, Any]:
        return {"method": "GET", "path": "/v3/scopes"}


@register
class TwilioConnector(HTTPConnector):
    """Twilio's Messages API: ``{to, body}`` → an SMS from the configured number."""

    type = "twilio"
    name = "Twilio SMS"
    category = "messaging"
    default_base_url = "https://api.twilio.com"
    config_schema = _preset_schema(
        ["account_sid", "auth_token", "from_number"],
        default_base_url,
        account_sid={"type": "string", "pattern": "^AC[0-9a-fA-F]{32}$"},
        auth_token={"type": "string", "minLength": 1, "maxLength": 200, "writeOnly": True},
        from_number={"type": "string", "pattern": r"^\+[1-9]\d{1,14}$"},
    )

    def auth(self) -> tuple[dict[str, str], httpx.BasicAuth | None]:
        return {}, httpx.BasicAuth(self.config["account_sid"], self.config["auth_token"])

    def validate(self, body: Any) -> list[str]:
        return _need(body, "to", "body")

    def request_for(self, body: Any, params: Mapping[str, Any]) -> dict[str, Any]:
        message = fill(body, params)
        form = {"To": str(message["to"]), "From": self.config["from_number"], "Body": str(message["body"])}
        return {
            "method": "POST",
            "path": f"/2010-04-01/Accounts/{self.config['account_sid']}/Messages.json",
            "data": form,
        }

    def result_for(self, response: httpx.Response, data: Any, limit: int, started: float) -> Result:
        if not isinstance(data, dict):
            raise BadQuery(f"Twilio did not answer with a JSON object: {_excerpt(data)}")
        row = [True, data.get("sid"), data.get("status")]
        return Result(["delivered", "id", "status"], [row], 1, False, (time.monotonic() - started) * 1000)

    def health_request(self) -> dict[str, Any]:
        return {"method": "GET", "path": f"/2010-04-01/Accounts/{self.config['account_sid']}.json"}


@register
class StripeConnector(HTTPConnector):
    """Stripe's API: ``{method, path, params}`` (form-encoded for writes, as Stripe wants); lists are
    tables of their ``data``. Writes carry the node's ``Idempotency-Key``, which Stripe honours."""

    type = "stripe"
    name = "Stripe"
    category = "payments"
    default_base_url = "https://api.stripe.com"
    rows_key = "data"
    config_schema = _preset_schema(
        ["api_key"],
        default_base_url,
        api_key={"type": "string", "pattern": "^(sk|rk)_", "maxLength": 300, "writeOnly": True},
    )

    def auth(self) -> tuple[dict[str, str], httpx.BasicAuth | None]:
        return {"Authorization": f"Bearer {self.config['api_key']}"}, None

    def validate(self, body: Any) -> list[str]:
        problems = _need(body, "path")
        if not problems and not str(body["path"]).startswith("/v1/"):
            problems.append("path must start with /v1/.")
        if not problems and str(body.get("method", "GET")).upper() not in ("GET", "POST", "DELETE"):
            problems.append("method must be GET, POST or DELETE.")
        return problems

    def request_for(self, body: Any, params: Mapping[str, Any]) -> dict[str, Any]:
        method = str(body.get("method", "GET")).upper()
        values = _stripe_form(fill(body.get("params") or {}, params))
        request: dict[str, Any] = {"method": method, "path": fill_path(str(body["path"]), params)}
        request["query" if method == "GET" else "data"] = values
        return request

    def health_request(self) -> dict[str, Any]:
        return {"method": "GET", "path": "/v1/balance"}


def _stripe_form(values: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Stripe's form encoding: nested objects as ``a[b]``, lists as ``a[0]``."""
    out: dict[str, str] = {}
    for key, value in values.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(value, dict):
            out.update(_stripe_form(value, name))
        elif isinstance(value, list):
            out.update(_stripe_form({str(i): v for i, v in enumerate(value)}, name))
        elif isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif value is not None:
            out[name] = str(value)
    return out


@register
class WebhookConnector(HTTPConnector):
    """A generic outgoing webhook: the body is POSTed as JSON to ``url``. With a signing secret the
    request carries ``X-Jetadmin-Signature: sha256=<HMAC of the raw body>`` (what our own inbound
    webhooks check), so the receiver can verify it came from us."""

    type = "webhook"
    name = "Webhook"
    category = "messaging"
    config_schema = {
        "type": "object",
        "required": ["url"],
        "additionalProperties": False,
        "properties": {
            "url": {"type": "string", "minLength": 1, "maxLength": 2000},
            "signing_secret": {"type": "string", "maxLength": 500, "writeOnly": True},
            # Default headers often carry keys: write-only like the other secrets.
            "headers": {"type": "object", "additionalProperties": {"type": "string"}, "writeOnly": True},
            "timeout_s": {"type": "number", "minimum": 1, "maximum": 300, "default": 10},
        },
    }

    def base_url(self) -> str:
        return str(self.config["url"])

    def validate(self, body: Any) -> list[str]:
        return [] if body is not None else ["The body is the JSON to send."]

    def request_for(self, body: Any, params: Mapping[str, Any]) -> dict[str, Any]:
        raw = json.dumps(fill(body, params), separators=(",", ":"), default=str).encode()
        headers = {"Content-Type": "application/json"}
        secret = self.config.get("signing_secret")
        if secret:
            digest = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
            headers["X-Jetadmin-Signature"] = f"sha256={digest}"
        return {"method": "POST", "path": "", "content": raw, "headers": headers}

    def result_for(self, response: httpx.Response, data: Any, limit: int, started: float) -> Result:
        row = [True, response.headers.get("x-request-id"), response.status_code]
        return Result(["delivered", "id", "status"], [row], 1, False, (time.monotonic() - started) * 1000)

    def health_request(self) -> None:
        """Sending is the only test a webhook has; check that the URL may be reached at all."""
        try:
            url = outbound.check_url(self.base_url())
            outbound.resolve(url.host, url.port or (443 if url.scheme == "https" else 80))
        except outbound.Unresolvable as exc:
            raise Unreachable(exc.message) from None
        except outbound.OutboundRefused as exc:
            raise DestinationRefused(exc.message) from None
        return None
