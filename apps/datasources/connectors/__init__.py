"""Datasource connectors: a registry of plain classes (docs/datasources.md). Importing this package
registers the built-in types; each module is one connector."""

from . import http, mysql, postgresql, redis, s3, smtp, sqlite  # noqa: F401
from .base import REGISTRY, Connector, ConnectorError, Result, get, register

__all__ = ["REGISTRY", "Connector", "ConnectorError", "Result", "get", "register"]
