"""Celery tasks of tenancy: thin, take plain values, call Django's email backend."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail


@shared_task(
    name="tenancy.send_email", acks_late=True, autoretry_for=(OSError,), max_retries=5, retry_backoff=True
)
def send_email(*, to: list[str], subject: str, body: str) -> int:
    return send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, to)
