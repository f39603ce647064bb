"""DRF authentication: user tokens (``Authorization: Token``) and tenant API keys (``Api-Key``).

An API key authenticates as an :class:`APIKeyPrincipal` — an authenticated, user-less principal —
with the key as ``request.auth``; :func:`apps.tenancy.api.base.actor_from_request` and the tenant
access selector read it from there.
"""

from __future__ import annotations

from typing import Any

from rest_framework import authentication, exceptions
from rest_framework.request import Request

from . import services
from .models import APIKey

MSG_BAD_TOKEN = "Invalid or expired token."  # noqa: S105 - a message, not a password
MSG_BAD_KEY = "Invalid or revoked API key."
MSG_BAD_HEADER = "Malformed Authorization header."


class APIKeyPrincipal:
    """``request.user`` for API-key requests: authenticated, but not a user."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    def __init__(self, api_key: APIKey) -> None:
        self.api_key = api_key
        self.username = f"api-key:{api_key.prefix}"

    def __str__(self) -> str:
        return self.username


def _credential(request: Request, keyword: str) -> str | None:
    header = authentication.get_authorization_header(request).split()
    if not header or header[0].lower() != keyword.lower().encode():
        return None
    if len(header) != 2:
        raise exceptions.AuthenticationFailed(MSG_BAD_HEADER)
    try:
        return header[1].decode()
    except UnicodeError as exc:
        raise exceptions.AuthenticationFailed(MSG_BAD_HEADER) from exc


class TokenAuthentication(authentication.BaseAuthentication):
    keyword = "Token"

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        raw = _credential(request, self.keyword)
        if raw is None:
            return None
        token = services.auth_token_authenticate(raw=raw)
        if token is None:
            raise exceptions.AuthenticationFailed(MSG_BAD_TOKEN)
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


class APIKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Api-Key"

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        raw = _credential(request, self.keyword)
        if raw is None:
            return None
        key = services.api_key_authenticate(raw=raw)
        if key is None:
            raise exceptions.AuthenticationFailed(MSG_BAD_KEY)
        return APIKeyPrincipal(key), key

    def authenticate_header(self, request: Request) -> str:
        return self.keyword
