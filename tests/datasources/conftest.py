"""Datasource test helpers."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def local_servers(settings: Any) -> None:
    """The databases these tests use run on this machine: allow loopback past the outbound guard
    (jetadmin/outbound.py refuses it by default, as production should)."""
    settings.JETADMIN_OUTBOUND_ALLOW = ["127.0.0.0/8", "::1/128"]
