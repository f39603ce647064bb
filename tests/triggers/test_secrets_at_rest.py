"""Webhook secrets at rest: encrypted with MultiFernet, rotated by the command, old keys droppable."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from apps.tenancy.services import Actor
from apps.triggers import services
from apps.triggers.models import Webhook
from jetadmin import crypto

SECRET = "canary-hmac-secret-4f1d"


@pytest.fixture
def keys(settings):
    a, b = crypto.new_key(), crypto.new_key()
    settings.JETADMIN_ENCRYPTION_KEYS = [a]
    return settings, a, b


@pytest.mark.django_db
def test_secret_is_stored_encrypted_and_survives_a_key_rotation(keys, owner_tenant, echo_workflow):
    settings, old, new = keys
    user, _ = owner_tenant
    webhook, _ = services.webhook_create(actor=Actor(user=user), workflow=echo_workflow(), secret=SECRET)
    stored = Webhook.objects.values_list("secret_encrypted", flat=True).get(pk=webhook.pk)
    assert SECRET not in stored and crypto.decrypt(stored) == SECRET

    settings.JETADMIN_ENCRYPTION_KEYS = [new, old]  # the new key first, the old one still readable
    call_command("rotate_encryption_keys")
    rotated = Webhook.objects.values_list("secret_encrypted", flat=True).get(pk=webhook.pk)
    assert rotated != stored

    settings.JETADMIN_ENCRYPTION_KEYS = [new]  # the old key dropped: everything still decrypts
    assert crypto.decrypt(rotated) == SECRET
    with pytest.raises(crypto.DecryptionFailed):
        settings.JETADMIN_ENCRYPTION_KEYS = [old]
        crypto.decrypt(rotated)


@pytest.mark.django_db
def test_rotation_reports_unreadable_secrets_and_changes_nothing(keys, owner_tenant, echo_workflow):
    settings, _old, new = keys
    user, _ = owner_tenant
    webhook, _ = services.webhook_create(actor=Actor(user=user), workflow=echo_workflow(), secret=SECRET)
    stored = Webhook.objects.values_list("secret_encrypted", flat=True).get(pk=webhook.pk)
    settings.JETADMIN_ENCRYPTION_KEYS = [new]  # the old key dropped too early
    with pytest.raises(CommandError, match="could not be decrypted"):
        call_command("rotate_encryption_keys")
    assert Webhook.objects.values_list("secret_encrypted", flat=True).get(pk=webhook.pk) == stored


def test_the_embedded_default_keeps_a_generated_key_in_the_data_dir():
    from pathlib import Path

    from django.conf import settings

    if settings.JETADMIN_ENCRYPTION_KEY_FILE is None:
        pytest.skip("JETADMIN_ENCRYPTION_KEYS is set in this environment")
    path = Path(settings.JETADMIN_ENCRYPTION_KEY_FILE)
    assert path.read_text().strip() == settings.JETADMIN_ENCRYPTION_KEYS[0]
    assert path.stat().st_mode & 0o077 == 0  # readable by its owner only
    assert crypto.decrypt(crypto.encrypt("x")) == "x"
