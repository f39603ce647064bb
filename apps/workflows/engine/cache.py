"""Node result caching: a node with ``cache_ttl_s`` reuses the output of an earlier run of the same node
type with the same resolved inputs in the same tenant, within the TTL; the journal says so
(``node.cache_hit``). The key also holds what the inputs point at (``NodeType.cache_dependencies``:
a saved query's and its datasource's last change), so an edited query is never served stale. Node
types with side effects refuse ``cache_ttl_s`` unless ``cache_side_effects: true`` (checked when the
graph is validated); flow and waiting types are never cached."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.workflows.models import NodeCache
from apps.workflows.nodes import base as nodes


def key(tenant_id: str, node_type: nodes.NodeType, inputs: Any) -> str:
    material = {
        "type": node_type.type,
        "version": node_type.version,
        "inputs": inputs,
        "points_at": node_type.cache_dependencies(inputs if isinstance(inputs, dict) else {}, tenant_id),
    }
    text = json.dumps(material, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(f"{tenant_id}:{text}".encode()).hexdigest()


def lookup(tenant_id: str, cache_key: str) -> NodeCache | None:
    return NodeCache.objects.filter(tenant_id=tenant_id, key=cache_key, expires_at__gt=timezone.now()).first()


def store(
    tenant_id: str, cache_key: str, node_type: str, output: Any, instance_id: str, ttl_s: float
) -> None:
    now = timezone.now()
    values = {
        "node_type": node_type,
        "output": output,
        "instance_id": instance_id,
        "created_at": now,
        "expires_at": now + timedelta(seconds=float(ttl_s)),
    }
    try:
        with transaction.atomic():
            NodeCache.objects.update_or_create(tenant_id=tenant_id, key=cache_key, defaults=values)
    except IntegrityError:  # two runs stored the same key at once: either value is right
        pass


def problems(node_type: nodes.NodeType, node: dict[str, Any]) -> list[tuple[str, str]]:
    """Why this node may not carry ``cache_ttl_s`` (``[(field, message)]``)."""
    if not node.get("cache_ttl_s"):
        return []
    if not node_type.cacheable:
        return [("cache_ttl_s", f"A {node_type.type} node's result is not a value to cache.")]
    effect = node_type.side_effects(node.get("inputs") or {})
    if effect and not node.get("cache_side_effects"):
        return [
            (
                "cache_ttl_s",
                f"This node has a side effect ({effect}): a cached run would skip it. Set "
                "cache_side_effects: true to cache it anyway.",
            )
        ]
    return []
