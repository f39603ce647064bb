"""The inbox: steps of a tenant's runs waiting for a person (``approval``, ``dataCollection`` — any
node type that takes input), for the signed-in member; and the email that tells the step's
``approvers`` it waits for them.

A step with ``approvers`` (usernames or emails) is in the inbox of those people only; a step without
is in the inbox of every member who may answer it (``workflow.run``). The email goes out after the
journal row saying the step waits has committed (a receiver of the engine's ``instance_events``), once
per wait, to the approvers' addresses: an approver given as an email is written to; one given as a
username is looked up among the tenant's members.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.urls import reverse

from apps.tenancy.models import Membership, Tenant, User
from apps.tenancy.tasks import send_email

from .models import NodeRun, NodeStatus
from .nodes import base as nodes

logger = logging.getLogger(__name__)
INBOX_LIMIT = 500  # waiting steps read per page view (newest first)


def input_types() -> list[str]:
    return [name for name, node in nodes.REGISTRY.items() if node.takes_input]


def approvers_of(run_input: Any) -> list[str]:
    approvers = (run_input or {}).get("approvers") if isinstance(run_input, dict) else None
    return [str(a).strip().lower() for a in approvers or [] if str(a).strip()]


def waiting_for(*, tenant: Tenant, user: User) -> list[NodeRun]:
    """The steps of ``tenant``'s runs waiting for ``user``'s answer, newest first."""
    rows = (
        NodeRun.objects.filter(
            instance__tenant=tenant, status=NodeStatus.WAITING, node_type__in=input_types()
        )
        .select_related("instance", "instance__workflow")
        .order_by("-id")[:INBOX_LIMIT]
    )
    me = {user.username.lower(), (user.email or "").lower()} - {""}
    return [row for row in rows if not approvers_of(row.input) or me & set(approvers_of(row.input))]


def on_events(events: list[Any], **_: Any) -> None:
    """Receiver of ``instance_events``: email the approvers of each step that started waiting for input."""
    for event in events:
        data = event.data if isinstance(event.data, dict) else {}
        if event.type == "node.waiting" and data.get("kind") == "input":
            try:
                notify_approvers(event.instance_id, event.node_id, event.iteration or "")
            except Exception:  # a mail problem never breaks the run; the inbox page still lists it
                logger.exception("could not tell the approvers of %s/%s", event.instance_id, event.node_id)


def notify_approvers(instance_id: Any, node_id: str, iteration: str) -> list[str]:
    run = (
        NodeRun.objects.filter(instance_id=instance_id, node_id=node_id, iteration=iteration)
        .select_related("instance__tenant", "instance__workflow")
        .first()
    )
    if run is None or run.node_type not in input_types():
        return []
    wanted = approvers_of(run.input)
    if not wanted:
        return []
    tenant = run.instance.tenant
    emails = {a for a in wanted if "@" in a}
    names = [a for a in wanted if "@" not in a]
    if names:
        members = Membership.objects.filter(tenant=tenant, user__username__in=names).values_list(
            "user__email", flat=True
        )
        emails |= {e.lower() for e in members if e}
    if not emails:
        return []
    link = settings.JETADMIN_PUBLIC_URL.rstrip("/") + reverse("run-page", args=[tenant.id, run.instance_id])
    what = run.instance.workflow.name if run.instance.workflow else "a test run"
    message = (run.input or {}).get("message") or ""
    body = (
        f"The step {node_id!r} of {what} in {tenant.name} waits for your answer.\n\n"
        + (f"{message}\n\n" if message else "")
        + f"Answer it here: {link}\n"
    )
    to = sorted(emails)
    send_email.delay(to=to, subject=f"[{tenant.name}] {what}: {node_id} waits for you", body=body)
    return to
