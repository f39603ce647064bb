"""Built-in node types. Importing this package registers them (explicit discovery, no file scanning).

Later issues add the integration and waiting types (dataQuery, httpRequest, notify, subWorkflow,
approval, dataCollection) as modules imported here.
"""

from . import core, javascript  # noqa: F401
from .base import REGISTRY, NodeError, NodeType, get, register, registered

__all__ = ["REGISTRY", "NodeError", "NodeType", "get", "register", "registered"]
