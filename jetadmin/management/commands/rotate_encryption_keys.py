"""``manage.py rotate_encryption_keys``: re-encrypt every stored secret with the first configured key.

Rotation: put the new key first in ``JETADMIN_ENCRYPTION_KEYS`` (keep the old ones after it), run this
on one machine, then drop the old keys. Secrets that no configured key decrypts are reported, untouched.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from jetadmin import crypto


class Command(BaseCommand):
    help = "Re-encrypt every stored secret with the first key of JETADMIN_ENCRYPTION_KEYS."

    def handle(self, *args: Any, **options: Any) -> None:
        rotated = failed = 0
        for label, field in crypto.ENCRYPTED_FIELDS:
            model = apps.get_model(label)
            with transaction.atomic():
                rows = model.objects.select_for_update().exclude(**{field: ""}).values_list("pk", field)
                for pk, token in rows:
                    try:
                        new = crypto.rotate(token)
                    except crypto.DecryptionFailed:
                        failed += 1
                        self.stderr.write(
                            f"{label} {pk}: {field} cannot be decrypted with any configured key"
                        )
                        continue
                    model.objects.filter(pk=pk).update(**{field: new})
                    rotated += 1
        self.stdout.write(f"re-encrypted {rotated} secret(s) with the first key; {failed} could not be read")
        if failed:
            raise CommandError(
                f"{failed} secret(s) could not be decrypted; nothing was lost, none was changed"
            )
