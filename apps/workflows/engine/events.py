"""The broadcast hook: every journal row, after its transaction commits.

The engine calls :func:`publish` with the InstanceEvent rows it wrote; receivers of
:data:`instance_events` (the realtime layer attaches websockets here) get them in order. A receiver
that fails is logged and never breaks the engine.
"""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import Signal

logger = logging.getLogger(__name__)

instance_events = Signal()  # sender=None, events=[InstanceEvent, ...]


def publish(events: list[Any]) -> None:
    if not events:
        return
    for receiver, result in instance_events.send_robust(sender=None, events=events):
        if isinstance(result, Exception):
            logger.error("instance event receiver %r failed: %s", receiver, result)
