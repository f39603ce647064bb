"""The OpenAPI document is written for API users: every operation has a summary and no description
is an internal docstring; a browser reads /api/schema/ in place; small things a new user hit
(/favicon.ico, the admin's "saved queries")."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"

INTERNAL = (
    "Base for every",
    "A view under",
    "helpers for pagination",
    "acting principal",
    "tenant access and",
)


def test_every_operation_speaks_to_api_users(make_user: Any) -> None:
    client = Client()
    client.force_login(make_user())
    schema = json.loads(client.get("/api/schema/?format=json").content)
    operations = [
        (path, method, op)
        for path, item in schema["paths"].items()
        for method, op in item.items()
        if method in ("get", "post", "put", "patch", "delete")
    ]
    assert len(operations) > 80
    for path, method, op in operations:
        assert op.get("summary"), (method, path)
        text = f"{op.get('summary', '')} {op.get('description', '')}"
        assert not any(phrase in text for phrase in INTERNAL), (method, path, text)


def test_the_schema_opens_in_a_browser_and_small_things(make_user: Any) -> None:
    client = Client()
    client.force_login(make_user(is_staff=True, is_superuser=True))
    page = client.get("/api/schema/", HTTP_ACCEPT=BROWSER_ACCEPT)
    assert page.status_code == 200 and page["Content-Type"].startswith("text/plain")
    assert page["Content-Disposition"] == "inline" and b"openapi:" in page.content
    favicon = client.get("/favicon.ico")
    assert favicon.status_code == 301 and favicon["Location"].endswith("favicon.svg")
    admin = client.get("/admin/").content.decode()
    assert "Saved queries" in admin and "Data querys" not in admin
