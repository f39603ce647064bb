"""Template context for the server-rendered pages: the user's tenants, for the nav bar."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from . import selectors


def tenancy(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not hasattr(user, "memberships"):
        return {"my_memberships": []}
    return {"my_memberships": list(selectors.tenant_list_for_user(user=user))}
