"""Answers to ``OPTIONS``: name, description and the allowed methods.

DRF's default metadata introspects a view's ``serializer_class``; our views pick input and output
serializers per method, so the OpenAPI schema (``/api/schema/``) is where field details live.
"""

from __future__ import annotations

from typing import Any

from rest_framework.metadata import BaseMetadata
from rest_framework.request import Request


class Metadata(BaseMetadata):
    def determine_metadata(self, request: Request, view: Any) -> dict[str, Any]:
        return {
            "name": view.get_view_name(),
            "description": view.get_view_description(),
            "methods": sorted(view.allowed_methods),
            "schema": "/api/schema/",
        }
