"""Structured logs: one JSON object per line, carrying who and what a line is about.

``LOG_FORMAT=json`` (the default with ``REDIS_URL``, i.e. the distributed deployment) writes each
record as ``{"ts", "level", "logger", "message", "request_id", "tenant", "user", "run", "node",
"iteration", "attempt", "exc"}`` (the context keys only when known); ``LOG_FORMAT=text`` (the embedded
default) keeps readable lines and appends the context as ``[run=… node=…]``.

The context comes from :func:`bind`, a context variable: :class:`RequestContextMiddleware` binds a
request id (the client's ``X-Request-ID`` when it is sane, else a new one, echoed in the response) and,
for tenant URLs, the tenant and the user; the engine binds the run, node, iteration and attempt while a
node executes. Records never carry request bodies or datasource configs: the canary test in
tests/datasources checks every line, in both formats, for a planted secret.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("jetadmin_log", default=None)
KEYS = ("request_id", "tenant", "user", "run", "node", "iteration", "attempt")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


@contextlib.contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """Add ``fields`` to every record logged in this context (nested binds add up)."""
    current = _context.get() or {}
    token = _context.set({**current, **{k: v for k, v in fields.items() if v not in (None, "")}})
    try:
        yield
    finally:
        _context.reset(token)


def current() -> dict[str, Any]:
    return dict(_context.get() or {})


class ContextFilter(logging.Filter):
    """Puts the bound context on each record (``record.ctx``), for both formatters."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.ctx = current()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        ctx = getattr(record, "ctx", None)
        if ctx is None:
            ctx = current()
        for key in KEYS:
            if key in ctx:
                entry[key] = ctx[key]
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ctx = getattr(record, "ctx", None) or {}
        shown = " ".join(f"{k}={ctx[k]}" for k in KEYS if k in ctx and k != "request_id")
        return f"{text} [{shown}]" if shown else text


class RequestContextMiddleware:
    """Binds a request id (and, under /t/{tid}/ or /api/v1/tenants/{tid}/, the tenant and user)."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        given = request.headers.get("X-Request-ID", "")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        request.request_id = request_id
        # Set, not bound for the call: Django logs a 4xx/5xx ("django.request") after the middleware
        # chain has returned, and that line must carry the id too. The next request replaces it.
        _context.set({"request_id": request_id})
        response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response

    def process_view(self, request: Any, view: Any, args: Any, kwargs: dict[str, Any]) -> None:
        tenant = kwargs.get("tenant_id") or kwargs.get("tid")
        user = getattr(request, "user", None)
        context = _context.get()
        if context is not None and tenant:
            context["tenant"] = str(tenant)
        if context is not None and user is not None and getattr(user, "is_authenticated", False):
            context["user"] = str(user.pk)
