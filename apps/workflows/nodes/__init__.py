"""Built-in node types. Importing this package registers them (explicit discovery, no file scanning).

``waiting`` holds the types that park the run for a person or a child run (approval, dataCollection,
subWorkflow); the integration types (dataQuery, httpRequest, notify) come with the datasources issue.
"""

from . import core, integrations, javascript, waiting  # noqa: F401
from .base import REGISTRY, NodeError, NodeType, get, register, registered

__all__ = ["REGISTRY", "NodeError", "NodeType", "get", "register", "registered"]
