"""Amazon S3 and S3-compatible object stores through boto3.

The query body is one action: ``{"action": "list", "prefix"?, "max_keys"?, "start_after"?}``,
``{"action": "get", "key"}``, ``{"action": "put", "key", "body", "content_type"?, "encoding"?}`` or
``{"action": "delete", "key"}``; a value that is exactly ``:name`` / ``%(name)s`` takes that parameter
(``http.fill``). ``read_only`` refuses put and delete before any request is made.

Credentials are only ever the datasource's own: with an access key the client signs with it, without
one requests are anonymous (``UNSIGNED``) — never boto3's default credential chain, which would lend
the jetadmin server's own IAM role or environment keys to a user's datasource. Configured endpoint
overrides (``AWS_ENDPOINT_URL*``) and proxies from the environment are ignored.

Outbound safety for ``endpoint_url`` is **check-then-connect, not pinned**: the endpoint's URL and
every address its host resolves to are checked with ``jetadmin.outbound`` before the client is made,
but boto3 (urllib3) then resolves the name again when it connects, so a DNS answer that changes in
between (rebinding) is not caught. Addressing is path-style for a custom endpoint, so the bucket
never becomes part of the host name that is resolved. The default AWS endpoint
(``s3.<region>.amazonaws.com``) is not checked: it may legitimately resolve to private VPC-endpoint
addresses.
"""

from __future__ import annotations

import base64
import binascii
import json
import mimetypes
import threading
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore import UNSIGNED
from botocore import exceptions as boto_errors
from botocore.config import Config

from jetadmin import outbound

from .base import (
    AuthFailed,
    BadQuery,
    ConfigInvalid,
    Connector,
    DestinationRefused,
    QueryTimeout,
    ReadOnlyViolation,
    Result,
    Unreachable,
    register,
    row_limit_for,
)
from .http import fill

ACTIONS = ("list", "get", "put", "delete")
MAX_OBJECT_BYTES = 10 * 1024 * 1024  # the most a get returns / a put sends
MAX_KEY_BYTES = 1024
_VERBS = {
    "list": "list objects in",
    "get": "read objects from",
    "put": "write objects to",
    "delete": "delete objects from",
    "head_bucket": "access",
}
_AUTH_CODES = {
    "InvalidAccessKeyId": "S3 does not know this access key ID: check the access key ID.",
    "SignatureDoesNotMatch": "S3 rejected the request signature: check the secret access key.",
    "InvalidToken": "S3 rejected the credentials: check the access key ID and secret.",
    "ExpiredToken": "The credentials have expired: set a current access key.",
}


@register
class S3Connector(Connector):
    type = "s3"
    name = "Amazon S3"
    category = "storage"
    config_schema = {
        "type": "object",
        "required": ["bucket"],
        "additionalProperties": False,
        "properties": {
            "region": {"type": "string", "pattern": r"^[a-z0-9][a-z0-9-]{0,40}$", "default": "us-east-1"},
            "bucket": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._-]{1,253}[A-Za-z0-9]$"},
            "access_key_id": {"type": "string", "maxLength": 128},
            "secret_access_key": {"type": "string", "maxLength": 256, "writeOnly": True},
            "endpoint_url": {
                "type": "string",
                "maxLength": 2000,
                "description": "Only for S3-compatible stores (MinIO, R2, …); empty for Amazon S3.",
            },
            "read_only": {"type": "boolean", "default": False},
            "timeout_s": {"type": "number", "minimum": 1, "maximum": 300, "default": 30},
        },
    }

    client: Any = None

    # --- config ----------------------------------------------------------------------------------
    @classmethod
    def check_config(cls, config: Any) -> dict[str, Any]:
        checked = super().check_config(config)
        if checked.get("endpoint_url"):
            try:
                outbound.check_url(str(checked["endpoint_url"]))
            except outbound.OutboundRefused as exc:
                raise ConfigInvalid(exc.message, {"endpoint_url": [exc.message]}) from None
        if bool(checked.get("access_key_id")) != bool(checked.get("secret_access_key")):
            message = "Set both the access key ID and the secret access key, or neither (anonymous)."
            field = "secret_access_key" if checked.get("access_key_id") else "access_key_id"
            raise ConfigInvalid(message, {field: [message]})
        return checked

    @property
    def bucket(self) -> str:
        return str(self.config.get("bucket") or "")

    def label(self) -> str:
        host = urlsplit(str(self.config.get("endpoint_url") or "")).netloc.rpartition("@")[2]
        where = f" at {host}" if host else ""
        return f"S3 bucket {self.bucket!r}{where}"

    # --- lifecycle -------------------------------------------------------------------------------
    def connect(self) -> None:
        self.close()
        self.client = self._make_client(float(self.config.get("timeout_s", 30)))

    def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            client.close()

    def _make_client(self, timeout_s: float) -> Any:
        c = self.config
        endpoint = str(c.get("endpoint_url") or "").strip() or None
        if endpoint:
            try:  # check-then-connect: see the module docstring
                url = outbound.check_url(endpoint)
                outbound.resolve(url.host, url.port or (443 if url.scheme == "https" else 80))
            except outbound.Unresolvable as exc:
                raise Unreachable(exc.message) from None
            except outbound.OutboundRefused as exc:
                raise DestinationRefused(exc.message) from None
        signed = bool(c.get("access_key_id") and c.get("secret_access_key"))
        config = Config(
            connect_timeout=min(timeout_s, 10),
            read_timeout=timeout_s,
            retries={"total_max_attempts": 2, "mode": "standard"},
            proxies={},  # not the environment's: a proxy would bypass the address check
            ignore_configured_endpoint_urls=True,
            s3={"addressing_style": "path"} if endpoint else {},
            signature_version=None if signed else UNSIGNED,
            user_agent_extra="jetadmin",
        )
        try:
            return _session().client(
                "s3",
                region_name=str(c.get("region") or "us-east-1"),
                endpoint_url=endpoint,
                aws_access_key_id=c.get("access_key_id") if signed else None,
                aws_secret_access_key=c.get("secret_access_key") if signed else None,
                config=config,
            )
        except ValueError as exc:  # botocore's "Invalid endpoint"
            raise ConfigInvalid(f"Invalid endpoint URL: {exc}", {"endpoint_url": [str(exc)]}) from None

    def health_check(self) -> None:
        client = self.client or self._make_client(float(self.config.get("timeout_s", 30)))
        try:
            client.head_bucket(Bucket=self.bucket)
        except (boto_errors.ClientError, boto_errors.BotoCoreError) as exc:
            raise self._error(exc, "head_bucket", float(self.config.get("timeout_s", 30))) from None
        finally:
            if client is not self.client:
                client.close()

    # --- work ------------------------------------------------------------------------------------
    def validate(self, body: Any) -> list[str]:
        if not isinstance(body, dict) or body.get("action") not in ACTIONS:
            return [f"An S3 query is an object whose action is one of {', '.join(ACTIONS)}."]
        action = body["action"]
        allowed = {
            "list": {"action", "prefix", "max_keys", "start_after"},
            "get": {"action", "key"},
            "put": {"action", "key", "body", "content_type", "encoding"},
            "delete": {"action", "key"},
        }[action]
        problems = [
            f"Unknown field {k!r} for {action}; use {', '.join(sorted(allowed))}."
            for k in body
            if k not in allowed
        ]
        if action != "list" and body.get("key") in (None, ""):
            problems.append("key is required.")
        if action == "put" and "body" not in body:
            problems.append("body is required.")
        return problems

    def execute(
        self, body: Any, params: Mapping[str, Any] | None = None, *, timeout_s: float = 30, row_limit: int = 0
    ) -> Result:
        self.require_valid(body)
        spec = fill(dict(body), dict(params or {}))
        action = spec["action"]
        if action in ("put", "delete") and self.config.get("read_only"):
            raise ReadOnlyViolation(f"This datasource is read-only: S3 {action} is refused.")
        started = time.monotonic()
        client = self.client or self._make_client(min(timeout_s, float(self.config.get("timeout_s", 30))))
        try:
            handler = getattr(self, f"_{action}")
            columns, rows, truncated, extra = handler(client, spec, row_limit_for(self, row_limit))
        except (boto_errors.ClientError, boto_errors.BotoCoreError) as exc:
            raise self._error(exc, action, timeout_s, spec.get("key")) from None
        finally:
            if client is not self.client:
                client.close()
        return Result(columns, rows, len(rows), truncated, (time.monotonic() - started) * 1000, extra)

    # --- actions: each returns (columns, rows, truncated, extra) ---------------------------------
    def _list(self, client: Any, spec: Mapping[str, Any], limit: int) -> tuple[Any, ...]:
        prefix = _opt_text(spec.get("prefix"), "prefix")
        start_after = _opt_text(spec.get("start_after"), "start_after")
        cap = limit
        if spec.get("max_keys") not in (None, ""):
            try:
                max_keys = int(spec["max_keys"])
            except (TypeError, ValueError):
                raise BadQuery("max_keys must be a positive whole number.") from None
            if max_keys < 1:
                raise BadQuery("max_keys must be a positive whole number.")
            cap = min(cap, max_keys)
        rows: list[list[Any]] = []
        token: str | None = None
        while True:  # ask for one more than the cap: its presence means truncated
            kwargs: dict[str, Any] = {
                "Bucket": self.bucket,
                "Prefix": prefix,
                "MaxKeys": min(1000, cap + 1 - len(rows)),
            }
            if token:
                kwargs["ContinuationToken"] = token
            elif start_after:
                kwargs["StartAfter"] = start_after
            page = client.list_objects_v2(**kwargs)
            for obj in page.get("Contents", []):
                modified = obj.get("LastModified")
                rows.append(
                    [
                        obj["Key"],
                        obj.get("Size"),
                        modified.isoformat() if modified is not None else None,
                        str(obj.get("ETag") or "").strip('"') or None,
                    ]
                )
            token = page.get("NextContinuationToken")
            if len(rows) > cap or not page.get("IsTruncated") or not token:
                break
        return ["key", "size", "last_modified", "etag"], rows[:cap], len(rows) > cap, {}

    def _get(self, client: Any, spec: Mapping[str, Any], limit: int) -> tuple[Any, ...]:
        key = _key(spec.get("key"))
        obj = client.get_object(Bucket=self.bucket, Key=key)
        stream = obj["Body"]
        try:
            data = b""
            while len(data) <= MAX_OBJECT_BYTES:
                chunk = stream.read(min(1024 * 1024, MAX_OBJECT_BYTES + 1 - len(data)))
                if not chunk:
                    break
                data += chunk
        finally:
            stream.close()
        cut = len(data) > MAX_OBJECT_BYTES
        data = data[:MAX_OBJECT_BYTES]
        text = _utf8(data, cut)
        encoding = "utf-8" if text is not None else "base64"
        body = text if text is not None else base64.b64encode(data).decode("ascii")
        size = obj.get("ContentLength", len(data))
        extra: dict[str, Any] = {"encoding": encoding}
        if cut:
            extra["body_truncated_at"] = MAX_OBJECT_BYTES
        return (
            ["key", "content_type", "size", "body"],
            [[key, obj.get("ContentType"), size, body]],
            cut,
            extra,
        )

    def _put(self, client: Any, spec: Mapping[str, Any], limit: int) -> tuple[Any, ...]:
        key = _key(spec.get("key"))
        raw = spec.get("body")
        encoding = spec.get("encoding") or "utf-8"
        guessed = mimetypes.guess_type(key)[0]
        if encoding == "base64":
            try:
                data = base64.b64decode(str(raw), validate=True)
            except (binascii.Error, ValueError):
                raise BadQuery("body is not valid base64.") from None
            default_type = guessed or "application/octet-stream"
        elif encoding == "utf-8":
            if isinstance(raw, str):
                data = raw.encode("utf-8")
                text_like = guessed is None or guessed.startswith("text/")
                default_type = f"{guessed or 'text/plain'}; charset=utf-8" if text_like else str(guessed)
            else:  # an object, list, number…: stored as JSON
                data = json.dumps(raw, ensure_ascii=False, default=str).encode("utf-8")
                default_type = "application/json"
        else:
            raise BadQuery("encoding must be utf-8 or base64.")
        if len(data) > MAX_OBJECT_BYTES:
            raise BadQuery(f"body is {len(data)} bytes; at most {MAX_OBJECT_BYTES} can be put.")
        content_type = _opt_text(spec.get("content_type"), "content_type") or default_type
        answer = client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        etag = str(answer.get("ETag") or "").strip('"') or None
        return ["key", "etag", "size"], [[key, etag, len(data)]], False, {}

    def _delete(self, client: Any, spec: Mapping[str, Any], limit: int) -> tuple[Any, ...]:
        key = _key(spec.get("key"))
        client.delete_object(Bucket=self.bucket, Key=key)
        return ["key", "deleted"], [[key, True]], False, {}

    # --- errors ----------------------------------------------------------------------------------
    def _error(self, exc: Exception, action: str, timeout_s: float, key: Any = None) -> Exception:
        """A typed error for ``exc``: never the secret, nor S3's signing details."""
        where = self.label()
        if isinstance(exc, boto_errors.ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code") or "")
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
            if code in _AUTH_CODES:
                return AuthFailed(_AUTH_CODES[code])
            if code == "NoSuchBucket" or (status == 404 and action == "head_bucket"):
                return Unreachable(f"{where} does not exist: check the bucket name and region.")
            if code == "NoSuchKey" or (status == 404 and key is not None):
                return BadQuery(f"No object {str(key)[:300]!r} in {where}.")
            if code in ("AccessDenied", "AllAccessDisabled") or status == 403:
                return AuthFailed(
                    f"S3 refused to let this access key {_VERBS.get(action, action)} {where}: check the "
                    "access key ID, the secret and the key's permissions."
                )
            region = error.get("Region") or headers.get("x-amz-bucket-region")
            if code in (
                "PermanentRedirect",
                "AuthorizationHeaderMalformed",
                "IllegalLocationConstraintException",
            ) or (status == 301):
                hint = f"set region to {region!r}" if region else "check the region"
                return Unreachable(f"{where} is in another region: {hint}.")
            if code == "RequestTimeout":
                return QueryTimeout(f"{where}: S3 timed out the request.")
            if code == "RequestTimeTooSkewed":
                return Unreachable(f"{where} refused the request: this server's clock is off.")
            if status >= 500 or code in ("SlowDown", "ServiceUnavailable", "InternalError"):
                return Unreachable(f"{where} answered {status or code}: try again later.")
            message = str(error.get("Message") or "")[:300]
            return BadQuery(f"{where} refused {action}: {code or status} {message}".rstrip())
        if isinstance(exc, boto_errors.ConnectTimeoutError):
            return Unreachable(f"{where}: the endpoint did not accept a connection in time.")
        if isinstance(exc, boto_errors.ReadTimeoutError):
            return QueryTimeout(f"{where} did not answer within {timeout_s:g} s.")
        if isinstance(exc, boto_errors.SSLError):
            return Unreachable(f"TLS with {where} failed: check the endpoint URL and its certificate.")
        if isinstance(exc, boto_errors.EndpointConnectionError):
            return Unreachable(f"Cannot connect to {where}: check the endpoint URL and region.")
        if isinstance(exc, boto_errors.ConnectionClosedError | boto_errors.ConnectionError):
            return Unreachable(f"The connection to {where} failed: {type(exc).__name__}.")
        if isinstance(exc, boto_errors.ParamValidationError):
            return BadQuery(f"S3 {action}: {exc}")
        return Unreachable(f"S3 {action} on {where} failed: {type(exc).__name__}.")


_local = threading.local()


def _session() -> boto3.session.Session:
    """One boto3 session per thread (sessions are not thread-safe; the clients they make are): it keeps
    the loaded service models, which makes a new client several times cheaper. It holds no
    credentials — every client gets the datasource's own."""
    session = getattr(_local, "session", None)
    if session is None:
        session = _local.session = boto3.session.Session()
    return session


def _key(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise BadQuery("key must be non-empty text.")
    if len(value.encode("utf-8")) > MAX_KEY_BYTES:
        raise BadQuery(f"key is longer than {MAX_KEY_BYTES} bytes.")
    return value


def _opt_text(value: Any, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadQuery(f"{field} must be text.")
    return value


def _utf8(data: bytes, cut: bool) -> str | None:
    """``data`` as text if it is UTF-8; a cut body may end inside a character, so trim up to 3 bytes."""
    for trim in range(4 if cut else 1):
        try:
            return data[: len(data) - trim].decode("utf-8")
        except UnicodeDecodeError:
            continue
    return None
