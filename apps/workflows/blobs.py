"""Large node outputs off the hot rows.

An output whose JSON is larger than ``JETADMIN_BLOB_THRESHOLD_BYTES`` (256 KB by default) is kept in a
:class:`~apps.workflows.models.Blob` — in the database on the embedded default, or in S3-compatible
storage (boto3) when ``JETADMIN_BLOB_S3_BUCKET`` is set — and the node's row keeps a reference:
``{"$blob": id, "size": bytes, "type": "array"|"object"|..., "count": items, "preview": first rows}``.

Readers never see the difference where they need the value: the engine resolves references when it
builds a node's context (templates and downstream nodes), and so do widgets. The API, the websocket and
the pages show the reference with its preview; ``GET …/instances/{iid}/nodes/{node_id}/output/``
downloads the full value. A run's blobs go with it (S3 objects through a delete signal).
"""

from __future__ import annotations

import json
import uuid
from typing import Any, TypeGuard

from django.conf import settings
from django.db.models.signals import post_delete
from django.dispatch import receiver

from apps.workflows.engine.lru import LRU
from apps.workflows.models import Blob

REF = "$blob"
PREVIEW_ITEMS = 5
PREVIEW_KEYS = 20
_loaded: LRU[str, Any] = LRU(16)  # a few large values, for the downstream nodes of one run


def is_ref(value: Any) -> TypeGuard[dict[str, Any]]:
    return isinstance(value, dict) and isinstance(value.get(REF), str)


def _preview(value: Any) -> dict[str, Any]:
    if isinstance(value, list):
        return {"type": "array", "count": len(value), "preview": value[:PREVIEW_ITEMS]}
    if isinstance(value, dict):
        keys = list(value)[:PREVIEW_KEYS]
        preview = {k: (_preview(value[k]) if isinstance(value[k], list | dict) else value[k]) for k in keys}
        return {"type": "object", "count": len(value), "preview": preview}
    return {"type": type(value).__name__, "preview": str(value)[:500]}


def _s3() -> Any:
    import boto3

    endpoint = settings.JETADMIN_BLOB_S3_ENDPOINT or None
    return boto3.client("s3", endpoint_url=endpoint)


def offload(
    *, tenant_id: str, instance_id: str, node_id: str, iteration: str, value: Any, text: str | None = None
) -> Any:
    """``value`` itself when small, else a reference to the blob it was stored in."""
    text = text if text is not None else json.dumps(value)
    size = len(text.encode())
    if size <= settings.JETADMIN_BLOB_THRESHOLD_BYTES:
        return value
    blob_id = uuid.uuid4()
    blob = Blob(
        id=blob_id,
        tenant_id=tenant_id,
        instance_id=instance_id,
        node_id=node_id,
        iteration=iteration,
        size=size,
    )
    if settings.JETADMIN_BLOB_S3_BUCKET:
        blob.key = f"{settings.JETADMIN_BLOB_S3_PREFIX}{tenant_id}/{instance_id}/{blob_id}.json"
        _s3().put_object(
            Bucket=settings.JETADMIN_BLOB_S3_BUCKET,
            Key=blob.key,
            Body=text.encode(),
            ContentType="application/json",
        )
    else:
        blob.content = text
    blob.save(force_insert=True)
    _loaded.put(str(blob_id), value)
    return {REF: str(blob_id), "size": size, **_preview(value)}


def text_of(blob: Blob) -> str:
    if blob.key:
        body = _s3().get_object(Bucket=settings.JETADMIN_BLOB_S3_BUCKET, Key=blob.key)["Body"]
        return str(body.read().decode())
    return blob.content or ""


def load(ref: dict[str, Any]) -> Any:
    """The full value behind a reference (a missing blob reads as None)."""
    blob_id = ref[REF]
    cached = _loaded.get(blob_id)
    if cached is not None:
        return cached
    blob = Blob.objects.filter(pk=blob_id).first()
    if blob is None:
        return None
    value = json.loads(text_of(blob))
    _loaded.put(blob_id, value)
    return value


def resolve(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with every top-level reference replaced by its value (a node's context, a widget's)."""
    for key, value in list(data.items()):
        if is_ref(value):
            data[key] = load(value)
    return data


@receiver(post_delete, sender=Blob, dispatch_uid="workflows.blob_delete")
def _delete_object(sender: Any, instance: Blob, **_: Any) -> None:
    if instance.key and settings.JETADMIN_BLOB_S3_BUCKET:
        _s3().delete_object(Bucket=settings.JETADMIN_BLOB_S3_BUCKET, Key=instance.key)
